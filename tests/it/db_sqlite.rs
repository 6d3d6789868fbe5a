//! SQLite outputs (issue 11, SPEC section 11), against real database files:
//! the binary runs against an in-process sandbox (or wiremock, where the
//! test must see the requests), and the tables are read back with rusqlite
//! and compared with the NDJSON export of the same data.

use std::collections::BTreeMap;
use std::path::Path;

use leads::model::Vendor;
use leads::sandbox::SandboxOptions;
use rusqlite::Connection;
use serde_json::Value;

use crate::common::db::*;
use crate::common::*;

const LEAD_ROW: &str = "json_object('id', id, 'vendor', vendor, 'agent_id', agent_id, 'kind', kind, \
    'created_at', created_at, 'name', name, 'email', email, 'phone', phone, 'source', source, \
    'page_url', page_url, 'ip_address', ip_address, 'session_id', session_id, 'message', message, \
    'fields', json(fields), 'raw', json(raw))";

const CONVERSATION_ROW: &str = "json_object('id', c.id, 'vendor', c.vendor, 'agent_id', c.agent_id, \
    'created_at', c.created_at, 'source', c.source, 'customer', c.customer, 'session_id', c.session_id, \
    'page_url', c.page_url, 'messages', json((SELECT json_group_array(json_object('role', role, 'content', content, 'created_at', created_at)) \
    FROM (SELECT * FROM messages m WHERE m.vendor = c.vendor AND m.agent_id = c.agent_id AND m.conversation_id = c.id ORDER BY message_index))), \
    'fields', json(c.fields), 'raw', json(c.raw))";

/// The rows of a table as records, by key, normalised like the oracle.
fn table(path: &Path, conversations: bool) -> BTreeMap<String, Value> {
    let conn = Connection::open(path).unwrap();
    let sql = if conversations {
        format!("SELECT {CONVERSATION_ROW} FROM conversations c")
    } else {
        format!("SELECT {LEAD_ROW} FROM leads")
    };
    let mut statement = conn.prepare(&sql).unwrap();
    let rows: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.into_iter()
        .map(|text| {
            let record: Value = serde_json::from_str(&text).unwrap();
            (record_key(&record), normalise(record))
        })
        .collect()
}

/// Every row of every table, first and last seen included: what "nothing
/// changed" compares.
fn dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let mut statement = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1, 2, 3"))
            .or_else(|_| conn.prepare(&format!("SELECT * FROM \"{name}\"")))
            .unwrap();
        let width = statement.column_count();
        let rows: Vec<String> = statement
            .query_map([], |row| {
                let cells: Vec<String> = (0..width)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{name}: {}", cells.join(" | ")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.extend(rows);
    }
    out
}

fn seen_times(path: &Path, key: &str) -> (String, String) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT first_seen_at, last_seen_at FROM leads WHERE vendor || '/' || agent_id || '/' || id = ?1",
        [key],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

#[tokio::test]
async fn first_run_inserts_all_and_a_second_run_inserts_the_new_and_updates_the_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let first = start_sandbox(42, 120, 0).await;
    let expected_first = expected_records(&first, Vendor::Chatzuri, false).await;
    assert_eq!(expected_first.len(), 120);

    let mut cmd = export(&first, Vendor::Chatzuri, false);
    cmd.arg("-o").arg(&db).arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "", "stdout carries no data for a database");
    assert_eq!(counts(&output), (120, 0, 0));
    assert_eq!(table(&db, false), expected_first);
    let some_key = expected_first.keys().next().unwrap().clone();
    let (first_seen, last_seen) = seen_times(&db, &some_key);
    assert_eq!(first_seen, "2025-07-01T00:00:00.000000Z");
    assert_eq!(last_seen, first_seen);

    // The same data again: nothing new, nothing changed, last_seen_at moves.
    let mut cmd = export(&first, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN).arg("-o").arg(&db).arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(counts(&output), (0, 0, 120));
    assert_eq!(table(&db, false), expected_first);
    assert_eq!(
        seen_times(&db, &some_key),
        (first_seen.clone(), "2025-07-02T00:00:00.000000Z".to_owned())
    );

    // Another seed keeps the ids but changes names, emails and times; 30
    // more leads are new.
    let second = start_sandbox(43, 150, 0).await;
    let expected_second = expected_records(&second, Vendor::Chatzuri, false).await;
    let changed = expected_first
        .iter()
        .filter(|(k, v)| expected_second.get(*k) != Some(v))
        .count();
    assert_eq!(
        changed, 120,
        "every old lead changed in the second data set"
    );
    let mut cmd = export(&second, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN).arg("-o").arg(&db).arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(counts(&output), (30, 120, 0));
    assert_eq!(table(&db, false), expected_second);
    assert_eq!(
        seen_times(&db, &some_key).0,
        first_seen,
        "first_seen_at is kept"
    );
}

