//! Guarantee 5 through `regctl failover`: the registry commits a failover
//! only once the old region's api-nodes can no longer be accepting writes
//! (every agent there acknowledged the fence, or has been silent longer than
//! S plus a margin); until then the tenant is fenced. Tenants pinned away
//! from the target are listed as not moved. api-nodes honour the new home at
//! once. `--force` commits without waiting and the audit says so.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::v1;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::http::get;
use cluster_tests::{api_nodes, wait, ClusterOptions, RegistryCluster};

fn placed(home: &str, allowed: &[&str]) -> v1::Documents {
    let allowed: Vec<String> = allowed.iter().map(|region| format!("\"{region}\"")).collect();
    let config = format!(
        r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"{home}","allowedRegions":[{}]}}}}"#,
        allowed.join(",")
    );
    v1::Documents { config_json: Some(config), ..documents(1) }
}

async fn placement(cluster: &RegistryCluster, tenant: &str) -> anyhow::Result<v1::Placement> {
    let got = cluster.client().get_tenant(tenant, v1::Consistency::Linearizable).await?;
    Ok(got.tenant.and_then(|tenant| tenant.placement).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_waits_for_the_lease_then_commits_and_force_is_audited() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("failover")).await?;
    let client = cluster.client();
    client.create_tenant("acme", placed("us-east", &["us-east", "eu-west"]), &WriteOptions::default()).await?;
    client.create_tenant("globex", placed("us-east", &["us-east"]), &WriteOptions::default()).await?;
    client.create_tenant("initech", placed("eu-west", &[]), &WriteOptions::default()).await?;
    let mut us = api_nodes::start(&cluster, 1).await?;
    let eu = api_nodes::start(&cluster, 2).await?;
    let health = |addr: String, tenant: &'static str| async move {
        let response = get(&addr, "/health?tenant=auto", &[("Host", &format!("{tenant}.localhost"))]).await?;
        anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&response.body)?)
    };
    assert_eq!(health(us.addr.clone(), "acme").await?["writes"], "accepted");

    phase("us-east's api-node stops (SIGSTOP): its agent acknowledges nothing more");
    let us_pid = us.process.child().map(|child| child.id()).ok_or_else(|| anyhow::anyhow!("no pid"))?;
    kill(Pid::from_raw(us_pid as i32), Signal::SIGSTOP)?;
    // Another us-east agent, with a valid certificate of its own, acknowledges
    // every revision at once: its acks count for itself only, so the wait
    // below still runs the silent agent's lease out.
    let impostor = cluster_tests::agents::start(&cluster, "impostor", 1, agent::Kind::Api, None).await?;

    phase("regctl failover us-east -> eu-west waits for the lease (S 3 s + margin 1 s)");
    let endpoints = cluster.endpoints_from(1);
    let started = Instant::now();
    let failover = cluster
        .regctl(&endpoints)
        .args(["failover", "--region", "us-east", "--to", "eu-west"])
        .args(["--staleness-ms", "3000", "--margin-ms", "1000", "--reason", "us-east is down", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let fenced = wait::until("acme fenced", Duration::from_secs(10), || async {
        let placement = placement(&cluster, "acme").await.ok()?;
        (placement.failing_over_to == "eu-west").then_some(placement)
    })
    .await?;
    assert_eq!(fenced.home_region, "us-east", "fenced, not yet committed");
    // eu-west refused acme's writes before the fence (not its home) and, once its agent has the fence, says why.
    wait::until("eu-west to show the fence", Duration::from_secs(10), || async {
        (health(eu.addr.clone(), "acme").await.ok()?["writes"] == "refused: failing over to eu-west").then_some(())
    })
    .await?;
    wait::until("the impostor to hold (and so acknowledge) the fence", Duration::from_secs(10), || async {
        let view = impostor.view();
        let placement = view.tenant("acme")?.record.placement.clone()?;
        (placement.failing_over_to == "eu-west").then_some(())
    })
    .await?;
    assert_eq!(placement(&cluster, "acme").await?.home_region, "us-east", "still not committed");

    let output = tokio::task::spawn_blocking(move || failover.wait_with_output()).await??;
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(elapsed >= Duration::from_secs(3), "committed only after the silent agent's lease ran out ({elapsed:?})");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("waiting for us-east"), "it shows what it waits for: {said}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(result["moved"][0]["tenant"], "acme");
    assert_eq!(result["moved"][0]["epoch"], 2);
    assert_eq!(result["not_moved"][0]["tenant"], "globex");
    assert_eq!(result["not_moved"][0]["reason"], "eu-west is outside its allowed regions (us-east)");

    phase("eu-west accepts acme's writes at once; us-east, resumed, sends them to eu-west");
    let acme = placement(&cluster, "acme").await?;
    assert_eq!((acme.home_region.as_str(), acme.epoch, acme.failing_over_to.as_str()), ("eu-west", 2, ""));
    wait::until("eu-west to accept acme's writes", Duration::from_secs(10), || async {
        (health(eu.addr.clone(), "acme").await.ok()?["writes"] == "accepted").then_some(())
    })
    .await?;
    kill(Pid::from_raw(us_pid as i32), Signal::SIGCONT)?;
    wait::until("us-east to send acme's writes to eu-west", Duration::from_secs(15), || async {
        (health(us.addr.clone(), "acme").await.ok()?["writes"] == "refused: home region is eu-west").then_some(())
    })
    .await?;
    assert_eq!(placement(&cluster, "globex").await?.home_region, "us-east", "globex was not moved");

    phase("--force commits at once, and the audit says so");
    let forced = cluster
        .regctl(&endpoints)
        .args(["failover", "--region", "eu-west", "--to", "us-east", "--tenant", "initech"])
        .args(["--force", "--reason", "drill"])
        .output()?;
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(placement(&cluster, "initech").await?.home_region, "us-east");
    let history = cluster.regctl(&endpoints).args(["history", "initech", "-o", "json"]).output()?;
    let history: serde_json::Value = serde_json::from_slice(&history.stdout)?;
    let summary = history["entries"][0]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("FORCED"), "{summary}");
    assert_eq!(history["entries"][0]["reason"], "drill");

    drop(eu);
    drop(us.process.terminate());
    cluster.passed();
    Ok(())
}
