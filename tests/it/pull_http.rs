//! `leads pull` against real HTTP servers on loopback (wiremock, and a few
//! hand-written TCP servers for broken connections): pagination, what each
//! vendor receives, exit codes and messages, retries, the `-o` file, CSV,
//! the formula guard, key secrecy, broken pipe and Ctrl-C (docs/SPEC.md section 1–6).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use leads::model::Lead;
use leads::output::Formatted;

use crate::common::fake::{self, Answer, na_envelope};
use crate::common::{
    CHATZURI_KEY, NEOAGENT_KEY, ROBOFY_KEY, assert_exit, assert_no_key, leads, ndjson, run, stderr,
    stdout,
};

const CZ_AGENT: &str = "agent-7";
const CZ_PATH: &str = "/api/v1/get-leads";
const NA_SERIAL: &str = "3254a9d0424c4806b9ea3d0763ccf000";
const NA_PATH: &str = "/chat/Chatbot/LeadList";
const RF_PROJECT: &str = "42";
const RF_BOT: &str = "bot-1";
const RF_PATH: &str = "/v1/ai-agent/leads/42/bot-1";

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// `leads pull` for Chatzuri against `base` (the server URI; the base URL
/// gets the vendor's `/api/v1` prefix, so a prefixed base URL is exercised).
fn chatzuri(base: &str, args: &[&str]) -> Command {
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", CZ_AGENT]);
    cmd.args(["--base-url", &format!("{base}/api/v1")]);
    cmd.args(args);
    cmd
}

/// Chatzuri one page at a time, `size` leads a page, NDJSON out.
fn chatzuri_serial(base: &str, size: &str) -> Command {
    chatzuri(
        base,
        &[
            "--page-size",
            size,
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ],
    )
}

fn neoagent(base: &str, args: &[&str]) -> Command {
    let mut cmd = leads();
    cmd.env("NEOAGENT_API_KEY", NEOAGENT_KEY);
    cmd.args(["pull", "--vendor", "neoagent", "--agent", NA_SERIAL]);
    cmd.args(["--base-url", base]);
    cmd.args(args);
    cmd
}

fn robofy(base: &str, args: &[&str]) -> Command {
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY);
    cmd.args([
        "pull",
        "--vendor",
        "robofy",
        "--project",
        RF_PROJECT,
        "--agent",
        RF_BOT,
    ]);
    cmd.args(["--base-url", base]);
    cmd.args(args);
    cmd
}

/// The binary as a plain `std::process::Command` (for spawning: broken
/// pipe, SIGINT), with an empty environment but for what it needs.
fn spawnable(key_var: &str, key: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leads"));
    cmd.env_clear()
        .env("XDG_CONFIG_HOME", "/nonexistent-leads-test-config")
        .env("LEADS_RETRY_BASE_MS", "1")
        .env(key_var, key)
        .args(args);
    cmd
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

fn cz_lead(id: u64) -> Value {
    json!({
        "id": id,
        "created_at": "2025-01-15T10:30:00Z",
        "chatbot_owner_user_id": "usr_8f3a",
        "chatbot_id": CZ_AGENT,
        "phone": "+1 415 555 0100",
        "email": format!("lead{id}@example.com"),
        "name": format!("Lead {id}")
    })
}

fn cz_page(ids: impl IntoIterator<Item = u64>) -> Value {
    json!({ "data": ids.into_iter().map(cz_lead).collect::<Vec<_>>() })
}

/// A fresh server answering every `verb` request on `route` with `answer`.
async fn serve(verb: &str, route: &str, answer: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// A fresh server answering `verb` on `route` with `answer`, expecting
/// exactly one such request.
async fn serve_once(verb: &str, route: &str, answer: impl Respond + 'static) -> MockServer {
    serve_times(verb, route, answer, 1).await
}

/// A fresh server answering `verb` on `route` with `answer`, expecting
/// exactly `times` such requests.
async fn serve_times(
    verb: &str,
    route: &str,
    answer: impl Respond + 'static,
    times: u64,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(answer)
        .expect(times)
        .mount(&server)
        .await;
    server
}

/// A Chatzuri get-leads page: GET, the given `page` and `size`.
fn cz_mock(page: u64, size: u64) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(CZ_PATH))
        .and(query_param("page", page.to_string()))
        .and(query_param("size", size.to_string()))
}

/// Mounts Chatzuri page `page` of `size` answering `body`, expected once.
async fn cz_page_once(server: &MockServer, page: u64, size: u64, body: Value) {
    cz_mock(page, size)
        .respond_with(ok_json(body))
        .expect(1)
        .mount(server)
        .await;
}

fn na_lead(name: &str, created: &str, session: u64) -> Value {
    json!({
        "Type": "Lead",
        "Name": name,
        "Email": format!("{}@example.com", name.to_lowercase()),
        "PhoneNumber": "",
        "CreateTime": created,
        "Content": format!("message from {name}"),
        "SessionID": session,
        "URI": "https://shop.example/pricing",
        "Count": 1
    })
}

fn rf_row(id: &str) -> Value {
    json!({
        "id": id,
        "created_at": "2025-01-15 10:30:00",
        "source": "chatbot",
        "page_url": "https://shop.example/pricing",
        "ip_address": "203.0.113.7",
        "lead_data": [
            { "field_name": "name", "field_type": "text", "field_value": format!("Name {id}") },
            { "field_name": "email", "field_type": "email", "field_value": format!("{id}@example.com") }
        ]
    })
}

/// A Robofy leads page. `report_token` goes to `data.report.next_page_token`
/// (`None`: key absent), `data_token` to `data.next_page_token`.
fn rf_page(ids: &[&str], report_token: Option<Value>, data_token: Option<Value>) -> Value {
    let mut report = json!({
        "columns": ["id", "created_at", "source", "page_url", "ip_address", "lead_data"],
        "rows": ids.iter().map(|id| rf_row(id)).collect::<Vec<_>>()
    });
    if let Some(token) = report_token {
        report["next_page_token"] = token;
    }
    let mut data = json!({ "report": report });
    if let Some(token) = data_token {
        data["next_page_token"] = token;
    }
    json!({ "message": "Leads retrieved successfully.", "data": data })
}

fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

