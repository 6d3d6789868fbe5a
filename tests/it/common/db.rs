//! Helpers shared by the database-output tests (`db_sqlite`, `db_postgres`):
//! an in-process sandbox the binary is pointed at (so tests can change its
//! data, latency and faults between runs), the NDJSON export of the same
//! source as the oracle of what a table must hold, and signals.

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use leads::model::Vendor;
use leads::sandbox::{self, DEMO_AGENT, DEMO_PROJECT, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use super::*;

/// The run's clock of the first and of later runs (`first_seen_at`, `last_seen_at`).
pub const FIRST_RUN: &str = "2025-07-01T00:00:00Z";
pub const LATER_RUN: &str = "2025-07-02T00:00:00Z";

pub async fn start_sandbox(seed: u64, leads: usize, conversations: usize) -> Sandbox {
    start_sandbox_with(SandboxOptions {
        seed,
        leads,
        conversations,
        ..SandboxOptions::default()
    })
    .await
}

pub async fn start_sandbox_with(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.expect("the sandbox starts")
}

/// New data (seed 43) whose third request is a 503.
pub async fn failing_on_request_3() -> Sandbox {
    start_sandbox_with(SandboxOptions {
        seed: 43,
        leads: 500,
        fail_every: Some(3),
        ..SandboxOptions::default()
    })
    .await
}

/// New data (seed 44), ten pages, 300 ms a page: a run to interrupt.
pub async fn slow_sandbox() -> Sandbox {
    start_sandbox_with(SandboxOptions {
        seed: 44,
        leads: 1000,
        latency: Duration::from_millis(300),
        ..SandboxOptions::default()
    })
    .await
}

/// A later run, one page at a time and no retries, so that a fault of the
/// sandbox's third request fails it on page 3 (exit 5).
pub fn one_page_at_a_time(sandbox: &Sandbox) -> Command {
    let mut cmd = export(sandbox, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN)
        .args(["--concurrency", "1", "--retries", "0"]);
    cmd
}

/// Runs `cmd` in the background, sends it SIG`name` once the sandbox
/// answered 3 requests, and asserts the exit code.
pub async fn interrupt(cmd: Command, sandbox: &Sandbox, name: &str, code: i32) {
    let child = spawn(cmd);
    wait_for_requests(sandbox, 3).await;
    signal(&child, name);
    assert_exit(&wait(child).await, code);
}

/// `leads pull` (or `conversations`) of the sandbox's demo agent of `vendor`.
pub fn export(sandbox: &Sandbox, vendor: Vendor, conversations: bool) -> Command {
    let mut cmd = leads();
    cmd.env(
        vendor.key_env(),
        sandbox::key(vendor.as_str()).expect("the sandbox simulates the vendor"),
    );
    cmd.env("LEADS_NOW", FIRST_RUN);
    cmd.arg(if conversations {
        "conversations"
    } else {
        "pull"
    });
    cmd.args(["--vendor", vendor.as_str(), "--agent", DEMO_AGENT]);
    if vendor == Vendor::Robofy && !conversations {
        cmd.args(["--project", DEMO_PROJECT]);
    }
    cmd.arg("--base-url").arg(
        sandbox
            .base_url(vendor.as_str())
            .expect("the sandbox simulates the vendor"),
    );
    cmd
}

/// The oracle: what the same export writes as NDJSON, by key, normalised.
pub async fn expected_records(
    sandbox: &Sandbox,
    vendor: Vendor,
    conversations: bool,
) -> BTreeMap<String, Value> {
    let mut cmd = export(sandbox, vendor, conversations);
    cmd.args(["--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let mut records = BTreeMap::new();
    for record in ndjson(&output) {
        let key = record_key(&record);
        assert!(
            records.insert(key, normalise(record)).is_none(),
            "the export repeats a key"
        );
    }
    records
}

pub fn record_key(record: &Value) -> String {
    format!(
        "{}/{}/{}",
        record["vendor"].as_str().unwrap(),
        record["agent_id"].as_str().unwrap(),
        record["id"].as_str().unwrap()
    )
}

/// Times as instants (a table and NDJSON may spell the same instant
/// differently), and `raw` only when there is one.
pub fn normalise(mut record: Value) -> Value {
    fn time(value: &mut Value) {
        if let Some(text) = value.as_str() {
            let t = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
            *value = Value::String(
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            );
        }
    }
    let object = record.as_object_mut().expect("a record is an object");
    if object.get("raw").is_some_and(Value::is_null) {
        object.remove("raw");
    }
    if let Some(created) = object.get_mut("created_at") {
        time(created);
    }
    if let Some(messages) = object.get_mut("messages").and_then(Value::as_array_mut) {
        for message in messages {
            if let Some(created) = message.get_mut("created_at") {
                time(created);
            }
        }
    }
    record
}

/// The summary's `(I inserted, U updated, K unchanged)`.
pub fn counts(output: &Output) -> (u64, u64, u64) {
    let err = stderr(output);
    let line = err
        .lines()
        .find(|l| l.starts_with("leads: ") && l.contains(" inserted, "))
        .unwrap_or_else(|| panic!("no summary with counts in:\n{err}"));
    let inside = line
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
        .unwrap();
    let numbers: Vec<u64> = inside
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

pub fn spawn(template: Command) -> Child {
    let mut child = std::process::Command::new(template.get_program());
    child.args(template.get_args());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => child.env(key, value),
            None => child.env_remove(key),
        };
    }
    child
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

pub async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .unwrap()
}

pub fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits until the sandbox has answered `requests` requests (the run is
/// then past its first pages, with records staged), then a little more.
pub async fn wait_for_requests(sandbox: &Sandbox, requests: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.stats().requests < requests {
        assert!(Instant::now() < deadline, "the run never got that far");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One request's query pairs.
pub type Query = Vec<(String, String)>;

/// A Chatzuri that serves a fixed list of leads (ignoring date filters, as
/// the client filters anyway) and records every request's query.
#[derive(Clone, Default)]
pub struct ChatzuriLeads {
    pub leads: Arc<Mutex<Vec<(u32, String)>>>,
    pub queries: Arc<Mutex<Vec<Query>>>,
}

impl Respond for ChatzuriLeads {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.queries.lock().unwrap().push(
            request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
        let rows: Vec<Value> = self
            .leads
            .lock()
            .unwrap()
            .iter()
            .map(|(n, at)| json!({"id": n, "created_at": at, "email": format!("lead{n}@example.test")}))
            .collect();
        ResponseTemplate::new(202).set_body_json(json!({ "data": rows }))
    }
}

impl ChatzuriLeads {
    pub async fn serve(leads: &[(u32, &str)]) -> (MockServer, ChatzuriLeads) {
        let vendor = ChatzuriLeads::default();
        vendor.set(leads);
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(vendor.clone())
            .mount(&server)
            .await;
        (server, vendor)
    }

    pub fn set(&self, leads: &[(u32, &str)]) {
        *self.leads.lock().unwrap() = leads.iter().map(|(n, at)| (*n, (*at).to_owned())).collect();
    }

    pub fn start_dates(&self) -> Vec<Option<String>> {
        self.queries
            .lock()
            .unwrap()
            .iter()
            .map(|q| {
                q.iter()
                    .find(|(k, _)| k == "startDate")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    pub fn pull(server: &MockServer, agent: &str) -> assert_cmd::Command {
        let mut cmd = leads();
        cmd.env("CHATZURI_API_KEY", CHATZURI_KEY)
            .env("LEADS_NOW", "2025-03-20T00:00:00Z")
            .args([
                "pull",
                "--vendor",
                "chatzuri",
                "--agent",
                agent,
                "--base-url",
            ])
            .arg(server.uri());
        cmd
    }
}

/// The leads served before and during an incremental run: the newest of
/// `cz-agent` that counts is 2025-03-10T12:00Z (the 2099 one is more than a
/// day in the future); another agent's newer lead does not count.
pub const BEFORE: &[(u32, &str)] = &[
    (1, "2025-03-01T08:00:00Z"),
    (2, "2025-03-10T12:00:00Z"),
    (3, "2099-01-01T00:00:00Z"),
];
pub const DURING: &[(u32, &str)] = &[
    (1, "2025-03-01T08:00:00Z"),
    (2, "2025-03-10T12:00:00Z"),
    (3, "2099-01-01T00:00:00Z"),
    (4, "2025-03-12T09:30:00Z"),
];
