//! The Singer tap (SPEC section 12, issue 12): `tap-leads --discover`,
//! `--about`, and syncs against the sandbox on loopback, checked message by
//! message and, with a real Singer target (`target-jsonl` from PyPI in a
//! virtualenv made by `scripts/singer-venv.sh`), row by row: what the target
//! loads equals what `leads pull` / `leads conversations` write for the same
//! sandbox, and a run from the emitted state loads only what is new.
//!
//! The target tests need `LEADS_TEST_VENV` (the virtualenv's path); without
//! it they say so and do nothing, unless `CI` is set, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};

use chrono::{DateTime, Utc};
use leads::model::Vendor;
use leads::sandbox::{DEMO_AGENT, DEMO_PROJECT, Sandbox, SandboxOptions};
use serde_json::{Value, json};

use crate::common::{
    assert_exit, assert_no_secret_in, leads, ndjson, run, sandbox_key, sandbox_url, stderr, stdout,
    tap_leads,
};

const SEED: u64 = 7_120_012;
const LEADS: usize = 230;
const CONVERSATIONS: usize = 12;

async fn start() -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: SEED,
        leads: LEADS,
        conversations: CONVERSATIONS,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts")
}

/// The flat config of one vendor's demo agent on `sandbox`, key inline.
fn source_config(sandbox: &Sandbox, vendor: Vendor) -> Value {
    let mut config = json!({
        "vendor": vendor.as_str(),
        "agent": DEMO_AGENT,
        "base_url": sandbox_url(sandbox, vendor),
        "api_key": sandbox_key(vendor),
    });
    if vendor == Vendor::Robofy {
        config["project"] = json!(DEMO_PROJECT);
    }
    config
}

fn write_private(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// The Singer messages of a run's stdout, every line checked to be one.
fn messages(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| {
            let message: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            let kind = message["type"].as_str().expect("a message has a type");
            assert!(
                ["SCHEMA", "RECORD", "STATE"].contains(&kind),
                "unexpected message {kind}"
            );
            message
        })
        .collect()
}

fn records<'a>(messages: &'a [Value], stream: &str) -> Vec<&'a Value> {
    messages
        .iter()
        .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
        .map(|m| &m["record"])
        .collect()
}

fn last_state(messages: &[Value]) -> Value {
    messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .map(|m| m["value"].clone())
        .expect("a STATE message")
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(|t| {
        DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .with_timezone(&Utc)
    })
}

/// The newest `created_at` among `records` and the ids that have it.
fn newest(records: &[&Value]) -> (DateTime<Utc>, Vec<String>) {
    let max = records
        .iter()
        .filter_map(|r| time(&r["created_at"]))
        .max()
        .expect("records with times");
    let ids = records
        .iter()
        .filter(|r| time(&r["created_at"]) == Some(max))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    (max, ids)
}

/// Checks the Singer order: each stream's SCHEMA before its first RECORD,
/// and every STATE's bookmark no later than the records sent before it.
fn assert_singer_order(messages: &[Value]) {
    let mut schemas = std::collections::HashSet::new();
    let mut newest_sent: std::collections::HashMap<String, DateTime<Utc>> = Default::default();
    for message in messages {
        let stream = message["stream"].as_str().unwrap_or_default().to_owned();
        match message["type"].as_str().unwrap() {
            "SCHEMA" => {
                schemas.insert(stream);
            }
            "RECORD" => {
                assert!(
                    schemas.contains(&stream),
                    "RECORD of {stream} before its SCHEMA"
                );
                assert!(message["time_extracted"].is_string());
                let record = &message["record"];
                let key = format!(
                    "{}/{}",
                    record["vendor"].as_str().unwrap(),
                    record["agent_id"].as_str().unwrap()
                );
                // A message's bookmark is its conversation's time, which
                // the message record does not carry: it only has to follow
                // some message of that source.
                let t = if stream == "messages" {
                    Some(DateTime::<Utc>::MAX_UTC)
                } else {
                    time(&record["created_at"])
                };
                if let Some(t) = t {
                    let entry = newest_sent.entry(format!("{stream} {key}")).or_insert(t);
                    *entry = (*entry).max(t);
                }
            }
            _ => {
                for (stream, sources) in message["value"]["bookmarks"].as_object().unwrap() {
                    for (key, mark) in sources.as_object().unwrap() {
                        let mark = time(&mark["created_at"]).unwrap();
                        let sent = newest_sent.get(&format!("{stream} {key}"));
                        assert!(
                            sent.is_some_and(|sent| mark <= *sent),
                            "STATE bookmark {stream} {key} {mark} is ahead of what was sent ({sent:?})"
                        );
                    }
                }
            }
        }
    }
}

