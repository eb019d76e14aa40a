//! `rolling-restart`: a steady writer while each registry node in turn is
//! stopped gracefully (SIGTERM: a leader hands leadership over first) and
//! started again. Per restart: whether the node led, and the write pause:
//! the longest gap between two acknowledged writes around it (elections
//! take 1.5–3 s with the bench's WAN timeouts, so a leader that just died
//! would show that).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::target::{document, Store, Target};

const TENANTS: usize = 10;
const DOCUMENT_BYTES: usize = 1024;

struct Restart {
    node: u64,
    led: bool,
    from: Instant,
    to: Instant,
}

pub(crate) async fn run(rate: u64, json_output: bool) -> anyhow::Result<()> {
    let store = Store::start(Target::Tenantry, "bench-rolling-restart").await?;
    let writer = store.writer().await?;
    writer.preload("bench", 0..TENANTS, DOCUMENT_BYTES).await?;
    let Store::Tenantry(mut cluster) = store else { anyhow::bail!("rolling-restart measures Tenantry only") };

    // The writer: one write every 1/rate s, each retried by the client
    // across the leader change; acknowledged writes' completion times.
    let acked = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = {
        let (acked, failed, stop, mut writer) = (acked.clone(), failed.clone(), stop.clone(), writer.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let id = format!("bench-{:06}", n as usize % TENANTS);
                match writer.put(&id, document(&id, n, DOCUMENT_BYTES), false).await {
                    Ok(_) => acked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Instant::now()),
                    Err(_) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut restarts = Vec::new();
    for node in 1..=3 {
        let led = cluster.leader().await? == node;
        let from = Instant::now();
        cluster.terminate(node).await?;
        cluster.start_node(node)?;
        cluster.wait_ready().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        restarts.push(Restart { node, led, from, to: Instant::now() });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await?;

    let acked = acked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let pause = |restart: &Restart| {
        acked
            .windows(2)
            .filter(|pair| pair[1] >= restart.from && pair[0] <= restart.to)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    };
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    if json_output {
        let rows: Vec<_> = restarts
            .iter()
            .map(|restart| json!({ "node": restart.node, "led": restart.led, "pause_ms": pause(restart).as_secs_f64() * 1e3 }))
            .collect();
        println!(
            "{}",
            json!({ "suite": "rolling-restart", "target": "tenantry", "rate": rate, "writes": acked.len(),
                    "failed": failed, "restarts": rows })
        );
    } else {
        println!(
            "rolling-restart: tenantry, a writer at {rate} writes/s, each node stopped (SIGTERM) and started in turn"
        );
        println!("{:>6} {:>6} {:>10}", "node", "led", "pause ms");
        for restart in &restarts {
            println!("{:>6} {:>6} {:>10.1}", restart.node, restart.led, pause(restart).as_secs_f64() * 1e3);
        }
        println!("{} writes acknowledged, {failed} failed after the client's retries", acked.len());
    }
    cluster.passed();
    Ok(())
}
