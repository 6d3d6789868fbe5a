//! `leads check` (SPEC section 13, issue 12): each outcome against a real
//! loopback server — the sandbox, a closed port, a TLS server with an
//! untrusted certificate — with its status word, latency and exit code;
//! named sources each get their own row; nothing is written.

use std::path::{Path, PathBuf};

use leads::model::Vendor;
use leads::sandbox::{DEMO_AGENT, DEMO_PROJECT, Sandbox, SandboxOptions};
use serde_json::Value;

use crate::common::*;

async fn start() -> Sandbox {
    Sandbox::start(SandboxOptions {
        leads: 300,
        conversations: 5,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts")
}

fn check(vendor: Vendor, base_url: &str, key: &str, agent: &str) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.args(["check", "--format", "ndjson", "--retries", "0"])
        .args(["--vendor", vendor.as_str(), "--agent", agent])
        .args(["--base-url", base_url])
        .env(vendor.key_env(), key);
    if vendor == Vendor::Robofy {
        cmd.args(["--project", DEMO_PROJECT]);
    }
    cmd
}

/// The one NDJSON row of a single-source check.
fn row(output: &std::process::Output) -> Value {
    let rows = ndjson(output);
    assert_eq!(rows.len(), 1, "{}", stdout(output));
    rows.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_vendor_checks_ok_with_one_cheap_request_and_a_latency() {
    for &vendor in Vendor::all() {
        let sandbox = start().await;
        let output = run(check(
            vendor,
            &sandbox_url(&sandbox, vendor),
            sandbox_key(vendor),
            DEMO_AGENT,
        ))
        .await;
        assert_exit(&output, 0);
        let row = row(&output);
        assert_eq!(row["status"], "ok", "{vendor}: {row}");
        assert_eq!(row["exit_code"], 0);
        assert_eq!(row["vendor"], vendor.as_str());
        assert!(row["latency_ms"].is_u64(), "{row}");
        let requests = sandbox.stats().requests;
        assert!(
            (1..=2).contains(&requests),
            "{vendor}: {requests} requests for one check"
        );
        for &vendor in Vendor::all() {
            assert_no_secret_in("stdout", &output.stdout, sandbox_key(vendor));
            assert_no_secret_in("stderr", &output.stderr, sandbox_key(vendor));
        }
    }
}

#[tokio::test]
async fn a_refused_key_and_an_unknown_agent_are_auth_refused_3_and_not_found_4() {
    let sandbox = start().await;
    for &vendor in Vendor::all() {
        let base = sandbox_url(&sandbox, vendor);
        let wrong = "wrong-key-0123456789abcdef";
        let output = run(check(vendor, &base, wrong, DEMO_AGENT)).await;
        assert_exit(&output, 3);
        assert_eq!(row(&output)["status"], "auth refused", "{vendor}");
        assert_no_secret_in("stdout", &output.stdout, wrong);
        assert_no_secret_in("stderr", &output.stderr, wrong);
        let output = run(check(vendor, &base, sandbox_key(vendor), "nobody")).await;
        assert_exit(&output, 4);
        assert_eq!(row(&output)["status"], "not found", "{vendor}");
        assert!(
            stderr(&output).starts_with("leads: error: "),
            "{}",
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable_6_and_an_untrusted_certificate_says_so() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = run(check(
        Vendor::Chatzuri,
        &format!("http://127.0.0.1:{port}"),
        CHATZURI_KEY,
        "a",
    ))
    .await;
    assert_exit(&output, 6);
    assert_eq!(row(&output)["status"], "unreachable");
    assert_no_key(&output);

    let ca = make_ca();
    let base = tls_server(&ca, b"[]".to_vec()).await;
    let mut cmd = check(Vendor::Chatzuri, &base, CHATZURI_KEY, "a");
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    let output = run(cmd).await;
    assert_exit(&output, 6);
    assert_eq!(row(&output)["status"], "certificate not trusted");
    assert_no_key(&output);
}

fn config_file(dir: &Path, sandbox: &Sandbox) -> PathBuf {
    let text = format!(
        "[sources.website]\nvendor = \"chatzuri\"\nagent = \"{DEMO_AGENT}\"\nbase_url = \"{}\"\napi_key_env = \"SANDBOX_CZ\"\n\n\
         [sources.shop]\nvendor = \"neoagent\"\nagent = \"{DEMO_AGENT}\"\nbase_url = \"{}\"\napi_key_env = \"WRONG_NA\"\n\n\
         [sources.support]\nvendor = \"robofy\"\nproject = \"{DEMO_PROJECT}\"\nagent = \"{DEMO_AGENT}\"\nbase_url = \"{}\"\napi_key_env = \"UNSET_RF\"\n",
        sandbox_url(sandbox, Vendor::Chatzuri),
        sandbox_url(sandbox, Vendor::Neoagent),
        sandbox_url(sandbox, Vendor::Robofy),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

#[tokio::test]
async fn named_sources_each_get_a_row_and_the_exit_code_is_the_worst_failures() {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &sandbox);
    let mut cmd = leads();
    cmd.args([
        "check",
        "--all",
        "--format",
        "ndjson",
        "--retries",
        "0",
        "--config",
    ])
    .arg(&config)
    .env("SANDBOX_CZ", sandbox_key(Vendor::Chatzuri))
    .env("WRONG_NA", "na-wrong-0123456789abcdef");
    let output = run(cmd).await;
    // auth refused (3) is worse than the missing key (2).
    assert_exit(&output, 3);
    let rows = ndjson(&output);
    let statuses: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["source"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("website", "ok"),
            ("shop", "auth refused"),
            ("support", "invalid settings")
        ]
    );
    assert!(
        rows[2]["error"].as_str().unwrap().contains("UNSET_RF"),
        "{}",
        rows[2]
    );
    assert_no_secret_in("stdout", &output.stdout, "na-wrong-0123456789abcdef");
    // Nothing was written beside the config.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Two named, the good one alone: exit 0, and the table form by default.
    let mut cmd = leads();
    cmd.args(["check", "website", "--config"])
        .arg(&config)
        .env("SANDBOX_CZ", sandbox_key(Vendor::Chatzuri));
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("source")
            && lines[0].contains("status")
            && lines[0].contains("latency")
    );
    assert!(
        lines[1].starts_with("website") && lines[1].contains(" ok ") && lines[1].contains(" ms"),
        "{table}"
    );
}

#[tokio::test]
async fn a_single_source_with_bad_settings_is_a_usage_error_before_anything_is_sent() {
    let output = run({
        let mut cmd = leads();
        cmd.args(["check", "--vendor", "chatzuri", "--agent", "a"]);
        cmd
    })
    .await;
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("CHATZURI_API_KEY"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
    let output = run(check(
        Vendor::Chatzuri,
        "http://example.com",
        CHATZURI_KEY,
        "a",
    ))
    .await;
    assert_exit(&output, 2);
    assert_no_key(&output);
}

#[tokio::test]
async fn check_sandbox_needs_no_account() {
    let mut cmd = leads();
    cmd.args([
        "check",
        "--sandbox",
        "--vendor",
        "robofy",
        "--agent",
        DEMO_AGENT,
        "--format",
        "ndjson",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(row(&output)["status"], "ok");
}
