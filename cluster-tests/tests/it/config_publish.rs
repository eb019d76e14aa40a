//! The config pipeline end to end, through the real `regctl` against a
//! running cluster with agents and api-nodes: a refused publish changes
//! nothing; a generated 500-tenant repo is published in cohorts that the
//! agents acknowledge and golden tenants pass smoke checks; a publish whose
//! third cohort an agent NACKs (a bundle over that agent's limit) halts,
//! rolls that cohort back byte for byte and keeps the earlier ones; the
//! corrected re-run continues from there and finishes; a golden tenant's
//! failed smoke check halts and rolls back too; with `--no-rollback` a
//! refused cohort stays, and a re-run of unchanged content says why it
//! cannot help.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use agent::{Agent, AgentConfig, Kind};
use compiler::repo::compile_repo;
use serde_json::Value;

use super::{phase, regctl};
use cluster_tests::{agents, api_nodes, ClusterOptions, RegistryCluster};

const TENANTS: usize = 500;

/// Live public bundle hashes by tenant.
async fn live_hashes(cluster: &RegistryCluster) -> anyhow::Result<BTreeMap<String, String>> {
    let (tenants, _) = cluster.tenants().await?;
    Ok(tenants
        .into_iter()
        .map(|tenant| (tenant.id.clone(), tenant.public_bundle.map(|bundle| bundle.sha256).unwrap_or_default()))
        .collect())
}

fn compiled_hashes(repo: &Path) -> BTreeMap<String, String> {
    let compiled = compile_repo(repo).expect("the repo compiles");
    compiled.tenants.into_iter().map(|tenant| (tenant.id.to_string(), tenant.public.sha256)).collect()
}

fn set_background(repo: &Path, color: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(repo.join("tenants"))? {
        let path = entry?.path().join("theme.json");
        let mut theme: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        theme["colors"]["background"] = Value::String(color.to_owned());
        std::fs::write(&path, theme.to_string())?;
    }
    Ok(())
}

