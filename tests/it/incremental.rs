//! Incremental runs with `--state` (docs/SPEC.md section 7, issue 6): each run
//! writes only what the previous good run did not, a failed run leaves the
//! state as it was, and one state file serves one run at a time.
//!
//! A scripted vendor (wiremock) serves a list of leads that the tests change
//! between runs; every lead carries a unique email, the identity compared
//! (NeoAgent lead ids are derived from the record).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::common::*;

const CZ_AGENT: &str = "cz-agent";
const NA_SERIAL: &str = "na-serial-0001";
const RF_PROJECT: &str = "42";
const RF_BOT: &str = "rf-bot";
const NOW: &str = "2025-01-20T12:00:00Z";
const PAGE: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Chatzuri,
    Neoagent,
    Robofy,
}

impl V {
    fn key(self) -> String {
        match self {
            V::Chatzuri => format!("chatzuri/{CZ_AGENT}/leads"),
            V::Neoagent => format!("neoagent/{NA_SERIAL}/leads"),
            V::Robofy => format!("robofy/{RF_BOT}/leads"),
        }
    }
}

/// Lead `n`, created at `at` (RFC 3339, UTC, `Z`).
#[derive(Debug, Clone)]
struct Lead {
    n: u32,
    at: String,
}

fn lead(n: u32, at: &str) -> Lead {
    Lead {
        n,
        at: at.to_owned(),
    }
}

impl Lead {
    fn render(&self, vendor: V) -> Value {
        let email = format!("lead{}@example.test", self.n);
        match vendor {
            V::Chatzuri => {
                json!({"id": self.n, "created_at": self.at, "email": email, "name": format!("Lead {}", self.n)})
            }
            V::Neoagent => json!({
                "Type": "Lead", "Name": format!("Lead {}", self.n), "Email": email, "PhoneNumber": "",
                "CreateTime": self.at, "Content": "hi", "SessionID": 1000 + self.n, "URI": "example.test", "Count": 1
            }),
            V::Robofy => json!({
                "id": format!("rf-{}", self.n),
                "created_at": self.at.trim_end_matches('Z').replace('T', " "),
                "source": "chatbot",
                "lead_data": [{"field_name": "email", "field_type": "email", "field_value": email}]
            }),
        }
    }

    fn day(&self) -> &str {
        &self.at[..10]
    }
}

#[derive(Default)]
struct Served {
    leads: Vec<Lead>,
    /// Page index (Chatzuri, Robofy) or window start day (NeoAgent) that answers 503.
    fail_page: Option<usize>,
    fail_day: Option<String>,
    delay: Duration,
    /// Query pairs and JSON body of every request.
    requests: Vec<(Vec<(String, String)>, Value)>,
}

#[derive(Clone)]
struct Vendor {
    kind: V,
    served: Arc<Mutex<Served>>,
}

impl Respond for Vendor {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let query: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut served = self.served.lock().unwrap();
        served.requests.push((query.clone(), body.clone()));
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let delay = served.delay;
        let fail = ResponseTemplate::new(503)
            .set_body_string("{\"message\":\"down\"}")
            .set_delay(delay);
        let reply = match self.kind {
            V::Chatzuri => {
                let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                if served.fail_page == Some(page - 1) {
                    return fail;
                }
                let rows: Vec<Value> = served
                    .leads
                    .iter()
                    .skip((page - 1) * PAGE)
                    .take(PAGE)
                    .map(|l| l.render(V::Chatzuri))
                    .collect();
                ResponseTemplate::new(202).set_body_json(json!({ "data": rows }))
            }
            V::Neoagent => {
                let start = body
                    .get("startTime")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let end = body
                    .get("endTime")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if start.is_some() && served.fail_day == start {
                    return fail;
                }
                let rows: Vec<Value> = served
                    .leads
                    .iter()
                    .filter(|l| {
                        start.as_deref().is_none_or(|s| l.day() >= s)
                            && end.as_deref().is_none_or(|e| l.day() <= e)
                    })
                    .map(|l| l.render(V::Neoagent))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"Data": rows, "Version": "1.0.0", "Success": true, "Code": 200, "Message": ""}))
            }
            V::Robofy => {
                let page: usize = get("nextPageToken")
                    .and_then(|t| t.strip_prefix("p-").and_then(|n| n.parse().ok()))
                    .unwrap_or(0);
                if served.fail_page == Some(page) {
                    return fail;
                }
                let rows: Vec<Value> = served
                    .leads
                    .iter()
                    .skip(page * PAGE)
                    .take(PAGE)
                    .map(|l| l.render(V::Robofy))
                    .collect();
                let token =
                    ((page + 1) * PAGE < served.leads.len()).then(|| format!("p-{}", page + 1));
                ResponseTemplate::new(200).set_body_json(json!({"message": "ok", "data": {"report": {"rows": rows, "next_page_token": token}}}))
            }
        };
        reply.set_delay(delay)
    }
}