async fn tap_run(config: &Path, extra: &[&str]) -> Output {
    let mut cmd = tap_leads();
    cmd.arg("--config").arg(config).args(extra);
    run(cmd).await
}

/// What `leads pull`/`conversations` writes for the vendor's demo agent.
async fn exported(sandbox: &Sandbox, vendor: Vendor, command: &str) -> Vec<Value> {
    let mut cmd = leads();
    cmd.args([command, "--vendor", vendor.as_str(), "--agent", DEMO_AGENT])
        .args([
            "--format",
            "ndjson",
            "--base-url",
            &sandbox_url(sandbox, vendor),
        ])
        .env(vendor.key_env(), sandbox_key(vendor));
    if vendor == Vendor::Robofy && command == "pull" {
        cmd.args(["--project", DEMO_PROJECT]);
    }
    let output = run(cmd).await;
    assert_exit(&output, 0);
    ndjson(&output)
}

/// A catalog from `--discover` with every stream selected.
async fn catalog_selecting_all(dir: &Path) -> PathBuf {
    let mut cmd = tap_leads();
    cmd.arg("--discover");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let mut catalog: Value = serde_json::from_str(&stdout(&output)).unwrap();
    for stream in catalog["streams"].as_array_mut().unwrap() {
        stream["metadata"][0]["metadata"]["selected"] = json!(true);
    }
    write_private(dir, "catalog.json", &catalog)
}

fn sandbox_key_absent(output: &Output) {
    for &vendor in Vendor::all() {
        assert_no_secret_in("tap stdout", &output.stdout, sandbox_key(vendor));
        assert_no_secret_in("tap stderr", &output.stderr, sandbox_key(vendor));
    }
}

// ------------------------------------------------------------------ discover, about