fn ok_json(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

// ---------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------

/// The `id`s of the NDJSON on stdout, in order.
fn ids(output: &Output) -> Vec<String> {
    ndjson(output)
        .iter()
        .map(|record| {
            record["id"]
                .as_str()
                .unwrap_or_else(|| panic!("record without a string id: {record}"))
                .to_owned()
        })
        .collect()
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn numbered(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

/// A successful run: exit 0, nothing on stderr, no key anywhere.
fn assert_success(output: &Output) {
    assert_exit(output, 0);
    assert_no_key(output);
    assert_eq!(
        stderr(output),
        "",
        "a quiet successful run writes nothing on stderr"
    );
}

/// A failed run: the exit code, exactly one `leads: error: ...` line,
/// optionally followed by one `hint: ...` line and nothing else, every
/// `needle` in those lines, no key anywhere, and nothing on stdout unless
/// `stdout_may_have_records`.
fn assert_error(output: &Output, code: i32, needles: &[&str]) {
    assert_exit(output, code);
    assert_no_key(output);
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    let errors: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("leads: error: "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one `leads: error:` line in:\n{err}"
    );
    let at = errors[0];
    let tail = &lines[at + 1..];
    assert!(
        tail.is_empty() || (tail.len() == 1 && tail[0].starts_with("hint: ")),
        "the error line may only be followed by one `hint:` line:\n{err}"
    );
    let message = lines[at..].join("\n");
    for needle in needles {
        assert!(
            message.contains(needle),
            "expected {needle:?} in the error:\n{message}"
        );
    }
}

/// A usage error: as `assert_error`, and the error is all there is on
/// stderr and stdout is empty.
fn assert_usage_error(output: &Output, needles: &[&str]) {
    assert_error(output, 2, needles);
    assert!(
        stderr(output).starts_with("leads: error: "),
        "a usage error is the first line on stderr:\n{}",
        stderr(output)
    );
    assert_eq!(stdout(output), "", "a usage error writes no data");
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

async fn assert_nothing_sent(server: &MockServer) {
    let received = requests(server).await;
    assert!(
        received.is_empty(),
        "no request may reach the vendor; got {:?}",
        received
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory is readable")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A closed loopback port: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

// ---------------------------------------------------------------------------
// A hand-written HTTP/1.1 server for what wiremock cannot do: connections
// that break, and bodies that declare more than they send.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Break {
    /// Close the connection without answering (after reading the request).
    Silent,
    /// Send the headers and part of the body, then close.
    MidBody,
    /// Declare a body over 64 MiB, send a little, then keep the connection
    /// open for a while.
    HugeContentLength,
}

/// Serves `body` (200, JSON) on every connection after the first `broken`
/// ones, which break the way `how` says. One request per connection.
async fn raw_server(broken: usize, how: Break, body: Value) -> fake::Fake {
    fake::serve(move |req| {
        let answer = if req.connection >= broken {
            Answer::json(200, &body)
        } else {
            match how {
                Break::Silent => Answer::Silent,
                Break::MidBody => Answer::Raw {
                    bytes: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"data\":[{\"id\":1,".to_vec(),
                    hold: Duration::ZERO,
                },
                Break::HugeContentLength => Answer::Raw {
                    bytes: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 70000000\r\n\r\n{\"data\":[".to_vec(),
                    hold: Duration::from_secs(3),
                },
            }
        };
        async move { answer }
    })
    .await
}

// ===========================================================================
// Pagination and what each vendor receives
// ===========================================================================

#[tokio::test]
async fn chatzuri_pages_until_a_short_page() {
    let server = MockServer::start().await;
    for (page, body) in [
        (1, cz_page(1..=3)),
        (2, cz_page(4..=6)),
        (3, cz_page(7..=8)),
    ] {
        cz_mock(page, 3)
            .and(query_param("agentId", CZ_AGENT))
            .and(query_param("chatbotId", CZ_AGENT))
            .and(header(
                "authorization",
                format!("Bearer {CHATZURI_KEY}").as_str(),
            ))
            .respond_with(ok_json(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let output = run(chatzuri_serial(&server.uri(), "3")).await;
    assert_success(&output);
    assert_eq!(ids(&output), numbered(1..=8));
    server.verify().await;
    let pages: Vec<Vec<(String, String)>> =
        requests(&server).await.iter().map(query_pairs).collect();
    assert_eq!(
        pages,
        (1..=3)
            .map(|page| {
                let page = page.to_string();
                pairs(&[
                    ("agentId", CZ_AGENT),
                    ("chatbotId", CZ_AGENT),
                    ("page", &page),
                    ("size", "3"),
                ])
            })
            .collect::<Vec<_>>(),
        "the exact query of every page, and no page after the short one"
    );
}

#[tokio::test]
async fn chatzuri_exact_multiple_of_the_page_size_ends_on_an_empty_page() {
    let server = MockServer::start().await;
    for (page, body) in [(1, cz_page(1..=2)), (2, cz_page(3..=4)), (3, cz_page([]))] {
        cz_page_once(&server, page, 2, body).await;
    }
    let output = run(chatzuri_serial(&server.uri(), "2")).await;
    assert_success(&output);
    assert_eq!(ids(&output), numbered(1..=4));
    server.verify().await;
    assert_eq!(
        requests(&server).await.len(),
        3,
        "no page after the empty one"
    );
}

#[tokio::test]
async fn chatzuri_concurrent_pages_keep_page_order() {
    let server = MockServer::start().await;
    // Earlier pages answer later, so a writer that followed arrival order
    // would scramble the output.
    for page in 1..=6u64 {
        let first = (page - 1) * 5 + 1;
        let last = if page == 6 { first + 1 } else { first + 4 };
        cz_mock(page, 5)
            .respond_with(
                ok_json(cz_page(first..=last)).set_delay(Duration::from_millis(30 * (6 - page))),
            )
            .mount(&server)
            .await;
    }
    // Pages fetched ahead past the end find an empty page.
    Mock::given(method("GET"))
        .and(path(CZ_PATH))
        .respond_with(ok_json(cz_page([])))
        .mount(&server)
        .await;
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--page-size",
            "5",
            "--concurrency",
            "4",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), numbered(1..=27));
}

#[tokio::test]
async fn chatzuri_sends_dates_as_whole_utc_days_and_accepts_200_and_202() {
    let server = MockServer::start().await;
    let in_range = |id: u64, created: &str| {
        let mut lead = cz_lead(id);
        lead["created_at"] = json!(created);
        lead
    };
    // Page 1 answers 202 (the agent revision's success code), page 2 200.
    cz_mock(1, 2)
        .and(query_param("startDate", "2025-01-04"))
        .and(query_param("endDate", "2025-02-02"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "data": [in_range(1, "2025-01-05T21:30:00Z"), in_range(2, "2025-01-20T08:00:00Z")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .and(query_param("startDate", "2025-01-04"))
        .and(query_param("endDate", "2025-02-02"))
        .respond_with(ok_json(json!({
            "data": [in_range(3, "2025-02-01T23:59:59Z")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    // --since as an RFC 3339 time with an offset: 23:30+02:00 is 21:30Z on
    // the 5th. Chatzuri documents neither the zone of its dates nor whether
    // endDate is inclusive, so it is asked for a day more on each side
    // (2025-01-04 .. 2025-02-02) and the exact bounds apply on the client.
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--since",
            "2025-01-05T23:30:00+02:00",
            "--until",
            "2025-02-01",
            "--page-size",
            "2",
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["1", "2", "3"]));
    server.verify().await;
    for request in requests(&server).await {
        let query = query_pairs(&request);
        let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agentId",
                "chatbotId",
                "startDate",
                "endDate",
                "page",
                "size"
            ]
        );
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            &format!("Bearer {CHATZURI_KEY}")
        );
    }
}

#[tokio::test]
async fn chatzuri_zero_records_is_an_empty_json_array() {
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ResponseTemplate::new(202).set_body_json(cz_page([])))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &[])).await;
    assert_success(&output);
    assert_eq!(stdout(&output), "[]\n");
    server.verify().await;
}

#[tokio::test]
async fn chatzuri_json_output_is_one_array_in_page_order() {
    let server = MockServer::start().await;
    cz_mock(1, 2)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .respond_with(ok_json(cz_page(3..=3)))
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &["--page-size", "2"])).await;
    assert_success(&output);
    let records: Vec<Value> = serde_json::from_str(&stdout(&output)).expect("valid JSON");
    let got: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, ["1", "2", "3"]);
    assert_eq!(records[0]["vendor"], "chatzuri");
    assert_eq!(records[0]["agent_id"], CZ_AGENT);
    assert_eq!(records[0]["kind"], "lead");
    assert_eq!(records[0]["created_at"], "2025-01-15T10:30:00.000000Z");
    assert_eq!(records[0]["fields"]["chatbot_owner_user_id"], "usr_8f3a");
}

#[tokio::test]
async fn neoagent_splits_the_range_into_overlapping_windows_and_drops_duplicates() {
    let server = MockServer::start().await;
    let auth = || header("authorization", NEOAGENT_KEY);
    let first = na_envelope(vec![
        na_lead("Ada", "2025-01-10T09:00:00.000001-08:00", 101),
        na_lead("Ben", "2025-01-20T09:00:00.5-08:00", 102),
        // The overlap day: both windows return it.
        na_lead("Cyd", "2025-01-31T10:00:00.25-08:00", 103),
    ]);
    let second = na_envelope(vec![
        na_lead("Cyd", "2025-01-31T10:00:00.25-08:00", 103),
        na_lead("Dee", "2025-02-15T12:00:00-08:00", 104),
    ]);
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .and(auth())
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "serialNumber": NA_SERIAL, "startTime": "2025-01-01", "endTime": "2025-01-31"
        })))
        .respond_with(ok_json(first))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .and(auth())
        .and(body_json(json!({
            "serialNumber": NA_SERIAL, "startTime": "2025-01-31", "endTime": "2025-03-02"
        })))
        .respond_with(ok_json(second))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(neoagent(
        &server.uri(),
        &[
            "--since",
            "2025-01-01",
            "--until",
            "2025-03-01",
            "--window",
            "30",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    let records = ndjson(&output);
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ada", "Ben", "Cyd", "Dee"]);
    let mut unique = ids(&output);
    unique.dedup();
    assert_eq!(unique.len(), 4, "ids are distinct: {unique:?}");
    assert_eq!(records[2]["created_at"], "2025-01-31T18:00:00.250000Z");
    assert_eq!(records[2]["session_id"], "103");
    assert_eq!(records[0]["vendor"], "neoagent");
    server.verify().await;
    for request in requests(&server).await {
        let auth = request
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(auth, NEOAGENT_KEY, "the bare key, no Bearer");
    }
}

#[tokio::test]
async fn neoagent_without_since_asks_once_for_everything() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .and(header("authorization", NEOAGENT_KEY))
        .and(body_json(json!({ "serialNumber": NA_SERIAL })))
        .respond_with(ok_json(
            serde_json::from_slice(&fixture("neoagent/leads-window-1.json")).unwrap(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(neoagent(&server.uri(), &["--format", "ndjson"])).await;
    assert_success(&output);
    let records = ndjson(&output);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["lead", "appointment", "lead"]);
    assert_eq!(records[0]["created_at"], "2025-01-15T06:05:09.000417Z");
    assert_eq!(records[0]["phone"], Value::Null, "empty strings are null");
    assert_eq!(records[2]["name"], "Seán O'Brien", "strings are trimmed");
    server.verify().await;
}

#[tokio::test]
async fn neoagent_session_goes_into_the_body_as_a_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .and(body_json(json!({
            "serialNumber": NA_SERIAL, "startTime": "2025-01-01", "endTime": "2025-01-06", "sessionID": 48211
        })))
        .respond_with(ok_json(na_envelope(vec![na_lead(
            "Ada",
            "2025-01-02T09:00:00-08:00",
            48211,
        )])))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(neoagent(
        &server.uri(),
        &[
            "--since",
            "2025-01-01",
            "--until",
            "2025-01-05",
            "--session",
            "48211",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    let records = ndjson(&output);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["session_id"], "48211");
    server.verify().await;
}

#[tokio::test]
async fn robofy_follows_tokens_from_both_places_to_the_last_page() {
    let server = MockServer::start().await;
    let auth = || header("authorization", format!("Bearer {ROBOFY_KEY}").as_str());
    // First request: no token at all.
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(auth())
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(rf_page(&["r1", "r2"], Some(json!("tok-2")), None)))
        .expect(1)
        .mount(&server)
        .await;
    // The token read from data.report, the next one from data.
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(auth())
        .and(query_param("nextPageToken", "tok-2"))
        .respond_with(ok_json(rf_page(&["r3"], None, Some(json!("tok-3")))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(auth())
        .and(query_param("nextPageToken", "tok-3"))
        .respond_with(ok_json(rf_page(&["r4", "r5"], Some(Value::Null), None)))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(robofy(&server.uri(), &["--format", "ndjson"])).await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["r1", "r2", "r3", "r4", "r5"]));
    let records = ndjson(&output);
    assert_eq!(records[0]["name"], "Name r1");
    assert_eq!(records[0]["email"], "r1@example.com");
    assert_eq!(records[0]["created_at"], "2025-01-15T10:30:00.000000Z");
    server.verify().await;
    let received = requests(&server).await;
    assert_eq!(
        received[0].url.query(),
        None,
        "the first request sends no token"
    );
    for request in &received {
        assert!(
            !request.url.as_str().contains("undefined"),
            "never the string undefined: {}",
            request.url
        );
    }
}

#[tokio::test]
async fn robofy_ends_on_a_null_empty_or_missing_token() {
    for end in [Some(Value::Null), Some(json!("")), None] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(RF_PATH))
            .and(query_param_is_missing("nextPageToken"))
            .respond_with(ok_json(rf_page(&["r1"], Some(json!("tok-2")), None)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(RF_PATH))
            .and(query_param("nextPageToken", "tok-2"))
            .respond_with(ok_json(rf_page(&["r2"], end.clone(), end.clone())))
            .expect(1)
            .mount(&server)
            .await;
        let output = run(robofy(&server.uri(), &["--format", "ndjson"])).await;
        assert_success(&output);
        assert_eq!(ids(&output), strings(["r1", "r2"]), "end token {end:?}");
        server.verify().await;
        assert_eq!(requests(&server).await.len(), 2, "end token {end:?}");
    }
}

#[tokio::test]
async fn robofy_sends_the_session_as_session_id_on_every_page() {
    let server = MockServer::start().await;
    let session = "6ff922ed-9884-4430-83c9-7ac83a7b0574";
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("sessionId", session))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(rf_page(&["r1"], Some(json!("tok-2")), None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("sessionId", session))
        .and(query_param("nextPageToken", "tok-2"))
        .respond_with(ok_json(rf_page(&["r2"], None, None)))
        .expect(1)
        .mount(&server)
        .await;
    // PROJECT/CHATBOT in --agent is the same as --project and --agent.
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY).args([
        "pull",
        "--vendor",
        "robofy",
        "--agent",
        "42/bot-1",
        "--base-url",
        &server.uri(),
        "--session",
        session,
        "--format",
        "ndjson",
    ]);
    let output = run(cmd).await;
    assert_success(&output);
    let records = ndjson(&output);
    assert_eq!(ids(&output), strings(["r1", "r2"]));
    assert_eq!(records[0]["agent_id"], RF_BOT);
    assert_eq!(records[0]["session_id"], session);
    server.verify().await;
}

#[tokio::test]
async fn robofy_fixture_sequence_maps_every_page() {
    let server = MockServer::start().await;
    let page = |name: &str| -> Value {
        serde_json::from_slice(&fixture(&format!("robofy/{name}"))).unwrap()
    };
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(page("leads-page-1.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "eyJwYWdlIjoyfQ=="))
        .respond_with(ok_json(page("leads-page-2.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "eyJwYWdlIjozfQ=="))
        .respond_with(ok_json(page("leads-page-3.json")))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(robofy(&server.uri(), &["--format", "ndjson"])).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let records = ndjson(&output);
    assert_eq!(records.len(), 5);
    let got: Vec<&str> = records[..4]
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["lead_30001", "lead_30002", "lead_30003", "lead_30004"]
    );
    assert_eq!(records[0]["name"], "Zoë Müller");
    assert_eq!(records[3]["phone"], "+1 (415) 555-0100");
    assert_eq!(records[4]["created_at"], Value::Null);
    assert_eq!(
        records[4]["fields"]["created_at_raw"],
        "sometime in January"
    );
    assert!(
        stderr(&output).contains("created_at"),
        "one warning about the unparseable time: {}",
        stderr(&output)
    );
    server.verify().await;
}

#[tokio::test]
async fn chatzuri_a_full_page_filtered_away_on_the_client_is_not_the_end() {
    let server = MockServer::start().await;
    let dated = |id: u64, created: &str| {
        let mut lead = cz_lead(id);
        lead["created_at"] = json!(created);
        lead
    };
    // Page 1 is full but every record is before --since's exact time (the
    // vendor filters by whole days): the listing must go on.
    cz_page_once(
        &server,
        1,
        2,
        json!({
            "data": [dated(1, "2025-01-05T08:00:00Z"), dated(2, "2025-01-05T09:00:00Z")]
        }),
    )
    .await;
    cz_page_once(
        &server,
        2,
        2,
        json!({
            "data": [dated(3, "2025-01-05T12:00:00Z"), dated(4, "2025-01-05T11:00:00Z")]
        }),
    )
    .await;
    cz_page_once(
        &server,
        3,
        2,
        json!({ "data": [dated(5, "2025-01-06T00:00:00Z")] }),
    )
    .await;
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--since",
            "2025-01-05T10:00:00Z",
            "--until",
            "2025-01-05T23:59:59Z",
            "--page-size",
            "2",
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["3", "4"]), "exact bounds re-applied");
    server.verify().await;
}

#[tokio::test]
async fn robofy_dates_are_filtered_on_the_client_only() {
    let server = MockServer::start().await;
    let dated = |id: &str, created: &str| {
        let mut row = rf_row(id);
        row["created_at"] = json!(created);
        row
    };
    let mut page = rf_page(&[], None, None);
    page["data"]["report"]["rows"] = json!([
        dated("early", "2025-01-09 23:59:59"),
        dated("first", "2025-01-10 00:00:00"),
        dated("last", "2025-01-20 23:59:59"),
        dated("late", "2025-01-21 00:00:00"),
    ]);
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .respond_with(ok_json(page))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(robofy(
        &server.uri(),
        &[
            "--since",
            "2025-01-10",
            "--until",
            "2025-01-20",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["first", "last"]));
    server.verify().await;
    let received = requests(&server).await;
    assert_eq!(
        received[0].url.query(),
        None,
        "Robofy has no date parameters"
    );
}

#[tokio::test]
async fn limit_stops_without_fetching_pages_it_cannot_need() {
    let server = MockServer::start().await;
    cz_page_once(&server, 1, 2, cz_page(1..=2)).await;
    cz_page_once(&server, 2, 2, cz_page(3..=4)).await;
    Mock::given(method("GET"))
        .and(path(CZ_PATH))
        .respond_with(ok_json(cz_page(90..=91)))
        .expect(0)
        .mount(&server)
        .await;
    // Default concurrency: even fetching ahead, no third page.
    let output = run(chatzuri(
        &server.uri(),
        &["--page-size", "2", "--limit", "3", "--format", "ndjson"],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), numbered(1..=3));
    server.verify().await;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(rf_page(&["r1", "r2"], Some(json!("t2")), None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "t2"))
        .respond_with(ok_json(rf_page(&["r3"], None, None)))
        .expect(0)
        .mount(&server)
        .await;
    let output = run(robofy(
        &server.uri(),
        &["--limit", "2", "--format", "ndjson"],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["r1", "r2"]));
    server.verify().await;
}

// ===========================================================================
// Exit codes and messages (docs/SPEC.md section 5)
// ===========================================================================

#[tokio::test]
async fn exit_2_for_a_bad_flag_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let output = run(chatzuri(&server.uri(), &["--no-such-flag"])).await;
    assert_usage_error(&output, &["--no-such-flag"]);
    let output = run(chatzuri(&server.uri(), &["--page-size", "zero"])).await;
    assert_usage_error(&output, &["--page-size"]);
    let output = run(chatzuri(&server.uri(), &["--page-size", "101"])).await;
    assert_usage_error(&output, &["--page-size 101"]);
    assert_nothing_sent(&server).await;
}

#[tokio::test]
async fn exit_2_for_a_bad_date_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let output = run(chatzuri(&server.uri(), &["--since", "2025-13-45"])).await;
    assert_usage_error(&output, &["--since", "2025-13-45", "not a date"]);
    let output = run(chatzuri(&server.uri(), &["--until", "last tuesday"])).await;
    assert_usage_error(&output, &["--until", "not a date"]);
    assert_nothing_sent(&server).await;
}

#[tokio::test]
async fn exit_2_when_since_is_after_until_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let output = run(chatzuri(
        &server.uri(),
        &["--since", "2025-02-01", "--until", "2025-01-01"],
    ))
    .await;
    assert_usage_error(&output, &["--since", "after --until"]);
    assert_nothing_sent(&server).await;
}

#[tokio::test]
async fn exit_2_for_a_missing_key_names_the_variable() {
    let server = MockServer::start().await;
    for (vendor, variable, extra) in [
        ("chatzuri", "CHATZURI_API_KEY", vec![]),
        ("neoagent", "NEOAGENT_API_KEY", vec![]),
        ("robofy", "ROBOFY_API_KEY", vec!["--project", RF_PROJECT]),
    ] {
        let mut cmd = leads();
        // Another vendor's key does not count.
        cmd.env(
            "CHATZURI_API_KEY",
            if vendor == "chatzuri" {
                ""
            } else {
                CHATZURI_KEY
            },
        );
        cmd.args([
            "pull",
            "--vendor",
            vendor,
            "--agent",
            "x",
            "--base-url",
            &server.uri(),
        ]);
        cmd.args(&extra);
        let output = run(cmd).await;
        assert_usage_error(&output, &[variable]);
    }
    assert_nothing_sent(&server).await;
}

#[tokio::test]
async fn exit_2_for_a_filter_the_vendor_cannot_honour() {
    let server = MockServer::start().await;
    let output = run(chatzuri(&server.uri(), &["--session", "123"])).await;
    assert_usage_error(&output, &["--session", "chatzuri"]);
    let output = run(neoagent(&server.uri(), &["--session", "not-a-number"])).await;
    assert_usage_error(&output, &["--session", "not-a-number"]);
    let output = run(chatzuri(&server.uri(), &["--project", "42"])).await;
    assert_usage_error(&output, &["--project"]);
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY).args([
        "pull",
        "--vendor",
        "robofy",
        "--agent",
        RF_BOT,
        "--base-url",
        &server.uri(),
    ]);
    let output = run(cmd).await;
    assert_usage_error(&output, &["project"]);
    assert_nothing_sent(&server).await;
}

#[tokio::test]
async fn exit_2_for_a_plain_http_base_url_that_is_not_loopback() {
    // Any request to the remote host would go through this proxy, so an
    // empty log proves nothing was sent (and nothing reaches the internet).
    let proxy = MockServer::start().await;
    for base in [
        "http://example.com/api/v1",
        "http://10.0.0.1",
        "http://localhost.example.com",
    ] {
        let mut cmd = leads();
        cmd.env("CHATZURI_API_KEY", CHATZURI_KEY)
            .env("HTTP_PROXY", proxy.uri())
            .env("http_proxy", proxy.uri())
            .env("ALL_PROXY", proxy.uri())
            .args([
                "pull",
                "--vendor",
                "chatzuri",
                "--agent",
                CZ_AGENT,
                "--base-url",
                base,
            ]);
        let output = run(cmd).await;
        assert_usage_error(&output, &["http://", base]);
    }
    // The variable form is checked too.
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY)
        .env("ROBOFY_BASE_URL", "http://agents.robofy.example")
        .env("HTTP_PROXY", proxy.uri())
        .env("http_proxy", proxy.uri())
        .args(["pull", "--vendor", "robofy", "--agent", "42/bot-1"]);
    let output = run(cmd).await;
    assert_usage_error(&output, &["http://agents.robofy.example"]);
    assert_nothing_sent(&proxy).await;
}