/// A valid SVG logo of about `bytes` bytes.
fn svg_logo(bytes: usize) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><desc>{}</desc><rect width="64" height="64" fill="#336699"/></svg>"##,
        "a logo ".repeat(bytes / 7)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_in_gated_cohorts_halts_on_a_nack_rolls_back_and_resumes() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("config-publish")).await?;
    let endpoints = cluster.endpoints_from(1);
    let repo = cluster.dir.join("repo");

    phase("an api-node per region, and an API agent in eu-west that accepts bundles of at most 8 KiB");
    let mut api_addrs = Vec::new();
    let mut api = Vec::new();
    for home in 1..=3 {
        let node = api_nodes::start(&cluster, home).await?;
        api_addrs.push(node.addr.clone());
        api.push(node);
    }
    let small = Agent::start(AgentConfig {
        agent_id: "api-small@eu-west".to_owned(),
        region: "eu-west".to_owned(),
        kind: Kind::Api,
        endpoints: cluster.endpoints_from(2),
        data_dir: None,
        base_domains: vec!["example.com".to_owned()],
        bundle_bytes_max: 8 * 1024,
        cluster_id: None,
        tls: cluster_tests::agents::tls(&cluster, "api-small@eu-west", Kind::Api, "eu-west")?,
    })
    .await?;
    let api_flag = api_addrs.join(",");
    let publish = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("publish"), repo.as_os_str()];
        args.extend([OsStr::new("--cohort-size"), OsStr::new("100"), OsStr::new("--yes"), OsStr::new("--api")]);
        args.push(OsStr::new(&api_flag));
        args.extend(extra.iter().map(OsStr::new));
        regctl(&cluster, &endpoints, &args)
    };

    phase("gen-configs writes a valid 500-tenant repo");
    let generated = regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("gen-configs"), OsStr::new("--tenants"), OsStr::new("500"), OsStr::new("--out"), repo.as_os_str()],
    );
    assert!(generated.status.success());

    phase("a repo with a secret is refused as a whole: the exact error, nothing in the registry");
    let oauth = repo.join("tenants/tenant-000042/integrations/oauth.json");
    let good_oauth = std::fs::read_to_string(&oauth)?;
    std::fs::write(&oauth, r#"{"provider":"oidc","client_id":"c","client_secret":"hunter2"}"#)?;
    let refused = publish(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            r#"tenants/tenant-000042/integrations/oauth.json: /client_secret: "client_secret" names a secret: documents hold no secrets"#
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent to the registry"), "{stderr}");
    assert!(cluster.tenants().await?.0.is_empty(), "a refused publish changes nothing");
    std::fs::write(&oauth, good_oauth)?;

    phase("publish 500 tenants in 5 cohorts: acknowledged by every agent, golden tenants smoke-checked");
    let dry = publish(&["--dry-run"]);
    assert!(dry.status.success());
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("plan: 5 cohorts"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    assert!(cluster.tenants().await?.0.is_empty(), "a dry run changes nothing");
    let first = publish(&["-o", "json"]);
    assert!(first.status.success());
    let summary: Value = serde_json::from_slice(&first.stdout)?;
    let cohorts = summary["cohorts"].as_array().cloned().unwrap_or_default();
    assert_eq!(cohorts.len(), 5);
    assert!(cohorts.iter().all(|cohort| cohort["ok"] == true && cohort["tenants"] == 100), "{summary}");
    assert_eq!(cohorts.iter().map(|cohort| cohort["smoke_checked"].as_u64().unwrap_or(0)).sum::<u64>(), 20);
    let published = compiled_hashes(&repo);
    assert_eq!(live_hashes(&cluster).await?, published, "the registry serves the repo as compiled");
    assert!(regctl(&cluster, &endpoints, &[OsStr::new("diff"), repo.as_os_str()]).status.success(), "diff: equal");
    let (tenants, revision) = cluster.tenants().await?;
    agents::wait_for(&small, revision).await?;
    agents::assert_matches(&small, &tenants);

    phase("every tenant changes; tenant-000250 (third cohort) gets a 12 KiB logo, over the small agent's limit");
    set_background(&repo, "#fafafa")?;
    std::fs::write(repo.join("branding/tenant-000250/logo.svg"), svg_logo(12 * 1024))?;
    let diff = regctl(&cluster, &endpoints, &[OsStr::new("diff"), repo.as_os_str()]);
    assert_eq!(diff.status.code(), Some(1), "diff: different");
    assert!(String::from_utf8_lossy(&diff.stdout).contains(r##"~ theme/colors/background: "#ffffff" -> "#fafafa""##));
    let changed = compiled_hashes(&repo);

    let halted = publish(&[]);
    assert_eq!(halted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&halted.stderr);
    assert!(stderr.contains("publish halted at cohort 3 of 5"), "{stderr}");
    assert!(stderr.contains("agent api-small@eu-west NACKed tenant tenant-000250"), "{stderr}");
    assert!(stderr.contains("rolled back 100 tenants"), "{stderr}");
    assert!(stderr.contains("Earlier cohorts (200 tenants) stay published"), "{stderr}");
    let live = live_hashes(&cluster).await?;
    for (id, hash) in &live {
        let index: usize = id.trim_start_matches("tenant-").parse()?;
        let expected = if index <= 200 { &changed[id] } else { &published[id] };
        assert_eq!(hash, expected, "{id}: cohorts 1-2 new, cohort 3 rolled back byte for byte, 4-5 untouched");
    }

    phase("the cause fixed, the same command continues from cohort 3 and finishes");
    std::fs::write(repo.join("branding/tenant-000250/logo.svg"), svg_logo(512))?;
    let resumed = publish(&[]);
    assert!(resumed.status.success());
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(stdout.contains("plan: 3 cohorts, 200 tenants unchanged"), "{stdout}");
    assert_eq!(live_hashes(&cluster).await?, compiled_hashes(&repo));
    assert!(regctl(&cluster, &endpoints, &[OsStr::new("diff"), repo.as_os_str()]).status.success());
    let (tenants, revision) = cluster.tenants().await?;
    agents::wait_for(&small, revision).await?;
    agents::assert_matches(&small, &tenants);
    assert_eq!(tenants.len(), TENANTS);

    phase("a golden tenant that fails its smoke check halts its cohort, which is rolled back");
    let theme_path = repo.join("tenants/tenant-000026/theme.json");
    let good_theme = std::fs::read_to_string(&theme_path)?;
    let mut theme: Value = serde_json::from_str(&good_theme)?;
    theme["colors"].as_object_mut().map(|colors| colors.remove("primary"));
    std::fs::write(&theme_path, theme.to_string())?;
    let before = live_hashes(&cluster).await?;
    let halted = publish(&[]);
    assert_eq!(halted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&halted.stderr);
    assert!(stderr.contains("smoke check of golden tenant tenant-000026"), "{stderr}");
    assert!(stderr.contains("theme.colors.primary is missing"), "{stderr}");
    assert_eq!(live_hashes(&cluster).await?, before, "rolled back byte for byte");
    std::fs::write(&theme_path, good_theme)?;

    phase("with --no-rollback a refused cohort stays; a re-run says it cannot help until the repo changes");
    std::fs::write(repo.join("branding/tenant-000250/logo.svg"), svg_logo(12 * 1024))?;
    let halted = publish(&["--no-rollback"]);
    assert_eq!(halted.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&halted.stderr).contains("left as written (--no-rollback)"));
    let again = publish(&[]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("live tenants that agents refused, unchanged in the repo"), "{stderr}");
    assert!(stderr.contains("agent api-small@eu-west refused it"), "{stderr}");
    std::fs::write(repo.join("branding/tenant-000250/logo.svg"), svg_logo(512))?;
    assert!(publish(&[]).status.success());
    assert_eq!(live_hashes(&cluster).await?, compiled_hashes(&repo));

    small.shutdown().await;
    drop(api);
    cluster.passed();
    Ok(())
}
