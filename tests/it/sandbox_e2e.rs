//! End-to-end runs of the binary against the built-in vendor simulator
//! (issue 3, docs/SPEC.md section 8). The sandbox runs in-process on the test's
//! runtime; its generator (`leads::sandbox::data`) is the oracle for what
//! every run must write.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use chrono::{DateTime, SecondsFormat, Utc};
use leads::model::{Lead, Vendor};
use leads::output::Formatted;
use leads::sandbox::data::{self, GeneratedConversation, GeneratedLead};
use leads::sandbox::{DEMO_AGENT, DEMO_PROJECT, Sandbox, SandboxOptions};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::common::{assert_exit, assert_no_key, leads, ndjson, run, stderr, stdout};

// ------------------------------------------------------------------ oracle

/// An RFC 3339 timestamp in UTC with `Z`, reduced to a canonical form so the
/// instant can be compared whatever number of fractional digits was written.
fn canonical_time(text: &str) -> String {
    assert!(
        text.ends_with('Z') && text.contains('T'),
        "not RFC 3339 UTC with Z: {text:?}"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text:?}: {e}"))
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn canonical(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Replaces every `created_at` string in a record (messages included) with
/// its canonical form, after checking it is UTC with `Z`.
fn normalize_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "created_at" => *v = json!(canonical_time(text)),
                    // `fields` holds the vendor's own values, untouched.
                    _ if key == "fields" => {}
                    _ => normalize_times(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_times),
        _ => {}
    }
}

/// The documented NeoAgent lead id: `na_` + the first 20 hex digits of
/// SHA-256 over serial, SessionID, kind, CreateTime in UTC with six
/// fractional digits, Email, PhoneNumber, Name, joined by U+001F.
fn neoagent_id(lead: &GeneratedLead) -> String {
    let parts = [
        DEMO_AGENT.to_owned(),
        lead.session_id.clone().unwrap_or_default(),
        lead.kind.to_owned(),
        canonical(lead.created_at),
        lead.email.clone().unwrap_or_default(),
        lead.phone.clone().unwrap_or_default(),
        lead.name.clone().unwrap_or_default(),
    ];
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("na_{hex}")
}

/// The common-model lead the binary must write for a generated lead.
fn expected_lead(vendor: Vendor, lead: &GeneratedLead) -> Value {
    let id = match vendor {
        Vendor::Neoagent => neoagent_id(lead),
        _ => lead.id.clone().expect("the generator gives an id"),
    };
    let fields = match vendor {
        Vendor::Chatbase => {
            let mut fields = Map::new();
            fields.insert("chatbot_id".to_owned(), json!(DEMO_AGENT));
            if let Some(account) = &lead.owner_user_id {
                fields.insert("account_id".to_owned(), json!(account));
            }
            Value::Object(fields)
        }
        Vendor::Chatzuri => json!({
            "chatbot_owner_user_id": lead.owner_user_id,
            "chatbot_id": DEMO_AGENT,
        }),
        Vendor::Neoagent => json!({ "Count": lead.count }),
        Vendor::Robofy => {
            let mut fields = Map::new();
            let mut types = Map::new();
            for field in lead.custom_fields() {
                let name = field.field_name.trim().to_owned();
                fields.insert(name.clone(), json!(field.field_value.trim()));
                types.insert(name, json!(field.field_type));
            }
            if !types.is_empty() {
                fields.insert("lead_data_types".to_owned(), Value::Object(types));
            }
            Value::Object(fields)
        }
    };
    // Robofy rows carry no session id; it is only known under --session.
    let session_id = match vendor {
        Vendor::Robofy => None,
        _ => lead.session_id.clone(),
    };
    json!({
        "id": id,
        "vendor": vendor.as_str(),
        "agent_id": DEMO_AGENT,
        "kind": lead.kind,
        "created_at": canonical(lead.created_at),
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "source": lead.source,
        "page_url": lead.page_url,
        "ip_address": lead.ip_address,
        "session_id": session_id,
        "message": lead.message,
        "fields": fields,
    })
}