#[tokio::test]
async fn exit_3_when_the_key_is_refused() {
    // Chatzuri 401 with its plain-text body.
    let server = serve_once(
        "GET",
        CZ_PATH,
        ResponseTemplate::new(401).set_body_bytes(fixture("chatzuri/error-401.txt")),
    )
    .await;
    let output = run(chatzuri(&server.uri(), &["--concurrency", "1"])).await;
    assert_error(
        &output,
        3,
        &["Chatzuri", CZ_AGENT, "401", "hint: ", "CHATZURI_API_KEY"],
    );
    assert_eq!(stdout(&output), "");
    server.verify().await;

    // Robofy 403 with its error envelope.
    let server = serve_once(
        "GET",
        RF_PATH,
        ResponseTemplate::new(403).set_body_bytes(fixture("robofy/error-403.json")),
    )
    .await;
    let output = run(robofy(&server.uri(), &[])).await;
    assert_error(&output, 3, &["Robofy", RF_BOT, "403", "ROBOFY_API_KEY"]);
    server.verify().await;

    // NeoAgent: HTTP 401.
    let server = serve_once(
        "POST",
        NA_PATH,
        ResponseTemplate::new(401).set_body_bytes(fixture("neoagent/error-401.json")),
    )
    .await;
    let output = run(neoagent(&server.uri(), &[])).await;
    assert_error(&output, 3, &["NeoAgent", NA_SERIAL, "NEOAGENT_API_KEY"]);
    server.verify().await;
}

