//! Bodies read as they arrive (issue 14): a NeoAgent window is parsed while
//! it comes in, through a pipe that holds at most its share of the
//! read-ahead budget. Against the scripted loopback server of
//! `common::fake`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{self, Answer, na_envelope};
use crate::common::{NEOAGENT_KEY, assert_exit, assert_no_key, leads, ndjson, run, stderr};

const SERIAL: &str = "3254a9d0424c4806b9ea3d0763ccf000";

/// `count` NeoAgent leads of January 2025 whose names start with `tag`,
/// each with a message of `padding` bytes.
fn window_leads(tag: &str, count: usize, padding: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({
                "Type": if i % 5 == 0 { "Appointment" } else { "Lead" },
                "Name": format!("{tag} {i}"),
                "Email": format!("{tag}{i}@example.com"),
                "PhoneNumber": "",
                "CreateTime": format!("2025-01-{:02}T{:02}:{:02}:{:02}.{:06}Z", 2 + i % 8, i % 24, i % 60, (i / 60) % 60, i),
                "Content": format!("{i} {}", "x".repeat(padding)),
                "SessionID": 1000 + i,
                "URI": "https://shop.example/pricing",
                "Count": 1
            })
        })
        .collect()
}

fn body(data: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&na_envelope(data)).unwrap()
}

fn neoagent(base: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("NEOAGENT_API_KEY", NEOAGENT_KEY);
    cmd.env("LEADS_NOW", "2025-02-01T00:00:00Z");
    cmd.args(["pull", "--vendor", "neoagent", "--agent", SERIAL]);
    cmd.args(["--base-url", base, "--format", "ndjson"]);
    cmd.args(args);
    cmd
}

fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_window_sent_in_small_pieces_gives_the_records_of_the_whole_body() {
    let window = body(window_leads("piece", 400, 50));
    let whole = {
        let window = window.clone();
        fake::serve(move |_| {
            let window = window.clone();
            async move {
                Answer::Trickle {
                    body: window,
                    piece: usize::MAX,
                    pause: Duration::ZERO,
                }
            }
        })
        .await
    };
    let pieces = fake::serve(move |_| {
        let window = window.clone();
        async move {
            Answer::Trickle {
                body: window,
                piece: 331,
                pause: Duration::from_micros(200),
            }
        }
    })
    .await;
    let at_once = run(neoagent(&whole.base, &[])).await;
    assert_exit(&at_once, 0);
    let in_pieces = run(neoagent(&pieces.base, &[])).await;
    assert_exit(&in_pieces, 0);
    assert_no_key(&in_pieces);
    assert_eq!(ndjson(&at_once).len(), 400);
    assert_eq!(in_pieces.stdout, at_once.stdout, "byte for byte");
}

/// A window that breaks off half-way is sent again; the records of the
/// first half were already written, and come again: each is written once.
#[tokio::test]
async fn a_window_that_breaks_off_mid_body_is_retried_and_each_record_written_once() {
    let window = body(window_leads("again", 2000, 100));
    let server = fake::serve(move |req| {
        let window = window.clone();
        async move {
            if req.connection == 0 {
                Answer::Reset(window)
            } else {
                Answer::Trickle {
                    body: window,
                    piece: 4096,
                    pause: Duration::ZERO,
                }
            }
        }
    })
    .await;
    let output = run(neoagent(&server.base, &["--retries", "2"])).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    let mut seen = names(&records);
    assert_eq!(seen.len(), 2000, "{}", stderr(&output));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2000, "a record written twice");
    assert!(
        stderr(&output).contains("retry 1/2"),
        "the break was retried: {}",
        stderr(&output)
    );
    assert_eq!(server.connections(), 2);
}

