//! The benchmark program keeps working: a tiny fan-out run prints its table.
//! (Speed is never asserted; the figures are in the closing notes.)

use std::process::Command;

#[test]
fn bench_api_runs_and_prints_the_ratio() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["api", "--connections", "2", "--seconds", "1"])
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("tenant route / bare route: "), "{stdout}");
}

#[test]
fn bench_fanout_runs_and_prints_a_table() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["fanout", "--agents", "1,3", "--rate", "20", "--seconds", "1"])
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<_> =
        stdout.lines().filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows.iter().all(|row| row.trim_end().ends_with(" 0")), "no write missed: {stdout}");
}
