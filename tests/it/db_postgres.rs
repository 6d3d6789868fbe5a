//! PostgreSQL outputs (issue 11, SPEC section 11), against a real server.
//!
//! The server comes from `scripts/pg-test-cluster.sh start` (which `.ci/run`
//! calls): `LEADS_TEST_PG` is its URL, `LEADS_TEST_PG_PASSWORD` the test
//! role's password. Without it these tests print that they were skipped,
//! unless `LEADS_REQUIRE_PG=1` (set by the script and so in CI), where a
//! missing server fails them. Each test works in a database of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use leads::model::Vendor;
use leads::sandbox::SandboxOptions;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::common::db::*;
use crate::common::*;

struct Pg {
    host: String,
    port: u16,
    password: String,
}

/// The test server, or `None` (with a note on stderr) where there is none
/// and none is required.
fn server() -> Option<Pg> {
    let required = std::env::var("LEADS_REQUIRE_PG").is_ok_and(|v| v == "1");
    let Ok(url) = std::env::var("LEADS_TEST_PG") else {
        assert!(
            !required,
            "LEADS_REQUIRE_PG=1 but LEADS_TEST_PG is not set: start the cluster with scripts/pg-test-cluster.sh"
        );
        eprintln!(
            "skipped: no PostgreSQL (eval \"$(bash scripts/pg-test-cluster.sh start)\" to run these tests)"
        );
        return None;
    };
    let url = url::Url::parse(&url).expect("LEADS_TEST_PG is a URL");
    Some(Pg {
        host: url.host_str().expect("a host").to_owned(),
        port: url.port().unwrap_or(5432),
        password: std::env::var("LEADS_TEST_PG_PASSWORD").unwrap_or_default(),
    })
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

async fn connect(pg: &Pg, dbname: &str) -> Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host(&pg.host)
        .port(pg.port)
        .user("leads_test")
        .password(&pg.password)
        .dbname(dbname)
        .connect(NoTls)
        .await
        .expect("the test server accepts the test role");
    tokio::spawn(connection);
    client
}

/// A new, empty database; its URL (no password) and a client on it.
async fn fresh(pg: &Pg) -> (String, Client) {
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = connect(pg, "leads_test").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("postgres://leads_test@{}:{}/{name}", pg.host, pg.port);
    (url, connect(pg, &name).await)
}

/// `export` into the database, with the password in the environment.
fn into(pg: &Pg, cmd: &mut assert_cmd::Command, url: &str) {
    cmd.env("PGPASSWORD", &pg.password)
        .env_remove("PGPASSFILE")
        .arg("-o")
        .arg(url);
}

/// A new database filled by a first run of `leads` Chatzuri leads of seed 42.
async fn filled(pg: &Pg, leads: usize) -> (String, Client, leads::sandbox::Sandbox) {
    let (url, client) = fresh(pg).await;
    let sandbox = start_sandbox(42, leads, 0).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    into(pg, &mut cmd, &url);
    assert_exit(&run(cmd).await, 0);
    (url, client, sandbox)
}

async fn table(client: &Client, conversations: bool) -> BTreeMap<String, Value> {
    let sql = if conversations {
        "SELECT ((to_jsonb(c) - 'first_seen_at' - 'last_seen_at') || jsonb_build_object('messages', \
         COALESCE((SELECT jsonb_agg(jsonb_build_object('role', role, 'content', content, 'created_at', created_at) ORDER BY message_index) \
         FROM messages m WHERE m.vendor = c.vendor AND m.agent_id = c.agent_id AND m.conversation_id = c.id), '[]'::jsonb)))::text \
         FROM conversations c"
    } else {
        "SELECT (to_jsonb(l) - 'first_seen_at' - 'last_seen_at')::text FROM leads l"
    };
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let record: Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap();
            (record_key(&record), normalise(record))
        })
        .collect()
}

/// Every row of every table of ours, as text: what "nothing changed" compares.
async fn dump(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["leads", "conversations", "messages", "leads_schema"] {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await
            .unwrap()
            .get(0);
        if !exists {
            out.push(format!("{name}: absent"));
            continue;
        }
        for row in client
            .query(&format!("SELECT t::text FROM {name} t ORDER BY 1"), &[])
            .await
            .unwrap()
        {
            out.push(format!("{name}: {}", row.get::<_, &str>(0)));
        }
    }
    out
}

