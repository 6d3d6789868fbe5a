//! Named sources from a TOML config file (docs/SPEC.md section 10, issue 6): pulled
//! by name or with `--all` into one attributable stream, keys never inline,
//! usage errors that help, `--keep-going`, and `--state` advancing only for
//! the sources that succeeded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::common::*;

const CZ_AGENT: &str = "a1b2c3";
const NA_SERIAL: &str = "3254a9d0424c4806b9ea3d0763ccf000";
const RF_BOT: &str = "bot-1";
const INLINE_KEY: &str = "sk-inline-secret-do-not-echo-91f3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Chatzuri,
    Neoagent,
    Robofy,
}

#[derive(Default)]
struct Behaviour {
    /// Lead numbers served, all on one page.
    leads: Vec<u32>,
    /// Answer every request with this status instead.
    fail: Option<u16>,
    /// Every answer after this long.
    delay: Duration,
    /// Robofy only: a second page, after its own delay.
    second_page: Option<(Vec<u32>, Duration)>,
    requests: usize,
}

/// One vendor's server: checks the key, serves `leads` or fails.
#[derive(Clone)]
struct Vendor {
    kind: V,
    key: &'static str,
    behaviour: Arc<Mutex<Behaviour>>,
}

fn render(kind: V, n: u32) -> Value {
    let email = format!("lead{n}@example.test");
    match kind {
        V::Chatzuri => {
            json!({"id": n, "created_at": format!("2025-01-{:02}T10:00:00Z", n), "email": email})
        }
        V::Neoagent => json!({
            "Type": "Lead", "Name": format!("Lead {n}"), "Email": email, "PhoneNumber": "",
            "CreateTime": format!("2025-01-{:02}T02:00:00.000001-08:00", n), "SessionID": 500 + n, "Count": 1
        }),
        V::Robofy => json!({
            "id": format!("rf-{n}"),
            "created_at": format!("2025-01-{:02} 10:00:00", n),
            "lead_data": [{"field_name": "email", "field_type": "email", "field_value": email}]
        }),
    }
}

impl Respond for Vendor {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let mut behaviour = self.behaviour.lock().unwrap();
        behaviour.requests += 1;
        let expected = match self.kind {
            V::Neoagent => self.key.to_owned(),
            _ => format!("Bearer {}", self.key),
        };
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(expected.as_str()) {
            return ResponseTemplate::new(401).set_body_string("{\"message\":\"Unauthorized\"}");
        }
        if let Some(status) = behaviour.fail {
            return ResponseTemplate::new(status).set_body_string("{\"message\":\"no\"}");
        }
        let second = request.url.query_pairs().any(|(k, _)| k == "nextPageToken");
        let (leads, delay, next) = match &behaviour.second_page {
            Some((leads, delay)) if second => (leads, behaviour.delay + *delay, Value::Null),
            Some(_) => (&behaviour.leads, behaviour.delay, json!("p2")),
            None => (&behaviour.leads, behaviour.delay, Value::Null),
        };
        let rows: Vec<Value> = leads.iter().map(|n| render(self.kind, *n)).collect();
        let body = match self.kind {
            V::Chatzuri => json!({ "data": rows }),
            V::Neoagent => json!({"Data": rows, "Success": true, "Code": 200, "Message": ""}),
            V::Robofy => {
                json!({"message": "ok", "data": {"report": {"rows": rows, "next_page_token": next}}})
            }
        };
        ResponseTemplate::new(200)
            .set_body_json(body)
            .set_delay(delay)
    }
}

impl Vendor {
    fn set(&self, leads: &[u32], fail: Option<u16>) {
        let mut behaviour = self.behaviour.lock().unwrap();
        behaviour.leads = leads.to_vec();
        behaviour.fail = fail;
    }

    fn delay(&self, delay: Duration, second_page: Option<(Vec<u32>, Duration)>) {
        let mut behaviour = self.behaviour.lock().unwrap();
        behaviour.delay = delay;
        behaviour.second_page = second_page;
    }

    fn requests(&self) -> usize {
        self.behaviour.lock().unwrap().requests
    }
}

