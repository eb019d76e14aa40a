//! The CDN purge hook of `regctl publish`, `rollback` and `canary promote`,
//! against a local HTTP server that records what it was asked: after each
//! cohort is acknowledged by every agent, one request per region naming
//! exactly the cohort's runtime config paths, with the bearer token from
//! the file and an idempotency key; a 503 is retried with backoff; a hook
//! that refuses halts the publish like a failed gate and rolls the cohort
//! back; a token file others may read and a plain-http hook elsewhere are
//! refused before anything is written; an https hook is verified against
//! `--purge-ca` (and refused without it).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use agent::Kind;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{phase, regctl, set_primary};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

/// What the hook was asked, and how it answers next.
#[derive(Default)]
struct Hook {
    /// (Authorization, Idempotency-Key, body) of every request.
    asked: Mutex<Vec<(String, String, Value)>>,
    /// Statuses to answer before 200s, in order.
    script: Mutex<Vec<u16>>,
    /// Answer this to everything, when set.
    refuse: Mutex<Option<u16>>,
}

async fn record(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    hook.asked.lock().expect("lock").push((header("authorization"), header("idempotency-key"), body));
    let status = match *hook.refuse.lock().expect("lock") {
        Some(status) => status,
        None => {
            let mut script = hook.script.lock().expect("lock");
            if script.is_empty() {
                200
            } else {
                script.remove(0)
            }
        }
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The successful requests since `from`: (region, paths, reason).
fn purged(hook: &Hook, from: usize) -> Vec<(String, Vec<String>, String)> {
    let asked = hook.asked.lock().expect("lock");
    asked[from..]
        .iter()
        .map(|(_, _, body)| {
            let paths = body["paths"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned);
            (body["region"].as_str().unwrap_or_default().to_owned(), paths.collect(), body["reason"].to_string())
        })
        .collect()
}

fn paths(tenants: &[&str]) -> Vec<String> {
    tenants.iter().map(|tenant| format!("/config/{tenant}.json")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_follow_acknowledged_cohorts_per_region_and_a_failing_hook_halts() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("cdn-purge")).await?;
    let endpoints = cluster.endpoints_from(1);
    let mut frontends = Vec::new();
    for home in 1..=3 {
        frontends.push(agents::start(&cluster, &format!("web-{home}"), home, Kind::Frontend, None).await?);
    }

    let hook = Arc::new(Hook::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/purge", listener.local_addr()?);
    let app = axum::Router::new().route("/purge", axum::routing::post(record)).with_state(hook.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let token = cluster.dir.join("purge.token");
    std::fs::write(&token, "s3cret-token\n")?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    let repo = cluster.dir.join("repo");
    compiler::generate::generate(&repo, 5)?;
    let no_golden = cluster.dir.join("no-golden.txt");
    std::fs::write(&no_golden, "")?;
    let publish_to = |url: &str| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("publish"), repo.as_os_str(), OsStr::new("--yes")];
        args.extend([OsStr::new("--golden"), no_golden.as_os_str(), OsStr::new("--cohort-size"), OsStr::new("3")]);
        args.extend([OsStr::new("--purge-url"), OsStr::new(url), OsStr::new("--purge-token-file"), token.as_os_str()]);
        regctl(&cluster, &endpoints, &args)
    };
    let publish = || publish_to(&url);
    let regions = ["ap-south", "eu-west", "us-east"];
    // The generated repo pins every fifth tenant to eu-west: those are
    // served, and purged, there only.
    let pinned: Vec<String> = compiler::repo::compile_repo(&repo)
        .map_err(|problems| anyhow::anyhow!("{problems:?}"))?
        .tenants
        .iter()
        .filter(|tenant| tenant.config.contains("\"allowedRegions\":[\"eu-west\"]"))
        .map(|tenant| tenant.id.to_string())
        .collect();
    assert_eq!(pinned, ["tenant-000005"], "the generator's pins changed");
    let served_in = |tenants: &[&str], region: &str| -> Vec<String> {
        let tenants = tenants.iter().filter(|tenant| region == "eu-west" || !pinned.contains(&(**tenant).to_owned()));
        paths(&tenants.copied().collect::<Vec<_>>())
    };

    phase("a publish of 5 tenants in 2 cohorts: one request per region per cohort, the first 503 retried, a pin's path only where it is served");
    *hook.script.lock().expect("lock") = vec![503];
    let output = publish();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (first, second) = (["tenant-000001", "tenant-000002", "tenant-000003"], ["tenant-000004", "tenant-000005"]);
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for cohort in [&first[..], &second[..]] {
        for region in regions {
            expected.push((region.to_owned(), served_in(cohort, region)));
        }
    }
    // The first request (ap-south's, regions go in order) was answered 503 and sent again.
    let asked = purged(&hook, 0);
    assert_eq!(asked.len(), 7, "6 purges and one retry: {asked:?}");
    assert_eq!(asked[0].0, asked[1].0, "the 503 was retried for the same region");
    let succeeded: Vec<(String, Vec<String>)> = asked[1..].iter().map(|(r, p, _)| (r.clone(), p.clone())).collect();
    assert_eq!(succeeded, expected);
    assert!(asked[1].2.contains("publish cohort 1 of 2"), "{}", asked[1].2);
    {
        let requests = hook.asked.lock().expect("lock");
        assert!(requests.iter().all(|(authorization, _, _)| authorization == "Bearer s3cret-token"));
        assert_eq!(requests[0].1, requests[1].1, "a retry carries the same idempotency key");
        assert_ne!(requests[1].1, requests[2].1);
    }

    phase("one tenant changed: its path only, in every region");
    set_primary(&repo, "tenant-000002", "#ff0000")?;
    let from = hook.asked.lock().expect("lock").len();
    assert!(publish().status.success());
    let asked = purged(&hook, from);
    assert_eq!(
        asked.iter().map(|(region, paths, _)| (region.as_str(), paths.clone())).collect::<Vec<_>>(),
        regions.iter().map(|region| (*region, paths(&["tenant-000002"]))).collect::<Vec<_>>()
    );

    phase("rollback and canary promote purge their tenant too");
    let (tenants, _) = cluster.tenants().await?;
    let before = tenants.iter().find(|tenant| tenant.id == "tenant-000002").map(|tenant| tenant.create_revision);
    let to = before.unwrap_or_default().to_string();
    let purge_flags =
        [OsStr::new("--purge-url"), OsStr::new(&url), OsStr::new("--purge-token-file"), token.as_os_str()];
    let from = hook.asked.lock().expect("lock").len();
    let mut args = vec![OsStr::new("rollback"), OsStr::new("tenant-000002"), OsStr::new("--to"), OsStr::new(&to)];
    args.extend(purge_flags);
    let rolled = regctl(&cluster, &endpoints, &args);
    assert!(rolled.status.success(), "{}", String::from_utf8_lossy(&rolled.stderr));
    let asked = purged(&hook, from);
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked
        .iter()
        .all(|(_, paths, reason)| paths == &self::paths(&["tenant-000002"]) && reason.contains("rollback")));
    set_primary(&repo, "tenant-000003", "#00aa00")?;
    let stage = [OsStr::new("canary"), OsStr::new("stage"), OsStr::new("tenant-000003"), repo.as_os_str()];
    let from = hook.asked.lock().expect("lock").len();
    assert!(regctl(&cluster, &endpoints, &stage).status.success());
    assert_eq!(hook.asked.lock().expect("lock").len(), from, "staging changes nothing served: no purge");
    let mut args = vec![OsStr::new("canary"), OsStr::new("promote"), OsStr::new("tenant-000003")];
    args.extend(purge_flags);
    assert!(regctl(&cluster, &endpoints, &args).status.success());
    let asked = purged(&hook, from);
    assert!(
        asked.len() == 3
            && asked.iter().all(|(_, paths, reason)| {
                paths == &self::paths(&["tenant-000003"]) && reason.contains("canary promote")
            }),
        "{asked:?}"
    );

    phase("a hook that refuses (401) halts the publish like a failed gate: the cohort is rolled back");
    *hook.refuse.lock().expect("lock") = Some(401);
    set_primary(&repo, "tenant-000004", "#123456")?;
    let live_before = cluster.tenants().await?.0.into_iter().find(|tenant| tenant.id == "tenant-000004");
    let halted = publish();
    assert_eq!(halted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&halted.stderr);
    assert!(stderr.contains("publish halted") && stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains(&format!("purge hook {url} for ")), "{stderr}");
    // tenant-000004, and tenant-000002 (rolled back above, still red in the repo).
    assert!(stderr.contains("rolled back 2 tenants") && stderr.contains("the rollback was NOT purged"), "{stderr}");
    let live_after = cluster.tenants().await?.0.into_iter().find(|tenant| tenant.id == "tenant-000004");
    let sha =
        |tenant: &Option<proto::v1::Tenant>| tenant.as_ref().and_then(|t| t.public_bundle.clone()).map(|b| b.sha256);
    assert_eq!(sha(&live_after), sha(&live_before), "rolled back byte for byte");
    *hook.refuse.lock().expect("lock") = None;

    phase("refused before anything is written: a token others may read, a plain-http hook elsewhere");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644))?;
    let refused = publish();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("readable by others"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    let remote = publish_to("http://cdn.example.com/purge");
    assert!(
        String::from_utf8_lossy(&remote.stderr).contains("must be https://"),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let live_now = cluster.tenants().await?.0.into_iter().find(|tenant| tenant.id == "tenant-000004");
    assert_eq!(sha(&live_now), sha(&live_before), "nothing was written");

    phase(
        "an https hook: verified against --purge-ca; without it, refused (unknown issuer) and the cohort rolled back",
    );
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let identity = cluster_tests::certs::agent("cdn-hook", trust::AgentKind::Api, "us-east")?;
    let files = certs.files(&identity, &["127.0.0.1"])?;
    let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let https_url = format!("https://{}/purge", tls_listener.local_addr()?);
    let options = trust::ListenOptions {
        tls: Some(certs.tls(&identity, &["127.0.0.1"])?),
        client_cert_required: false,
        connections_max: 16,
    };
    let app = axum::Router::new().route("/purge", axum::routing::post(record)).with_state(hook.clone());
    let tls_server = tokio::spawn(trust::net::serve_http(tls_listener, options, app, std::future::pending()));
    set_primary(&repo, "tenant-000005", "#abcdef")?;
    let publish_https = |ca: Option<&Path>| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("publish"), repo.as_os_str(), OsStr::new("--yes")];
        args.extend([OsStr::new("--golden"), no_golden.as_os_str()]);
        args.extend([
            OsStr::new("--purge-url"),
            OsStr::new(&https_url),
            OsStr::new("--purge-token-file"),
            token.as_os_str(),
        ]);
        if let Some(ca) = ca {
            args.extend([OsStr::new("--purge-ca"), ca.as_os_str()]);
        }
        regctl(&cluster, &endpoints, &args)
    };
    let untrusted = publish_https(None);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(untrusted.status.code() == Some(1) && stderr.contains("UnknownIssuer"), "{stderr}");
    let from = hook.asked.lock().expect("lock").len();
    let trusted = publish_https(Some(&files.ca));
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stderr));
    let asked = purged(&hook, from);
    assert!(asked.iter().any(|(_, paths, _)| paths.contains(&"/config/tenant-000005.json".to_owned())), "{asked:?}");
    tls_server.abort();

    server.abort();
    drop(frontends);
    cluster.passed();
    Ok(())
}