#[tokio::test]
async fn conversations_upsert_and_their_messages_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chats.sqlite3");
    // NeoAgent conversation ids (session ids) do not depend on the seed:
    // the second NeoAgent run updates the same conversations with other
    // messages.
    let mut message_counts = Vec::new();
    for (seed, vendor) in [
        (42, Vendor::Neoagent),
        (42, Vendor::Robofy),
        (7, Vendor::Neoagent),
    ] {
        let sandbox = start_sandbox(seed, 10, 12).await;
        let expected = expected_records(&sandbox, vendor, true).await;
        if vendor == Vendor::Neoagent {
            message_counts.push(
                expected
                    .values()
                    .map(|c| c["messages"].as_array().unwrap().len())
                    .collect::<Vec<_>>(),
            );
        }
        let mut cmd = export(&sandbox, vendor, true);
        cmd.arg("-o").arg(&db).arg("-v");
        let output = run(cmd).await;
        assert_exit(&output, 0);
        let stored: BTreeMap<String, Value> = table(&db, true)
            .into_iter()
            .filter(|(k, _)| k.starts_with(vendor.as_str()))
            .collect();
        for (key, record) in &expected {
            assert_eq!(stored.get(key), Some(record), "{vendor} seed {seed}: {key}");
        }
        assert_eq!(stored.len(), expected.len(), "{vendor} seed {seed}");
    }
    assert_ne!(
        message_counts[0], message_counts[1],
        "the second data set has other numbers of messages"
    );
    // No message is left over from the first Robofy data set.
    let conn = Connection::open(&db).unwrap();
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c \
             WHERE c.vendor = m.vendor AND c.agent_id = m.agent_id AND c.id = m.conversation_id)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn incremental_starts_a_day_before_the_newest_stored_lead_of_that_agent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let (server, vendor) = ChatzuriLeads::serve(BEFORE).await;
    let mut cmd = ChatzuriLeads::pull(&server, "cz-agent");
    cmd.arg("-o").arg(&db).arg("-v");
    assert_exit(&run(cmd).await, 0);
    assert_eq!(
        vendor.start_dates(),
        [None],
        "a first run asks for everything"
    );
    let (server_other, _) = ChatzuriLeads::serve(&[(9, "2025-03-18T00:00:00Z")]).await;
    let mut cmd = ChatzuriLeads::pull(&server_other, "other-agent");
    cmd.arg("-o").arg(&db);
    assert_exit(&run(cmd).await, 0);

    vendor.set(DURING);
    let mut cmd = ChatzuriLeads::pull(&server, "cz-agent");
    cmd.arg("-o").arg(&db).args(["--incremental", "-v"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(
        vendor.start_dates()[1..],
        [Some("2025-03-09".to_owned())],
        "the newest stored created_at minus one day"
    );
    // What came back is upserted, older leads included: nothing filtered.
    assert_eq!(counts(&output), (1, 0, 3));
    assert_eq!(table(&db, false).len(), 5);
    assert_no_key(&output);
}

/// A database filled by a first run of `leads` Chatzuri leads of seed 42.
async fn filled(
    leads: usize,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    leads::sandbox::Sandbox,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let sandbox = start_sandbox(42, leads, 0).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.arg("-o").arg(&db);
    assert_exit(&run(cmd).await, 0);
    (dir, db, sandbox)
}

#[tokio::test]
async fn a_run_that_fails_on_page_3_leaves_every_row_as_it_was() {
    let (_dir, db, _) = filled(300).await;
    let before = dump(&db);
    let failing = failing_on_request_3().await;
    let mut cmd = one_page_at_a_time(&failing);
    cmd.arg("-o").arg(&db);
    assert_exit(&run(cmd).await, 5);
    assert_eq!(failing.stats().requests, 3, "it failed on page 3");
    assert_eq!(dump(&db), before);
}

#[tokio::test]
async fn ctrl_c_and_sigterm_leave_every_row_as_it_was() {
    let (_dir, db, _) = filled(300).await;
    let before = dump(&db);
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let slow = slow_sandbox().await;
        let mut cmd = export(&slow, Vendor::Chatzuri, false);
        cmd.args(["--concurrency", "1", "-o"]).arg(&db);
        interrupt(cmd, &slow, name, code).await;
        assert_eq!(dump(&db), before, "SIG{name}");
    }
}

#[tokio::test]
async fn two_concurrent_runs_into_one_file_both_succeed_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let sandbox = start_sandbox_with(SandboxOptions {
        leads: 400,
        latency: std::time::Duration::from_millis(40),
        ..SandboxOptions::default()
    })
    .await;
    let mut expected = expected_records(&sandbox, Vendor::Chatzuri, false).await;
    expected.extend(expected_records(&sandbox, Vendor::Neoagent, false).await);
    let runs: Vec<_> = [Vendor::Chatzuri, Vendor::Neoagent, Vendor::Chatzuri]
        .into_iter()
        .map(|vendor| {
            let mut cmd = export(&sandbox, vendor, false);
            cmd.arg("-o").arg(&db);
            spawn(cmd)
        })
        .collect();
    for child in runs {
        assert_exit(&wait(child).await, 0);
    }
    assert_eq!(table(&db, false), expected);
}