#[tokio::test]
async fn discover_prints_the_three_streams_with_their_keys_replication_and_metadata() {
    let mut cmd = tap_leads();
    cmd.arg("--discover");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let catalog: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let streams = catalog["streams"].as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["tap_stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["leads", "conversations", "messages"]);
    for stream in streams {
        let name = stream["stream"].as_str().unwrap();
        let keys = if name == "messages" {
            json!(["vendor", "agent_id", "conversation_id", "message_index"])
        } else {
            json!(["vendor", "agent_id", "id"])
        };
        assert_eq!(stream["key_properties"], keys, "{name}");
        let top = &stream["metadata"][0];
        assert_eq!(top["breadcrumb"], json!([]));
        let meta = &top["metadata"];
        assert_eq!(meta["table-key-properties"], keys);
        assert_eq!(meta["valid-replication-keys"], json!(["created_at"]));
        assert_eq!(meta["forced-replication-method"], "INCREMENTAL");
        assert_eq!(meta["inclusion"], "available");
        assert_eq!(meta["selected-by-default"], json!(name == "leads"));
        // The stream's schema is `leads schema`'s (less `raw`, never emitted).
        let mut cmd = leads();
        cmd.args(["schema", name]);
        let printed = run(cmd).await;
        let mut printed: Value = serde_json::from_str(&stdout(&printed)).unwrap();
        printed["properties"].as_object_mut().unwrap().remove("raw");
        assert_eq!(stream["schema"], printed, "{name}");
        for key in keys.as_array().unwrap() {
            let crumb = stream["metadata"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["breadcrumb"] == json!(["properties", key]))
                .unwrap_or_else(|| panic!("{name}: no metadata for {key}"));
            assert_eq!(crumb["metadata"]["inclusion"], "automatic");
        }
    }
}

#[tokio::test]
async fn about_lists_the_capabilities_and_marks_the_key_secret() {
    for args in [&["--about"][..], &["--about", "--format", "json"]] {
        let mut cmd = tap_leads();
        cmd.args(args);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        let about: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(about["name"], "tap-leads");
        assert_eq!(about["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            about["capabilities"],
            json!(["catalog", "discover", "state", "about"])
        );
        let settings = about["settings"].as_array().unwrap();
        let key = settings.iter().find(|s| s["name"] == "api_key").unwrap();
        assert_eq!(key["secret"], json!(true));
        assert_eq!(key["kind"], "password");
        for name in [
            "vendor",
            "agent",
            "start_date",
            "sources",
            "api_key_env",
            "api_key_file",
            "concurrency",
        ] {
            assert!(settings.iter().any(|s| s["name"] == name), "{name}");
        }
    }
    // `leads tap` is the same code.
    let mut cmd = leads();
    cmd.args(["tap", "--about"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&output)).unwrap()["name"],
        "tap-leads"
    );
}

// ------------------------------------------------------------------ sync, message level

#[tokio::test]
async fn a_sync_of_every_vendor_emits_what_pull_writes_with_schema_first_and_state_last() {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    for &vendor in Vendor::all() {
        let config = write_private(dir.path(), "config.json", &source_config(&sandbox, vendor));
        let output = tap_run(&config, &[]).await;
        assert_exit(&output, 0);
        sandbox_key_absent(&output);
        let messages = messages(&output);
        assert_singer_order(&messages);
        assert_eq!(messages[0]["type"], "SCHEMA", "{vendor}");
        assert_eq!(messages.last().unwrap()["type"], "STATE", "{vendor}");
        // Without a catalog: leads only.
        assert!(
            messages
                .iter()
                .all(|m| m["stream"].is_null() || m["stream"] == "leads")
        );
        let records: Vec<&Value> = records(&messages, "leads");
        let expected = exported(&sandbox, vendor, "pull").await;
        assert_eq!(expected.len(), LEADS, "{vendor}: the sandbox's leads");
        assert_eq!(records.len(), expected.len(), "{vendor}");
        for (got, want) in records.iter().zip(&expected) {
            assert_eq!(*got, want, "{vendor}");
        }
        let (at, ids) = newest(&records);
        let state = last_state(&messages);
        let mark = &state["bookmarks"]["leads"][format!("{vendor}/{DEMO_AGENT}")];
        assert_eq!(time(&mark["created_at"]), Some(at), "{vendor}: {state}");
        assert_eq!(mark["ids"], json!(ids), "{vendor}");
    }
}

#[tokio::test]
async fn a_catalog_selects_streams_and_properties_and_messages_are_one_record_each() {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tap_leads();
    cmd.arg("--discover");
    let mut catalog: Value = serde_json::from_str(&stdout(&run(cmd).await)).unwrap();
    // What Meltano writes for `select: [conversations.customer, messages.*]`.
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["stream"].as_str().unwrap().to_owned();
        for item in stream["metadata"].as_array_mut().unwrap() {
            let crumb = item["breadcrumb"].clone();
            let selected = match (name.as_str(), crumb.as_array().unwrap().len()) {
                ("leads", _) => false,
                ("conversations", 0) => true,
                ("conversations", _) => crumb[1] == "customer",
                _ => true,
            };
            item["metadata"]["selected"] = json!(selected);
        }
    }
    let catalog_path = write_private(dir.path(), "catalog.json", &catalog);
    for &vendor in Vendor::all() {
        let config = write_private(dir.path(), "config.json", &source_config(&sandbox, vendor));
        for flag in ["--catalog", "--properties"] {
            let output = tap_run(&config, &[flag, catalog_path.to_str().unwrap()]).await;
            assert_exit(&output, 0);
            let messages = messages(&output);
            assert_singer_order(&messages);
            assert!(
                records(&messages, "leads").is_empty(),
                "{vendor}: leads not selected"
            );
            let expected = exported(&sandbox, vendor, "conversations").await;
            let conversations = records(&messages, "conversations");
            assert_eq!(conversations.len(), expected.len(), "{vendor}");
            for (got, want) in conversations.iter().zip(&expected) {
                let mut keys: Vec<&str> = got
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                keys.sort();
                assert_eq!(
                    keys,
                    ["agent_id", "created_at", "customer", "id", "vendor"],
                    "{vendor}"
                );
                for key in keys {
                    assert_eq!(got[key], want[key], "{vendor} {key}");
                }
            }
            let messages_expected: Vec<Value> = expected
                .iter()
                .flat_map(|c| {
                    c["messages"].as_array().unwrap().iter().enumerate().map(move |(i, m)| {
                        json!({
                            "vendor": c["vendor"], "agent_id": c["agent_id"],
                            "conversation_id": c["id"], "message_index": i,
                            "role": m["role"], "content": m["content"], "created_at": m["created_at"],
                        })
                    })
                })
                .collect();
            assert!(!messages_expected.is_empty());
            let got: Vec<Value> = records(&messages, "messages")
                .into_iter()
                .cloned()
                .collect();
            assert_eq!(got, messages_expected, "{vendor}");
            let state = last_state(&messages);
            let key = format!("{vendor}/{DEMO_AGENT}");
            assert_eq!(
                state["bookmarks"]["conversations"][&key], state["bookmarks"]["messages"][&key],
                "{vendor}: both streams of one export share the bookmark"
            );
        }
    }
}

