//! The sidecar's materialized files (what a web server serves): after a
//! burst of creates, updates and deletes, `config/{tenant}.json` equals each
//! live tenant's public bundle byte for byte, deleted tenants' files are
//! gone, and `manifest.json` names exactly those files at the final revision.
//! Also its local HTTP API, with a blocking `?wait=`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use registry_client::http::get_text;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_files_equal_the_public_bundles_after_a_burst() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("agent-materialize")).await?;
    let www = cluster.dir.join("www");
    let http = format!("127.0.0.1:{}", cluster_tests::registry_cluster::free_port()?);

    phase("a frontend sidecar process with --materialize");
    let flags = [OsStr::new("--http"), OsStr::new(&http), OsStr::new("--base-domain"), OsStr::new("example.com")];
    let materialize = [OsStr::new("--materialize"), www.as_os_str()];
    let sidecar = cluster_tests::agents::start_sidecar(&cluster, flags.into_iter().chain(materialize))?;

    phase("a burst: 40 creates, 20 updates, 10 deletes");
    let client = cluster.client();
    for n in 0..40u64 {
        client.create_tenant(&format!("m-{n:02}"), documents(n), &WriteOptions::default()).await?;
    }
    for n in 0..20u64 {
        client.update_tenant(&format!("m-{n:02}"), documents(100 + n), &WriteOptions::default()).await?;
    }
    for n in 30..40u64 {
        client.delete_tenant(&format!("m-{n:02}"), &WriteOptions::default()).await?;
    }
    let (tenants, revision) = cluster.tenants().await?;

    phase("the HTTP API blocks on ?wait= until the revision arrives");
    let (code, body) =
        get_text(&http, &format!("/v1/tenants/m-05?wait={revision}&timeout=20000"), Duration::from_secs(25)).await?;
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert!(answer["revision"].as_u64() >= Some(revision));
    assert_eq!(
        answer["tenant"]["configVersion"].as_u64(),
        tenants.iter().find(|t| t.id == "m-05").map(|t| t.config_revision)
    );
    assert!(answer["tenant"].get("private").is_none(), "a frontend sidecar serves no private bundle");
    let (code, _) = get_text(&http, "/v1/resolve?host=m-07.example.com", Duration::from_secs(5)).await?;
    assert_eq!(code, 200);
    let (code, _) = get_text(&http, "/v1/tenants/m-35", Duration::from_secs(5)).await?;
    assert_eq!(code, 404, "deleted");
    let (code, body) = get_text(&http, "/v1/tenants/Bad_Id", Duration::from_secs(5)).await?;
    assert_eq!(code, 400);
    assert!(body.contains("tenant_id"), "{body}");
    let (code, health) = get_text(&http, "/healthz", Duration::from_secs(5)).await?;
    assert_eq!(code, 200, "{health}");

    phase("the manifest reaches the final revision; the files equal the public bundles");
    let manifest_path = www.join("manifest.json");
    let manifest: serde_json::Value =
        wait::until("the manifest at the final revision", Duration::from_secs(20), || async {
            let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).ok()?).ok()?;
            (manifest["revision"].as_u64()? >= revision).then_some(manifest)
        })
        .await?;
    let live: BTreeSet<String> = tenants.iter().map(|tenant| tenant.id.clone()).collect();
    let listed: BTreeSet<String> =
        manifest["tenants"].as_object().map(|tenants| tenants.keys().cloned().collect()).unwrap_or_default();
    assert_eq!(listed, live);
    let files: BTreeSet<String> = std::fs::read_dir(www.join("config"))?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    let expected_files: BTreeSet<String> = live.iter().map(|id| format!("{id}.json")).collect();
    assert_eq!(files, expected_files, "one file per live tenant, no temp files, no deleted tenants");
    for tenant in &tenants {
        let on_disk = std::fs::read(www.join("config").join(format!("{}.json", tenant.id)))?;
        let served = cluster_tests::served(&tenant.public_bundle, "eu-west", tenant.config_revision);
        assert_eq!(on_disk, served, "{}", tenant.id);
    }

    let status = sidecar.terminate()?;
    assert!(status.success(), "the sidecar stops cleanly on SIGTERM: {status}");
    cluster.passed();
    Ok(())
}