async fn vendor(kind: V, leads: Vec<Lead>) -> (MockServer, Vendor) {
    let server = MockServer::start().await;
    let vendor = Vendor {
        kind,
        served: Arc::new(Mutex::new(Served {
            leads,
            ..Served::default()
        })),
    };
    Mock::given(any())
        .respond_with(vendor.clone())
        .mount(&server)
        .await;
    (server, vendor)
}

impl Vendor {
    fn add(&self, more: Vec<Lead>) {
        self.served.lock().unwrap().leads.extend(more);
    }

    fn take_requests(&self) -> Vec<(Vec<(String, String)>, Value)> {
        std::mem::take(&mut self.served.lock().unwrap().requests)
    }
}

fn pull(kind: V, server: &MockServer, state: &Path) -> Command {
    let mut cmd = leads();
    cmd.env("LEADS_NOW", NOW);
    match kind {
        V::Chatzuri => {
            cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
            cmd.args([
                "pull",
                "--vendor",
                "chatzuri",
                "--agent",
                CZ_AGENT,
                "--page-size",
                "2",
            ]);
        }
        V::Neoagent => {
            cmd.env("NEOAGENT_API_KEY", NEOAGENT_KEY);
            cmd.args(["pull", "--vendor", "neoagent", "--agent", NA_SERIAL]);
        }
        V::Robofy => {
            cmd.env("ROBOFY_API_KEY", ROBOFY_KEY);
            cmd.args([
                "pull",
                "--vendor",
                "robofy",
                "--agent",
                RF_BOT,
                "--project",
                RF_PROJECT,
            ]);
        }
    }
    cmd.args([
        "--base-url",
        &server.uri(),
        "--format",
        "ndjson",
        "--retries",
        "1",
    ]);
    cmd.arg("--state").arg(state);
    cmd
}

