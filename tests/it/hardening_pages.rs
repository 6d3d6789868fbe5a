//! Hostile pages, hostile ids and limits that must bound every listing:
//! each test is named after a defect a hostile vendor or a careless user
//! found, and runs the binary against a real HTTP server on loopback.

use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::fake::na_envelope;
use crate::common::{
    CHATZURI_KEY, NEOAGENT_KEY, ROBOFY_KEY, assert_exit, assert_no_key, leads, ndjson, run, stderr,
};

const CZ_AGENT: &str = "agent-7";
const NA_SERIAL: &str = "3254a9d0424c4806b9ea3d0763ccf000";
const NOW: &str = "2025-03-10T12:00:00Z";

fn chatzuri(base: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY)
        .env("LEADS_NOW", NOW);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", CZ_AGENT]);
    cmd.args(["--base-url", base, "--format", "ndjson"]);
    cmd.args(args);
    cmd
}

fn neoagent(base: &str, command: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("NEOAGENT_API_KEY", NEOAGENT_KEY)
        .env("LEADS_NOW", NOW);
    cmd.args([command, "--vendor", "neoagent", "--agent", NA_SERIAL]);
    cmd.args(["--base-url", base, "--format", "ndjson"]);
    cmd.args(args);
    cmd
}

fn robofy(base: &str, command: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY).env("LEADS_NOW", NOW);
    cmd.args([command, "--vendor", "robofy"]);
    cmd.args(["--base-url", base, "--format", "ndjson"]);
    cmd.args(args);
    cmd
}

fn cz_lead(id: u64) -> Value {
    json!({"id": id, "created_at": "2025-01-15T10:30:00Z", "email": format!("l{id}@example.com")})
}

fn na_lead(name: &str) -> Value {
    json!({"Type": "Lead", "Name": name, "CreateTime": "2025-01-15T10:30:00Z", "SessionID": 7})
}

async fn requests_to(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

fn ids(output: &Output) -> Vec<String> {
    ndjson(output)
        .iter()
        .map(|r| r["id"].as_str().expect("string id").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// --max-pages bounds every listing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn max_pages_bounds_neoagent_windows() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(na_envelope(vec![])))
        .mount(&server)
        .await;
    for command in ["pull", "conversations"] {
        let output = run(neoagent(
            &server.uri(),
            command,
            &[
                "--since",
                "1900-01-01",
                "--window",
                "1",
                "--max-pages",
                "10",
            ],
        ))
        .await;
        assert_exit(&output, 5);
        assert!(
            stderr(&output).contains("--max-pages 10"),
            "{}",
            stderr(&output)
        );
        assert_no_key(&output);
    }
    // Refused from the plan, before a single window was asked for (it was
    // 46,355 requests).
    assert_eq!(requests_to(&server).await.len(), 0);
}

// ---------------------------------------------------------------------------
// Extreme but valid dates
// ---------------------------------------------------------------------------

#[tokio::test]
async fn extreme_dates_are_clamped_not_sent_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-leads"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [cz_lead(1)]})))
        .mount(&server)
        .await;
    let output = run(chatzuri(
        &server.uri(),
        &["--since", "0001-01-01", "--until", "9999-12-31"],
    ))
    .await;
    assert_exit(&output, 0);
    assert_eq!(ids(&output), ["1"]);
    let request = &requests_to(&server).await[0];
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("startDate").as_deref(), Some("1970-01-01"));
    assert_eq!(get("endDate").as_deref(), Some("9999-12-31"));
}

#[tokio::test]
async fn extreme_dates_give_neoagent_few_well_formed_windows() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/Chatbot/LeadList"))
        .respond_with(ResponseTemplate::new(200).set_body_json(na_envelope(vec![na_lead("Ana")])))
        .mount(&server)
        .await;
    let output = run(neoagent(
        &server.uri(),
        "pull",
        &[
            "--since",
            "0001-01-01",
            "--until",
            "9999-12-31",
            "--window",
            "3650",
        ],
    ))
    .await;
    assert_exit(&output, 0);
    let requests = requests_to(&server).await;
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect();
    // 1970 to "today" (2025) in ten-year windows; the last one reaches the
    // requested end instead of cutting windows up to the year 9999.
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    assert_eq!(bodies[0]["startTime"], "1970-01-01");
    assert_eq!(bodies.last().unwrap()["endTime"], "9999-12-31");
    for body in &bodies {
        for key in ["startTime", "endTime"] {
            let day = body[key].as_str().expect("a date");
            assert!(
                day.len() == 10 && chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok(),
                "{key} {day:?}"
            );
        }
    }
    // The same lead in every window is written once.
    assert_eq!(ndjson(&output).len(), 1);
}