fn expected_leads(vendor: Vendor, seed: u64, total: usize) -> Vec<Value> {
    (0..total)
        .map(|i| {
            expected_lead(
                vendor,
                &data::lead(crate::common::sim(vendor), seed, i, total),
            )
        })
        .collect()
}

/// The common-model conversation the binary must write.
fn expected_conversation(vendor: Vendor, c: &GeneratedConversation) -> Value {
    let messages: Vec<Value> = c
        .messages
        .iter()
        .map(|m| {
            let content = match vendor {
                Vendor::Chatbase => m.model_content(),
                _ => Some(m.content.trim()),
            };
            json!({
                "role": m.role.model(),
                "content": content,
                "created_at": m.created_at.map(canonical),
            })
        })
        .collect();
    let fields = match vendor {
        Vendor::Chatbase => chatbase_fields(c),
        Vendor::Chatzuri => json!({ "chatbot_id": DEMO_AGENT }),
        Vendor::Neoagent => json!({}),
        Vendor::Robofy => {
            // Everything the session item says beyond the mapped fields, and
            // each message's id.
            let last = c.messages.last().expect("generated sessions have messages");
            let last_time = last.created_at.expect("Robofy messages are timed");
            json!({
                "last_message_time": last_time.format("%Y-%m-%d %H:%M:%S").to_string(),
                "last_message": last.content.trim(),
                "last_message_direction": last.role.wire(leads::sandbox::SimVendor::Robofy),
                "message_fields": (1..=c.messages.len())
                    .map(|i| json!({ "id": format!("m-{i}") }))
                    .collect::<Vec<_>>(),
            })
        }
    };
    json!({
        "id": c.id,
        "vendor": vendor.as_str(),
        "agent_id": DEMO_AGENT,
        "created_at": canonical(c.created_at),
        "source": c.source,
        "customer": c.customer,
        "session_id": c.session_id,
        "page_url": c.page_url,
        "messages": messages,
        "fields": fields,
    })
}

/// What a Chatbase export conversation keeps in `fields`: `title`,
/// `updatedAt` and `status` as sent, and per message its `id`, `feedback`
/// and `metadata` (assistant messages) and its non-text `parts`.
fn chatbase_fields(c: &GeneratedConversation) -> Value {
    let mut fields = Map::new();
    if let Some(title) = &c.title {
        fields.insert("title".to_owned(), json!(title.trim()));
    }
    let updated = c.updated_at.unwrap_or(c.created_at).timestamp();
    fields.insert("updatedAt".to_owned(), json!(updated));
    fields.insert("status".to_owned(), json!(c.status.unwrap_or("ended")));
    let per_message: Vec<Value> = c
        .messages
        .iter()
        .map(|m| {
            let mut extras = Map::new();
            extras.insert("id".to_owned(), json!(m.id));
            if m.role == leads::sandbox::data::Role::Assistant {
                if let Some(feedback) = m.feedback {
                    extras.insert("feedback".to_owned(), json!(feedback));
                }
                extras.insert("metadata".to_owned(), json!({ "score": m.score }));
            }
            let tools: Vec<Value> = m
                .parts
                .iter()
                .filter(|p| !matches!(p, leads::sandbox::data::GeneratedPart::Text { .. }))
                .map(|p| serde_json::to_value(p).unwrap())
                .collect();
            if !tools.is_empty() {
                extras.insert("parts".to_owned(), Value::Array(tools));
            }
            Value::Object(extras)
        })
        .collect();
    fields.insert("message_fields".to_owned(), Value::Array(per_message));
    Value::Object(fields)
}

/// In the order the vendor serves them (Chatbase's export is newest first).
fn expected_conversations(vendor: Vendor, seed: u64, total: usize) -> Vec<Value> {
    let mut all: Vec<Value> = (0..total)
        .map(|i| {
            expected_conversation(
                vendor,
                &data::conversation(crate::common::sim(vendor), seed, i, total),
            )
        })
        .collect();
    if vendor == Vendor::Chatbase {
        all.reverse();
    }
    all
}