/// The lead numbers written, in order.
fn numbers(records: &[Value]) -> Vec<u32> {
    records
        .iter()
        .map(|r| {
            let email = r["email"].as_str().expect("every lead has its email");
            email
                .strip_prefix("lead")
                .and_then(|e| e.strip_suffix("@example.test"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn sorted(mut list: Vec<u32>) -> Vec<u32> {
    list.sort();
    list
}

fn saved(state: &Path, kind: V) -> Value {
    let value: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    value["bookmarks"][kind.key()].clone()
}

/// The day a run asked the vendor to start from, per request.
fn start_days(kind: V, requests: &[(Vec<(String, String)>, Value)]) -> Vec<Option<String>> {
    requests
        .iter()
        .map(|(query, body)| match kind {
            V::Chatzuri => query
                .iter()
                .find(|(k, _)| k == "startDate")
                .map(|(_, v)| v.clone()),
            V::Neoagent => body
                .get("startTime")
                .and_then(Value::as_str)
                .map(str::to_owned),
            V::Robofy => None,
        })
        .collect()
}

async fn later_records_are_written_once(kind: V) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(
        kind,
        vec![
            lead(1, "2025-01-10T08:00:00Z"),
            lead(2, "2025-01-10T09:00:00Z"),
            lead(3, "2025-01-11T10:00:00Z"),
        ],
    )
    .await;

    // First run: everything.
    let first = run(pull(kind, &server, &state)).await;
    assert_exit(&first, 0);
    assert_no_key(&first);
    assert_eq!(sorted(numbers(&ndjson(&first))), [1, 2, 3]);
    assert_eq!(
        saved(&state, kind)["created_at"],
        "2025-01-11T10:00:00.000000Z"
    );
    let first_starts = start_days(kind, &vendor.take_requests());
    assert!(
        first_starts.iter().all(Option::is_none),
        "a first run asks for everything: {first_starts:?}"
    );

    // Records added later: written by the next run, once.
    vendor.add(vec![
        lead(4, "2025-01-12T07:00:00Z"),
        lead(5, "2025-01-13T07:30:00Z"),
    ]);
    let second = run(pull(kind, &server, &state)).await;
    assert_exit(&second, 0);
    assert_eq!(sorted(numbers(&ndjson(&second))), [4, 5]);
    assert_eq!(
        saved(&state, kind)["created_at"],
        "2025-01-13T07:30:00.000000Z"
    );
    assert_eq!(saved(&state, kind)["ids"].as_array().unwrap().len(), 1);
    let starts = start_days(kind, &vendor.take_requests());
    if kind != V::Robofy {
        // One day before the bookmark (2025-01-11T10:00:00Z), whole days.
        assert!(!starts.is_empty());
        assert_eq!(
            starts[0].as_deref(),
            Some("2025-01-10"),
            "the vendor is asked from a day before the bookmark"
        );
        assert!(starts.iter().all(Option::is_some), "{starts:?}");
    }

    // Nothing new: nothing written, state kept.
    let before = std::fs::read(&state).unwrap();
    let third = run(pull(kind, &server, &state)).await;
    assert_exit(&third, 0);
    assert_eq!(stdout(&third), "");
    assert_eq!(
        saved(&state, kind),
        serde_json::from_slice::<Value>(&before).unwrap()["bookmarks"][kind.key()]
    );
    assert_eq!(
        start_days(kind, &vendor.take_requests())
            .first()
            .cloned()
            .flatten(),
        match kind {
            V::Robofy => None,
            _ => Some("2025-01-12".to_owned()),
        }
    );
}

#[tokio::test]
async fn chatzuri_first_run_writes_everything_and_later_records_are_written_once() {
    later_records_are_written_once(V::Chatzuri).await;
}

#[tokio::test]
async fn neoagent_first_run_writes_everything_and_later_records_are_written_once() {
    later_records_are_written_once(V::Neoagent).await;
}

#[tokio::test]
async fn robofy_first_run_writes_everything_and_later_records_are_written_once() {
    later_records_are_written_once(V::Robofy).await;
}

async fn bookmark_time_ties(kind: V) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(
        kind,
        vec![
            lead(1, "2025-01-10T08:00:00Z"),
            lead(2, "2025-01-11T10:00:00Z"),
        ],
    )
    .await;
    let first = run(pull(kind, &server, &state)).await;
    assert_exit(&first, 0);
    assert_eq!(sorted(numbers(&ndjson(&first))), [1, 2]);

    // At the bookmark time: an unseen id is written, the seen one is not.
    // Before it: not written, even when unseen (the bookmark is the line).
    vendor.add(vec![
        lead(3, "2025-01-11T10:00:00Z"),
        lead(4, "2025-01-11T09:59:59Z"),
    ]);
    let second = run(pull(kind, &server, &state)).await;
    assert_exit(&second, 0);
    assert_eq!(numbers(&ndjson(&second)), [3]);
    let mark = saved(&state, kind);
    assert_eq!(mark["created_at"], "2025-01-11T10:00:00.000000Z");
    assert_eq!(
        mark["ids"].as_array().unwrap().len(),
        2,
        "both ids at the bookmark time are remembered: {mark}"
    );

    let third = run(pull(kind, &server, &state)).await;
    assert_exit(&third, 0);
    assert_eq!(
        stdout(&third),
        "",
        "ids at the bookmark time are not written again"
    );
}

#[tokio::test]
async fn chatzuri_records_at_the_bookmark_time_are_written_only_with_an_unseen_id() {
    bookmark_time_ties(V::Chatzuri).await;
}

#[tokio::test]
async fn neoagent_records_at_the_bookmark_time_are_written_only_with_an_unseen_id() {
    bookmark_time_ties(V::Neoagent).await;
}

#[tokio::test]
async fn robofy_records_at_the_bookmark_time_are_written_only_with_an_unseen_id() {
    bookmark_time_ties(V::Robofy).await;
}

#[tokio::test]
async fn chatzuri_since_before_the_bookmark_is_narrowed_to_one_day_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(V::Chatzuri, vec![lead(1, "2025-01-15T00:30:00Z")]).await;
    assert_exit(&run(pull(V::Chatzuri, &server, &state)).await, 0);
    vendor.take_requests();
    let mut cmd = pull(V::Chatzuri, &server, &state);
    cmd.args(["--since", "2025-01-01"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
    assert_eq!(
        start_days(V::Chatzuri, &vendor.take_requests())[0].as_deref(),
        Some("2025-01-14")
    );
}

#[tokio::test]
async fn neoagent_windows_start_one_day_before_the_bookmark() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(V::Neoagent, vec![lead(1, "2025-01-15T00:30:00Z")]).await;
    assert_exit(&run(pull(V::Neoagent, &server, &state)).await, 0);
    vendor.take_requests();
    let mut cmd = pull(V::Neoagent, &server, &state);
    cmd.args(["--window", "2"]);
    assert_exit(&run(cmd).await, 0);
    let mut windows: Vec<(String, String)> = vendor
        .take_requests()
        .into_iter()
        .map(|(_, body)| {
            (
                body["startTime"].as_str().unwrap().to_owned(),
                body["endTime"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    windows.sort();
    // From the day before the bookmark to "now" (LEADS_NOW), overlapping by a
    // day; the last window ends the day after today, in case the vendor's
    // endTime is exclusive.
    assert_eq!(
        windows,
        [
            ("2025-01-14".to_owned(), "2025-01-16".to_owned()),
            ("2025-01-16".to_owned(), "2025-01-18".to_owned()),
            ("2025-01-18".to_owned(), "2025-01-21".to_owned()),
        ]
    );
}

async fn failed_run_then_recovery(kind: V) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let out = dir.path().join("leads.ndjson");
    let (server, vendor) = vendor(
        kind,
        vec![
            lead(1, "2025-01-10T08:00:00Z"),
            lead(2, "2025-01-10T09:00:00Z"),
        ],
    )
    .await;
    let first = run(pull(kind, &server, &state)).await;
    assert_exit(&first, 0);
    assert_eq!(sorted(numbers(&ndjson(&first))), [1, 2]);

    // New records over several pages (or windows); one page fails for good.
    vendor.add(vec![
        lead(3, "2025-01-11T08:00:00Z"),
        lead(4, "2025-01-12T08:00:00Z"),
        lead(5, "2025-01-13T08:00:00Z"),
        lead(6, "2025-01-14T08:00:00Z"),
    ]);
    {
        let mut served = vendor.served.lock().unwrap();
        served.fail_page = Some(2);
        served.fail_day = Some("2025-01-11".to_owned());
    }
    std::fs::write(&out, b"kept\n").unwrap();
    let state_before = std::fs::read(&state).unwrap();
    let mut cmd = pull(kind, &server, &state);
    cmd.arg("-o").arg(&out);
    if kind == V::Neoagent {
        cmd.args(["--window", "1", "--concurrency", "1"]);
    }
    let failed = run(cmd).await;
    assert_exit(&failed, 5);
    assert_eq!(
        std::fs::read(&state).unwrap(),
        state_before,
        "a failed run must not touch the state"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"kept\n",
        "a failed run must not touch the output"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["leads.ndjson", "state.json", "state.json.lock"]);

    // The vendor is back: the next run writes the missing records, once.
    {
        let mut served = vendor.served.lock().unwrap();
        served.fail_page = None;
        served.fail_day = None;
    }
    let mut cmd = pull(kind, &server, &state);
    cmd.arg("-o").arg(&out);
    if kind == V::Neoagent {
        cmd.args(["--window", "1"]);
    }
    assert_exit(&run(cmd).await, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sorted(numbers(&records)), [3, 4, 5, 6]);
    assert_eq!(
        saved(&state, kind)["created_at"],
        "2025-01-14T08:00:00.000000Z"
    );

    let again = run(pull(kind, &server, &state)).await;
    assert_exit(&again, 0);
    assert_eq!(stdout(&again), "");
}

#[tokio::test]
async fn chatzuri_failed_run_leaves_the_state_and_the_next_run_writes_the_missing_records_once() {
    failed_run_then_recovery(V::Chatzuri).await;
}

#[tokio::test]
async fn neoagent_failed_run_leaves_the_state_and_the_next_run_writes_the_missing_records_once() {
    failed_run_then_recovery(V::Neoagent).await;
}

#[tokio::test]
async fn robofy_failed_run_leaves_the_state_and_the_next_run_writes_the_missing_records_once() {
    failed_run_then_recovery(V::Robofy).await;
}

/// Takes the run lock the way a run does (`PATH.lock`), naming a holder.
fn hold_lock(state: &Path, holder: &str) -> File {
    let mut name = state.file_name().unwrap().to_os_string();
    name.push(".lock");
    let lock_path: PathBuf = state.with_file_name(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(lock_path)
        .unwrap();
    file.lock().unwrap();
    file.write_all(holder.as_bytes()).unwrap();
    file.flush().unwrap();
    file
}

#[tokio::test]
async fn a_locked_state_file_is_exit_7_naming_the_holder_and_nothing_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"version\":1,\"bookmarks\":{}}\n").unwrap();
    let (server, vendor) = vendor(V::Chatzuri, vec![lead(1, "2025-01-10T08:00:00Z")]).await;
    let _held = hold_lock(&state, "leads pid 424242 since 2025-01-20T11:59:00Z");
    let output = run(pull(V::Chatzuri, &server, &state)).await;
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("leads pid 424242"), "names the holder: {err}");
    assert!(err.contains("--lock-timeout"), "says how to wait: {err}");
    assert_eq!(stdout(&output), "");
    assert!(
        vendor.take_requests().is_empty(),
        "a locked-out run must not fetch"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        b"{\"version\":1,\"bookmarks\":{}}\n"
    );
}

#[tokio::test]
async fn lock_timeout_waits_for_the_holder_and_then_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, _vendor) = vendor(V::Chatzuri, vec![lead(1, "2025-01-10T08:00:00Z")]).await;
    let held = hold_lock(&state, "a test");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        drop(held);
    });
    let started = Instant::now();
    let mut cmd = pull(V::Chatzuri, &server, &state);
    cmd.args(["--lock-timeout", "10"]);
    let output = run(cmd).await;
    release.join().unwrap();
    assert_exit(&output, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it waited for the lock"
    );
    assert_eq!(numbers(&ndjson(&output)), [1]);
}

