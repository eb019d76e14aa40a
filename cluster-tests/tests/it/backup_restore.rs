//! Backup and restore drill: `regctl snapshot save` takes a consistent
//! backup of a cluster with history (creates, updates, a canary, a pin, a
//! failover, shards, a finished move and one under way); `registry snapshot
//! status` checks it offline and `registry snapshot restore` builds a new
//! cluster from it, which holds identical tenants
//! (documents, bundles, placements, routing map, moves, revisions),
//! topology and audit log under a new cluster id, and goes on from there.

use std::ffi::OsStr;

use proto::v1::{self, Consistency};
use registry_client::{Client, TopologyChange, WriteOptions};

use super::{documents, phase, regctl};
use cluster_tests::binaries::binary;
use cluster_tests::{ClusterOptions, RegistryCluster};

type Everything = (Vec<v1::Tenant>, Vec<Vec<v1::AuditEntry>>, v1::TopologyResponse);

async fn everything(client: &Client) -> anyhow::Result<Everything> {
    let (tenants, _) = client.list_tenants(Consistency::Linearizable, true).await?;
    let mut histories = Vec::new();
    for tenant in &tenants {
        histories.push(client.history(&tenant.id, 1000, true).await?.entries);
    }
    let mut topology = client.topology(None).await?;
    topology.revision = 0;
    Ok((tenants, histories, topology))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_into_a_new_cluster_gives_identical_state() -> anyhow::Result<()> {
    let old = RegistryCluster::start(ClusterOptions::new("backup-old")).await?;
    let client = old.client();
    let options = WriteOptions { reason: "drill".to_owned(), ..Default::default() };
    for (shard, region) in [("us-1", "us-east"), ("us-2", "us-east"), ("eu-1", "eu-west")] {
        let shard = v1::ShardInfo {
            id: shard.to_owned(),
            region: region.to_owned(),
            endpoint: format!("embedded:{shard}"),
            ..Default::default()
        };
        client.topology(Some(TopologyChange::AddShard(shard))).await?;
    }
    client.topology(Some(TopologyChange::DrainShard("eu-1".to_owned()))).await?;
    let placed = r#"{"public":{"n":1},"placement":{"homeRegion":"us-east","allowedRegions":["us-east","eu-west"]}}"#;
    client
        .create_tenant("acme", v1::Documents { config_json: Some(placed.to_owned()), ..documents(1) }, &options)
        .await?;
    for n in 0..5 {
        client.create_tenant(&format!("b-{n}"), documents(n), &options).await?;
        client.update_tenant(&format!("b-{n}"), documents(n + 10), &options).await?;
    }
    client.delete_tenant("b-4", &options).await?;
    client.stage_canary("b-0", documents(99), &options).await?;
    client.pin_tenant("acme", &["us-east".to_owned(), "eu-west".to_owned(), "ap-south".to_owned()], &options).await?;
    let digest = v1::ShardDigest { rows: 4, sha256: "ab".repeat(32) };
    for (tenant, steps) in [
        ("b-1", &[v1::MoveStep::Begin, v1::MoveStep::Verify, v1::MoveStep::Flip, v1::MoveStep::Unlock][..]),
        ("b-2", &[v1::MoveStep::Begin][..]),
    ] {
        for step in steps {
            client.move_tenant(tenant, *step, "us-2", Some((digest.clone(), digest.clone())), &options).await?;
        }
    }
    client.fence_tenant("acme", Some("eu-west"), &options).await?;
    client.failover_tenant("acme", "eu-west", false, &options).await?;

    phase("regctl snapshot save");
    let file = old.dir.join("backup.snap");
    let saved = regctl(&old, &old.endpoints_from(1), &[OsStr::new("snapshot"), OsStr::new("save"), file.as_os_str()]);
    assert!(saved.status.success());
    let said = String::from_utf8_lossy(&saved.stdout);
    assert!(said.contains("5 tenants") && said.contains("sha256"), "{said}");
    let status = std::process::Command::new(binary("registry"))
        .args([OsStr::new("snapshot"), OsStr::new("status"), file.as_os_str()])
        .output()?;
    let checked = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && checked.contains("5 tenants") && checked.contains("checksum ok"), "{checked}");
    let (tenants, histories, topology) = everything(&client).await?;
    let b = |id: &str| tenants.iter().find(|tenant| tenant.id == id).cloned().unwrap_or_default();
    assert_eq!((b("b-1").shard.as_str(), b("b-1").r#move.is_none()), ("us-2", true), "moved");
    assert_eq!(b("b-2").r#move.map(|moving| moving.step).as_deref(), Some("copying"), "moving");
    let old_cluster_id = old.status(1).await?.cluster_id;

    phase("registry snapshot restore into node 1 of a new cluster; start all three");
    let mut new = RegistryCluster::prepare(ClusterOptions::new("backup-new"))?;
    let mut args: Vec<&OsStr> = vec![OsStr::new("snapshot"), OsStr::new("restore"), file.as_os_str()];
    args.extend([OsStr::new("--data-dir"), new.node(1).data_dir.as_os_str()]);
    let peers: Vec<String> =
        new.nodes.iter().map(|node| format!("{}={}@{}", node.id, node.region, node.grpc)).collect();
    for peer in &peers {
        args.extend([OsStr::new("--peer"), OsStr::new(peer)]);
    }
    let restore = || std::process::Command::new(binary("registry")).args(&args).output();
    let restored = restore()?;
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let refused = restore()?;
    assert_eq!(refused.status.code(), Some(1), "never over an existing data dir");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be empty"));
    for id in 1..=3 {
        new.start_node(id)?;
    }
    new.wait_ready().await?;

    phase("identical tenants and audit log, a new cluster id, and writes go on");
    let new_client = new.client();
    let (restored_tenants, restored_histories, restored_topology) = everything(&new_client).await?;
    assert_eq!(restored_tenants, tenants, "tenants, documents, bundles, placements, routing map, moves and revisions");
    assert_eq!(restored_topology, topology, "regions and shards");
    assert_eq!(restored_histories, histories, "audit log");
    let new_cluster_id = new.status(1).await?.cluster_id;
    assert!(!new_cluster_id.is_empty() && new_cluster_id != old_cluster_id, "a new cluster id");
    let written = new_client.create_tenant("after-restore", documents(7), &WriteOptions::default()).await?;
    let last = tenants.iter().map(|tenant| tenant.mod_revision).max().unwrap_or(0);
    assert!(written.revision > last, "revisions go on from the backup's");
    for id in 1..=3 {
        new.wait_applied(id, written.revision).await?;
    }

    old.passed();
    new.passed();
    Ok(())
}