#[tokio::test]
async fn exit_3_for_neoagent_code_401_or_403_inside_a_200_body() {
    for (fixture_name, needle) in [
        ("neoagent/error-401.json", "Invalid secret key"),
        ("neoagent/error-403.json", "no permission"),
    ] {
        let server = serve_once(
            "POST",
            NA_PATH,
            ResponseTemplate::new(200).set_body_bytes(fixture(fixture_name)),
        )
        .await;
        let output = run(neoagent(&server.uri(), &[])).await;
        assert_error(
            &output,
            3,
            &["NeoAgent", NA_SERIAL, needle, "NEOAGENT_API_KEY"],
        );
        assert_eq!(stdout(&output), "");
        server.verify().await;
    }
}

#[tokio::test]
async fn exit_4_when_the_agent_is_not_found() {
    let server = serve_once(
        "GET",
        CZ_PATH,
        ResponseTemplate::new(404).set_body_string("agentId invalid"),
    )
    .await;
    let output = run(chatzuri(&server.uri(), &["--concurrency", "1"])).await;
    assert_error(
        &output,
        4,
        &["Chatzuri", CZ_AGENT, "404", "hint: ", "--agent"],
    );
    server.verify().await;

    let server = serve_once(
        "GET",
        RF_PATH,
        ResponseTemplate::new(404).set_body_bytes(fixture("robofy/error-404.json")),
    )
    .await;
    let output = run(robofy(&server.uri(), &[])).await;
    assert_error(&output, 4, &["Robofy", RF_BOT, "404", "--project"]);
    server.verify().await;

    let server = serve_once("POST", NA_PATH, ResponseTemplate::new(404)).await;
    let output = run(neoagent(&server.uri(), &[])).await;
    assert_error(&output, 4, &["NeoAgent", NA_SERIAL, "404"]);
    server.verify().await;
}