#[tokio::test]
async fn a_run_from_the_emitted_state_emits_only_records_after_the_bookmark() {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    for &vendor in Vendor::all() {
        let config = write_private(dir.path(), "config.json", &source_config(&sandbox, vendor));
        let first = messages(&tap_run(&config, &[]).await);
        let all: Vec<&Value> = records(&first, "leads");
        let state = last_state(&first);
        let state_path = write_private(dir.path(), "state.json", &state);
        let output = tap_run(&config, &["--state", state_path.to_str().unwrap()]).await;
        assert_exit(&output, 0);
        let second = messages(&output);
        assert!(
            records(&second, "leads").is_empty(),
            "{vendor}: nothing is new"
        );
        assert_eq!(last_state(&second), state, "{vendor}: the bookmark stays");

        // As if the first run had ended at the median record.
        let mut by_time: Vec<&Value> = all.clone();
        by_time.sort_by_key(|r| time(&r["created_at"]));
        let middle = by_time[by_time.len() / 2];
        let (at, id) = (
            time(&middle["created_at"]).unwrap(),
            middle["id"].as_str().unwrap(),
        );
        let mut rewound = state.clone();
        rewound["bookmarks"]["leads"][format!("{vendor}/{DEMO_AGENT}")] =
            json!({"created_at": middle["created_at"], "ids": [id]});
        let state_path = write_private(dir.path(), "state.json", &rewound);
        let output = tap_run(&config, &["--state", state_path.to_str().unwrap()]).await;
        assert_exit(&output, 0);
        let third = messages(&output);
        let expected: Vec<&Value> = all
            .iter()
            .copied()
            .filter(|r| match time(&r["created_at"]) {
                Some(t) => t > at || (t == at && r["id"] != id),
                None => true,
            })
            .collect();
        assert!(!expected.is_empty() && expected.len() < all.len());
        assert_eq!(records(&third, "leads"), expected, "{vendor}");
        assert_eq!(
            last_state(&third),
            state,
            "{vendor}: back where the first run ended"
        );
    }
}

