//! `put-latency` (one client, sequential writes of ~1 KiB documents) and
//! `put-throughput` (many concurrent clients for a fixed time).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::stats::Percentiles;
use crate::target::{document, Store, Target};

/// Tenants the writes go to (created first).
const TENANTS: usize = 100;
const DOCUMENT_BYTES: usize = 1024;

pub(crate) async fn latency(target: Target, seconds: u64, json_output: bool) -> anyhow::Result<()> {
    let store = Store::start(target, "bench-put-latency").await?;
    let mut writer = store.writer().await?;
    writer.preload("bench", 0..TENANTS, DOCUMENT_BYTES).await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut samples = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let id = format!("bench-{:06}", n as usize % TENANTS);
        let started = Instant::now();
        writer.put(&id, document(&id, n, DOCUMENT_BYTES), false).await?;
        samples.push(started.elapsed());
        n += 1;
    }
    let latency = Percentiles::of(samples);
    if json_output {
        println!(
            "{}",
            json!({ "suite": "put-latency", "target": target.name(), "writes": n, "latency": latency.json() })
        );
    } else {
        println!("put-latency: {}, one client, sequential ~1 KiB writes for {seconds} s; ms", target.name());
        println!("{:>8} {:>8} {:>8} {:>8} {:>8}", "writes", "p50", "p90", "p99", "max");
        println!("{n:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", latency.p50, latency.p90, latency.p99, latency.max);
    }
    store.finish();
    Ok(())
}

pub(crate) async fn throughput(target: Target, clients: usize, seconds: u64, json_output: bool) -> anyhow::Result<()> {
    let store = Store::start(target, "bench-put-throughput").await?;
    let writer = store.writer().await?;
    writer.preload("bench", 0..clients.max(1), DOCUMENT_BYTES).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let mut writer = writer.clone();
            tokio::spawn(async move {
                let id = format!("bench-{client:06}");
                let mut samples = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    writer.put(&id, document(&id, n, DOCUMENT_BYTES), false).await?;
                    samples.push(sent.elapsed());
                    n += 1;
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = samples.len();
    let per_second = writes as f64 / elapsed;
    let latency = Percentiles::of(samples);
    if json_output {
        println!(
            "{}",
            json!({ "suite": "put-throughput", "target": target.name(), "clients": clients, "writes": writes,
                    "writes_per_s": per_second, "latency": latency.json() })
        );
    } else {
        println!("put-throughput: {}, {clients} concurrent clients, ~1 KiB writes for {seconds} s", target.name());
        println!("{:>8} {:>10} {:>10} {:>10}", "writes", "writes/s", "p50 ms", "p99 ms");
        println!("{writes:>8} {per_second:>10.0} {:>10.2} {:>10.2}", latency.p50, latency.p99);
    }
    store.finish();
    Ok(())
}