/// Three vendors, each on its own server, and a config naming them
/// `website` (Chatzuri), `shop` (NeoAgent) and `support` (Robofy), in that
/// file order.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    vendors: Vec<(Vendor, MockServer)>,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut vendors = Vec::new();
        for (kind, key, leads) in [
            (V::Chatzuri, CHATZURI_KEY, vec![1, 2]),
            (V::Neoagent, NEOAGENT_KEY, vec![3, 4]),
            (V::Robofy, ROBOFY_KEY, vec![5, 6]),
        ] {
            let server = MockServer::start().await;
            let vendor = Vendor {
                kind,
                key,
                behaviour: Arc::new(Mutex::new(Behaviour {
                    leads,
                    ..Behaviour::default()
                })),
            };
            Mock::given(any())
                .respond_with(vendor.clone())
                .mount(&server)
                .await;
            vendors.push((vendor, server));
        }
        let key_file = dir.path().join("neoagent.key");
        std::fs::write(&key_file, format!("{NEOAGENT_KEY}\n")).unwrap();
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"# sources pulled by cron
[sources.website]
vendor = "chatzuri"
agent = "{CZ_AGENT}"
api_key_env = "ACME_CHATZURI_KEY"
base_url = "{}"

[sources.shop]
vendor = "neoagent"
agent = "{NA_SERIAL}"
api_key_file = "{}"
base_url = "{}"

[sources.support]
vendor = "robofy"
project = "42"
agent = "{RF_BOT}"
api_key_env = "ROBOFY_API_KEY"
base_url = "{}"
"#,
            vendors[0].1.uri(),
            key_file.display(),
            vendors[1].1.uri(),
            vendors[2].1.uri()
        );
        write_private(&config, &text);
        Setup {
            dir,
            config,
            vendors,
        }
    }

    fn vendor(&self, kind: V) -> &Vendor {
        &self.vendors.iter().find(|(v, _)| v.kind == kind).unwrap().0
    }

    fn pull(&self, args: &[&str]) -> Command {
        let mut cmd = leads();
        cmd.env("ACME_CHATZURI_KEY", CHATZURI_KEY)
            .env("ROBOFY_API_KEY", ROBOFY_KEY);
        cmd.env("LEADS_NOW", "2025-02-01T00:00:00Z");
        cmd.arg("pull").arg("--config").arg(&self.config);
        if !args.contains(&"--format") {
            cmd.args(["--format", "ndjson"]);
        }
        cmd.args(["--retries", "1"]).args(args);
        cmd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `(vendor, agent_id, lead number)` of each record, in order.
fn attributed(records: &[Value]) -> Vec<(String, String, u32)> {
    records
        .iter()
        .map(|r| {
            let email = r["email"].as_str().unwrap();
            let n = email
                .strip_prefix("lead")
                .unwrap()
                .strip_suffix("@example.test")
                .unwrap()
                .parse()
                .unwrap();
            (
                r["vendor"].as_str().unwrap().to_owned(),
                r["agent_id"].as_str().unwrap().to_owned(),
                n,
            )
        })
        .collect()
}

fn rec(vendor: &str, agent: &str, n: u32) -> (String, String, u32) {
    (vendor.to_owned(), agent.to_owned(), n)
}

fn no_warning(output: &std::process::Output) {
    assert!(
        !stderr(output).contains("readable by group or others"),
        "{}",
        stderr(output)
    );
}

#[tokio::test]
async fn sources_pulled_by_name_come_in_one_stream_in_naming_order() {
    let setup = Setup::new().await;
    let output = run(setup.pull(&["support", "website"])).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    no_warning(&output);
    assert_eq!(
        attributed(&ndjson(&output)),
        [
            rec("robofy", RF_BOT, 5),
            rec("robofy", RF_BOT, 6),
            rec("chatzuri", CZ_AGENT, 1),
            rec("chatzuri", CZ_AGENT, 2)
        ]
    );
    assert_eq!(
        setup.vendor(V::Neoagent).requests(),
        0,
        "a source not named is not pulled"
    );
}

#[tokio::test]
async fn all_sources_come_in_file_order_and_api_key_file_works() {
    let setup = Setup::new().await;
    let output = run(setup.pull(&["--all"])).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert_eq!(
        attributed(&ndjson(&output)),
        [
            rec("chatzuri", CZ_AGENT, 1),
            rec("chatzuri", CZ_AGENT, 2),
            rec("neoagent", NA_SERIAL, 3),
            rec("neoagent", NA_SERIAL, 4),
            rec("robofy", RF_BOT, 5),
            rec("robofy", RF_BOT, 6)
        ]
    );
}

#[tokio::test]
async fn leads_config_variable_names_the_file() {
    let setup = Setup::new().await;
    let mut cmd = leads();
    cmd.env("ACME_CHATZURI_KEY", CHATZURI_KEY)
        .env("LEADS_CONFIG", &setup.config);
    cmd.args(["pull", "website", "--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(
        attributed(&ndjson(&output)),
        [rec("chatzuri", CZ_AGENT, 1), rec("chatzuri", CZ_AGENT, 2)]
    );
}

#[tokio::test]
async fn an_inline_api_key_is_refused_without_echoing_it() {
    let setup = Setup::new().await;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace(
        "api_key_env = \"ACME_CHATZURI_KEY\"",
        &format!("api_key = \"{INLINE_KEY}\""),
    );
    write_private(&setup.config, &text);
    let output = run(setup.pull(&["--all"])).await;
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains("api_key_env") && err.contains("api_key_file"),
        "says where keys go: {err}"
    );
    assert!(err.contains("website"), "names the source: {err}");
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(INLINE_KEY),
            "the inline key was echoed"
        );
    }
    assert_eq!(
        setup
            .vendors
            .iter()
            .map(|(v, _)| v.requests())
            .sum::<usize>(),
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn an_unknown_field_is_a_usage_error() {
    let setup = Setup::new().await;
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("project = \"42\"", "project = \"42\"\ncolour = \"blue\"");
    write_private(&setup.config, &text);
    let output = run(setup.pull(&["support"])).await;
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("colour"), "{}", stderr(&output));
}