#[tokio::test]
async fn a_failing_source_stops_the_sync_with_its_exit_code_after_the_state_of_the_sources_before_it()
 {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut good = source_config(&sandbox, Vendor::Chatzuri);
    good["name"] = json!("website");
    let mut refused = source_config(&sandbox, Vendor::Neoagent);
    refused["name"] = json!("shop");
    refused["api_key"] = json!("na-wrong-key-1234567890abcdef");
    let mut missing = source_config(&sandbox, Vendor::Chatzuri);
    missing["name"] = json!("gone");
    missing["agent"] = json!("nobody");
    for (second, code) in [(refused, 3), (missing, 4)] {
        let config = write_private(
            dir.path(),
            "config.json",
            &json!({"sources": [good.clone(), second]}),
        );
        let output = tap_run(&config, &[]).await;
        assert_exit(&output, code);
        assert_no_secret_in("stdout", &output.stdout, "na-wrong-key-1234567890abcdef");
        assert_no_secret_in("stderr", &output.stderr, "na-wrong-key-1234567890abcdef");
        let messages = messages(&output);
        assert_singer_order(&messages);
        assert_eq!(records(&messages, "leads").len(), LEADS);
        let state = last_state(&messages);
        let bookmarks = state["bookmarks"]["leads"].as_object().unwrap();
        assert_eq!(bookmarks.keys().collect::<Vec<_>>(), ["chatzuri/demo"]);
        let err = stderr(&output);
        assert!(
            err.lines().any(|l| l.starts_with("leads: error: ")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn bad_configs_and_states_are_one_line_errors_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(Value, i32, &str); 6] = [
        (json!({"vendor": "chatzuri"}), 2, "agent is required"),
        (json!({"vendor": "acme", "agent": "a"}), 2, "acme"),
        (
            json!({"vendor": "chatzuri", "agent": "a", "api_key": "k", "base_url": "http://example.com"}),
            2,
            "http://",
        ),
        (
            json!({"vendor": "robofy", "agent": "bot", "api_key": "k"}),
            2,
            "project",
        ),
        (
            json!({"vendor": "chatzuri", "agent": "a"}),
            2,
            "CHATZURI_API_KEY",
        ),
        (
            json!({"vendor": "chatzuri", "agent": "a", "api_key": "k", "retries": -1}),
            2,
            "retries",
        ),
    ];
    for (config, code, needle) in cases {
        let path = write_private(dir.path(), "config.json", &config);
        let output = tap_run(&path, &[]).await;
        assert_exit(&output, code);
        assert!(stdout(&output).is_empty(), "{config}");
        let err = stderr(&output);
        assert!(err.starts_with("leads: error: "), "{config}: {err}");
        assert!(err.contains(needle), "{config}: {err}");
    }
    // A sync needs a config; a state that is not a state is exit 7.
    let output = run(tap_leads()).await;
    assert_exit(&output, 2);
    let config = write_private(
        dir.path(),
        "config.json",
        &json!({"vendor": "chatzuri", "agent": "a", "sandbox": true}),
    );
    let state = dir.path().join("state.json");
    std::fs::write(
        &state,
        r#"{"bookmarks": {"leads": {"chatzuri/a": {"created_at": "later"}}}}"#,
    )
    .unwrap();
    let output = tap_run(&config, &["--state", state.to_str().unwrap()]).await;
    assert_exit(&output, 7);
    assert!(stdout(&output).is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn a_config_with_a_key_readable_by_others_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_private(
        dir.path(),
        "config.json",
        &source_config(&sandbox, Vendor::Chatzuri),
    );
    let output = tap_run(&config, &[]).await;
    assert_exit(&output, 0);
    assert!(!stderr(&output).contains("readable"), "{}", stderr(&output));
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = tap_run(&config, &[]).await;
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("readable by group or others"),
        "{}",
        stderr(&output)
    );
    sandbox_key_absent(&output);
}

// ------------------------------------------------------------------ a real Singer target

/// The virtualenv with `target-jsonl`, or `None` (and a note) when this
/// run was not given one. In CI it must be there.
fn venv() -> Option<PathBuf> {
    match std::env::var_os("LEADS_TEST_VENV") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.join("bin/target-jsonl").is_file(),
                "LEADS_TEST_VENV={} has no bin/target-jsonl: run scripts/singer-venv.sh",
                path.display()
            );
            Some(path)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI expects LEADS_TEST_VENV (the virtualenv from scripts/singer-venv.sh)")
        }
        None => {
            eprintln!(
                "SKIPPED: no LEADS_TEST_VENV; run scripts/test-singer.sh to test against a real Singer target"
            );
            None
        }
    }
}

