//! `--report PATH` (SPEC section 13, issue 12): after a success, a vendor
//! failure, a usage error and Ctrl-C, the JSON report and the Prometheus
//! textfile say what happened, per source, and never hold the key.

use std::path::Path;
use std::time::Duration;

use leads::model::Vendor;
use leads::sandbox::{DEMO_AGENT, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

async fn start(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.expect("the sandbox starts")
}

fn pull(sandbox: &Sandbox, report: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", DEMO_AGENT])
        .args([
            "--format",
            "ndjson",
            "--base-url",
            &sandbox_url(sandbox, Vendor::Chatzuri),
        ])
        .arg("--report")
        .arg(report)
        .args(extra)
        .env("CHATZURI_API_KEY", sandbox_key(Vendor::Chatzuri));
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the report was written"))
        .expect("the report is JSON")
}

/// The value of the Prometheus sample `name{labels}`.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().expect("a number"))
}

const CZ_LABELS: &str = "source=\"chatzuri/demo\",vendor=\"chatzuri\",resource=\"leads\"";

fn no_temporaries(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
    }
}

#[tokio::test]
async fn a_successful_incremental_run_reports_counts_and_bookmarks_in_json_and_prometheus() {
    let sandbox = start(SandboxOptions {
        leads: 230,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (report, state, out) = (
        dir.path().join("run.json"),
        dir.path().join("state.json"),
        dir.path().join("leads.ndjson"),
    );
    let mut cmd = pull(&sandbox, &report, &["--state", state.to_str().unwrap()]);
    cmd.arg("-o").arg(&out);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let written = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(written, 230);
    let r = read_json(&report);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["command"], "pull");
    for field in ["started_at", "ended_at"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(r[field].as_str().unwrap()).is_ok(),
            "{field}"
        );
    }
    let source = &r["sources"][0];
    assert_eq!(source["source"], "chatzuri/demo");
    assert_eq!(source["status"], "ok");
    assert_eq!(source["records_written"], 230);
    assert_eq!(source["pages"], 3, "230 leads at 100 a page");
    assert!(source["requests"].as_u64().unwrap() >= 3);
    assert_eq!(source["retries"], 0);
    assert_eq!(source["duplicates_dropped"], 0);
    assert_eq!(source["bookmark_before"], Value::Null);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let mark = &saved["bookmarks"]["chatzuri/demo/leads"];
    assert_eq!(source["bookmark_after"]["created_at"], mark["created_at"]);
    assert_eq!(source["bookmark_after"]["ids"], mark["ids"]);

    // The next run starts from that bookmark and writes nothing new.
    let output = run(pull(
        &sandbox,
        &report,
        &["--state", state.to_str().unwrap()],
    ))
    .await;
    assert_exit(&output, 0);
    let second = read_json(&report);
    assert_eq!(
        second["sources"][0]["bookmark_before"],
        source["bookmark_after"]
    );
    assert_eq!(second["sources"][0]["records_written"], 0);
    assert!(second["sources"][0]["filtered_out"].as_u64().unwrap() > 0);

    let prom = dir.path().join("leads.prom");
    let output = run(pull(&sandbox, &prom, &[])).await;
    assert_exit(&output, 0);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        sample(&text, "leads_records_total", CZ_LABELS),
        Some(230.0),
        "{text}"
    );
    assert_eq!(sample(&text, "leads_run_exit_code", CZ_LABELS), Some(0.0));
    assert_eq!(sample(&text, "leads_pages_total", CZ_LABELS), Some(3.0));
    assert!(sample(&text, "leads_requests_total", CZ_LABELS).unwrap() >= 3.0);
    assert_eq!(sample(&text, "leads_retries_total", CZ_LABELS), Some(0.0));
    let success = sample(&text, "leads_last_success_timestamp_seconds", CZ_LABELS).unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 60.0..=now + 1.0).contains(&success), "{success}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split('{').next().unwrap();
        assert!(
            text.contains(&format!("# TYPE {name} gauge")),
            "{name} has no TYPE line"
        );
    }
    no_temporaries(dir.path());
    for path in [&report, &prom] {
        for &vendor in Vendor::all() {
            assert_no_secret_in("report", &std::fs::read(path).unwrap(), sandbox_key(vendor));
        }
    }
}

#[tokio::test]
async fn a_vendor_failure_is_reported_with_its_exit_code_retries_and_the_last_success_kept() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("leads.prom");
    let json_report = dir.path().join("run.json");
    let good = start(SandboxOptions {
        leads: 30,
        ..Default::default()
    })
    .await;
    let output = run(pull(&good, &prom, &[])).await;
    assert_exit(&output, 0);
    let before = sample(
        &std::fs::read_to_string(&prom).unwrap(),
        "leads_last_success_timestamp_seconds",
        CZ_LABELS,
    )
    .unwrap();

    let failing = start(SandboxOptions {
        leads: 30,
        fail_every: Some(1),
        ..Default::default()
    })
    .await;
    for path in [&prom, &json_report] {
        let output = run(pull(&failing, path, &["--retries", "2"])).await;
        assert_exit(&output, 5);
    }
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample(&text, "leads_run_exit_code", CZ_LABELS), Some(5.0));
    assert_eq!(sample(&text, "leads_records_total", CZ_LABELS), Some(0.0));
    assert_eq!(sample(&text, "leads_retries_total", CZ_LABELS), Some(2.0));
    assert_eq!(
        sample(&text, "leads_last_success_timestamp_seconds", CZ_LABELS),
        Some(before),
        "the last success is carried over: {text}"
    );
    let r = read_json(&json_report);
    assert_eq!(r["exit_code"], 5);
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("Chatzuri") && error.contains("503"),
        "{error}"
    );
    let source = &r["sources"][0];
    assert_eq!(source["status"], "failed");
    assert_eq!(source["records_written"], 0);
    assert_eq!(source["requests"], 3);
    assert_eq!(source["retries"], 2);
}