// ------------------------------------------------------------------ output readers

fn sandbox_keys_absent(output: &Output) {
    for &vendor in Vendor::all() {
        let key = crate::common::sandbox_key(vendor).as_bytes();
        for bytes in [&output.stdout, &output.stderr] {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key),
                "the {vendor} sandbox key leaked into the output"
            );
        }
    }
}

fn json_records(output: &Output) -> Vec<Value> {
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not valid JSON: {e}\n{}",
            &stdout(output).chars().take(500).collect::<String>()
        )
    });
    let Value::Array(records) = value else {
        panic!("stdout is not a JSON array");
    };
    records
}

fn normalized(mut records: Vec<Value>) -> Vec<Value> {
    records.iter_mut().for_each(normalize_times);
    records
}

/// A CSV cell against the value the model holds: equal, or prefixed with
/// `'` by the formula guard where the value starts like a formula (and
/// always guarded when it starts with `=`, `@`, a tab or a carriage return).
fn assert_csv_cell(cell: &str, want: &str, what: &str) {
    let always = want.starts_with(['=', '@', '\t', '\r']);
    let maybe = always || want.starts_with(['+', '-']);
    let guarded = format!("'{want}");
    if always {
        assert_eq!(cell, guarded, "{what}: a formula-like cell must be guarded");
    } else if maybe {
        assert!(
            cell == want || cell == guarded,
            "{what}: {cell:?} is neither {want:?} nor its guarded form"
        );
    } else {
        assert_eq!(cell, want, "{what}");
    }
}

/// Parses lead CSV with the csv crate and compares every row with the
/// expected leads, in order.
fn assert_csv_leads(output: &Output, expected: &[Value]) {
    let mut reader = csv::ReaderBuilder::new().from_reader(output.stdout.as_slice());
    let header = reader.headers().expect("a header row").clone();
    assert_eq!(header.iter().collect::<Vec<_>>(), Lead::column_names());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.expect("a valid CSV row"))
        .collect();
    assert_eq!(rows.len(), expected.len(), "one CSV row per lead");
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(row.len(), Lead::column_names().len());
        let id = want["id"].as_str().unwrap_or_default();
        for (column, cell) in Lead::column_names().iter().zip(row.iter()) {
            let what = format!("lead {id} column {column}");
            match *column {
                "fields" => {
                    let fields: Value = serde_json::from_str(cell)
                        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}: {cell:?}"));
                    assert_eq!(fields, want["fields"], "{what}");
                }
                "created_at" => assert_eq!(json!(canonical_time(cell)), want[*column], "{what}"),
                _ => assert_csv_cell(cell, want[*column].as_str().unwrap_or(""), &what),
            }
        }
    }
}

fn assert_same_records(got: Vec<Value>, expected: &[Value], what: &str) {
    let got = normalized(got);
    assert_eq!(got.len(), expected.len(), "{what}: number of records");
    let ids: HashSet<&str> = got.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), got.len(), "{what}: an id was written twice");
    for (record, want) in got.iter().zip(expected) {
        assert_eq!(record, want, "{what}");
    }
}

// ------------------------------------------------------------------ commands

/// `leads pull` (or `conversations`) of the demo agent against `sandbox`,
/// with the vendor's sandbox key in its environment variable.
fn export(sandbox: &Sandbox, vendor: Vendor, command: &str) -> Command {
    export_from(sandbox, vendor, command, DEMO_AGENT, DEMO_PROJECT)
}

/// The same for another agent (and Robofy project).
fn export_from(
    sandbox: &Sandbox,
    vendor: Vendor,
    command: &str,
    agent: &str,
    project: &str,
) -> Command {
    let mut cmd = leads();
    let base_url = crate::common::sandbox_url(sandbox, vendor);
    cmd.args([command, "--vendor", vendor.as_str()]);
    cmd.args(["--base-url", &base_url, "--agent", agent]);
    if vendor == Vendor::Robofy && command == "pull" {
        cmd.args(["--project", project]);
    }
    cmd.env(vendor.key_env(), crate::common::sandbox_key(vendor));
    cmd
}

