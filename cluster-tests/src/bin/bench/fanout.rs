//! `fanout`: a writer at a fixed rate; for every write, the delay from
//! sending it until each subscriber has it, and until the last one has it.
//!
//! Tenantry's subscribers are agents (the `agent` library, one gRPC
//! connection each, spread over the three regions' nodes, as separate
//! machines would be). etcd's are watchers on the tenants prefix, spread
//! over the three members, one connection each (the same shape) and then
//! multiplexed over 10 connections (etcd's best case).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::Kind;
use cluster_tests::etcd::{self, pb, EtcdCluster};
use cluster_tests::{agents, RegistryCluster};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::stats::Percentiles;
use crate::target::{document, Store, Target, Writer, ETCD_PREFIX};

/// Tenants the writes go to.
const TENANTS: usize = 100;
const DOCUMENT_BYTES: usize = 1024;

pub(crate) struct FanoutRow {
    subscribers: usize,
    /// Connections the subscribers share (equal to `subscribers` when each has its own).
    connections: usize,
    writes: usize,
    send_to_each: Percentiles,
    send_to_last: Percentiles,
    missed: usize,
    duplicated: usize,
}

/// When each subscriber first had each revision, and how many it saw twice.
type Arrivals = (BTreeMap<u64, Instant>, usize);

/// Writes at `rate` for `seconds`; (revision, sent) of each write.
async fn write_at_rate(writer: &mut Writer, rate: u64, seconds: u64) -> anyhow::Result<Vec<(u64, Instant)>> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut writes = Vec::new();
    for n in 0..rate * seconds {
        ticker.tick().await;
        let id = format!("bench-{:06}", n as usize % TENANTS);
        let sent = Instant::now();
        let revision = writer.put(&id, document(&id, n, DOCUMENT_BYTES), false).await?;
        writes.push((revision, sent));
    }
    Ok(writes)
}

fn row(subscribers: usize, connections: usize, writes: &[(u64, Instant)], arrivals: &[Arrivals]) -> FanoutRow {
    let (mut to_each, mut to_last, mut missed) = (Vec::new(), Vec::new(), 0);
    for (revision, sent) in writes {
        let mut last_arrival = *sent;
        for (arrived, _) in arrivals {
            match arrived.get(revision) {
                Some(at) => {
                    to_each.push(at.saturating_duration_since(*sent));
                    last_arrival = last_arrival.max(*at);
                }
                None => missed += 1,
            }
        }
        to_last.push(last_arrival.saturating_duration_since(*sent));
    }
    FanoutRow {
        subscribers,
        connections,
        writes: writes.len(),
        send_to_each: Percentiles::of(to_each),
        send_to_last: Percentiles::of(to_last),
        missed,
        duplicated: arrivals.iter().map(|(_, duplicated)| duplicated).sum(),
    }
}

/// Records, per agent, when it first reached each revision. The agent
/// asserts gap-free, in-order application, so it never sees one twice.
fn record_agent(agent: &agent::Agent) -> tokio::task::JoinHandle<Arrivals> {
    let mut changed = agent.changed();
    tokio::spawn(async move {
        let mut arrivals = BTreeMap::new();
        let mut last = *changed.borrow();
        while changed.changed().await.is_ok() {
            let now = Instant::now();
            let revision = *changed.borrow();
            // A coalesced jump means every revision in between arrived now.
            for between in last + 1..=revision {
                arrivals.insert(between, now);
            }
            last = last.max(revision);
        }
        (arrivals, 0)
    })
}

async fn tenantry(
    cluster: &RegistryCluster,
    writer: &mut Writer,
    fleet: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<FanoutRow> {
    let mut followers = Vec::with_capacity(fleet);
    for n in 0..fleet {
        let home = (n % 3) as u64 + 1;
        followers.push(agents::start(cluster, &format!("bench-{fleet}-{n:04}"), home, Kind::Api, None).await?);
    }
    let (_, revision) = cluster.tenants().await?;
    for agent in &followers {
        agents::wait_for(agent, revision).await?;
    }
    let recorders: Vec<_> = followers.iter().map(record_agent).collect();
    let writes = write_at_rate(writer, rate, seconds).await?;
    let last = writes.last().map_or(revision, |(revision, _)| *revision);
    for agent in &followers {
        agents::wait_for(agent, last).await?;
    }
    let mut arrivals = Vec::new();
    for (agent, recorder) in followers.into_iter().zip(recorders) {
        agent.shutdown().await;
        arrivals.push(recorder.await?);
    }
    Ok(row(fleet, fleet, &writes, &arrivals))
}

/// One etcd watcher on the tenants prefix: records arrivals until `stop`.
struct Watcher {
    arrivals: Arc<Mutex<Arrivals>>,
    newest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn watch(channel: tonic::transport::Channel, created: Arc<AtomicUsize>) -> anyhow::Result<Watcher> {
    let mut client = pb::watch_client::WatchClient::new(channel);
    let mut range_end = ETCD_PREFIX.as_bytes().to_vec();
    if let Some(last) = range_end.last_mut() {
        *last += 1;
    }
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: ETCD_PREFIX.as_bytes().to_vec(),
            range_end,
            start_revision: 0,
        })),
    };
    // The request stream stays open: closing it would cancel the watch.
    let requests = tokio_stream::iter(vec![create]).chain(tokio_stream::pending());
    let mut responses = client.watch(requests).await?.into_inner();
    let arrivals = Arc::new(Mutex::new((BTreeMap::new(), 0)));
    let newest = Arc::new(AtomicU64::new(0));
    let (task_arrivals, task_newest) = (arrivals.clone(), newest.clone());
    let task = tokio::spawn(async move {
        while let Some(response) = responses.next().await {
            let response = response?;
            let now = Instant::now();
            if response.created {
                created.fetch_add(1, Ordering::SeqCst);
            }
            let mut arrivals = task_arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for event in response.events {
                let revision = event.kv.map_or(0, |kv| kv.mod_revision as u64);
                if arrivals.0.insert(revision, now).is_some() {
                    arrivals.1 += 1;
                }
                task_newest.fetch_max(revision, Ordering::SeqCst);
            }
        }
        Ok(())
    });
    Ok(Watcher { arrivals, newest, task })
}

