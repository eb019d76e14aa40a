//! What the config pipeline prints: compile problems, progress, the diff
//! against the registry, and a publish's plan and summary.

use registry_client::workflows::publish::CohortRow;
use serde_json::{json, Value};

use super::{json_value, Format};

/// The problems that stopped a compile, one per line (stderr: they are errors).
pub(crate) fn problems(problems: &[compiler::Problem], format: Format) {
    match format {
        Format::Json => json_value(&json!({
            "problems": problems
                .iter()
                .map(|problem| json!({
                    "file": problem.file, "pointer": problem.pointer, "rule": problem.rule, "message": problem.message,
                }))
                .collect::<Vec<_>>(),
        })),
        Format::Human => {
            for problem in problems {
                eprintln!("{problem}");
            }
        }
    }
}

/// One tenant's difference between a compiled repo and the registry.
pub(crate) struct DiffRow {
    pub(crate) tenant: String,
    /// "added", "changed", "unchanged" or "only in registry".
    pub(crate) state: &'static str,
    /// `(document, pointer, registry value, repo value)`; values absent on one side are `None`.
    pub(crate) changes: Vec<(&'static str, String, Option<Value>, Option<Value>)>,
}

pub(crate) fn diff(rows: &[DiffRow], format: Format) {
    match format {
        Format::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|row| {
                    let changes: Vec<_> = row
                        .changes
                        .iter()
                        .map(|(document, pointer, live, repo)| {
                            json!({ "document": document, "pointer": pointer, "registry": live, "repo": repo })
                        })
                        .collect();
                    json!({ "tenant": row.tenant, "state": row.state, "changes": changes })
                })
                .collect();
            json_value(&json!({ "tenants": rows }));
        }
        Format::Human => {
            let shown = |value: &Value| {
                let text = value.to_string();
                if text.chars().count() > 72 {
                    format!("{}…", text.chars().take(72).collect::<String>())
                } else {
                    text
                }
            };
            for row in rows.iter().filter(|row| row.state != "unchanged") {
                println!("{} ({})", row.tenant, row.state);
                for (document, pointer, live, repo) in &row.changes {
                    match (live, repo) {
                        (Some(live), Some(repo)) => {
                            println!("  ~ {document}{pointer}: {} -> {}", shown(live), shown(repo))
                        }
                        (None, Some(repo)) => println!("  + {document}{pointer}: {}", shown(repo)),
                        (Some(live), None) => println!("  - {document}{pointer}: {}", shown(live)),
                        (None, None) => {}
                    }
                }
            }
            let count = |state: &str| rows.iter().filter(|row| row.state == state).count();
            println!(
                "{} added, {} changed, {} unchanged, {} only in the registry",
                count("added"),
                count("changed"),
                count("unchanged"),
                count("only in registry")
            );
        }
    }
}

pub(crate) fn publish_plan(rows: &[CohortRow], unchanged: usize, only_live: usize, format: Format) {
    if format == Format::Json {
        return;
    }
    println!(
        "plan: {} cohorts, {unchanged} tenants unchanged, {only_live} only in the registry (left alone)",
        rows.len()
    );
    for row in rows {
        println!("  cohort {:>3}  {:<9} {:>5} tenants, {} golden", row.number, row.label, row.tenants, row.smoked);
    }
}

pub(crate) fn publish_summary(rows: &[CohortRow], format: Format) {
    match format {
        Format::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|row| {
                    json!({
                        "cohort": row.number, "kind": row.label, "tenants": row.tenants,
                        "revisions": row.revisions.map(|(first, last)| [first, last]),
                        "acked_ms": row.acked.map(|took| took.as_millis() as u64), "smoke_checked": row.smoked,
                        "ok": row.result.is_ok(), "error": row.result.as_ref().err(),
                    })
                })
                .collect();
            json_value(&json!({ "cohorts": rows }));
        }
        Format::Human => {
            println!(
                "{:>6}  {:<9} {:>7}  {:<15} {:>9} {:>6}  RESULT",
                "COHORT", "KIND", "TENANTS", "REVISIONS", "ACKED", "SMOKE"
            );
            for row in rows {
                let revisions = row.revisions.map_or("-".to_owned(), |(first, last)| format!("{first}..{last}"));
                let acked = row.acked.map_or("-".to_owned(), |took| format!("{} ms", took.as_millis()));
                let result = match &row.result {
                    Ok(()) => "ok".to_owned(),
                    Err(error) => error.clone(),
                };
                println!(
                    "{:>6}  {:<9} {:>7}  {:<15} {:>9} {:>6}  {result}",
                    row.number, row.label, row.tenants, revisions, acked, row.smoked
                );
            }
        }
    }
}