#[tokio::test]
async fn huge_window_does_not_overflow() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(na_envelope(vec![na_lead("Ana")])))
        .mount(&server)
        .await;
    let output = run(neoagent(
        &server.uri(),
        "pull",
        &["--since", "2025-01-01", "--window", "4294967295"],
    ))
    .await;
    assert_exit(&output, 0);
    assert_eq!(requests_to(&server).await.len(), 1);
}

#[tokio::test]
async fn numeric_flags_past_their_range_are_usage_errors_not_overflows() {
    for (flag, value) in [("--retries", "4294967295"), ("--max-pages", "99999999999")] {
        let output = run(chatzuri("http://127.0.0.1:9", &[flag, value])).await;
        assert_exit(&output, 2);
        assert!(stderr(&output).contains(flag), "{}", stderr(&output));
    }
}

// ---------------------------------------------------------------------------
// Hostile pages
// ---------------------------------------------------------------------------

/// A vendor that ignores `size` hands out one huge page 1; the check that
/// the head of the listing did not move compared every id with every id.
/// With 150,000 ids of equal length that is over 10^10 string comparisons
/// (minutes of CPU even in a release build: this test then does not end);
/// with a set it is linear and the test takes seconds.
#[tokio::test]
async fn head_recheck_is_not_quadratic_on_a_huge_page() {
    const HUGE: u64 = 150_000;
    let server = MockServer::start().await;
    let huge: Vec<Value> = (0..HUGE).map(|n| cz_lead(10_000_000 + n)).collect();
    Mock::given(method("GET"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": huge })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [cz_lead(1)]})))
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &["--concurrency", "4"])).await;
    assert_exit(&output, 0);
    assert_eq!(ndjson(&output).len() as u64, HUGE + 1);
    let page_ones = requests_to(&server)
        .await
        .iter()
        .filter(|r| r.url.query_pairs().any(|(k, v)| k == "page" && v == "1"))
        .count();
    assert_eq!(
        page_ones, 2,
        "page 1 first and once more for the head check"
    );
}

// ---------------------------------------------------------------------------
// Numbers and ids
// ---------------------------------------------------------------------------

const BIG_IDS: &str = r#"{"data":[
  {"id":18446744073709551616,"created_at":"2025-01-15T10:30:00Z","score":1.10},
  {"id":18446744073709551617,"created_at":"2025-01-15T10:30:00Z","score":1e400},
  {"id":123456789012345678901234567890,"created_at":"2025-01-15T10:30:00Z"}
]}"#;

#[tokio::test]
async fn integer_ids_above_2_pow_64_stay_exact() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(BIG_IDS, "application/json"))
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &["--raw"])).await;
    assert_exit(&output, 0);
    // Three distinct leads, not one: through f64 the first two were equal.
    assert_eq!(
        ids(&output),
        [
            "18446744073709551616",
            "18446744073709551617",
            "123456789012345678901234567890"
        ]
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for exact in [
        r#""id":18446744073709551616"#,
        r#""id":18446744073709551617"#,
        r#""id":123456789012345678901234567890"#,
        r#""score":1.10"#,
    ] {
        assert!(text.contains(exact), "--raw altered {exact}: {text}");
    }
}

#[tokio::test]
async fn robofy_integer_ids_above_2_pow_64_stay_exact() {
    let server = MockServer::start().await;
    let body = r#"{"message":"ok","data":{"report":{"rows":[
        {"id":18446744073709551616,"created_at":"2025-01-15 10:30:00","lead_data":[]},
        {"id":18446744073709551617,"created_at":"2025-01-15 10:30:00","lead_data":[]}
    ],"next_page_token":null}}}"#;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let output = run(robofy(
        &server.uri(),
        "pull",
        &["--project", "42", "--agent", "bot-1"],
    ))
    .await;
    assert_exit(&output, 0);
    assert_eq!(
        ids(&output),
        ["18446744073709551616", "18446744073709551617"]
    );
}

#[tokio::test]
async fn dot_segment_ids_from_the_command_line_are_refused() {
    let server = MockServer::start().await;
    for args in [
        ["--project", "42", "--agent", ".."],
        ["--project", "..", "--agent", "bot-1"],
        ["--project", ".", "--agent", "bot-1"],
    ] {
        let output = run(robofy(&server.uri(), "pull", &args)).await;
        assert_exit(&output, 2);
        assert!(stderr(&output).contains("path"), "{}", stderr(&output));
    }
    let output = run(robofy(
        &server.uri(),
        "conversations",
        &["--agent", "bot-1", "--session", ".."],
    ))
    .await;
    assert_exit(&output, 2);
    assert_eq!(requests_to(&server).await.len(), 0, "nothing was sent");
}

