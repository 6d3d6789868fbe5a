//! Hardening of incremental runs and of the files a run writes: a record
//! from the future must not freeze the bookmark, a state that cannot be
//! saved must not let the output through, every spelling of a state file
//! shares one lock, a broken state is never a silent fresh start, `-o` can
//! not overwrite the state, signals leave nothing behind, and special files
//! are refused instead of read forever.
//!
//! The vendor is a scripted Chatzuri (common/fake.rs) on loopback, serving a list
//! of leads two to a page; every lead has a unique email, the identity the
//! tests compare.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::common::fake::{self, Answer};
use crate::common::*;

const AGENT: &str = "cz-agent";
const NOW: &str = "2025-01-20T12:00:00Z";
const KEY: &str = "chatzuri/cz-agent/leads";

#[derive(Default)]
struct Served {
    /// (lead number, created_at as sent: a string or a number)
    leads: Vec<(u32, Value)>,
    /// The page (1-based) that answers only after this long.
    slow_page: Option<(usize, Duration)>,
    requests: usize,
}

#[derive(Clone)]
struct Vendor(Arc<Mutex<Served>>);

impl Vendor {
    fn answer(&self, request: &fake::Request) -> Answer {
        let page: usize = request
            .query("page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut served = self.0.lock().unwrap();
        served.requests += 1;
        let rows: Vec<Value> = served
            .leads
            .iter()
            .skip((page - 1) * 2)
            .take(2)
            .map(|(n, at)| {
                json!({"id": n, "created_at": at, "email": format!("lead{n}@example.test"), "name": format!("Lead {n}")})
            })
            .collect();
        let delay = match served.slow_page {
            Some((slow, delay)) if slow == page => delay,
            _ => Duration::ZERO,
        };
        Answer::Http {
            status: 202,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&json!({ "data": rows })).unwrap(),
            delay,
        }
    }
}

impl Vendor {
    fn add(&self, n: u32, at: Value) {
        self.0.lock().unwrap().leads.push((n, at));
    }

    fn requests(&self) -> usize {
        self.0.lock().unwrap().requests
    }

    fn slow(&self, page: usize, delay: Duration) {
        self.0.lock().unwrap().slow_page = Some((page, delay));
    }
}

async fn vendor(leads: &[(u32, &str)]) -> (fake::Fake, Vendor) {
    let vendor = Vendor(Arc::new(Mutex::new(Served {
        leads: leads.iter().map(|(n, at)| (*n, json!(at))).collect(),
        ..Served::default()
    })));
    let script = vendor.clone();
    let server = fake::serve(move |request| {
        let answer = script.answer(&request);
        async move { answer }
    })
    .await;
    (server, vendor)
}

/// `leads pull` against the scripted vendor, NDJSON, clock pinned.
fn pull(server: &fake::Fake) -> Command {
    let mut cmd = leads();
    cmd.env("LEADS_NOW", NOW)
        .env("CHATZURI_API_KEY", CHATZURI_KEY)
        .args(["pull", "--vendor", "chatzuri", "--agent", AGENT])
        .args(["--page-size", "2", "--concurrency", "1", "--retries", "0"])
        .args(["--format", "ndjson", "--base-url", &server.base]);
    cmd
}

fn with_state(mut cmd: Command, state: &Path) -> Command {
    cmd.arg("--state").arg(state);
    cmd
}