#[tokio::test]
async fn a_database_locked_past_the_timeout_is_exit_7_and_nothing_changed() {
    let (_dir, db, sandbox) = filled(50).await;
    let before = dump(&db);

    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN)
        .args(["--lock-timeout", "0.5", "-o"])
        .arg(&db);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("is locked by another run"), "{err}");
    assert!(err.contains("--lock-timeout"), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(dump(&db), before);
}

#[tokio::test]
async fn a_read_only_database_is_exit_7_and_nothing_changed() {
    let (dir, db, sandbox) = filled(50).await;
    let before = dump(&db);
    let bytes = std::fs::read(&db).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();

    // Root writes any file whatever its mode: run as nobody then.
    let cmd = export(&sandbox, Vendor::Chatzuri, false);
    let program = cmd.get_program().to_owned();
    let mut plain = if is_root() {
        let mut plain = std::process::Command::new("setpriv");
        plain.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        plain.arg(program);
        plain
    } else {
        std::process::Command::new(program)
    };
    plain.args(cmd.get_args()).arg("-o").arg(&db);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => plain.env(key, value),
            None => plain.env_remove(key),
        };
    }
    let output = tokio::task::spawn_blocking(move || plain.output().unwrap())
        .await
        .unwrap();
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(dump(&db), before);
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn a_table_of_another_shape_is_exit_7_and_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO leads (email) VALUES ('kept@example.test');",
    )
    .unwrap();
    drop(conn);
    let before = dump(&db);
    let sandbox = start_sandbox(42, 10, 0).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.arg("-o").arg(&db);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("a table leads of another shape"), "{err}");
    assert!(err.contains("column vendor is missing"), "{err}");
    assert_eq!(dump(&db), before, "no table was created either");
    assert_eq!(sandbox.stats().requests, 0, "nothing was fetched");
}

#[tokio::test]
async fn a_newer_schema_version_is_exit_7_and_nothing_changed() {
    let (_dir, db, sandbox) = filled(10).await;
    Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE leads_schema SET version = 2")
        .unwrap();
    let before = dump(&db);
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.arg("-o").arg(&db);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("schema version 2, newer"),
        "{}",
        stderr(&output)
    );
    assert_eq!(dump(&db), before);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_exit_7_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    std::fs::write(&db, b"[{\"not\": \"a database\"}]\n").unwrap();
    let sandbox = start_sandbox(42, 10, 0).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.arg("-o").arg(&db);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("not a SQLite database"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"[{\"not\": \"a database\"}]\n"
    );
}

#[tokio::test]
async fn the_key_never_appears_in_any_column_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    for vendor in [Vendor::Chatzuri, Vendor::Neoagent, Vendor::Robofy] {
        let sandbox = start_sandbox(42, 30, 5).await;
        for conversations in [false, true] {
            let mut cmd = export(&sandbox, vendor, conversations);
            cmd.args(["--raw", "-vv", "-o"]).arg(&db);
            let output = run(cmd).await;
            assert_exit(&output, 0);
            let key = leads::sandbox::key(vendor.as_str()).unwrap();
            assert_no_secret_in("stdout", &output.stdout, key);
            assert_no_secret_in("stderr", &output.stderr, key);
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                assert_no_secret_in(
                    &path.display().to_string(),
                    &std::fs::read(&path).unwrap(),
                    key,
                );
            }
            let table_name = if conversations {
                "conversations"
            } else {
                "leads"
            };
            let with_raw: i64 = Connection::open(&db)
                .unwrap()
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {table_name} WHERE vendor = ?1 AND raw IS NOT NULL"
                    ),
                    [vendor.as_str()],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(with_raw > 0, "--raw is stored");
            let dumped = dump(&db).join("\n");
            assert_no_secret_in("the tables", dumped.as_bytes(), key);
        }
    }
}

#[tokio::test]
async fn usage_errors_of_database_outputs_are_exit_2_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let state = dir.path().join("state.json");
    let out = dir.path().join("leads.ndjson");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "-o".into(),
                out.display().to_string(),
                "--incremental".into(),
            ],
            "--incremental needs a database output",
        ),
        (
            vec![
                "-o".into(),
                db.display().to_string(),
                "--state".into(),
                state.display().to_string(),
            ],
            "--state cannot be combined with a database output",
        ),
        (
            vec!["--format".into(), "sqlite".into()],
            "cannot be written to stdout",
        ),
        (
            vec!["-o".into(), db.display().to_string(), "--bom".into()],
            "--bom has no effect with a database output",
        ),
        (
            vec![
                "-o".into(),
                db.display().to_string(),
                "--incremental".into(),
                "--limit".into(),
                "5".into(),
            ],
            "--incremental cannot be combined with --limit",
        ),
        (
            vec![
                "-o".into(),
                "postgres://u@localhost/d".into(),
                "--format".into(),
                "csv".into(),
            ],
            "--format csv cannot be written to PostgreSQL",
        ),
    ];
    for (args, message) in cases {
        let mut cmd = leads();
        cmd.args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "demo",
            "--sandbox",
        ]);
        cmd.args(&args);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{args:?} wrote a file"
        );
    }
}