#[tokio::test]
async fn exit_5_for_a_server_error_after_retries() {
    let server = serve_times(
        "GET",
        CZ_PATH,
        ResponseTemplate::new(500).set_body_string("upstream exploded"),
        3,
    )
    .await;
    let output = run(chatzuri(
        &server.uri(),
        &["--retries", "2", "--concurrency", "1"],
    ))
    .await;
    assert_error(
        &output,
        5,
        &[
            "Chatzuri",
            CZ_AGENT,
            "get-leads",
            "page 1",
            "HTTP 500",
            "3 attempts",
            "hint: ",
        ],
    );
    server.verify().await;
}

#[tokio::test]
async fn exit_5_for_a_malformed_body_naming_vendor_endpoint_and_page() {
    let cases: [(&str, ResponseTemplate, &[&str]); 3] = [
        (
            "html",
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Maintenance</body></html>", "text/html"),
            &["<html>"],
        ),
        (
            "wrong shape",
            ok_json(json!({ "leads": [], "total": 0 })),
            &["\"leads\""],
        ),
        (
            "truncated",
            ResponseTemplate::new(200).set_body_string("{\"data\": [{\"id\": 1"),
            &[],
        ),
    ];
    for (what, response, excerpt) in cases {
        let server = MockServer::start().await;
        cz_mock(1, 2)
            .respond_with(ok_json(cz_page(1..=2)))
            .mount(&server)
            .await;
        cz_mock(2, 2)
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;
        let output = run(chatzuri_serial(&server.uri(), "2")).await;
        let mut needles = vec!["Chatzuri", "get-leads", "page 2", CZ_AGENT];
        needles.extend_from_slice(excerpt);
        assert_error(&output, 5, &needles);
        server.verify().await;
        let _ = what;
    }
}

#[tokio::test]
async fn exit_5_for_a_malformed_body_from_neoagent_and_robofy() {
    let server = serve_once(
        "POST",
        NA_PATH,
        ResponseTemplate::new(200).set_body_raw("<!DOCTYPE html><p>login</p>", "text/html"),
    )
    .await;
    let output = run(neoagent(&server.uri(), &[])).await;
    assert_error(&output, 5, &["NeoAgent", "LeadList", "<!DOCTYPE html>"]);

    let server = serve_once(
        "GET",
        RF_PATH,
        ok_json(json!({ "message": "ok", "data": { "items": [] } })),
    )
    .await;
    let output = run(robofy(&server.uri(), &[])).await;
    assert_error(&output, 5, &["Robofy", "leads", "page 1"]);
    server.verify().await;
}

#[tokio::test]
async fn exit_5_for_neoagent_success_false() {
    let server = serve_once(
        "POST",
        NA_PATH,
        ResponseTemplate::new(200).set_body_bytes(fixture("neoagent/error-500.json")),
    )
    .await;
    let output = run(neoagent(&server.uri(), &[])).await;
    assert_error(
        &output,
        5,
        &["NeoAgent", NA_SERIAL, "Internal server error"],
    );
    assert_eq!(stdout(&output), "");
    server.verify().await;
}

#[tokio::test]
async fn exit_5_for_a_robofy_token_loop_a_b_a_without_writing_twice() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(rf_page(&["r1"], Some(json!("A")), None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "A"))
        .respond_with(ok_json(rf_page(&["r2"], Some(json!("B")), None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "B"))
        .respond_with(ok_json(rf_page(&["r3"], Some(json!("A")), None)))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(robofy(&server.uri(), &["--format", "ndjson"])).await;
    assert_error(&output, 5, &["Robofy", "loop", RF_BOT]);
    let written = ids(&output);
    let mut unique = written.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        written.len(),
        "nothing written twice: {written:?}"
    );
    server.verify().await;
    assert_eq!(
        requests(&server).await.len(),
        3,
        "A is never requested again"
    );
}

#[tokio::test]
async fn exit_5_when_max_pages_is_exceeded() {
    let server = MockServer::start().await;
    for page in 1..=5u64 {
        cz_mock(page, 2)
            .respond_with(ok_json(cz_page([page * 2 - 1, page * 2])))
            .mount(&server)
            .await;
    }
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--page-size",
            "2",
            "--max-pages",
            "2",
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_error(&output, 5, &["2 pages", "--max-pages", CZ_AGENT]);

    let server = MockServer::start().await;
    for n in 0..5 {
        let condition = if n == 0 {
            Mock::given(method("GET")).and(query_param_is_missing("nextPageToken"))
        } else {
            Mock::given(method("GET")).and(query_param("nextPageToken", format!("t{n}")))
        };
        condition
            .and(path(RF_PATH))
            .respond_with(ok_json(rf_page(
                &[&format!("r{n}")],
                Some(json!(format!("t{}", n + 1))),
                None,
            )))
            .mount(&server)
            .await;
    }
    let output = run(robofy(
        &server.uri(),
        &["--max-pages", "3", "--format", "ndjson"],
    ))
    .await;
    assert_error(&output, 5, &["3 pages", "--max-pages"]);
    assert!(
        requests(&server).await.len() <= 3,
        "no fourth page is fetched"
    );
}

#[tokio::test]
async fn exit_5_for_a_body_declared_over_64_mib() {
    let server = raw_server(usize::MAX, Break::HugeContentLength, json!({})).await;
    let started = Instant::now();
    let output = run(chatzuri(
        &server.base,
        &["--retries", "2", "--concurrency", "1"],
    ))
    .await;
    assert_error(&output, 5, &["Chatzuri", "64 MiB"]);
    assert_eq!(server.connections(), 1, "not retried");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused on the declared length, without reading the body"
    );
}

#[tokio::test]
async fn exit_6_when_the_connection_is_refused() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let output = run(chatzuri(&base, &["--retries", "1"])).await;
    assert_error(
        &output,
        6,
        &["Chatzuri", "127.0.0.1", "2 attempts", "hint: "],
    );
}

#[tokio::test]
async fn exit_6_when_every_attempt_times_out() {
    let server = serve_times(
        "GET",
        CZ_PATH,
        ok_json(cz_page([])).set_delay(Duration::from_secs(3)),
        2,
    )
    .await;
    let started = Instant::now();
    let output = run(chatzuri(
        &server.uri(),
        &["--timeout", "0.3", "--retries", "1", "--concurrency", "1"],
    ))
    .await;
    assert_error(&output, 6, &["Chatzuri", "timed out", "2 attempts"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "--timeout is honoured"
    );
    server.verify().await;
}

#[tokio::test]
async fn exit_7_when_the_output_directory_does_not_exist() {
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing").join("leads.json");
    let output = run(chatzuri(&server.uri(), &["-o", target.to_str().unwrap()])).await;
    assert_error(&output, 7, &["missing"]);
    assert_eq!(stdout(&output), "");
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

// ===========================================================================
// Retries
// ===========================================================================

#[tokio::test]
async fn rate_limited_page_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    cz_mock(1, 2)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    cz_page_once(&server, 2, 2, cz_page(3..=3)).await;
    let started = Instant::now();
    let output = run(chatzuri_serial(&server.uri(), "2")).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert_eq!(ids(&output), numbered(1..=3));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 is obeyed (the test back-off alone is a millisecond)"
    );
    server.verify().await;
}