async fn etcd(
    cluster: &EtcdCluster,
    writer: &mut Writer,
    fleet: usize,
    connections: Option<usize>,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<FanoutRow> {
    let connections = connections.unwrap_or(fleet).min(fleet).max(1);
    let mut channels = Vec::with_capacity(connections);
    for n in 0..connections {
        channels.push(etcd::connect(&cluster.endpoints[n % cluster.endpoints.len()]).await?);
    }
    let created = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::with_capacity(fleet);
    for n in 0..fleet {
        watchers.push(watch(channels[n % connections].clone(), created.clone()).await?);
    }
    cluster_tests::wait::until("every watch to be created", Duration::from_secs(30), || async {
        (created.load(Ordering::SeqCst) >= fleet).then_some(())
    })
    .await?;
    let writes = write_at_rate(writer, rate, seconds).await?;
    let last = writes.last().map_or(0, |(revision, _)| *revision);
    cluster_tests::wait::until("every watcher to see the last write", Duration::from_secs(60), || async {
        watchers.iter().all(|watcher| watcher.newest.load(Ordering::SeqCst) >= last).then_some(())
    })
    .await?;
    let mut arrivals = Vec::new();
    for watcher in watchers {
        watcher.task.abort();
        let recorded = watcher.arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        arrivals.push(recorded);
    }
    Ok(row(fleet, connections, &writes, &arrivals))
}

pub(crate) async fn run(
    target: Target,
    sizes: &[usize],
    rate: u64,
    seconds: u64,
    json_output: bool,
) -> anyhow::Result<()> {
    let store = Store::start(target, "bench-fanout").await?;
    let mut writer = store.writer().await?;
    writer.preload("bench", 0..TENANTS, DOCUMENT_BYTES).await?;
    let mut rows = Vec::new();
    for &fleet in sizes {
        match &store {
            Store::Tenantry(cluster) => rows.push(tenantry(cluster, &mut writer, fleet, rate, seconds).await?),
            Store::Etcd(cluster) => {
                rows.push(etcd(cluster, &mut writer, fleet, None, rate, seconds).await?);
                if fleet > 10 {
                    rows.push(etcd(cluster, &mut writer, fleet, Some(10), rate, seconds).await?);
                }
            }
        }
    }
    print(target, &rows, rate, json_output);
    store.finish();
    Ok(())
}

fn print(target: Target, rows: &[FanoutRow], rate: u64, json_output: bool) {
    if json_output {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "subscribers": row.subscribers, "connections": row.connections, "writes": row.writes,
                    "rate_per_s": rate, "send_to_each": row.send_to_each.json(), "send_to_last": row.send_to_last.json(),
                    "missed": row.missed, "duplicated": row.duplicated,
                })
            })
            .collect();
        println!("{}", json!({ "suite": "fanout", "target": target.name(), "rows": rows }));
        return;
    }
    println!("fanout: {}, 3 members on loopback, ~1 KiB writes at {rate}/s; times in ms", target.name());
    println!(
        "{:>11} {:>11} {:>7} | {:>24} | {:>24} | {:>6} {:>10}",
        "subscribers",
        "connections",
        "writes",
        "send→each p50/p99/max",
        "send→last p50/p99/max",
        "missed",
        "duplicated"
    );
    for row in rows {
        println!(
            "{:>11} {:>11} {:>7} | {:>24} | {:>24} | {:>6} {:>10}",
            row.subscribers,
            row.connections,
            row.writes,
            row.send_to_each.cell(),
            row.send_to_last.cell(),
            row.missed,
            row.duplicated
        );
    }
}