/// One window of about 12 MB, three times the whole read-ahead budget, goes
/// through; and a refusal at the end of a body that already gave records
/// fails the run without writing anything.
#[tokio::test]
async fn a_window_larger_than_the_read_ahead_budget_goes_through_and_a_late_refusal_fails() {
    let big = body(window_leads("big", 20_000, 500));
    assert!(big.len() > 3 * 4 * 1024 * 1024, "{} bytes", big.len());
    let server = fake::serve(move |_| {
        let big = big.clone();
        async move {
            Answer::Trickle {
                body: big,
                piece: 64 * 1024,
                pause: Duration::ZERO,
            }
        }
    })
    .await;
    let output = run(neoagent(&server.base, &[])).await;
    assert_exit(&output, 0);
    assert_eq!(ndjson(&output).len(), 20_000);

    // `Success: false` after the records.
    let mut late = serde_json::to_vec(&json!({"Data": window_leads("late", 3000, 10)})).unwrap();
    late.pop();
    late.extend_from_slice(br#","Success":false,"Code":500,"Message":"window failed"}"#);
    let refusing = fake::serve(move |_| {
        let late = late.clone();
        async move {
            Answer::Trickle {
                body: late,
                piece: 8192,
                pause: Duration::ZERO,
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leads.ndjson");
    std::fs::write(&out, b"before\n").unwrap();
    let output = run(neoagent(&refusing.base, &["-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("window failed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"before\n");
}

/// `--timeout` bounds each wait for the server, not the time a window
/// waits in its pipe for the writer: the second window (sent at once, far
/// over its share) waits about two seconds behind a first window that
/// trickles in, with `--timeout 1`. With the whole request under one
/// timeout, the second window failed.
#[tokio::test]
async fn the_timeout_does_not_count_the_time_a_window_waits_for_the_writer() {
    let first = body(window_leads("first", 200, 10));
    let second = body(window_leads("second", 20_000, 500));
    let server = fake::serve(move |req| {
        let (first, second) = (first.clone(), second.clone());
        async move {
            let request: Value = serde_json::from_slice(&req.body).unwrap();
            if request["startTime"] == "2025-01-01" {
                Answer::Trickle {
                    body: first.clone(),
                    piece: first.len() / 20 + 1,
                    pause: Duration::from_millis(100),
                }
            } else {
                Answer::Trickle {
                    body: second,
                    piece: usize::MAX,
                    pause: Duration::ZERO,
                }
            }
        }
    })
    .await;
    let output = run(neoagent(
        &server.base,
        &[
            "--since",
            "2025-01-01",
            "--until",
            "2025-01-10",
            "--window",
            "5",
            "--concurrency",
            "2",
            "--timeout",
            "1",
            "--retries",
            "0",
        ],
    ))
    .await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(records.len(), 200 + 20_000, "{}", stderr(&output));
    assert!(names(&records)[0].starts_with("first"), "window order kept");
}

/// A Robofy page of `count` rows, tagged `tag`, pointing at `next`.
fn robofy_page(tag: &str, count: usize, next: Option<&str>) -> Vec<u8> {
    let rows: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "id": format!("{tag}_{i}"),
                "created_at": "2025-01-01 00:00:14",
                "source": "chatbot",
                "page_url": "https://shop.example/pricing",
                "ip_address": "",
                "lead_data": [
                    {"field_name": "Full Name", "field_type": "text", "field_value": format!("{tag} {i} {}", "x".repeat(200))},
                    {"field_name": "email", "field_type": "email", "field_value": format!("{tag}{i}@example.com")}
                ]
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "message": "OK",
        "data": {"report": {"columns": [], "rows": rows, "next_page_token": next}}
    }))
    .unwrap()
}

/// The request for the next page of a token chain leaves as soon as the
/// token is found, before the current page is mapped and written. Here
/// the first page's output is far more than a pipe holds and nobody reads
/// stdout until the second request has come: before, the spawned request
/// waited for the walk's next await, which a blocked write never reached,
/// so the server built each page while the client sat idle. (A server
/// that keeps the connection open, as vendors do: a new connection still
/// has to be opened at the walk's next await.)
#[tokio::test]
async fn a_robofy_next_page_is_requested_before_the_current_page_is_written() {
    use std::io::Read;
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("nextPageToken", "t2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(robofy_page("last", 3, None), "application/json"),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(robofy_page("first", 2_000, Some("t2")), "application/json"),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("leads"));
    cmd.env_clear()
        .env("ROBOFY_API_KEY", crate::common::ROBOFY_KEY)
        .env("XDG_CONFIG_HOME", "/nonexistent-leads-test-config")
        .args([
            "pull",
            "--vendor",
            "robofy",
            "--project",
            "1",
            "--agent",
            "demo",
            "--base-url",
            &server.uri(),
            "--format",
            "ndjson",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("the binary starts");
    let mut asked_while_blocked = false;
    for _ in 0..500 {
        if server.received_requests().await.unwrap_or_default().len() >= 2 {
            asked_while_blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, out) = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let mut stdout = child.stdout.take().expect("piped");
        stdout.read_to_string(&mut out).expect("stdout is read");
        (child.wait().expect("the run ends"), out)
    })
    .await
    .expect("the reader thread did not panic");
    assert!(status.success(), "the run failed");
    assert_eq!(out.lines().count(), 2_003);
    assert!(
        asked_while_blocked,
        "the second page was not requested while the first page's output waited for the reader"
    );
}
