//! Canaries and rollback through the real `regctl` and an api-node: a
//! staged candidate is served only to requests that opt in (header or
//! cookie) and `X-Config-Version` names the version served; promote makes
//! it live; abort removes it; a rollback restores an old public bundle byte
//! for byte under a new revision.

use std::ffi::OsStr;
use std::path::Path;

use proto::v1;
use serde_json::Value;

use super::{phase, regctl, set_primary};
use cluster_tests::http::{get, HttpResponse};
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

async fn acme(cluster: &RegistryCluster) -> anyhow::Result<v1::Tenant> {
    let got = cluster.client().get_tenant("acme", v1::Consistency::Linearizable).await?;
    got.tenant.ok_or_else(|| anyhow::anyhow!("acme is missing"))
}

/// GET acme's config with extra headers, once the api-node has `version`
/// (as the live or the canary version, whichever the headers ask for).
async fn config(addr: &str, headers: &[(&str, &str)], version: u64) -> anyhow::Result<HttpResponse> {
    let mut all = vec![("Host", "acme.localhost")];
    all.extend_from_slice(headers);
    let version = version.to_string();
    cluster_tests::wait::until("the api-node to serve the version", std::time::Duration::from_secs(15), || async {
        let response = get(addr, "/config/acme.json", &all).await.ok()?;
        (response.header("x-config-version") == Some(version.as_str())).then_some(response)
    })
    .await
}