/// The lead numbers in NDJSON text, in order.
fn numbers_in(text: &str) -> Vec<u32> {
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["email"]
                .as_str()
                .and_then(|e| e.strip_prefix("lead"))
                .and_then(|e| e.strip_suffix("@example.test"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn numbers(output: &std::process::Output) -> Vec<u32> {
    numbers_in(&stdout(output))
}

fn bookmark(state: &Path) -> Value {
    let value: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    value["bookmarks"][KEY].clone()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn temp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// The assert_cmd command as a plain one, to spawn and signal.
fn spawn(template: Command) -> Child {
    let mut cmd = std::process::Command::new(template.get_program());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.args(template.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

async fn wait(child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits until the run is stuck on the slow second page with the records of
/// the first already written into its temporary output file.
async fn wait_mid_run(vendor: &Vendor, dir: &Path, want_temp: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while vendor.requests() < 2 || (want_temp && temp_files(dir).is_empty()) {
        assert!(Instant::now() < deadline, "the run never reached page 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn count_warnings(err: &str) -> usize {
    err.lines()
        .filter(|l| l.starts_with("leads: warning:"))
        .count()
}

// ------------------------------------------------------------ future dates

#[tokio::test]
async fn future_dated_record_does_not_freeze_the_bookmark() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(&[
        (1, "2025-01-10T08:00:00Z"),
        (2, "2999-01-01T00:00:00Z"),
        (3, "2999-06-01T00:00:00Z"),
        (4, "2025-01-11T08:00:00Z"),
        // Within a day of the clock: an ordinary record.
        (5, "2025-01-21T06:00:00Z"),
    ])
    .await;
    let first = run(with_state(pull(&server), &state)).await;
    assert_exit(&first, 0);
    assert_no_key(&first);
    assert_eq!(numbers(&first), [1, 2, 3, 4, 5], "every record is written");
    let err = stderr(&first);
    assert_eq!(count_warnings(&err), 1, "one warning per run: {err}");
    assert!(err.contains("2 records"), "{err}");
    assert_eq!(
        bookmark(&state)["created_at"],
        "2025-01-21T06:00:00.000000Z"
    );

    // A later record is still written: the run is not frozen at 2999.
    vendor.add(6, json!("2025-01-21T07:00:00Z"));
    let second = run(with_state(pull(&server), &state)).await;
    assert_exit(&second, 0);
    assert!(
        numbers(&second).contains(&6),
        "the new record is written: {:?}",
        numbers(&second)
    );
    assert!(
        !numbers(&second).iter().any(|n| [1, 4, 5].contains(n)),
        "nothing already bookmarked comes again: {:?}",
        numbers(&second)
    );
    assert_eq!(count_warnings(&stderr(&second)), 1);
    assert_eq!(
        bookmark(&state)["created_at"],
        "2025-01-21T07:00:00.000000Z"
    );
    assert_no_key_in_dir(dir.path());
}

#[tokio::test]
async fn future_dated_record_is_not_a_warning_under_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, _vendor) = vendor(&[(1, "2999-01-01T00:00:00Z")]).await;
    let mut cmd = with_state(pull(&server), &state);
    cmd.arg("--quiet");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(numbers(&output), [1]);
    assert_eq!(stderr(&output), "");
}

#[tokio::test]
async fn epoch_microseconds_are_not_misread_as_milliseconds_from_the_far_future() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(&[]).await;
    // 2025-01-15T10:30:00.123456Z in microseconds: read as milliseconds it
    // would be the year 56000 and would become the bookmark.
    vendor.add(1, json!(1_736_937_000_123_456_i64));
    // Seconds in the year 3000: no unit gives a sane date, so unreadable.
    vendor.add(2, json!(32_503_680_000_i64));
    let output = run(with_state(pull(&server), &state)).await;
    assert_exit(&output, 0);
    let records: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["created_at"], "2025-01-15T10:30:00.123456Z");
    assert_eq!(records[1]["created_at"], Value::Null);
    assert_eq!(records[1]["fields"]["created_at_raw"], "32503680000");
    assert_eq!(
        bookmark(&state)["created_at"],
        "2025-01-15T10:30:00.123456Z"
    );
}

#[tokio::test]
async fn bookmark_already_in_the_future_is_exit_7_not_a_frozen_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = format!(
        "{{\"version\":1,\"bookmarks\":{{\"{KEY}\":{{\"created_at\":\"2999-01-01T00:00:00Z\",\"ids\":[\"9\"],\"updated_at\":\"2025-01-01T00:00:00Z\"}}}}}}\n"
    );
    std::fs::write(&state, &text).unwrap();
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;
    let output = run(with_state(pull(&server), &state)).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("in the future"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(vendor.requests(), 0);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), text);
}

// ------------------------------------------------------- failed state save

/// A state file of many other sources' bookmarks, far larger than the
/// export: a file-size limit can then let the output through and stop the
/// state, a real write failure (EFBIG) that holds for root too.
fn big_state(path: &Path) -> Vec<u8> {
    let bookmarks: serde_json::Map<String, Value> = (0..4000)
        .map(|i| {
            (
                format!("chatzuri/other-agent-{i}/leads"),
                json!({"created_at": "2025-01-01T00:00:00Z", "ids": [format!("id-{i}")], "updated_at": "2025-01-01T00:00:00Z"}),
            )
        })
        .collect();
    let mut bytes =
        serde_json::to_vec_pretty(&json!({"version": 1, "bookmarks": bookmarks})).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Runs `cmd` with files limited to 100 blocks of 512 bytes (and SIGXFSZ
/// ignored, so a too-large write fails with EFBIG instead of killing).
fn file_size_limited(template: Command) -> Command {
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 100 && exec \"$0\" \"$@\"")
        .arg(template.get_program())
        .args(template.get_args());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    limited
}

#[tokio::test]
async fn failed_state_save_commits_nothing_and_the_next_run_writes_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let out = dir.path().join("leads.ndjson");
    let state_before = big_state(&state);
    assert!(state_before.len() > 100 * 1024);
    std::fs::write(&out, b"kept\n").unwrap();
    let (server, _vendor) = vendor(&[
        (1, "2025-01-10T08:00:00Z"),
        (2, "2025-01-11T08:00:00Z"),
        (3, "2025-01-12T08:00:00Z"),
    ])
    .await;

    let mut cmd = with_state(pull(&server), &state);
    cmd.arg("-o").arg(&out);
    let failed = run(file_size_limited(cmd)).await;
    assert_exit(&failed, 7);
    assert_no_key(&failed);
    let err = stderr(&failed);
    assert!(err.contains("cannot write the state file"), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"kept\n",
        "the output is not committed when the state cannot be saved"
    );
    assert_eq!(std::fs::read(&state).unwrap(), state_before);
    assert_eq!(
        names(dir.path()),
        ["leads.ndjson", "state.json", "state.json.lock"],
        "no temporary file is left"
    );

    // With room again: every record once, then nothing.
    let mut cmd = with_state(pull(&server), &state);
    cmd.arg("-o").arg(&out);
    assert_exit(&run(cmd).await, 0);
    assert_eq!(
        numbers_in(&std::fs::read_to_string(&out).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        bookmark(&state)["created_at"],
        "2025-01-12T08:00:00.000000Z"
    );
    let again = run(with_state(pull(&server), &state)).await;
    assert_exit(&again, 0);
    assert_eq!(stdout(&again), "");
    assert_no_key_in_dir(dir.path());
}

// ------------------------------------------------------ one file, one lock

/// Holds the run lock of the state at `real`, naming a holder.
fn hold_lock(real: &Path) -> std::fs::File {
    use std::io::Write;
    let mut name = real.file_name().unwrap().to_os_string();
    name.push(".lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(real.with_file_name(name))
        .unwrap();
    file.lock().unwrap();
    file.write_all(b"leads pid 31337 since a test").unwrap();
    file
}

#[tokio::test]
async fn symlinked_state_path_shares_the_lock_and_saving_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let real = data.join("state.json");
    let link = dir.path().join("link.json");
    // The link's target does not exist yet (a first run through a link).
    std::os::unix::fs::symlink("data/state.json", &link).unwrap();
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;

    let held = hold_lock(&real);
    let locked = run(with_state(pull(&server), &link)).await;
    assert_exit(&locked, 7);
    assert!(
        stderr(&locked).contains("leads pid 31337"),
        "{}",
        stderr(&locked)
    );
    assert_eq!(vendor.requests(), 0, "a locked-out run does not fetch");
    drop(held);

    let first = run(with_state(pull(&server), &link)).await;
    assert_exit(&first, 0);
    assert_eq!(numbers(&first), [1]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "saving through the link keeps the link"
    );
    assert_eq!(bookmark(&real)["created_at"], "2025-01-10T08:00:00.000000Z");
    assert_eq!(names(dir.path()), ["data", "link.json"]);
    assert_eq!(names(&data), ["state.json", "state.json.lock"]);

    // Another spelling of the same file: the same lock, the same bookmark.
    let other = dir.path().join("data/../data/./state.json");
    let held = hold_lock(&real);
    let locked = run(with_state(pull(&server), &other)).await;
    assert_exit(&locked, 7);
    drop(held);
    vendor.add(2, json!("2025-01-11T08:00:00Z"));
    let second = run(with_state(pull(&server), &other)).await;
    assert_exit(&second, 0);
    assert_eq!(numbers(&second), [2]);
    let third = run(with_state(pull(&server), &link)).await;
    assert_exit(&third, 0);
    assert_eq!(stdout(&third), "");
}

#[tokio::test]
async fn hard_linked_state_file_is_exit_7_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = b"{\"version\":1,\"bookmarks\":{}}\n";
    std::fs::write(&state, text).unwrap();
    std::fs::hard_link(&state, dir.path().join("second-name.json")).unwrap();
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;
    let output = run(with_state(pull(&server), &state)).await;
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("hard links"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(vendor.requests(), 0);
    assert_eq!(std::fs::read(&state).unwrap(), text);
}

// ------------------------------------------------ state that does not parse

#[tokio::test]
async fn unparseable_bookmark_is_exit_7_not_a_fresh_start() {
    let cases = [
        format!(
            "{{\"version\":1,\"bookmarks\":{{\"{KEY}\":{{\"created_at\":\"last tuesday\",\"ids\":[],\"updated_at\":\"2025-01-01T00:00:00Z\"}}}}}}"
        ),
        format!(
            "{{\"version\":1,\"bookmarks\":{{\"{KEY}\":{{\"created_at\":\"2025-01-10T08:00:00Z\"}}}}}}"
        ),
        format!(
            "{{\"version\":1,\"bookmarks\":{{\"{KEY}\":{{\"created_at\":\"2025-01-10T08:00:00Z\",\"ids\":[7],\"updated_at\":\"2025-01-01T00:00:00Z\"}}}}}}"
        ),
        "{\"version\":1}".to_owned(),
        "{\"bookmarks\":{}}".to_owned(),
        "[1,2,3]".to_owned(),
        "{\"version\":2,\"bookmarks\":{}}".to_owned(),
    ];
    for text in cases {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(&state, &text).unwrap();
        let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;
        let output = run(with_state(pull(&server), &state)).await;
        assert_exit(&output, 7);
        assert_eq!(stdout(&output), "", "{text}");
        assert!(
            stderr(&output).contains("state"),
            "{text}: {}",
            stderr(&output)
        );
        assert_eq!(vendor.requests(), 0, "{text}: nothing is fetched");
        assert_eq!(std::fs::read_to_string(&state).unwrap(), text);
        assert_eq!(names(dir.path()), ["state.json", "state.json.lock"]);
    }
}

#[tokio::test]
async fn newer_state_version_is_exit_7_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = "{\"version\":7,\"bookmarks\":{},\"cursors\":[]}";
    std::fs::write(&state, text).unwrap();
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;
    let output = run(with_state(pull(&server), &state)).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("newer leads"),
        "{}",
        stderr(&output)
    );
    assert_eq!(vendor.requests(), 0);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), text);
}