#[tokio::test]
async fn first_run_inserts_all_and_a_second_run_inserts_the_new_and_updates_the_changed() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    let first = start_sandbox(42, 120, 0).await;
    let expected_first = expected_records(&first, Vendor::Chatzuri, false).await;

    let mut cmd = export(&first, Vendor::Chatzuri, false);
    into(&pg, &mut cmd, &url);
    cmd.arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
    assert_eq!(counts(&output), (120, 0, 0));
    assert_eq!(table(&client, false).await, expected_first);

    let mut cmd = export(&first, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN);
    into(&pg, &mut cmd, &url);
    cmd.arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(counts(&output), (0, 0, 120));

    let second = start_sandbox(43, 150, 0).await;
    let expected_second = expected_records(&second, Vendor::Chatzuri, false).await;
    let mut cmd = export(&second, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN);
    into(&pg, &mut cmd, &url);
    cmd.arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(counts(&output), (30, 120, 0));
    assert_eq!(table(&client, false).await, expected_second);

    // first_seen_at kept, last_seen_at moved, both real timestamps.
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE first_seen_at = '2025-07-01T00:00:00Z'), \
             count(*) FILTER (WHERE last_seen_at = '2025-07-02T00:00:00Z'), \
             pg_typeof(created_at)::text FROM leads GROUP BY 3",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 120);
    assert_eq!(row.get::<_, i64>(1), 150);
    assert_eq!(row.get::<_, &str>(2), "timestamp with time zone");
}

#[tokio::test]
async fn conversations_upsert_and_their_messages_are_replaced() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    for (seed, vendor) in [
        (42, Vendor::Neoagent),
        (42, Vendor::Robofy),
        (7, Vendor::Neoagent),
    ] {
        let sandbox = start_sandbox(seed, 10, 12).await;
        let expected = expected_records(&sandbox, vendor, true).await;
        let mut cmd = export(&sandbox, vendor, true);
        into(&pg, &mut cmd, &url);
        assert_exit(&run(cmd).await, 0);
        let stored: BTreeMap<String, Value> = table(&client, true)
            .await
            .into_iter()
            .filter(|(k, _)| k.starts_with(vendor.as_str()))
            .collect();
        assert_eq!(stored, expected, "{vendor} seed {seed}");
    }
}

#[tokio::test]
async fn incremental_starts_a_day_before_the_newest_stored_lead_of_that_agent() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    let (server, vendor) = ChatzuriLeads::serve(BEFORE).await;
    let mut cmd = ChatzuriLeads::pull(&server, "cz-agent");
    into(&pg, &mut cmd, &url);
    assert_exit(&run(cmd).await, 0);
    let (other, _) = ChatzuriLeads::serve(&[(9, "2025-03-18T00:00:00Z")]).await;
    let mut cmd = ChatzuriLeads::pull(&other, "other-agent");
    into(&pg, &mut cmd, &url);
    assert_exit(&run(cmd).await, 0);

    vendor.set(DURING);
    let mut cmd = ChatzuriLeads::pull(&server, "cz-agent");
    into(&pg, &mut cmd, &url);
    cmd.args(["--incremental", "-v"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(vendor.start_dates(), [None, Some("2025-03-09".to_owned())]);
    assert_eq!(counts(&output), (1, 0, 3));
    assert_eq!(table(&client, false).await.len(), 5);
}

#[tokio::test]
async fn a_failed_or_interrupted_run_leaves_every_row_as_it_was() {
    let Some(pg) = server() else { return };
    let (url, client, _) = filled(&pg, 300).await;
    let before = dump(&client).await;

    // A 503 on page 3, no retries: exit 5.
    let failing = failing_on_request_3().await;
    let mut cmd = one_page_at_a_time(&failing);
    into(&pg, &mut cmd, &url);
    assert_exit(&run(cmd).await, 5);
    assert_eq!(failing.stats().requests, 3);
    assert_eq!(dump(&client).await, before, "after the failure on page 3");

    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let slow = slow_sandbox().await;
        let mut cmd = export(&slow, Vendor::Chatzuri, false);
        cmd.args(["--concurrency", "1"]);
        into(&pg, &mut cmd, &url);
        interrupt(cmd, &slow, name, code).await;
        assert_eq!(dump(&client).await, before, "after SIG{name}");
    }
}

