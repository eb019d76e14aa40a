//! `deploy/prometheus/tenantry.rules.yml` passes `promtool check rules`,
//! and `promtool test rules` runs its unit tests (each alert fires on the
//! series that should fire it, with its annotations, and not on healthy
//! ones); `deploy/grafana/tenantry.json` is a dashboard Grafana can import
//! (unique panel ids, every panel with a type, a position and queries).
//! promtool is Debian's `prometheus`, installed when missing.

use std::path::Path;
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

fn run(promtool: &Path, args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let output = Command::new(promtool).args(args).current_dir(dir).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(output.status.success(), "promtool {args:?}: {said}");
    Ok(said)
}

#[test]
fn the_alert_rules_check_and_pass_their_tests_and_the_dashboard_imports() -> anyhow::Result<()> {
    let promtool = cluster_tests::debian::ensure(PROMTOOL, "prometheus")?;
    let rules = deploy("prometheus");
    let checked = run(&promtool, &["check", "rules", "tenantry.rules.yml"], &rules)?;
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = run(&promtool, &["test", "rules", "tenantry.rules.test.yml"], &rules)?;
    assert!(tested.contains("SUCCESS"), "{tested}");

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/tenantry.json"))?)?;
    assert_eq!(dashboard["uid"], "tenantry-fleet");
    let panels = dashboard["panels"].as_array().ok_or_else(|| anyhow::anyhow!("no panels"))?;
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(ids.insert(panel["id"].as_u64()), "panel id used twice: {title}");
        assert!(panel["type"].is_string() && panel["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24), "{title}");
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().map_or(0, Vec::len);
            assert!(targets > 0 && panel["targets"][0]["expr"].is_string(), "{title}: no query");
        }
    }
    Ok(())
}