fn bundle(bundle: &Option<v1::Bundle>) -> Vec<u8> {
    bundle.as_ref().map(|bundle| bundle.json.to_vec()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_is_opt_in_promote_and_abort_work_and_rollback_restores_bytes() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("config-canary")).await?;
    let endpoints = cluster.endpoints_from(1);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let repo = cluster.dir.join("repo");
    copy_dir(&examples, &repo)?;

    phase("the example repo published, golden tenants smoke-checked on an api-node per region");
    let mut nodes = Vec::new();
    for home in 1..=3 {
        nodes.push(api_nodes::start(&cluster, home).await?);
    }
    let apis = nodes.iter().map(|node| node.addr.as_str()).collect::<Vec<_>>().join(",");
    let args = ["publish", "--yes", "--cohort-size", "4", "--canary", "acme", "--api", &apis];
    let published = regctl(
        &cluster,
        &endpoints,
        &[
            args[..1].iter().map(OsStr::new).collect::<Vec<_>>(),
            vec![repo.as_os_str()],
            args[1..].iter().map(OsStr::new).collect(),
        ]
        .concat(),
    );
    assert!(published.status.success());
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(stdout.contains("canary") && stdout.contains("published 12 tenants"), "{stdout}");
    let original = acme(&cluster).await?;
    let addr = nodes[0].addr.clone();

    phase("stage a candidate: served only with X-Config-Canary: 1 or cookie config_canary=1");
    set_primary(&repo, "acme", "#ff6600")?;
    let stage = regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("canary"), OsStr::new("stage"), OsStr::new("acme"), repo.as_os_str()],
    );
    assert!(stage.status.success());
    let staged = acme(&cluster).await?;
    let canary = staged.canary.clone().expect("a canary is staged");
    assert_eq!(staged.config_revision, original.config_revision, "the live version is unchanged");
    assert_eq!(bundle(&staged.public_bundle), bundle(&original.public_bundle));

    let live = config(&addr, &[], original.config_revision).await?;
    let region = live.header("x-region").unwrap_or_default().to_owned();
    let served = |bundle: &Option<v1::Bundle>, version: u64| cluster_tests::served(bundle, &region, version);
    assert_eq!(live.body, served(&original.public_bundle, original.config_revision));
    assert_eq!(live.header("x-config-canary"), None);
    for opt_in in [("X-Config-Canary", "1"), ("Cookie", "theme=dark; config_canary=1")] {
        let response = config(&addr, &[opt_in], canary.revision).await?;
        let expected = served(&canary.public_bundle, canary.revision);
        assert_eq!(response.body, expected, "{opt_in:?}");
        assert!(String::from_utf8_lossy(&response.body).contains("#ff6600"));
        assert_eq!(response.header("x-config-canary"), Some("1"));
        let etag = format!("\"{}\"", compiler::document::sha256_hex(&expected));
        assert_eq!(response.header("etag"), Some(etag.as_str()));
    }
    let opted_out = config(&addr, &[("Cookie", "config_canary=0")], original.config_revision).await?;
    assert_eq!(opted_out.body, served(&original.public_bundle, original.config_revision));

    phase("promote: the candidate is the live version, under the version it was served as");
    assert!(regctl(&cluster, &endpoints, &[OsStr::new("canary"), OsStr::new("promote"), OsStr::new("acme")])
        .status
        .success());
    let promoted = acme(&cluster).await?;
    assert!(promoted.canary.is_none());
    assert_eq!(bundle(&promoted.public_bundle), bundle(&canary.public_bundle));
    assert_eq!(promoted.config_revision, canary.revision);
    let live = config(&addr, &[], canary.revision).await?;
    assert_eq!(live.body, served(&canary.public_bundle, canary.revision));

    phase("stage another candidate and abort it: the canary is gone, opting in gets the live version");
    set_primary(&repo, "acme", "#00aa00")?;
    assert!(regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("canary"), OsStr::new("stage"), OsStr::new("acme"), repo.as_os_str()]
    )
    .status
    .success());
    assert!(regctl(&cluster, &endpoints, &[OsStr::new("canary"), OsStr::new("abort"), OsStr::new("acme")])
        .status
        .success());
    let aborted = acme(&cluster).await?;
    assert!(aborted.canary.is_none());
    let opted_in = config(&addr, &[("X-Config-Canary", "1")], promoted.config_revision).await?;
    assert_eq!(opted_in.body, served(&promoted.public_bundle, promoted.config_revision));
    assert_eq!(opted_in.header("x-config-canary"), None);
    let again = regctl(&cluster, &endpoints, &[OsStr::new("canary"), OsStr::new("promote"), OsStr::new("acme")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("tenant `acme` has no staged canary"));

    phase("rollback to the first published revision: the old public bundle, byte for byte, as a new revision");
    let to = original.config_revision.to_string();
    let rollback = regctl(
        &cluster,
        &endpoints,
        &[
            OsStr::new("rollback"),
            OsStr::new("acme"),
            OsStr::new("--to"),
            OsStr::new(&to),
            OsStr::new("--reason"),
            OsStr::new("bad colors"),
        ],
    );
    assert!(rollback.status.success());
    let rolled = acme(&cluster).await?;
    assert_eq!(bundle(&rolled.public_bundle), bundle(&original.public_bundle), "byte-equal");
    assert_eq!(bundle(&rolled.private_bundle), bundle(&original.private_bundle));
    assert!(rolled.config_revision > aborted.mod_revision, "a new revision");
    let response = config(&addr, &[], rolled.config_revision).await?;
    assert_eq!(
        response.body,
        served(&original.public_bundle, rolled.config_revision),
        "the old bytes, the new version"
    );

    let history = regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("history"), OsStr::new("acme"), OsStr::new("-o"), OsStr::new("json")],
    );
    let history: Value = serde_json::from_slice(&history.stdout)?;
    let summaries: Vec<&str> = history["entries"]
        .as_array()
        .map(|entries| entries.iter().filter_map(|entry| entry["summary"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        summaries,
        [
            format!("rollback to {to}").as_str(),
            "abort canary",
            "stage canary theme",
            &format!("promote canary of {}", canary.revision),
            "stage canary theme",
            "create"
        ]
    );
    assert_eq!(history["entries"][0]["reason"], "bad colors");

    drop(nodes);
    cluster.passed();
    Ok(())
}