#[tokio::test]
async fn two_concurrent_runs_into_one_database_both_succeed_without_duplicates() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    let sandbox = start_sandbox_with(SandboxOptions {
        leads: 400,
        latency: std::time::Duration::from_millis(40),
        ..SandboxOptions::default()
    })
    .await;
    let mut expected = expected_records(&sandbox, Vendor::Chatzuri, false).await;
    expected.extend(expected_records(&sandbox, Vendor::Neoagent, false).await);
    // The first runs of an empty database race to create the tables too.
    let runs: Vec<_> = [Vendor::Chatzuri, Vendor::Neoagent, Vendor::Chatzuri]
        .into_iter()
        .map(|vendor| {
            let mut cmd = export(&sandbox, vendor, false);
            into(&pg, &mut cmd, &url);
            spawn(cmd)
        })
        .collect();
    for child in runs {
        assert_exit(&wait(child).await, 0);
    }
    assert_eq!(table(&client, false).await, expected);
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_and_not_echoed() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    let sandbox = start_sandbox(42, 10, 0).await;
    let with_password = url.replacen("leads_test@", &format!("leads_test:{}@", pg.password), 1);
    for url in [with_password, format!("{url}?password={}", pg.password)] {
        let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
        cmd.arg("-o").arg(&url).arg("-vv");
        let output = run(cmd).await;
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(err.contains("holds a password"), "{err}");
        assert!(err.contains("PGPASSWORD"), "{err}");
        assert_no_secret_in("stderr", &output.stderr, &pg.password);
    }
    assert_eq!(sandbox.stats().requests, 0, "nothing was fetched");
    assert_eq!(
        dump(&client).await,
        [
            "leads: absent",
            "conversations: absent",
            "messages: absent",
            "leads_schema: absent"
        ]
    );
}

