//! CI runs the short fault suite: every scenario, nothing acknowledged lost; and the short
//! adversarial run, whose ledger must balance.

use std::process::Command;

#[test]
fn the_short_fault_suite_loses_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_eventhub-faults"))
        .args(["--short", "--json", "--skip", "adversarial"])
        .output()
        .expect("run eventhub-faults");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(report["failed"], serde_json::json!([]), "{stderr}");
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 7, "{report}");
    for s in scenarios {
        assert_eq!(s["lost"], 0, "{s}");
        assert!(s["acknowledged"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["acknowledged"], s["handled"], "{s}");
    }
    let storm = scenarios
        .iter()
        .find(|s| s["scenario"] == "bad-input storm")
        .unwrap();
    assert!(storm["dlq"].as_u64().unwrap() > 0, "{storm}");
    // The standby of a pinned durable takes over after the takeover time (2 s) of silence,
    // plus at most one of its pulls (1 s); a loaded machine gets as long again.
    let pinned = scenarios
        .iter()
        .find(|s| s["scenario"] == "pinned consumer killed")
        .unwrap();
    let notes = pinned["notes"].as_str().unwrap();
    let took: f64 = notes
        .split("took over after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no takeover time in {notes}"));
    assert!((0.0..6.0).contains(&took), "{pinned}");
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn the_short_adversarial_run_balances_its_ledger() {
    let out = Command::new(env!("CARGO_BIN_EXE_eventhub-faults"))
        .args(["--short", "--json", "--only", "adversarial"])
        .output()
        .expect("run eventhub-faults");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    // The seed and, on failure, the disagreements are on stderr; the table in the report.
    eprintln!("{stderr}");
    assert_eq!(report["failed"], serde_json::json!([]), "{stderr}");
    let run = &report["scenarios"][0];
    println!("{}", run["table"].as_str().unwrap_or_default());
    println!("{}", run["notes"].as_str().unwrap_or_default());
    assert_eq!(run["scenario"], "adversarial", "{report}");
    assert_eq!(run["lost"], 0, "{run}");
    assert!(run["acknowledged"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["acknowledged"], run["handled"], "{run}");
    assert!(run["dlq"].as_u64().unwrap() > 0, "{run}");
    assert!(out.status.success(), "{stderr}");
}