#[tokio::test]
async fn rate_limit_with_retry_after_zero_and_503s_are_retried_to_the_full_set() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(ok_json(rf_page(&["r1", "r2"], Some(json!("t2")), None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "t2"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RF_PATH))
        .and(query_param("nextPageToken", "t2"))
        .respond_with(ok_json(rf_page(&["r3"], None, None)))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(robofy(&server.uri(), &["--format", "ndjson"])).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert_eq!(ids(&output), strings(["r1", "r2", "r3"]));
    server.verify().await;
}

#[tokio::test]
async fn neoagent_window_that_times_out_once_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .respond_with(
            ok_json(na_envelope(vec![na_lead(
                "Ada",
                "2025-01-02T09:00:00-08:00",
                1,
            )]))
            .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(NA_PATH))
        .respond_with(ok_json(na_envelope(vec![
            na_lead("Ada", "2025-01-02T09:00:00-08:00", 1),
            na_lead("Ben", "2025-01-03T09:00:00-08:00", 2),
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(neoagent(
        &server.uri(),
        &["--timeout", "0.3", "--format", "ndjson"],
    ))
    .await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let names: Vec<String> = ndjson(&output)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, strings(["Ada", "Ben"]));
    server.verify().await;
}

#[tokio::test]
async fn connection_reset_mid_body_is_retried() {
    let server = raw_server(1, Break::MidBody, cz_page(1..=3)).await;
    let output = run(chatzuri_serial(&server.base, "10")).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert_eq!(ids(&output), numbered(1..=3));
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn connection_closed_without_an_answer_is_retried() {
    let server = raw_server(2, Break::Silent, cz_page(1..=3)).await;
    let output = run(chatzuri_serial(&server.base, "10")).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert_eq!(ids(&output), numbered(1..=3));
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn client_errors_are_sent_exactly_once() {
    for (status, code) in [(400, 5), (401, 3), (403, 3), (404, 4)] {
        let server = serve_once("GET", CZ_PATH, ResponseTemplate::new(status)).await;
        let output = run(chatzuri(
            &server.uri(),
            &["--retries", "4", "--concurrency", "1"],
        ))
        .await;
        assert_error(&output, code, &["Chatzuri", &status.to_string()]);
        server.verify().await;
    }
}

#[tokio::test]
async fn retries_bound_the_attempts() {
    for (retries, code) in [
        (0u64, 503),
        (3, 503),
        (1, 429),
        (2, 502),
        (1, 504),
        (1, 408),
    ] {
        let server = serve_times("GET", CZ_PATH, ResponseTemplate::new(code), retries + 1).await;
        let output = run(chatzuri(
            &server.uri(),
            &["--retries", &retries.to_string(), "--concurrency", "1"],
        ))
        .await;
        assert_error(&output, 5, &["Chatzuri", &code.to_string()]);
        server.verify().await;
    }
}

#[tokio::test]
async fn default_retries_make_five_attempts() {
    let server = serve_times("POST", NA_PATH, ResponseTemplate::new(500), 5).await;
    let output = run(neoagent(&server.uri(), &[])).await;
    assert_error(&output, 5, &["NeoAgent", "5 attempts"]);
    server.verify().await;
}

#[tokio::test]
async fn retry_after_above_two_minutes_fails_at_once_saying_when() {
    for retry_after in [
        "300".to_owned(),
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600)),
    ] {
        let server = serve_once(
            "GET",
            CZ_PATH,
            ResponseTemplate::new(429).insert_header("Retry-After", retry_after.as_str()),
        )
        .await;
        let started = Instant::now();
        let output = run(chatzuri(&server.uri(), &["--concurrency", "1"])).await;
        assert_error(&output, 5, &["Chatzuri", "429", "retry after", "GMT"]);
        assert!(started.elapsed() < Duration::from_secs(5), "fails at once");
        server.verify().await;
    }
}

// ===========================================================================
// The -o file
// ===========================================================================

#[tokio::test]
async fn output_file_is_left_byte_identical_when_a_later_page_fails() {
    let server = MockServer::start().await;
    cz_mock(1, 2)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("leads.json");
    let before: &[u8] = b"[\n{\"id\":\"previous run\"}\n]\n\xff not even utf-8";
    std::fs::write(&target, before).unwrap();
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--page-size",
            "2",
            "--concurrency",
            "1",
            "--retries",
            "1",
            "-o",
            target.to_str().unwrap(),
        ],
    ))
    .await;
    assert_error(&output, 5, &["page 2"]);
    assert_eq!(stdout(&output), "");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "the -o file is untouched"
    );
    assert_eq!(
        dir_entries(dir.path()),
        ["leads.json"],
        "no temporary file left"
    );
}

#[tokio::test]
async fn output_file_is_replaced_on_success() {
    let server = MockServer::start().await;
    cz_mock(1, 2)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .respond_with(ok_json(cz_page(3..=3)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("leads.json");
    std::fs::write(
        &target,
        "an older, much longer export that must disappear entirely\n".repeat(100),
    )
    .unwrap();
    let output = run(chatzuri(
        &server.uri(),
        &["--page-size", "2", "-o", target.to_str().unwrap()],
    ))
    .await;
    assert_success(&output);
    assert_eq!(stdout(&output), "", "data goes to the file only");
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    let got: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, ["1", "2", "3"]);
    assert_eq!(dir_entries(dir.path()), ["leads.json"]);
}

#[tokio::test]
async fn output_format_follows_the_file_extension() {
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "leads.csv",
        "leads.ndjson",
        "leads.jsonl",
        "leads.json",
        "LEADS.CSV.ndjson",
    ] {
        let target = dir.path().join(name);
        let output = run(chatzuri(&server.uri(), &["-o", target.to_str().unwrap()])).await;
        assert_success(&output);
        assert_eq!(stdout(&output), "");
        let text = std::fs::read_to_string(&target).unwrap();
        if name.ends_with(".csv") {
            assert!(
                text.starts_with("id,vendor,agent_id,kind,created_at,"),
                "{name}: {text}"
            );
            assert_eq!(text.lines().count(), 3, "{name}");
        } else if name.ends_with(".json") {
            let records: Vec<Value> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(records.len(), 2, "{name}");
        } else {
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
                .collect();
            assert_eq!(lines.len(), 2, "{name}");
            assert!(text.ends_with("}\n"), "{name}");
        }
    }
    // --format wins over the extension.
    let target = dir.path().join("explicit.csv");
    let output = run(chatzuri(
        &server.uri(),
        &["-o", target.to_str().unwrap(), "--format", "ndjson"],
    ))
    .await;
    assert_success(&output);
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.starts_with("{\"id\":\"1\""), "{text}");
    // "-" is stdout.
    let output = run(chatzuri(&server.uri(), &["-o", "-", "--format", "ndjson"])).await;
    assert_success(&output);
    assert_eq!(ids(&output), strings(["1", "2"]));
}

// ===========================================================================
// CSV and the formula guard
// ===========================================================================

fn lead_named(id: u64, name: &str, email: &str, phone: &str) -> Value {
    json!({
        "id": id,
        "created_at": "2025-01-15T10:30:00Z",
        "chatbot_id": CZ_AGENT,
        "name": name,
        "email": email,
        "phone": phone
    })
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("a well-formed row")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test]
async fn csv_round_trips_commas_quotes_newlines_and_non_ascii() {
    let awkward = [
        "Doe, \"JD\" John",
        "José Núñez",
        "王小明",
        "Zoë 🚀 Müller",
        "first line\nsecond line",
        "windows\r\nline end",
        "'already quoted'",
    ];
    let notes = "a,b \"c\"\nd\r\ne 😀";
    let mut data: Vec<Value> = awkward
        .iter()
        .enumerate()
        .map(|(i, name)| lead_named(i as u64 + 1, name, "x,y@example.com", "+1 415 555 0100"))
        .collect();
    data[0]["notes"] = json!(notes);
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(json!({ "data": data })))
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &["--format", "csv"])).await;
    assert_success(&output);
    let text = stdout(&output);
    assert!(
        !text.contains("\r\n") || text.contains("windows\r\nline"),
        "rows end in \\n"
    );
    let (header, rows) = csv_rows(&text);
    assert_eq!(header, Lead::column_names());
    assert_eq!(rows.len(), awkward.len());
    for (i, (row, name)) in rows.iter().zip(awkward).enumerate() {
        assert_eq!(row.len(), Lead::column_names().len());
        assert_eq!(row[0], (i + 1).to_string());
        assert_eq!(row[1], "chatzuri");
        assert_eq!(row[2], CZ_AGENT);
        assert_eq!(row[3], "lead");
        assert_eq!(row[4], "2025-01-15T10:30:00.000000Z");
        assert_eq!(row[5], name, "name round-trips exactly");
        assert_eq!(row[6], "x,y@example.com");
        assert_eq!(row[7], "+1 415 555 0100", "a phone number is not guarded");
        assert_eq!(row[8], "", "null is an empty cell");
    }
    let fields: Value = serde_json::from_str(&rows[0][13]).expect("fields is JSON");
    assert_eq!(fields, json!({ "chatbot_id": CZ_AGENT, "notes": notes }));
    let fields: Value = serde_json::from_str(&rows[1][13]).expect("fields is JSON");
    assert_eq!(fields, json!({ "chatbot_id": CZ_AGENT }));
    assert!(
        !rows[0][13].contains(": "),
        "fields is compact JSON: {}",
        rows[0][13]
    );
}