/// `tap-leads ARGS | target-jsonl`, in `out`; returns the rows loaded per
/// stream and the last state the target emitted.
fn pipe_into_target(
    venv: &Path,
    out: &Path,
    tap_args: &[&str],
) -> (std::collections::BTreeMap<String, Vec<Value>>, Value) {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let target_config = out.join("target.json");
    std::fs::write(
        &target_config,
        json!({"destination_path": out.join("rows"), "do_timestamp_file": false}).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(out.join("rows")).unwrap();
    let tap_path = assert_cmd::cargo::cargo_bin("tap-leads");
    let mut tap = StdCommand::new(tap_path)
        .args(tap_args)
        .env("LEADS_RETRY_BASE_MS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let target = StdCommand::new(venv.join("bin/target-jsonl"))
        .arg("--config")
        .arg(&target_config)
        .stdin(tap.stdout.take().unwrap())
        .output()
        .unwrap();
    let tap = tap.wait_with_output().unwrap();
    assert!(
        tap.status.success(),
        "tap: {}",
        String::from_utf8_lossy(&tap.stderr)
    );
    assert!(
        target.status.success(),
        "target-jsonl: {}",
        String::from_utf8_lossy(&target.stderr)
    );
    let state = String::from_utf8_lossy(&target.stdout)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the target emits state as JSON"))
        .unwrap_or(Value::Null);
    let mut rows = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(out.join("rows")).unwrap() {
        let path = entry.unwrap().path();
        let stream = path.file_stem().unwrap().to_string_lossy().into_owned();
        let loaded: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.insert(stream, loaded);
    }
    (rows, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_jsonl_loads_every_vendors_records_and_a_second_run_from_its_state_loads_only_new_ones()
 {
    let Some(venv) = venv() else { return };
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_selecting_all(dir.path()).await;
    for &vendor in Vendor::all() {
        let config = write_private(dir.path(), "config.json", &source_config(&sandbox, vendor));
        let (config_s, catalog_s) = (
            config.to_str().unwrap().to_owned(),
            catalog.to_str().unwrap().to_owned(),
        );
        let out = dir.path().join(vendor.as_str());
        let args = [
            "--config",
            config_s.as_str(),
            "--catalog",
            catalog_s.as_str(),
        ];
        let (rows, state) = {
            let (venv, out) = (venv.clone(), out.clone());
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                pipe_into_target(&venv, &out, &args)
            })
            .await
            .unwrap()
        };
        let leads = exported(&sandbox, vendor, "pull").await;
        let conversations = exported(&sandbox, vendor, "conversations").await;
        assert_eq!(
            rows["leads"], leads,
            "{vendor}: the rows loaded are the sandbox's leads"
        );
        assert_eq!(rows["conversations"], conversations, "{vendor}");
        let messages: usize = conversations
            .iter()
            .map(|c| c["messages"].as_array().unwrap().len())
            .sum();
        assert_eq!(rows["messages"].len(), messages, "{vendor}");
        let key = format!("{vendor}/{DEMO_AGENT}");
        assert!(
            state["bookmarks"]["leads"][&key]["created_at"].is_string(),
            "{vendor}: {state}"
        );

        // From the state the target emitted, rewound for leads to the
        // median lead: only the leads after it are loaded again.
        let mut by_time: Vec<&Value> = leads.iter().collect();
        by_time.sort_by_key(|r| time(&r["created_at"]));
        let middle = by_time[by_time.len() / 2];
        let at = time(&middle["created_at"]).unwrap();
        let mut rewound = state.clone();
        rewound["bookmarks"]["leads"][&key] =
            json!({"created_at": middle["created_at"], "ids": [middle["id"]]});
        let state_path = write_private(dir.path(), "state.json", &rewound);
        let state_s = state_path.to_str().unwrap().to_owned();
        let (rows, second_state) = {
            let (venv, out) = (venv.clone(), out.clone());
            let args: Vec<String> = [&args[..], &["--state", state_s.as_str()]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                pipe_into_target(&venv, &out, &args)
            })
            .await
            .unwrap()
        };
        let newer: Vec<Value> = leads
            .iter()
            .filter(|r| {
                time(&r["created_at"])
                    .is_none_or(|t| t > at || (t == at && r["id"] != middle["id"]))
            })
            .cloned()
            .collect();
        assert!(!newer.is_empty() && newer.len() < leads.len());
        assert_eq!(
            rows.get("leads").cloned().unwrap_or_default(),
            newer,
            "{vendor}: only the new leads"
        );
        assert!(
            rows.get("conversations").is_none_or(Vec::is_empty),
            "{vendor}: no conversation is new"
        );
        assert_eq!(
            second_state, state,
            "{vendor}: the state ends where the first run's did"
        );
    }
}

#[test]
fn the_example_meltano_project_declares_the_tap_as_a_custom_extractor() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/meltano/meltano.yml"
    ))
    .expect("examples/meltano/meltano.yml exists");
    for needle in [
        "name: tap-leads",
        "namespace: tap_leads",
        "executable: tap-leads",
        "- catalog",
        "- discover",
        "- state",
        "kind: password",
        "name: target-jsonl",
    ] {
        assert!(text.contains(needle), "meltano.yml lacks {needle:?}");
    }
}