#[tokio::test]
async fn rate_limit_waits_are_counted_and_the_key_never_reaches_the_report() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({"error": format!("slow down, {CHATZURI_KEY}")})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": 1, "created_at": "2025-01-15T10:30:00Z", "chatbot_id": "a", "email": "x@example.com"}
        ]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let mut cmd = leads();
    cmd.args([
        "pull", "--vendor", "chatzuri", "--agent", "a", "--format", "ndjson",
    ])
    .args([
        "--base-url",
        &server.uri(),
        "--concurrency",
        "1",
        "--report",
    ])
    .arg(&report)
    .env("CHATZURI_API_KEY", CHATZURI_KEY);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let r = read_json(&report);
    let source = &r["sources"][0];
    assert_eq!(source["rate_limit_waits"], 2, "{r}");
    assert_eq!(source["retries"], 2);
    assert_eq!(source["records_written"], 1);

    // The key comes back in a refusal: not in the report's error line.
    server.reset().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": format!("bad key {CHATZURI_KEY}")})),
        )
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", "a"])
        .args(["--base-url", &server.uri(), "--report"])
        .arg(&report)
        .env("CHATZURI_API_KEY", CHATZURI_KEY);
    let output = run(cmd).await;
    assert_exit(&output, 3);
    let bytes = std::fs::read(&report).unwrap();
    assert_no_key_in("the report", &bytes);
    assert_eq!(read_json(&report)["exit_code"], 3);
}

#[tokio::test]
async fn a_usage_error_is_reported_too_and_nothing_else_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let mut cmd = leads();
    cmd.args([
        "conversations",
        "--vendor",
        "chatzuri",
        "--agent",
        "a",
        "--since",
        "someday",
        "--report",
    ])
    .arg(&report);
    let output = run(cmd).await;
    assert_exit(&output, 2);
    let r = read_json(&report);
    assert_eq!(r["exit_code"], 2);
    assert_eq!(r["resource"], "conversations");
    assert!(r["error"].as_str().unwrap().contains("someday"));
    assert_eq!(r["sources"], json!([]));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_is_reported_as_exit_130_in_both_formats() {
    let sandbox = start(SandboxOptions {
        leads: 400,
        latency: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["run.json", "run.prom"] {
        let report = dir.path().join(name);
        let binary = assert_cmd::cargo::cargo_bin("leads");
        let mut child = std::process::Command::new(binary)
            .args([
                "pull",
                "--vendor",
                "chatzuri",
                "--agent",
                DEMO_AGENT,
                "--concurrency",
                "1",
            ])
            .args([
                "--base-url",
                &sandbox_url(&sandbox, Vendor::Chatzuri),
                "--report",
            ])
            .arg(&report)
            .env("CHATZURI_API_KEY", sandbox_key(Vendor::Chatzuri))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the first request is in flight.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sandbox.stats().in_flight == 0 {
            assert!(std::time::Instant::now() < deadline, "no request came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert_eq!(status.code(), Some(130));
        let text = std::fs::read_to_string(&report).expect("the report was written");
        if name.ends_with(".prom") {
            assert_eq!(
                sample(&text, "leads_run_exit_code", CZ_LABELS),
                Some(130.0),
                "{text}"
            );
            assert_eq!(
                sample(&text, "leads_last_success_timestamp_seconds", CZ_LABELS),
                None
            );
        } else {
            let r: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(r["exit_code"], 130);
            assert!(r["error"].as_str().unwrap().contains("interrupted"), "{r}");
            assert_eq!(r["sources"][0]["status"], "failed");
            assert!(r["sources"][0]["requests"].as_u64().unwrap() >= 1);
        }
        no_temporaries(dir.path());
    }
}

/// A report path naming the output or the state would replace it: exit 2,
/// before anything is sent, and that file untouched.
#[tokio::test]
async fn a_report_over_the_output_or_the_state_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leads.ndjson");
    let state = dir.path().join("state.json");
    std::fs::write(&out, "keep me\n").unwrap();
    for (report, flags) in [
        (
            out.clone(),
            vec!["-o".to_owned(), out.display().to_string()],
        ),
        (
            dir.path().join("state.json"),
            vec!["--state".to_owned(), state.display().to_string()],
        ),
        (
            dir.path().join("state.json.lock"),
            vec!["--state".to_owned(), state.display().to_string()],
        ),
        (
            dir.path().join("./leads.ndjson"),
            vec!["-o".to_owned(), out.display().to_string()],
        ),
    ] {
        let mut cmd = leads();
        cmd.args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "a",
            "--sandbox",
            "--report",
        ])
        .arg(&report)
        .args(&flags);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(stderr(&output).contains("same file"), "{}", stderr(&output));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me\n");
        assert!(!state.exists());
    }
}

/// `-q` silences stderr, not the report: a cron job can be quiet and still
/// be monitored.
#[tokio::test]
async fn quiet_runs_still_write_their_report() {
    let sandbox = start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = dir.path().join("out.ndjson");
    let mut cmd = pull(&sandbox, &report, &["-q", "-o", out.to_str().unwrap()]);
    cmd.env_remove("RUST_LOG");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    let json = read_json(&report);
    assert_eq!(json["exit_code"], 0, "{json}");
    assert_no_key_in("the report", &std::fs::read(&report).unwrap());
}