#[tokio::test]
async fn csv_with_zero_records_is_the_header_alone() {
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(cz_page([])))
        .mount(&server)
        .await;
    let output = run(chatzuri(&server.uri(), &["--format", "csv"])).await;
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        format!("{}\n", Lead::column_names().join(","))
    );

    let output = run(chatzuri(&server.uri(), &["--format", "csv", "--bom"])).await;
    assert_success(&output);
    assert_eq!(
        output.stdout,
        [
            b"\xEF\xBB\xBF".as_slice(),
            Lead::column_names().join(",").as_bytes(),
            b"\n"
        ]
        .concat()
    );

    let output = run(chatzuri(&server.uri(), &["--format", "ndjson"])).await;
    assert_success(&output);
    assert_eq!(stdout(&output), "");
}

#[tokio::test]
async fn csv_bom_starts_the_file_only_when_asked() {
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(
            json!({ "data": [lead_named(1, "José", "j@example.com", "")] }),
        ))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("leads.csv");
    let output = run(chatzuri(
        &server.uri(),
        &["--bom", "-o", target.to_str().unwrap()],
    ))
    .await;
    assert_success(&output);
    let bytes = std::fs::read(&target).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFid,vendor,"), "{bytes:?}");
    assert_eq!(
        bytes.windows(3).filter(|w| *w == b"\xEF\xBB\xBF").count(),
        1
    );
    let (_, rows) = csv_rows(std::str::from_utf8(&bytes[3..]).unwrap());
    assert_eq!(rows[0][5], "José");

    let output = run(chatzuri(&server.uri(), &["--format", "csv"])).await;
    assert!(
        output.stdout.starts_with(b"id,vendor,"),
        "no BOM by default"
    );
    // JSON never gets a BOM: asking for one there is exit 2 (issue 13,
    // flags that would do nothing), and nothing is written.
    let output = run(chatzuri(&server.uri(), &["--bom", "--format", "ndjson"])).await;
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--bom"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn csv_formula_guard_prefixes_dangerous_cells_only() {
    // (name, email, phone) as sent, and as the guarded CSV must show them.
    let cases = [
        (
            ("=SUM(A1:A9)", "=evil@example.com", "+1 415 555 0100"),
            ("'=SUM(A1:A9)", "'=evil@example.com", "+1 415 555 0100"),
        ),
        (
            ("@SUM(1+1)", "a@example.com", "+44 (20) 7946-0958"),
            ("'@SUM(1+1)", "a@example.com", "+44 (20) 7946-0958"),
        ),
        (
            (
                "+HYPERLINK(\"http://x\",\"y\")",
                "b@example.com",
                "+cmd|' /C calc'!A0",
            ),
            (
                "'+HYPERLINK(\"http://x\",\"y\")",
                "b@example.com",
                "'+cmd|' /C calc'!A0",
            ),
        ),
        (
            ("-2+3+cmd|' /C calc'!A0", "c@example.com", "-12.5"),
            ("'-2+3+cmd|' /C calc'!A0", "c@example.com", "-12.5"),
        ),
        (
            ("+3", "d@example.com", "+1.415.555.0100"),
            ("+3", "d@example.com", "+1.415.555.0100"),
        ),
        (
            ("=\tTAB", "e@example.com", "1-2"),
            ("'=\tTAB", "e@example.com", "1-2"),
        ),
        (
            ("Plain - name", "f@example.com", "-555-0100"),
            ("Plain - name", "f@example.com", "'-555-0100"),
        ),
    ];
    let data: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, ((name, email, phone), _))| lead_named(i as u64 + 1, name, email, phone))
        .collect();
    let server = MockServer::start().await;
    cz_mock(1, 100)
        .respond_with(ok_json(json!({ "data": data })))
        .mount(&server)
        .await;

    let output = run(chatzuri(&server.uri(), &["--format", "csv"])).await;
    assert_success(&output);
    let (_, rows) = csv_rows(&stdout(&output));
    for (row, (_, (name, email, phone))) in rows.iter().zip(&cases) {
        assert_eq!(
            (row[5].as_str(), row[6].as_str(), row[7].as_str()),
            (*name, *email, *phone)
        );
        assert_eq!(
            row[4], "2025-01-15T10:30:00.000000Z",
            "timestamps are not guarded"
        );
        assert!(row[13].starts_with('{'));
    }

    let output = run(chatzuri(
        &server.uri(),
        &["--format", "csv", "--no-formula-guard"],
    ))
    .await;
    assert_success(&output);
    let (_, rows) = csv_rows(&stdout(&output));
    for (row, ((name, email, phone), _)) in rows.iter().zip(&cases) {
        assert_eq!(
            (row[5].as_str(), row[6].as_str(), row[7].as_str()),
            (*name, *email, *phone)
        );
    }

    for format in ["ndjson", "json"] {
        let output = run(chatzuri(&server.uri(), &["--format", format])).await;
        assert_success(&output);
        let records: Vec<Value> = if format == "json" {
            serde_json::from_str(&stdout(&output)).unwrap()
        } else {
            ndjson(&output)
        };
        for (record, ((name, email, phone), _)) in records.iter().zip(&cases) {
            assert_eq!(record["name"], *name, "JSON is never altered");
            assert_eq!(record["email"], *email);
            assert_eq!(record["phone"], *phone);
        }
    }
}

// ===========================================================================
// The key is never printed (docs/SPEC.md section 6)
// ===========================================================================

/// Runs `cmd` and asserts the key is nowhere in what it wrote.
async fn run_without_leak(cmd: Command, expected_exit: i32) -> Output {
    let output = run(cmd).await;
    assert_exit(&output, expected_exit);
    assert_no_key(&output);
    output
}

async fn assert_key_sent(server: &MockServer, expected: &str) {
    let received = requests(server).await;
    assert!(!received.is_empty(), "the vendor was asked");
    for request in received {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            expected
        );
    }
}

/// The four scenarios of every vendor: success, 401, 500 after retries,
/// timeout; all under -vv. `mock` serves the vendor's leads endpoint.
async fn key_never_printed(
    key: &str,
    vendor_cmd: fn(&str, &[&str]) -> Command,
    mock: fn() -> wiremock::MockBuilder,
    success: Value,
    auth: &str,
) {
    let scenarios: [(ResponseTemplate, i32, &[&str]); 4] = [
        (ok_json(success), 0, &[]),
        (
            ResponseTemplate::new(401).set_body_string(format!("invalid key {key}")),
            3,
            &[],
        ),
        (
            ResponseTemplate::new(500).set_body_string("boom"),
            5,
            &["--retries", "1"],
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
            6,
            &["--timeout", "0.3", "--retries", "0"],
        ),
    ];
    for (response, exit, extra) in scenarios {
        let server = MockServer::start().await;
        mock().respond_with(response).mount(&server).await;
        let mut args = vec!["-vv"];
        args.extend_from_slice(extra);
        let output = run_without_leak(vendor_cmd(&server.uri(), &args), exit).await;
        if exit == 0 {
            let records: Vec<Value> = serde_json::from_str(&stdout(&output))
                .expect("stdout is data only, also under -vv");
            assert!(!records.is_empty());
        }
        // Log lines read `leads: ...` like every other line (issue 13).
        assert!(
            stderr(&output)
                .lines()
                .any(|l| l.contains("leads: GET ") || l.contains("leads: POST ")),
            "-vv logs the requests:\n{}",
            stderr(&output)
        );
        assert_key_sent(&server, auth).await;
    }
}