#[tokio::test]
async fn the_password_comes_from_pgpassword_or_the_pgpass_file() {
    let Some(pg) = server() else { return };
    let (url, _client) = fresh(&pg).await;
    let sandbox = start_sandbox(42, 10, 0).await;
    let dir = tempfile::tempdir().unwrap();
    // One run with PGPASSWORD (or none) and PGPASSFILE as given.
    let attempt = |password: Option<&str>, pgpass: std::path::PathBuf| {
        let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
        match password {
            Some(password) => cmd.env("PGPASSWORD", password),
            None => cmd.env_remove("PGPASSWORD"),
        };
        cmd.env("PGPASSFILE", pgpass).arg("-o").arg(&url);
        run(cmd)
    };
    let expect = |output: &std::process::Output, code: i32, said: &str| {
        assert_exit(output, code);
        assert!(stderr(output).contains(said), "{}", stderr(output));
        assert_no_secret_in("stderr", &output.stderr, &pg.password);
        assert_no_secret_in("stderr", &output.stderr, "not-the-password");
    };

    // None at all, then a wrong one: the server refuses, exit 7 with a hint.
    let none = dir.path().join("none");
    expect(&attempt(None, none.clone()).await, 7, "PGPASSWORD");
    expect(
        &attempt(Some("not-the-password"), none).await,
        7,
        "refused the login",
    );

    // A pgpass file readable by others is ignored, as libpq does; mode 600 is read.
    let pgpass = dir.path().join("pgpass");
    let line = format!("{}:{}:*:leads_test:{}", pg.host, pg.port, pg.password);
    std::fs::write(&pgpass, format!("# test\n{line}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(&attempt(None, pgpass.clone()).await, 7, "is ignored");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    expect(&attempt(None, pgpass).await, 0, "");
}

#[tokio::test]
async fn the_key_never_appears_in_any_column_or_log() {
    let Some(pg) = server() else { return };
    let (url, client) = fresh(&pg).await;
    for vendor in [Vendor::Chatzuri, Vendor::Neoagent, Vendor::Robofy] {
        let sandbox = start_sandbox(42, 30, 5).await;
        for conversations in [false, true] {
            let mut cmd = export(&sandbox, vendor, conversations);
            into(&pg, &mut cmd, &url);
            cmd.args(["--raw", "-vv"]);
            let output = run(cmd).await;
            assert_exit(&output, 0);
            let key = leads::sandbox::key(vendor.as_str()).unwrap();
            assert_no_secret_in("stdout", &output.stdout, key);
            assert_no_secret_in("stderr", &output.stderr, key);
            assert_no_secret_in("stderr", &output.stderr, &pg.password);
            let dumped = dump(&client).await.join("\n");
            assert_no_secret_in("the tables", dumped.as_bytes(), key);
        }
    }
    let with_raw: i64 = client
        .query_one("SELECT count(*) FROM leads WHERE raw IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(with_raw, 90, "--raw is stored");
}

#[tokio::test]
async fn an_unreachable_server_is_exit_6() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sandbox = start_sandbox(42, 10, 0).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.arg("-o")
        .arg(format!("postgres://leads@127.0.0.1:{port}/leads"));
    let output = run(cmd).await;
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("cannot reach PostgreSQL"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sandbox.stats().requests, 0, "nothing was fetched");
}

#[tokio::test]
async fn tables_of_another_shape_or_a_newer_schema_are_exit_7_and_nothing_changed() {
    let Some(pg) = server() else { return };
    let sandbox = start_sandbox(42, 10, 0).await;

    let (url, client) = fresh(&pg).await;
    client
        .batch_execute("CREATE TABLE leads (id bigint PRIMARY KEY, email text); INSERT INTO leads VALUES (1, 'kept@example.test')")
        .await
        .unwrap();
    let before = dump(&client).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    into(&pg, &mut cmd, &url);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("a table leads of another shape"),
        "{}",
        stderr(&output)
    );
    assert_eq!(dump(&client).await, before);

    let (url, client, _) = filled(&pg, 10).await;
    client
        .batch_execute("UPDATE leads_schema SET version = 2")
        .await
        .unwrap();
    let before = dump(&client).await;
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN);
    into(&pg, &mut cmd, &url);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(stderr(&output).contains("newer"), "{}", stderr(&output));
    assert_eq!(dump(&client).await, before);
}

#[tokio::test]
async fn tables_locked_past_the_timeout_are_exit_7_and_nothing_changed() {
    let Some(pg) = server() else { return };
    let (url, client, sandbox) = filled(&pg, 20).await;
    let before = dump(&client).await;

    let holder = connect(&pg, url.rsplit('/').next().unwrap()).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    cmd.env("LEADS_NOW", LATER_RUN)
        .args(["--lock-timeout", "0.5"]);
    into(&pg, &mut cmd, &url);
    let output = run(cmd).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("locked by another run"),
        "{}",
        stderr(&output)
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(dump(&client).await, before);
}

#[tokio::test]
async fn tls_is_verified_against_the_trust_store_and_sslrootcert() {
    let Some(pg) = server() else { return };
    let Ok(ca) = std::env::var("LEADS_TEST_PG_CA") else {
        assert!(
            std::env::var("LEADS_REQUIRE_PG").is_err(),
            "the test cluster has no TLS certificate (is openssl installed?)"
        );
        eprintln!("skipped: the test cluster has no TLS");
        return;
    };
    let (url, client) = fresh(&pg).await;
    let sandbox = start_sandbox(42, 10, 0).await;
    let tls_url = format!("{}?sslmode=require", url.replacen(&pg.host, "localhost", 1));

    // The server's certificate is signed by a CA no trust store holds.
    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    into(&pg, &mut cmd, &tls_url);
    let output = run(cmd).await;
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("TLS certificate not trusted"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("sslrootcert"),
        "{}",
        stderr(&output)
    );

    let mut cmd = export(&sandbox, Vendor::Chatzuri, false);
    into(&pg, &mut cmd, &format!("{tls_url}&sslrootcert={ca}"));
    cmd.arg("-v");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(counts(&output), (10, 0, 0));
    assert_eq!(table(&client, false).await.len(), 10);
}
