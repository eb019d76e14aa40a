//! `catchup`: a new subscriber's cold start against a registry of N
//! tenants (default 100,000 documents of ~1 KiB).
//!
//! * Tenantry: an agent with an empty data dir (snapshot from its node,
//!   in chunks), then a restart of the same agent from its local disk (the
//!   last-known-good copy, then a resume from its revision).
//! * etcd: what a client does to build the same view: a paged range read
//!   of the prefix at one revision (1,000 keys a page), then a watch from
//!   the next revision. etcd clients keep no local copy, so there is no
//!   from-disk case.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agent::Kind;
use cluster_tests::agents;
use cluster_tests::etcd::{self, pb};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::target::{Store, Target, ETCD_PREFIX};

const DOCUMENT_BYTES: usize = 1024;
const PAGE: i64 = 1000;

pub(crate) async fn run(target: Target, tenants: usize, json_output: bool) -> anyhow::Result<()> {
    let store = Store::start(target, "bench-catchup").await?;
    let writer = store.writer().await?;
    let loading = Instant::now();
    let last = writer.preload("bench", 0..tenants, DOCUMENT_BYTES).await?;
    eprintln!("loaded {tenants} tenants in {:.1} s", loading.elapsed().as_secs_f64());
    let (from_registry, from_disk) = match &store {
        Store::Tenantry(cluster) => {
            let dir = cluster.dir.join("catchup-agent");
            let started = Instant::now();
            let agent = agents::start(cluster, "catchup", 1, Kind::Api, Some(dir.clone())).await?;
            agents::wait_for(&agent, last).await?;
            let from_registry = started.elapsed();
            anyhow::ensure!(agent.view().len() == tenants, "the agent holds {} tenants", agent.view().len());
            agent.shutdown().await;
            let started = Instant::now();
            let agent = agents::start(cluster, "catchup", 1, Kind::Api, Some(dir)).await?;
            agents::wait_for(&agent, last).await?;
            let from_disk = started.elapsed();
            anyhow::ensure!(agent.view().len() == tenants, "the agent holds {} tenants", agent.view().len());
            agent.shutdown().await;
            (from_registry, Some(from_disk))
        }
        Store::Etcd(cluster) => (etcd_cold_start(&cluster.endpoints[0], tenants).await?, None),
    };
    if json_output {
        println!(
            "{}",
            json!({ "suite": "catchup", "target": target.name(), "tenants": tenants,
                    "from_registry_ms": from_registry.as_secs_f64() * 1000.0,
                    "from_disk_ms": from_disk.map(|from_disk| from_disk.as_secs_f64() * 1000.0) })
        );
    } else {
        println!("catchup: {}, a new subscriber's cold start with {tenants} tenants of ~1 KiB", target.name());
        println!("{:>10} {:>20} {:>20}", "tenants", "from registry ms", "from local disk ms");
        let disk = from_disk.map_or("n/a".to_owned(), |from_disk| format!("{:.0}", from_disk.as_secs_f64() * 1000.0));
        println!("{tenants:>10} {:>20.0} {disk:>20}", from_registry.as_secs_f64() * 1000.0);
    }
    store.finish();
    Ok(())
}

/// A paged range of the prefix at one revision into a map, then a watch
/// from the next revision; the time until the watch is created.
async fn etcd_cold_start(endpoint: &str, tenants: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let channel = etcd::connect(endpoint).await?;
    let mut kv = pb::kv_client::KvClient::new(channel.clone()).max_decoding_message_size(64 * 1024 * 1024);
    let mut range_end = ETCD_PREFIX.as_bytes().to_vec();
    if let Some(last) = range_end.last_mut() {
        *last += 1;
    }
    let mut view: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(tenants);
    let mut key = ETCD_PREFIX.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let request = pb::RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            limit: PAGE,
            revision,
            serializable: false,
        };
        let page = kv.range(request).await?.into_inner();
        if revision == 0 {
            revision = page.header.as_ref().map_or(0, |header| header.revision);
        }
        let more = page.more;
        for kv in page.kvs {
            key = kv.key.clone();
            view.insert(kv.key, kv.value);
        }
        if !more {
            break;
        }
        key.push(0);
    }
    anyhow::ensure!(view.len() == tenants, "read {} keys", view.len());
    let mut watch = pb::watch_client::WatchClient::new(channel);
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: ETCD_PREFIX.as_bytes().to_vec(),
            range_end,
            start_revision: revision + 1,
        })),
    };
    let requests = tokio_stream::iter(vec![create]).chain(tokio_stream::pending());
    let mut responses = watch.watch(requests).await?.into_inner();
    while let Some(response) = responses.next().await {
        if response?.created {
            return Ok(started.elapsed());
        }
    }
    anyhow::bail!("the watch ended before it was created")
}