#[tokio::test]
async fn empty_or_touched_state_file_is_a_fresh_start() {
    for text in ["", " \n", "{}", "{ }\n"] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(&state, text).unwrap();
        let (server, _vendor) =
            vendor(&[(1, "2025-01-10T08:00:00Z"), (2, "2025-01-11T08:00:00Z")]).await;
        let output = run(with_state(pull(&server), &state)).await;
        assert_exit(&output, 0);
        assert_eq!(numbers(&output), [1, 2], "{text:?}");
        assert_eq!(
            bookmark(&state)["created_at"],
            "2025-01-11T08:00:00.000000Z"
        );
        let again = run(with_state(pull(&server), &state)).await;
        assert_exit(&again, 0);
        assert_eq!(stdout(&again), "", "{text:?}");
    }
}

// ------------------------------------------------------ -o over the state

#[tokio::test]
async fn output_naming_the_state_file_is_exit_2_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_text = b"{\"version\":1,\"bookmarks\":{}}\n";
    std::fs::write(&state, state_text).unwrap();
    std::os::unix::fs::symlink("state.json", dir.path().join("link-to-state.json")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;

    let outputs: Vec<PathBuf> = vec![
        state.clone(),
        dir.path().join("state.json.lock"),
        dir.path().join("link-to-state.json"),
        dir.path().join("sub/../state.json"),
        dir.path().join("./sub/.././state.json.lock"),
    ];
    for out in outputs {
        let mut cmd = with_state(pull(&server), &state);
        cmd.arg("-o").arg(&out);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("same file"),
            "{}: {}",
            out.display(),
            stderr(&output)
        );
        assert_eq!(vendor.requests(), 0, "{}: nothing is sent", out.display());
        assert_eq!(std::fs::read(&state).unwrap(), state_text);
    }

    // A state given through a symlink, -o the real file.
    let mut cmd = with_state(pull(&server), &dir.path().join("link-to-state.json"));
    cmd.arg("-o").arg(&state);
    assert_exit(&run(cmd).await, 2);

    // A hard link of the state as -o.
    let hard = dir.path().join("hard.json");
    std::fs::hard_link(&state, &hard).unwrap();
    let mut cmd = with_state(pull(&server), &state);
    cmd.arg("-o").arg(&hard);
    assert_exit(&run(cmd).await, 2);

    // Neither exists yet: the same name is still refused.
    let fresh = dir.path().join("fresh.json");
    let mut cmd = with_state(pull(&server), &fresh);
    cmd.arg("-o").arg(&fresh);
    assert_exit(&run(cmd).await, 2);
    assert!(!fresh.exists());
    assert_eq!(vendor.requests(), 0);
    assert_eq!(std::fs::read(&state).unwrap(), state_text);
}