#[tokio::test]
async fn chatzuri_key_is_never_printed_under_vv() {
    key_never_printed(
        CHATZURI_KEY,
        chatzuri,
        || Mock::given(method("GET")).and(path(CZ_PATH)),
        cz_page(1..=2),
        &format!("Bearer {CHATZURI_KEY}"),
    )
    .await;
}

#[tokio::test]
async fn neoagent_key_is_never_printed_under_vv() {
    key_never_printed(
        NEOAGENT_KEY,
        neoagent,
        || Mock::given(method("POST")).and(path(NA_PATH)),
        na_envelope(vec![na_lead("Ada", "2025-01-02T09:00:00-08:00", 1)]),
        NEOAGENT_KEY,
    )
    .await;
}

#[tokio::test]
async fn robofy_key_is_never_printed_under_vv() {
    key_never_printed(
        ROBOFY_KEY,
        robofy,
        || Mock::given(method("GET")).and(path(RF_PATH)),
        rf_page(&["r1"], None, None),
        &format!("Bearer {ROBOFY_KEY}"),
    )
    .await;
}

#[tokio::test]
async fn key_from_a_file_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("robofy.key");
    std::fs::write(
        &key_file,
        format!("  {ROBOFY_KEY}  \nsecond line is ignored\n"),
    )
    .unwrap();
    for (response, exit) in [
        (ok_json(rf_page(&["r1"], None, None)), 0),
        (
            ResponseTemplate::new(401).set_body_bytes(fixture("robofy/error-401.json")),
            3,
        ),
        (ResponseTemplate::new(503), 5),
    ] {
        let server = serve("GET", RF_PATH, response).await;
        let mut cmd = leads();
        cmd.args([
            "-vv",
            "pull",
            "--vendor",
            "robofy",
            "--agent",
            "42/bot-1",
            "--base-url",
            &server.uri(),
            "--retries",
            "1",
            "--api-key-file",
            key_file.to_str().unwrap(),
        ]);
        run_without_leak(cmd, exit).await;
        assert_key_sent(&server, &format!("Bearer {ROBOFY_KEY}")).await;
    }
}

#[tokio::test]
async fn key_echoed_by_the_vendor_in_a_malformed_body_is_not_printed() {
    let server = serve(
        "GET",
        CZ_PATH,
        ResponseTemplate::new(200).set_body_raw(
            format!("<html>debug: Authorization: Bearer {CHATZURI_KEY}</html>"),
            "text/html",
        ),
    )
    .await;
    let output = run_without_leak(chatzuri(&server.uri(), &["-vv"]), 5).await;
    assert!(stderr(&output).contains("leads: error: "));
}

/// The vendor's body is cut to an excerpt for the message; a key that
/// straddles the cut must not leave its first part behind (it did: the body
/// was cut first and the whole key searched for afterwards).
#[tokio::test]
async fn key_straddling_the_excerpt_cut_is_not_printed_in_part() {
    for (status, code) in [(401u16, 3), (200, 5)] {
        for offset in [150usize, 185, 194, 199] {
            let server = MockServer::start().await;
            let body = format!("{}{CHATZURI_KEY} trailing text", "x".repeat(offset));
            Mock::given(method("GET"))
                .and(path(CZ_PATH))
                .respond_with(ResponseTemplate::new(status).set_body_raw(body, "text/plain"))
                .mount(&server)
                .await;
            let output =
                run_without_leak(chatzuri(&server.uri(), &["--concurrency", "1"]), code).await;
            let err = stderr(&output);
            assert!(
                !err.contains(&CHATZURI_KEY[..12]),
                "key prefix printed at offset {offset}: {err}"
            );
        }
    }
}

// ===========================================================================
// Broken pipe and Ctrl-C
// ===========================================================================

#[tokio::test]
async fn closed_stdout_ends_the_run_quietly_with_exit_0() {
    let server = MockServer::start().await;
    let padding = "x".repeat(1000);
    for page in 1..=10u64 {
        let data: Vec<Value> = ((page - 1) * 100 + 1..=page * 100)
            .map(|id| {
                let mut lead = cz_lead(id);
                lead["notes"] = json!(padding);
                lead
            })
            .collect();
        cz_mock(page, 100)
            .respond_with(ok_json(json!({ "data": data })))
            .mount(&server)
            .await;
    }
    cz_mock(11, 100)
        .respond_with(ok_json(cz_page([])))
        .mount(&server)
        .await;
    let base = format!("{}/api/v1", server.uri());
    let mut child = spawnable(
        "CHATZURI_API_KEY",
        CHATZURI_KEY,
        &[
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            CZ_AGENT,
            "--base-url",
            &base,
            "--format",
            "ndjson",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn leads");
    let stdout = child.stdout.take().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("one line");
        drop(reader); // like `head -1`: read a line, close the pipe
        let output = child.wait_with_output().expect("wait");
        (line, output)
    })
    .await
    .unwrap();
    let (line, output) = output;
    assert!(line.starts_with("{\"id\":\"1\""), "{line}");
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), "", "a closed pipe is not an error");
    assert_no_key(&output);
}

#[tokio::test]
async fn sigint_exits_130_leaving_the_output_file_untouched() {
    let server = MockServer::start().await;
    cz_mock(1, 2)
        .respond_with(ok_json(cz_page(1..=2)))
        .mount(&server)
        .await;
    cz_mock(2, 2)
        .respond_with(ok_json(cz_page(3..=4)).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target: PathBuf = dir.path().join("leads.csv");
    std::fs::write(&target, "id\nprevious\n").unwrap();
    let base = format!("{}/api/v1", server.uri());
    let child = spawnable(
        "CHATZURI_API_KEY",
        CHATZURI_KEY,
        &[
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            CZ_AGENT,
            "--base-url",
            &base,
            "--page-size",
            "2",
            "--concurrency",
            "1",
            "-o",
            target.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn leads");
    // Wait until the slow page is being fetched: records of page 1 are
    // already in the temporary file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while requests(&server).await.len() < 2 {
        assert!(Instant::now() < deadline, "the run never reached page 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let temp_files: Vec<String> = dir_entries(dir.path());
    assert_eq!(
        temp_files.len(),
        2,
        "a temporary file is open: {temp_files:?}"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .unwrap();
    assert_error(&output, 130, &["interrupted"]);
    assert_eq!(stdout(&output), "");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "id\nprevious\n");
    assert_eq!(
        dir_entries(dir.path()),
        ["leads.csv"],
        "no temporary file left"
    );
}

// ---------------------------------------------------------------------------
// Pacing
// ---------------------------------------------------------------------------

/// Records when each request arrived, and answers Chatzuri page `page` with
/// one lead (pages 1..=5; page 6 is empty and ends the listing).
struct Arrivals(Arc<std::sync::Mutex<Vec<Instant>>>);

impl wiremock::Respond for Arrivals {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        let page: u64 = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let ids: Vec<u64> = if (1..=5).contains(&page) {
            vec![page]
        } else {
            vec![]
        };
        ok_json(cz_page(ids))
    }
}

#[tokio::test]
async fn rate_spaces_requests_up_front_even_with_pages_in_flight() {
    let server = MockServer::start().await;
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path(CZ_PATH))
        .respond_with(Arrivals(arrivals.clone()))
        .mount(&server)
        .await;
    let output = run(chatzuri(
        &server.uri(),
        &[
            "--page-size",
            "1",
            "--concurrency",
            "4",
            "--rate",
            "10",
            "--format",
            "ndjson",
        ],
    ))
    .await;
    assert_success(&output);
    assert_eq!(ids(&output), numbered(1..=5));
    let arrivals = arrivals.lock().unwrap().clone();
    assert!(arrivals.len() >= 6, "{} requests", arrivals.len());
    // At 10 requests a second the k-th request is sent no earlier than
    // k x 100 ms after the first, however many are allowed in flight.
    for (k, at) in arrivals.iter().enumerate() {
        let since_first = at.duration_since(arrivals[0]);
        let floor = Duration::from_millis(100 * k as u64).saturating_sub(Duration::from_millis(20));
        assert!(
            since_first >= floor,
            "request {k} came {since_first:?} after the first"
        );
    }
}
