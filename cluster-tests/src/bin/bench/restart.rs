//! `restart`: a registry node holding N tenants (default 100,000 of ~4 KiB)
//! is killed (SIGKILL: no graceful shutdown) and started again, a follower
//! and then the leader. Per restart: how long the new process took to be
//! ready (`/readyz`: a leader known, everything it had committed applied:
//! the last snapshot loaded and the log after it replayed) and to serve
//! the newest tenant from its own state, caught up with the cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::{wait, ClusterOptions, RegistryCluster};
use proto::v1;
use serde_json::json;

use crate::target::Writer;

const DOCUMENT_BYTES: usize = 4096;

struct Restart {
    node: u64,
    led: bool,
    ready: Duration,
    serving: Duration,
}

pub(crate) async fn run(tenants: usize, json_output: bool) -> anyhow::Result<()> {
    let base = ClusterOptions::new("bench-restart");
    let base = if crate::target::insecure() { base.insecure() } else { base };
    // WAN-like timings, as in the other suites; snapshots as the product's defaults take them.
    let options =
        ClusterOptions { heartbeat_ms: 250, election_timeout_ms_min: 1500, election_timeout_ms_max: 3000, ..base };
    let mut cluster = RegistryCluster::start(options).await?;
    let writer = Writer::Tenantry(Arc::new(cluster.client()));
    let revision = writer.preload("bench", 0..tenants, DOCUMENT_BYTES).await?;
    let newest = format!("bench-{:06}", tenants - 1);
    for node in 1..=3 {
        cluster.wait_applied(node, revision).await?;
    }

    let leader = cluster.leader().await?;
    let follower = (1..=3).find(|node| *node != leader).unwrap_or(1);
    let mut restarts = Vec::new();
    for (node, led) in [(follower, false), (leader, true)] {
        cluster.kill(node)?;
        let started = Instant::now();
        cluster.start_node(node)?;
        wait::until(&format!("node {node} ready"), Duration::from_secs(60), || async {
            matches!(cluster.http_get(node, "/readyz").await, Ok((200, _))).then_some(())
        })
        .await?;
        let ready = started.elapsed();
        let client = cluster.node_client(node);
        wait::until(&format!("node {node} serving {newest}"), Duration::from_secs(60), || async {
            let status = cluster.status(node).await.ok()?;
            let found = client.get_tenant(&newest, v1::Consistency::Stale).await.ok()?;
            (status.applied_index >= revision && found.tenant.is_some()).then_some(())
        })
        .await?;
        restarts.push(Restart { node, led, ready, serving: started.elapsed() });
        cluster.wait_ready().await?;
    }

    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    if json_output {
        let rows: Vec<_> = restarts
            .iter()
            .map(|restart| {
                json!({ "node": restart.node, "led": restart.led, "ready_ms": ms(restart.ready),
                        "serving_ms": ms(restart.serving) })
            })
            .collect();
        println!("{}", json!({ "suite": "restart", "target": "tenantry", "tenants": tenants, "restarts": rows }));
    } else {
        println!("restart: tenantry, {tenants} tenants of ~4 KiB, a node killed (SIGKILL) and started again");
        println!("{:>6} {:>6} {:>10} {:>12}", "node", "led", "ready ms", "serving ms");
        for restart in &restarts {
            println!(
                "{:>6} {:>6} {:>10.1} {:>12.1}",
                restart.node,
                restart.led,
                ms(restart.ready),
                ms(restart.serving)
            );
        }
    }
    cluster.passed();
    Ok(())
}