// ----------------------------------------------------------------- signals

async fn signal_mid_run_leaves_nothing(signal_name: &str, code: i32, use_state: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leads.ndjson");
    let state = dir.path().join("state.json");
    let (server, vendor) = vendor(&[
        (1, "2025-01-10T08:00:00Z"),
        (2, "2025-01-10T09:00:00Z"),
        (3, "2025-01-11T08:00:00Z"),
    ])
    .await;
    if use_state {
        // A first run sets the bookmark; the interrupted run must keep it.
        assert_exit(&run(with_state(pull(&server), &state)).await, 0);
        vendor.add(4, json!("2025-01-12T08:00:00Z"));
        vendor.add(5, json!("2025-01-13T08:00:00Z"));
    }
    let previous = b"{\"previous\":\"export\"}\n".to_vec();
    std::fs::write(&out, &previous).unwrap();
    let state_before = std::fs::read(&state).ok();
    let first_requests = vendor.requests();
    vendor.slow(2, Duration::from_secs(30));

    let mut cmd = pull(&server);
    if use_state {
        cmd = with_state(cmd, &state);
    }
    cmd.arg("-o").arg(&out);
    let child = spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while vendor.requests() < first_requests + 2 || temp_files(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "the run never reached page 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let temps = temp_files(dir.path());
    assert_eq!(temps.len(), 1, "a temporary output is open: {temps:?}");
    assert!(
        temps[0].starts_with(&format!(".leads.ndjson.leads-{}-", child.id())),
        "the temporary file names its writer: {temps:?}"
    );

    let started = Instant::now();
    signal(&child, signal_name);
    let output = wait(child).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the signal ends the run at once"
    );
    assert_exit(&output, code);
    assert_no_key(&output);
    assert_eq!(stdout(&output), "");
    assert_eq!(
        temp_files(dir.path()),
        Vec::<String>::new(),
        "no temporary file left"
    );
    assert_eq!(std::fs::read(&out).unwrap(), previous, "-o untouched");
    assert_eq!(std::fs::read(&state).ok(), state_before, "state untouched");
    let mut expected = vec!["leads.ndjson".to_owned()];
    if use_state {
        expected.extend(["state.json".to_owned(), "state.json.lock".to_owned()]);
    }
    assert_eq!(names(dir.path()), expected);

    if use_state {
        // Nothing was lost: the next run writes what the interrupted one did not.
        vendor.0.lock().unwrap().slow_page = None;
        let next = run(with_state(pull(&server), &state)).await;
        assert_exit(&next, 0);
        assert_eq!(numbers(&next), [4, 5]);
    }
}