#[tokio::test]
async fn lock_timeout_gives_up_with_exit_7_after_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(V::Chatzuri, vec![lead(1, "2025-01-10T08:00:00Z")]).await;
    let _held = hold_lock(&state, "leads pid 77 since earlier");
    let started = Instant::now();
    let mut cmd = pull(V::Chatzuri, &server, &state);
    cmd.args(["--lock-timeout", "0.5"]);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "it waited {:?}",
        started.elapsed()
    );
    assert!(stderr(&output).contains("leads pid 77"));
    assert!(vendor.take_requests().is_empty());
}

#[tokio::test]
async fn two_runs_on_one_state_file_the_second_exits_7_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(V::Chatzuri, vec![lead(1, "2025-01-10T08:00:00Z")]).await;
    vendor.served.lock().unwrap().delay = Duration::from_millis(1500);

    // The first run holds the lock while its (slow) vendor answers.
    let template = pull(V::Chatzuri, &server, &state);
    let mut first = std::process::Command::new(template.get_program());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => first.env(key, value),
            None => first.env_remove(key),
        };
    }
    first
        .args(template.get_args())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = first.spawn().unwrap();
    let lock = dir.path().join("state.json.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("leads pid")) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let second = run(pull(V::Chatzuri, &server, &state)).await;
    assert_exit(&second, 7);
    let err = stderr(&second);
    assert!(
        err.contains(&format!("leads pid {}", child.id())),
        "names the first run: {err}"
    );

    let first = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit(&first, 0);
    assert_eq!(numbers(&ndjson(&first)), [1]);
    assert_eq!(
        saved(&state, V::Chatzuri)["created_at"],
        "2025-01-10T08:00:00.000000Z"
    );
}