fn pull(sandbox: &Sandbox, vendor: Vendor) -> Command {
    export(sandbox, vendor, "pull")
}

async fn start(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options)
        .await
        .expect("the sandbox starts on a free loopback port")
}

// ------------------------------------------------------------------ leads, every vendor and format

const SEED: u64 = 20_250_601;
/// Three pages for Chatzuri (100 a page) and Robofy (100 a page).
const LEADS: usize = 260;

async fn every_generated_lead_once_in_every_format(vendor: Vendor) {
    let sandbox = start(SandboxOptions {
        leads: LEADS,
        conversations: 5,
        seed: SEED,
        ..Default::default()
    })
    .await;
    let expected = expected_leads(vendor, SEED, LEADS);

    let mut cmd = pull(&sandbox, vendor);
    cmd.args(["--format", "json"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    sandbox_keys_absent(&output);
    assert_same_records(json_records(&output), &expected, "json");

    let mut cmd = pull(&sandbox, vendor);
    cmd.args(["--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert!(stdout(&output).ends_with('\n'));
    assert_same_records(ndjson(&output), &expected, "ndjson");

    let mut cmd = pull(&sandbox, vendor);
    cmd.args(["--format", "csv"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_csv_leads(&output, &expected);
}

#[tokio::test]
async fn chatzuri_pull_writes_every_generated_lead_once_with_mapped_values_in_json_ndjson_and_csv()
{
    every_generated_lead_once_in_every_format(Vendor::Chatzuri).await;
}

#[tokio::test]
async fn neoagent_pull_writes_every_generated_lead_and_appointment_once_with_mapped_values_in_json_ndjson_and_csv()
 {
    every_generated_lead_once_in_every_format(Vendor::Neoagent).await;
}

#[tokio::test]
async fn robofy_pull_writes_every_generated_lead_once_with_its_form_mapped_in_json_ndjson_and_csv()
{
    every_generated_lead_once_in_every_format(Vendor::Robofy).await;
}

#[tokio::test]
async fn robofy_pull_accepts_project_and_chatbot_in_agent() {
    let sandbox = start(SandboxOptions {
        leads: 120,
        seed: SEED,
        ..Default::default()
    })
    .await;
    let mut cmd = leads();
    let agent = format!("{DEMO_PROJECT}/{DEMO_AGENT}");
    let base_url = crate::common::sandbox_url(&sandbox, Vendor::Robofy);
    cmd.args(["pull", "--vendor", "robofy", "--agent", &agent])
        .args(["--base-url", &base_url, "--format", "ndjson"])
        .env("ROBOFY_API_KEY", crate::common::sandbox_key(Vendor::Robofy));
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_same_records(
        ndjson(&output),
        &expected_leads(Vendor::Robofy, SEED, 120),
        "robofy --agent 1/demo",
    );
}

#[tokio::test]
async fn generated_data_exercises_the_awkward_cases_the_tests_rely_on() {
    // Guards the value of the comparisons above: the sandbox's data must
    // hold what real leads hold, or a pass would prove little.
    let leads: Vec<Value> = Vendor::all()
        .iter()
        .flat_map(|&v| expected_leads(v, SEED, LEADS))
        .collect();
    let texts: Vec<String> = leads
        .iter()
        .flat_map(|l| ["name", "message", "phone"].map(|k| l[k].as_str().map(str::to_owned)))
        .flatten()
        .collect();
    for needle in ["\n", "\"", ",", "王"] {
        assert!(texts.iter().any(|t| t.contains(needle)), "{needle:?}");
    }
    for prefix in ['=', '+', '-', '@'] {
        assert!(texts.iter().any(|t| t.starts_with(prefix)), "{prefix}");
    }
    assert!(leads.iter().any(|l| l["phone"].is_null()));
    assert!(leads.iter().any(|l| l["kind"] == "appointment"));
    assert!(leads.iter().any(|l| l["fields"].get("company").is_some()));
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn a_wrong_key_exits_3_for_every_vendor_without_printing_it() {
    let sandbox = start(SandboxOptions {
        leads: 20,
        ..Default::default()
    })
    .await;
    for (vendor, wrong) in [
        (Vendor::Chatzuri, crate::common::CHATZURI_KEY),
        (Vendor::Neoagent, crate::common::NEOAGENT_KEY),
        (Vendor::Robofy, crate::common::ROBOFY_KEY),
    ] {
        for command in ["pull", "conversations"] {
            let mut cmd = export(&sandbox, vendor, command);
            cmd.env(vendor.key_env(), wrong);
            let output = run(cmd).await;
            assert_exit(&output, 3);
            assert_no_key(&output);
            assert!(
                stderr(&output).contains("leads: error:"),
                "{vendor} {command}: {}",
                stderr(&output)
            );
            // No half-written JSON array on stdout.
            assert!(
                output.stdout.is_empty() || serde_json::from_slice::<Value>(&output.stdout).is_ok(),
                "{vendor} {command}: stdout must not hold a broken document"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_agent_or_project_exits_4_for_every_vendor() {
    let sandbox = start(SandboxOptions {
        leads: 20,
        ..Default::default()
    })
    .await;
    for &vendor in Vendor::all() {
        for command in ["pull", "conversations"] {
            let cmd = export_from(&sandbox, vendor, command, "nobody", DEMO_PROJECT);
            let output = run(cmd).await;
            assert_exit(&output, 4);
            sandbox_keys_absent(&output);
        }
    }
    let cmd = export_from(&sandbox, Vendor::Robofy, "pull", DEMO_AGENT, "2");
    let output = run(cmd).await;
    assert_exit(&output, 4);
}

// ------------------------------------------------------------------ filters

#[tokio::test]
async fn since_and_until_through_the_sandbox_select_exactly_the_generated_leads_in_range() {
    let sandbox = start(SandboxOptions {
        leads: LEADS,
        seed: SEED,
        ..Default::default()
    })
    .await;
    // Mid-day bounds: the vendors filter by whole days (Robofy not at all),
    // so the exact bounds must be applied on the client.
    let since: DateTime<Utc> = "2025-02-10T13:30:00Z".parse().unwrap();
    let until: DateTime<Utc> = "2025-04-20T06:15:00Z".parse().unwrap();
    for &vendor in Vendor::all() {
        let expected: Vec<Value> = (0..LEADS)
            .map(|i| data::lead(crate::common::sim(vendor), SEED, i, LEADS))
            .filter(|l| l.created_at >= since && l.created_at <= until)
            .map(|l| expected_lead(vendor, &l))
            .collect();
        assert!(expected.len() > 50 && expected.len() < LEADS - 50);
        let mut cmd = pull(&sandbox, vendor);
        cmd.args([
            "--since",
            "2025-02-10T13:30:00Z",
            "--until",
            "2025-04-20T06:15:00Z",
        ])
        .args(["--format", "ndjson", "--window", "20"]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        assert_same_records(
            ndjson(&output),
            &expected,
            &format!("{vendor} --since/--until"),
        );
    }
}

#[tokio::test]
async fn session_filter_through_the_sandbox_returns_that_sessions_leads() {
    let sandbox = start(SandboxOptions {
        leads: 40,
        seed: SEED,
        ..Default::default()
    })
    .await;
    for vendor in [Vendor::Neoagent, Vendor::Robofy] {
        // Leads 6 and 7 were captured in the same session.
        let leads: Vec<GeneratedLead> = (6..8)
            .map(|i| data::lead(crate::common::sim(vendor), SEED, i, 40))
            .collect();
        let session = leads[0].session_id.clone().expect("a session");
        assert_eq!(leads[1].session_id.as_deref(), Some(session.as_str()));
        let expected: Vec<Value> = leads
            .iter()
            .map(|l| {
                let mut want = expected_lead(vendor, l);
                // Robofy rows carry no session id: the filter supplies it.
                want["session_id"] = json!(session);
                want
            })
            .collect();
        let mut cmd = pull(&sandbox, vendor);
        cmd.args(["--session", &session, "--format", "ndjson"]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        assert_same_records(ndjson(&output), &expected, &format!("{vendor} --session"));
    }
}

// ------------------------------------------------------------------ fault knobs

#[tokio::test]
async fn every_nth_request_503_is_retried_and_every_vendor_still_writes_each_lead_once() {
    let total = 260;
    let sandbox = start(SandboxOptions {
        leads: total,
        conversations: 30,
        seed: SEED,
        fail_every: Some(3),
        ..Default::default()
    })
    .await;
    // Sequential requests, so every third one failing is deterministic:
    // never the same request twice in a row.
    for &vendor in Vendor::all() {
        let before = sandbox.stats().requests;
        let mut cmd = pull(&sandbox, vendor);
        cmd.args(["--format", "ndjson", "--concurrency", "1"]);
        let pages = match vendor {
            // 20 a page: 13 full pages and an empty one.
            Vendor::Chatbase => {
                cmd.args(["--page-size", "20"]);
                14
            }
            Vendor::Chatzuri => {
                cmd.args(["--page-size", "20"]);
                14
            }
            // Six 30-day windows over the sandbox's half year.
            Vendor::Neoagent => {
                cmd.args(["--since", "2025-01-01", "--until", "2025-06-30"]);
                6
            }
            Vendor::Robofy => 3,
        };
        let output = run(cmd).await;
        assert_exit(&output, 0);
        assert_same_records(
            ndjson(&output),
            &expected_leads(vendor, SEED, total),
            &format!("{vendor} under --fail-every 3"),
        );
        let requests = sandbox.stats().requests - before;
        assert!(
            requests >= pages + pages / 3,
            "{vendor}: {requests} requests for {pages} pages: the 503s did not happen"
        );
    }

    // Conversations too: the Robofy inbox listing and every session's messages.
    let mut cmd = export(&sandbox, Vendor::Robofy, "conversations");
    cmd.args(["--format", "ndjson", "--concurrency", "1"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_same_records(
        ndjson(&output),
        &expected_conversations(Vendor::Robofy, SEED, 30),
        "robofy conversations under --fail-every 3",
    );
}

#[tokio::test]
async fn rate_limit_429_with_retry_after_is_waited_out_and_the_output_is_complete() {
    // Five sequential requests fit in at most two one-second windows of two
    // requests each, so at least one 429 is certain.
    let total = 45;
    let sandbox = start(SandboxOptions {
        leads: total,
        seed: SEED,
        rate_limit: Some(2),
        ..Default::default()
    })
    .await;
    let mut cmd = pull(&sandbox, Vendor::Chatzuri);
    cmd.args([
        "--format",
        "ndjson",
        "--page-size",
        "10",
        "--concurrency",
        "1",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_same_records(
        ndjson(&output),
        &expected_leads(Vendor::Chatzuri, SEED, total),
        "chatzuri under --rate-limit 2",
    );
    let requests = sandbox.stats().requests;
    assert!(
        requests > 5,
        "{requests} requests for 5 pages: no 429 was answered"
    );
}

#[tokio::test]
async fn latency_delays_every_response_and_the_output_is_complete() {
    let latency = Duration::from_millis(40);
    let sandbox = start(SandboxOptions {
        leads: LEADS,
        seed: SEED,
        latency,
        ..Default::default()
    })
    .await;
    let mut cmd = pull(&sandbox, Vendor::Chatzuri);
    cmd.args(["--format", "ndjson", "--concurrency", "1"]);
    let started = Instant::now();
    let output = run(cmd).await;
    let elapsed = started.elapsed();
    assert_exit(&output, 0);
    assert_same_records(
        ndjson(&output),
        &expected_leads(Vendor::Chatzuri, SEED, LEADS),
        "chatzuri with latency",
    );
    // Three sequential pages, each answered after the latency: a loose
    // lower bound only.
    assert_eq!(sandbox.stats().requests, 3);
    assert!(
        elapsed >= latency * 3,
        "{elapsed:?} for 3 pages at {latency:?}"
    );
}

// ------------------------------------------------------------------ --sandbox

#[tokio::test]
async fn readme_first_command_pull_sandbox_prints_valid_json_with_every_default_lead() {
    let defaults = SandboxOptions::default();
    for &vendor in Vendor::all() {
        let mut cmd = leads();
        cmd.args([
            "pull",
            "--vendor",
            vendor.as_str(),
            "--agent",
            DEMO_AGENT,
            "--sandbox",
        ]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        sandbox_keys_absent(&output);
        assert_same_records(
            json_records(&output),
            &expected_leads(vendor, defaults.seed, defaults.leads),
            &format!("pull --vendor {vendor} --sandbox"),
        );
    }
}

#[tokio::test]
async fn conversations_sandbox_prints_every_default_conversation_for_every_vendor() {
    let defaults = SandboxOptions::default();
    for &vendor in Vendor::all() {
        let mut cmd = leads();
        cmd.args(["conversations", "--vendor", vendor.as_str()])
            .args(["--agent", DEMO_AGENT, "--sandbox"]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        sandbox_keys_absent(&output);
        assert_same_records(
            json_records(&output),
            &expected_conversations(vendor, defaults.seed, defaults.conversations),
            &format!("conversations --vendor {vendor} --sandbox"),
        );
    }
}

// ------------------------------------------------------------------ leads sandbox

/// Kills the child on drop, so a failing assertion leaves no server behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (vendor display name, base URL, key) for each vendor section printed by
/// `leads sandbox`.
fn parse_describe(lines: &[String]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut current: Option<(String, Option<String>)> = None;
    for line in lines {
        let trimmed = line.trim();
        if let Some(vendor) = Vendor::all().iter().find(|v| trimmed == v.display_name()) {
            current = Some((vendor.display_name().to_owned(), None));
        } else if let Some(url) = trimmed.strip_prefix("base URL") {
            if let Some((_, base)) = current.as_mut() {
                *base = Some(url.trim().to_owned());
            }
        } else if let Some(rest) = trimmed.strip_prefix("key")
            && let Some((name, Some(base))) = current.take()
        {
            let key = rest.split_whitespace().next().unwrap_or_default();
            found.push((name, base, key.to_owned()));
        }
    }
    found
}

#[test]
fn leads_sandbox_prints_base_urls_and_keys_and_serves_a_pull() {
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_leads"))
        .args(["sandbox", "--port", "0", "--leads", "30", "--seed", "9"])
        .env_clear()
        .env("LEADS_RETRY_BASE_MS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Child)
        .expect("leads sandbox starts");
    let out = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while parse_describe(&lines).len() < Vendor::all().len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!(
                "no base URLs and keys on stdout; got:\n{}",
                lines.join("\n")
            ),
        }
    }
    let described = parse_describe(&lines);
    for &vendor in Vendor::all() {
        let (_, base, key) = described
            .iter()
            .find(|(name, _, _)| name == vendor.display_name())
            .unwrap_or_else(|| panic!("{vendor} missing from:\n{}", lines.join("\n")));
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        assert!(
            !base.starts_with("http://127.0.0.1:0/"),
            "a real port: {base}"
        );
        assert_eq!(
            key,
            crate::common::sandbox_key(vendor),
            "{vendor} key as printed"
        );
    }

    let (_, base, key) = described
        .iter()
        .find(|(name, _, _)| name == "Chatzuri")
        .expect("Chatzuri is described");
    let mut cmd = leads();
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", DEMO_AGENT])
        .args(["--base-url", base, "--format", "ndjson"])
        .env("CHATZURI_API_KEY", key);
    let output = cmd.output().expect("the binary runs");
    assert_exit(&output, 0);
    assert_same_records(
        ndjson(&output),
        &expected_leads(Vendor::Chatzuri, 9, 30),
        "pull against leads sandbox",
    );
    drop(child);
}
