//! The benchmark program keeps working: tiny runs of its suites print their
//! tables, for Tenantry and for etcd (installed from Debian if missing).
//! Speed is never asserted; the figures are in BENCHMARKS.md.

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bench")).args(args).output().expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn bench_api_runs_and_prints_the_ratio() {
    let stdout = bench(&["api", "--connections", "2", "--seconds", "1"]);
    assert!(stdout.contains("tenant route / bare route: "), "{stdout}");
}

#[test]
fn bench_fanout_runs_and_prints_a_table() {
    let stdout = bench(&["fanout", "--subscribers", "1,3", "--rate", "20", "--seconds", "1"]);
    let rows: Vec<_> =
        stdout.lines().filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    let counts = |row: &str| row.split_whitespace().rev().take(2).map(str::to_owned).collect::<Vec<_>>();
    assert!(rows.iter().all(|row| counts(row) == ["0", "0"]), "no write missed or duplicated: {stdout}");
}

#[test]
fn bench_writes_run_against_tenantry_and_etcd() {
    for target in ["tenantry", "etcd"] {
        let stdout = bench(&["put-latency", "--seconds", "1", "--target", target, "--json"]);
        let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        assert_eq!(result["target"], target);
        assert!(result["writes"].as_u64() > Some(0), "{stdout}");
    }
}

#[test]
fn bench_restart_times_a_follower_and_the_leader() {
    let stdout = bench(&["restart", "--tenants", "200", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let restarts = result["restarts"].as_array().expect("restarts");
    let led: Vec<_> = restarts.iter().map(|restart| restart["led"].as_bool()).collect();
    assert_eq!(led, [Some(false), Some(true)], "{stdout}");
    for restart in restarts {
        let (ready, serving) = (restart["ready_ms"].as_f64(), restart["serving_ms"].as_f64());
        assert!(ready > Some(0.0) && serving >= ready, "{stdout}");
    }
}
