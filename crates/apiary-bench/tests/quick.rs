//! End-to-end smoke test of `apiary-bench broker --quick` against our broker only, with
//! tiny counts. Checks counting and reporting, never timings.

use std::process::Command;

#[test]
fn quick_run_against_our_broker_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_apiary-bench"))
        .args(["broker", "--quick", "--only", "ours", "--messages", "1000"])
        .args(["--idle-conns", "50", "--timeout", "30", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Summary"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = v["workloads"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for row in rows {
        // 1,000 messages fit any subscriber queue: nothing may be lost.
        let first = &row["ours"]["runs"][0];
        let subs = row["workload"]["subscribers"].as_u64().unwrap();
        assert_eq!(first["sent"].as_u64(), Some(1000), "{row}");
        assert_eq!(first["received"].as_u64(), Some(1000 * subs), "{row}");
        assert_eq!(first["lost"].as_i64(), Some(0), "{row}");
        assert!(first["errors"].as_array().unwrap().is_empty(), "{row}");
        assert!(row["python"].is_null());
    }
    let idle = &v["idle"]["ours"];
    assert_eq!(idle["connections"].as_u64(), Some(50));
    assert_eq!(idle["broker_authenticated"].as_u64(), Some(50));
    assert_eq!(idle["failed"].as_u64(), Some(0));
}