#[tokio::test]
async fn sigterm_mid_run_leaves_no_temporary_file_and_exits_143() {
    signal_mid_run_leaves_nothing("TERM", 143, false).await;
}

#[tokio::test]
async fn sigterm_mid_state_run_leaves_the_state_and_exits_143() {
    signal_mid_run_leaves_nothing("TERM", 143, true).await;
}

#[tokio::test]
async fn sighup_mid_run_leaves_no_temporary_file_and_exits_129() {
    signal_mid_run_leaves_nothing("HUP", 129, false).await;
}

#[tokio::test]
async fn sighup_mid_state_run_leaves_the_state_and_exits_129() {
    signal_mid_run_leaves_nothing("HUP", 129, true).await;
}

#[tokio::test]
async fn sigkill_leftover_temporary_file_is_removed_by_the_next_run_on_the_same_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leads.ndjson");
    let (server, vendor) = vendor(&[
        (1, "2025-01-10T08:00:00Z"),
        (2, "2025-01-10T09:00:00Z"),
        (3, "2025-01-11T08:00:00Z"),
    ])
    .await;
    std::fs::write(&out, b"previous\n").unwrap();
    vendor.slow(2, Duration::from_secs(30));
    let mut cmd = pull(&server);
    cmd.arg("-o").arg(&out);
    let child = spawn(cmd);
    wait_mid_run(&vendor, dir.path(), true).await;
    signal(&child, "KILL");
    let killed = wait(child).await;
    assert_eq!(killed.status.code(), None, "killed by the signal");
    let left = temp_files(dir.path());
    assert_eq!(left.len(), 1, "SIGKILL leaves its temporary file: {left:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous\n");

    // Files that a live process is writing stay: this test process is alive.
    let live = format!(".leads.ndjson.leads-{}-AbC123.tmp", std::process::id());
    std::fs::write(dir.path().join(&live), b"a live run's data").unwrap();
    // Another target's leftovers are not this run's business.
    let other = ".other.json.leads-4194305-AbC123.tmp";
    std::fs::write(dir.path().join(other), b"x").unwrap();

    vendor.0.lock().unwrap().slow_page = None;
    let mut cmd = pull(&server);
    cmd.arg("-o").arg(&out);
    let next = run(cmd).await;
    assert_exit(&next, 0);
    assert_eq!(
        numbers_in(&std::fs::read_to_string(&out).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        names(dir.path()),
        [live.clone(), other.to_owned(), "leads.ndjson".to_owned()],
        "the dead run's file is gone, the live one's and the other target's kept"
    );
    assert_eq!(
        std::fs::read(dir.path().join(&live)).unwrap(),
        b"a live run's data"
    );
}

// ------------------------------------------------------------ special files

/// Runs with a time limit: a run that hangs on a FIFO fails the test
/// instead of hanging it.
async fn run_bounded(cmd: Command) -> std::process::Output {
    let mut child = spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if child.try_wait().unwrap().is_some() {
            return wait(child).await;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run hung");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn fifo_or_device_state_path_is_exit_7_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("state.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (server, vendor) = vendor(&[(1, "2025-01-10T08:00:00Z")]).await;
    let output = run_bounded(with_state(pull(&server), &fifo)).await;
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );

    let output = run_bounded(with_state(pull(&server), Path::new("/dev/zero"))).await;
    assert_exit(&output, 7);

    // The lock path a FIFO, or a link to /dev/zero.
    let state = dir.path().join("s.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.path().join("s.json.lock"))
            .status()
            .unwrap()
            .success()
    );
    let output = run_bounded(with_state(pull(&server), &state)).await;
    assert_exit(&output, 7);
    let state = dir.path().join("z.json");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("z.json.lock")).unwrap();
    let output = run_bounded(with_state(pull(&server), &state)).await;
    assert_exit(&output, 7);
    assert_eq!(vendor.requests(), 0);
    assert!(!state.exists());
}
