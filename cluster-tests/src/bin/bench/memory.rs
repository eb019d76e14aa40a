//! `memory`: the members' resident memory with N tenants of ~4 KiB (default
//! 10,000 then 100,000), after an idle second; the mean over the three
//! members, and the growth per tenant between the sizes.

use std::time::Duration;

use serde_json::json;

use crate::stats::rss_bytes;
use crate::target::{Store, Target};

const DOCUMENT_BYTES: usize = 4096;

pub(crate) async fn run(target: Target, sizes: &[usize], json_output: bool) -> anyhow::Result<()> {
    let mut store = Store::start(target, "bench-memory").await?;
    let writer = store.writer().await?;
    let mut loaded = 0;
    let mut rows = Vec::new();
    let empty = mean_rss(&mut store)?;
    for &size in sizes {
        if size > loaded {
            writer.preload("bench", loaded..size, DOCUMENT_BYTES).await?;
            loaded = size;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        rows.push((size, mean_rss(&mut store)?));
    }
    let per_tenant = match (rows.first(), rows.last()) {
        (Some((small, small_rss)), Some((large, large_rss))) if large > small => {
            Some((*large_rss as f64 - *small_rss as f64) / (large - small) as f64)
        }
        _ => None,
    };
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    if json_output {
        let rows: Vec<_> =
            rows.iter().map(|(tenants, rss)| json!({ "tenants": tenants, "rss_bytes_mean": rss })).collect();
        println!(
            "{}",
            json!({ "suite": "memory", "target": target.name(), "empty_rss_bytes_mean": empty, "rows": rows,
                    "bytes_per_tenant": per_tenant })
        );
    } else {
        println!("memory: {}, mean RSS of the 3 members, documents of ~4 KiB", target.name());
        println!("{:>10} {:>12}", "tenants", "RSS MiB");
        println!("{:>10} {:>12.1}", 0, mib(empty));
        for (tenants, rss) in &rows {
            println!("{tenants:>10} {:>12.1}", mib(*rss));
        }
        if let Some(per_tenant) = per_tenant {
            println!("growth per tenant: {:.0} bytes", per_tenant);
        }
    }
    store.finish();
    Ok(())
}

fn mean_rss(store: &mut Store) -> anyhow::Result<u64> {
    let pids = store.pids();
    anyhow::ensure!(!pids.is_empty(), "no member is running");
    let total: u64 = pids.iter().map(|pid| rss_bytes(*pid)).collect::<anyhow::Result<Vec<_>>>()?.into_iter().sum();
    Ok(total / pids.len() as u64)
}