#[tokio::test]
async fn an_unknown_name_is_exit_2_listing_the_names_that_exist() {
    let setup = Setup::new().await;
    let output = run(setup.pull(&["website", "warehouse"])).await;
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(err.contains("warehouse"), "{err}");
    assert!(
        err.contains("website, shop, support"),
        "lists the sources defined: {err}"
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(setup.vendor(V::Chatzuri).requests(), 0);
}

#[tokio::test]
async fn names_together_with_vendor_or_agent_are_exit_2() {
    let setup = Setup::new().await;
    for extra in [
        &["--vendor", "chatzuri"][..],
        &["--agent", "x"][..],
        &["--vendor", "robofy", "--agent", "1/x"][..],
    ] {
        let mut args = vec!["website"];
        args.extend_from_slice(extra);
        let output = run(setup.pull(&args)).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).starts_with("leads: error: "),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(setup.vendor(V::Chatzuri).requests(), 0);
}

#[tokio::test]
async fn a_config_readable_by_others_draws_a_warning() {
    let setup = Setup::new().await;
    std::fs::set_permissions(&setup.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(setup.pull(&["website"])).await;
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(
        err.contains("readable by group or others") && err.contains("config.toml"),
        "{err}"
    );
    assert_eq!(ndjson(&output).len(), 2);
}

#[tokio::test]
async fn one_failing_source_without_keep_going_writes_nothing() {
    let setup = Setup::new().await;
    setup.vendor(V::Neoagent).set(&[3, 4], Some(503));
    let out = setup.path("leads.ndjson");
    std::fs::write(&out, b"before\n").unwrap();
    let output = run(setup.pull(&["--all", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("shop"),
        "names the failing source: {}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"before\n");
    assert_eq!(stdout(&output), "");
    let mut names: Vec<_> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["config.toml", "leads.ndjson", "neoagent.key"],
        "no temporary file left"
    );
}

#[tokio::test]
async fn keep_going_writes_the_sources_that_succeeded_and_exits_with_the_failure() {
    let setup = Setup::new().await;
    setup.vendor(V::Neoagent).set(&[3, 4], Some(503));
    let out = setup.path("leads.ndjson");
    std::fs::write(&out, b"before\n").unwrap();
    let output = run(setup.pull(&["--all", "--keep-going", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 5);
    assert_no_key(&output);
    let err = stderr(&output);
    assert!(
        err.contains("leads: error: ") && err.contains("shop"),
        "reports the failure: {err}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        attributed(&records),
        [
            rec("chatzuri", CZ_AGENT, 1),
            rec("chatzuri", CZ_AGENT, 2),
            rec("robofy", RF_BOT, 5),
            rec("robofy", RF_BOT, 6)
        ]
    );
}

#[tokio::test]
async fn keep_going_exits_with_the_first_failing_source_in_naming_order() {
    let setup = Setup::new().await;
    setup.vendor(V::Chatzuri).set(&[], Some(404)); // exit 4
    setup.vendor(V::Robofy).set(&[], Some(403)); // exit 3
    for (names, code) in [
        (["shop", "website", "support"], 4),
        (["shop", "support", "website"], 3),
    ] {
        let mut args = vec!["--keep-going"];
        args.extend_from_slice(&names);
        let output = run(setup.pull(&args)).await;
        assert_exit(&output, code);
        let err = stderr(&output);
        for name in ["website", "support"] {
            let lines = err
                .lines()
                .filter(|l| l.starts_with(&format!("leads: error: source {name}:")))
                .count();
            assert_eq!(lines, 1, "the failure of {name} is reported once: {err}");
        }
        assert_eq!(
            attributed(&ndjson(&output)),
            [rec("neoagent", NA_SERIAL, 3), rec("neoagent", NA_SERIAL, 4)]
        );
    }
    // With --all, file order: website (404) comes first.
    let output = run(setup.pull(&["--all", "--keep-going"])).await;
    assert_exit(&output, 4);
}

#[tokio::test]
async fn keep_going_with_every_source_failing_writes_nothing() {
    let setup = Setup::new().await;
    setup.vendor(V::Chatzuri).set(&[], Some(500));
    setup.vendor(V::Neoagent).set(&[], Some(401));
    setup.vendor(V::Robofy).set(&[], Some(404));
    let out = setup.path("leads.ndjson");
    std::fs::write(&out, b"before\n").unwrap();
    let output = run(setup.pull(&["--all", "--keep-going", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 5);
    assert_eq!(std::fs::read(&out).unwrap(), b"before\n");
    let output = run(setup.pull(&["support", "shop", "website", "--keep-going"])).await;
    assert_exit(&output, 4);
    assert_eq!(
        stdout(&output),
        "",
        "nothing written, not even an empty array"
    );
}

#[tokio::test]
async fn state_advances_only_for_the_sources_that_succeeded() {
    let setup = Setup::new().await;
    let state = setup.path("state.json");
    setup.vendor(V::Neoagent).set(&[3, 4], Some(502));
    let state_arg = state.to_str().unwrap();
    let output = run(setup.pull(&["--all", "--keep-going", "--state", state_arg])).await;
    assert_exit(&output, 5);
    assert_eq!(ndjson(&output).len(), 4);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let keys: Vec<&str> = saved["bookmarks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            format!("chatzuri/{CZ_AGENT}/leads"),
            format!("robofy/{RF_BOT}/leads")
        ]
    );

    // Without --keep-going a failure leaves the state as it was.
    let before = std::fs::read(&state).unwrap();
    setup.vendor(V::Chatzuri).set(&[1, 2, 7], None);
    let output = run(setup.pull(&["--all", "--state", state_arg])).await;
    assert_exit(&output, 5);
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // The vendor is back: the failed source writes everything, the others only what is new.
    setup.vendor(V::Neoagent).set(&[3, 4], None);
    let output = run(setup.pull(&["--all", "--state", state_arg])).await;
    assert_exit(&output, 0);
    assert_eq!(
        attributed(&ndjson(&output)),
        [
            rec("chatzuri", CZ_AGENT, 7),
            rec("neoagent", NA_SERIAL, 3),
            rec("neoagent", NA_SERIAL, 4)
        ]
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["bookmarks"].as_object().unwrap().len(), 3);
    assert_eq!(
        saved["bookmarks"][format!("neoagent/{NA_SERIAL}/leads")]["created_at"],
        "2025-01-04T10:00:00.000001Z"
    );
}

/// `pull --all` into a file: the first source is written straight into the
/// output (it is renamed in place only when the run succeeds), the others
/// through their spools; the order is the file order all the same.
#[tokio::test]
async fn all_sources_into_a_file_come_in_file_order_with_the_first_written_straight_in() {
    let setup = Setup::new().await;
    let out = setup.path("leads.ndjson");
    let output = run(setup.pull(&["--all", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        attributed(&records),
        [
            rec("chatzuri", CZ_AGENT, 1),
            rec("chatzuri", CZ_AGENT, 2),
            rec("neoagent", NA_SERIAL, 3),
            rec("neoagent", NA_SERIAL, 4),
            rec("robofy", RF_BOT, 5),
            rec("robofy", RF_BOT, 6)
        ]
    );
}

/// The source written straight into the output fails: the file is left as
/// it was and no temporary file stays behind.
#[tokio::test]
async fn the_first_source_failing_leaves_the_output_file_as_it_was() {
    let setup = Setup::new().await;
    setup.vendor(V::Chatzuri).set(&[1, 2], Some(503));
    let out = setup.path("leads.ndjson");
    std::fs::write(&out, b"before\n").unwrap();
    let output = run(setup.pull(&["--all", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 5);
    assert!(stderr(&output).contains("website"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), b"before\n");
    assert_eq!(
        std::fs::read_dir(setup.dir.path()).unwrap().count(),
        3,
        "config, key file and the untouched output only"
    );
}

/// The first source, written straight in, is named twice: the second
/// copy's records are dropped as duplicates, as they are through spools.
#[tokio::test]
async fn a_source_named_twice_into_a_file_writes_its_records_once() {
    let setup = Setup::new().await;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let website = text
        .split("[sources.shop]")
        .next()
        .unwrap()
        .replace("# sources pulled by cron\n", "")
        .replace("[sources.website]", "[sources.website_again]");
    assert!(website.contains("[sources.website_again]"), "{website}");
    write_private(&setup.config, &format!("{text}\n{website}"));
    let out = setup.path("leads.ndjson");
    let output = run(setup.pull(&["--all", "-o", out.to_str().unwrap()])).await;
    assert_exit(&output, 0);
    assert!(
        setup.vendor(V::Chatzuri).requests() >= 2,
        "both copies were pulled"
    );
    let records: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        attributed(&records),
        [
            rec("chatzuri", CZ_AGENT, 1),
            rec("chatzuri", CZ_AGENT, 2),
            rec("neoagent", NA_SERIAL, 3),
            rec("neoagent", NA_SERIAL, 4),
            rec("robofy", RF_BOT, 5),
            rec("robofy", RF_BOT, 6)
        ]
    );
}

/// `pull --all -v` into `name` (`.json`, `.ndjson` or `.csv`, whose spools
/// hold rows, not text): its output, with the records written in it
/// (vendor, agent, lead number).
async fn pull_all_into(
    setup: &Setup,
    name: &str,
) -> (std::process::Output, Vec<(String, String, u32)>) {
    let out = setup.path(name);
    let format = name.rsplit('.').next().unwrap();
    let output = run(setup.pull(&[
        "--all",
        "-v",
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ]))
    .await;
    assert_exit(&output, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = match format {
        "json" => serde_json::from_str(&text).unwrap(),
        "csv" => {
            let mut rows = csv::Reader::from_reader(text.as_bytes());
            let header = rows.headers().unwrap().clone();
            rows.records()
                .map(|row| {
                    let row = row.unwrap();
                    let object: serde_json::Map<String, Value> = header
                        .iter()
                        .zip(row.iter())
                        .map(|(k, v)| (k.to_owned(), Value::from(v)))
                        .collect();
                    Value::Object(object)
                })
                .collect()
        }
        _ => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    };
    (output, attributed(&records))
}

fn in_file_order(support: &[u32]) -> Vec<(String, String, u32)> {
    let mut expected = vec![
        rec("chatzuri", CZ_AGENT, 1),
        rec("chatzuri", CZ_AGENT, 2),
        rec("neoagent", NA_SERIAL, 3),
        rec("neoagent", NA_SERIAL, 4),
    ];
    expected.extend(support.iter().map(|n| rec("robofy", RF_BOT, *n)));
    expected
}

/// The first source is the slowest: the two after it end first, and their
/// spools wait for its end, then go in behind it in file order.
#[tokio::test]
async fn sources_that_end_before_their_turn_wait_for_it() {
    for name in ["leads.ndjson", "leads.json"] {
        let setup = Setup::new().await;
        setup
            .vendor(V::Chatzuri)
            .delay(Duration::from_millis(600), None);
        let (output, written) = pull_all_into(&setup, name).await;
        assert_eq!(written, in_file_order(&[5, 6]), "{name}");
        let log = stderr(&output);
        for source in ["shop", "support"] {
            let said = format!(
                "source {source}: 2 records spooled before its turn, copied in; it had ended"
            );
            assert!(log.contains(&said), "{log}");
        }
    }
}

/// The last source is still waiting for its second page when its turn
/// comes (the first source ends after the others' first pages): its first
/// page (spooled) goes in first, the second straight after it, each record
/// once. `-v` says so.
#[tokio::test]
async fn a_source_still_running_at_its_turn_goes_on_straight_after_its_spool() {
    for name in ["leads.ndjson", "leads.json", "leads.csv"] {
        let setup = Setup::new().await;
        setup
            .vendor(V::Chatzuri)
            .delay(Duration::from_millis(400), None);
        setup.vendor(V::Robofy).delay(
            Duration::ZERO,
            Some((vec![7, 8], Duration::from_millis(1500))),
        );
        let (output, written) = pull_all_into(&setup, name).await;
        assert_eq!(setup.vendor(V::Robofy).requests(), 2);
        assert_eq!(written, in_file_order(&[5, 6, 7, 8]), "{name}");
        let log = stderr(&output);
        assert!(
            log.contains("source shop: 2 records spooled before its turn, copied in; it had ended"),
            "{log}"
        );
        assert!(
            log.contains(
                "source support: 2 records spooled before its turn, copied in; the rest straight in"
            ),
            "{log}"
        );
    }
}