/// A session id `..` in the vendor's own listing would have sent the
/// message request, with the key, to the inbox listing itself.
#[tokio::test]
async fn dot_segment_ids_from_vendor_data_never_change_the_endpoint() {
    let server = MockServer::start().await;
    let listing = json!({"message": "OK", "data": {"rows": [
        {"sessionId": "..", "createdAt": "2025-01-17T09:15:00Z"}
    ], "report": {"next_page_token": null}}});
    Mock::given(method("GET"))
        .and(path("/v1/ai-agent/inbox/sessions/bot-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listing))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"message": "OK", "data": {"messages": [], "next_page_token": null}}),
        ))
        .mount(&server)
        .await;
    let output = run(robofy(
        &server.uri(),
        "conversations",
        &["--agent", "bot-1"],
    ))
    .await;
    assert_exit(&output, 5);
    assert_no_key(&output);
    let paths: Vec<String> = requests_to(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/v1/ai-agent/inbox/sessions/bot-1"]);
}

#[tokio::test]
async fn neoagent_envelope_with_both_casings_is_decided_the_same_way_every_run() {
    let server = MockServer::start().await;
    let body = r#"{"success":false,"Data":[{"Type":"Lead","Name":"Ana","CreateTime":"2025-01-15T10:30:00Z","SessionID":7}],"Success":true,"Code":200}"#;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    for _ in 0..6 {
        let output = run(neoagent(&server.uri(), "pull", &[])).await;
        assert_exit(&output, 0);
        assert_eq!(ndjson(&output).len(), 1);
    }
}

// ---------------------------------------------------------------------------
// Named sources
// ---------------------------------------------------------------------------

fn config_with(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

#[tokio::test]
async fn base_url_and_key_file_flags_with_named_sources_are_refused() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "[sources.site]\nvendor = \"chatzuri\"\nagent = \"agent-7\"\n",
    );
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, CHATZURI_KEY).unwrap();
    for (flag, value) in [
        ("--base-url", server.uri()),
        ("--api-key-file", key_file.display().to_string()),
    ] {
        let mut cmd = leads();
        cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
        cmd.args(["pull", "site", "--config"]).arg(&config);
        cmd.args([flag, &value]);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(stderr(&output).contains(flag), "{}", stderr(&output));
        assert_no_key(&output);
    }
    assert_eq!(requests_to(&server).await.len(), 0);
}

#[tokio::test]
async fn named_source_without_base_url_honours_the_vendor_variable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-leads"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [cz_lead(5)]})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "[sources.site]\nvendor = \"chatzuri\"\nagent = \"agent-7\"\n",
    );
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY)
        .env("CHATZURI_BASE_URL", server.uri());
    cmd.args(["pull", "site", "--format", "ndjson", "--config"])
        .arg(&config);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(ids(&output), ["5"]);
}

// ---------------------------------------------------------------------------
// Many sources, few file descriptors
// ---------------------------------------------------------------------------

fn many_sources(dir: &std::path::Path, count: usize) -> std::path::PathBuf {
    let mut text = String::new();
    for n in 0..count {
        text.push_str(&format!(
            "[sources.s{n}]\nvendor = \"chatzuri\"\nagent = \"agent-{n}\"\n"
        ));
    }
    config_with(dir, &text)
}

/// The binary under `ulimit -n LIMIT`.
fn with_fd_limit(limit: u32, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    let mut line = format!("ulimit -n {limit} && exec \"$0\"");
    for n in 1..=args.len() {
        line.push_str(&format!(" \"${n}\""));
    }
    let mut sh = assert_cmd::Command::new("sh");
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    sh.arg("-c")
        .arg(line)
        .arg(env!("CARGO_BIN_EXE_leads"))
        .args(args);
    sh
}

/// `--all` over more sources than the process may open descriptors for at
/// once: every source ran at the same time and the run failed with "cannot
/// reach" (exit 6). Sources now run at most 16 at a time, each closing its
/// connections when done.
#[tokio::test]
async fn all_with_more_sources_than_file_descriptors_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [cz_lead(1)]})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = many_sources(dir.path(), 90);
    let config = config.display().to_string();
    let uri = server.uri();
    let mut cmd = with_fd_limit(
        160,
        &[
            "pull",
            "--all",
            "--config",
            &config,
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ],
    );
    cmd.env("CHATZURI_BASE_URL", &uri);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(ndjson(&output).len(), 90, "one lead from each source");
}

#[tokio::test]
async fn running_out_of_file_descriptors_is_a_local_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [cz_lead(1)]})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = many_sources(dir.path(), 90);
    let config = config.display().to_string();
    let mut cmd = with_fd_limit(
        40,
        &["pull", "--all", "--config", &config, "--format", "ndjson"],
    );
    cmd.env("CHATZURI_BASE_URL", server.uri());
    let output = run(cmd).await;
    assert_exit(&output, 7);
    let text = stderr(&output);
    assert!(text.contains("file descriptors"), "{text}");
    assert!(!text.contains("cannot reach"), "{text}");
    assert!(output.stdout.is_empty());
}
