//! Fault injection (issue 6): every vendor, a fault at the first, a middle
//! and the last page, against loopback servers.
//!
//! Each case serves three pages of leads (Chatzuri numbered pages with
//! `--page-size 2`, NeoAgent date windows with `--window 1`, Robofy token
//! pages) from a scripted vendor, and injects one fault at one page. Every run
//! writes with `-o` and `--state` into a directory where both files already
//! exist with known contents.
//!
//! - A recoverable fault: exit 0, the set of records written equals the set
//!   the server served in clean answers, with no duplicate, the state moved
//!   to the newest record written, and no temporary file left.
//! - An unrecoverable fault: the exit code of docs/SPEC.md section 5, the output and
//!   state files byte-identical to before, and no temporary file left.
//!
//! The scripted vendor answers through wiremock, or, for faults wiremock
//! cannot produce (a connection reset in the middle of a body, a body shorter
//! than its `Content-Length`), through a tiny raw HTTP/1.1 server on a
//! loopback socket. Test names read `VENDOR_FAULT_OUTCOME::on_POSITION_page`;
//! `scripts/fault-table.sh` turns them into `docs/faults.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::common::fake::{self, Answer, Request};
use crate::common::*;

const CZ_AGENT: &str = "cz-agent";
const CB_AGENT: &str = "5QHA6VB-DIAbBhxwqxfdi";
const NA_SERIAL: &str = "3254a9d0424c4806b9ea3d0763ccf000";
const RF_PROJECT: &str = "42";
const RF_BOT: &str = "rf-bot";
/// Far enough before every record that the bookmark filters nothing.
const OLD_MARK: &str = "2020-01-01T00:00:00Z";
const OUT_BEFORE: &[u8] = b"{\"previous\":\"export\",\"must\":\"survive a failed run\"}\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Chatzuri,
    Neoagent,
    Robofy,
    Chatbase,
}

impl V {
    /// Paged by number (`page`/`size`), ending on a short page.
    fn numbered(self) -> bool {
        matches!(self, V::Chatzuri | V::Chatbase)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    First,
    Middle,
    Last,
}

impl Pos {
    fn index(self) -> usize {
        match self {
            Pos::First => 0,
            Pos::Middle => 1,
            Pos::Last => 2,
        }
    }
}

const FOREVER: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// This status for the first `n` requests of the page, then a clean answer.
    Status(u16, usize),
    /// 429 once with `Retry-After: 1`.
    RetryAfterSeconds,
    /// 429 once with `Retry-After` as an HTTP date about a second ahead.
    RetryAfterDate,
    /// 429 with `Retry-After: 3600`: above the 120 s ceiling, fails at once.
    RetryAfterTooLong,
    /// 429 once without `Retry-After`, with `X-RateLimit-Reset` about a
    /// second ahead in epoch milliseconds (Chatbase's rate-limit headers).
    RateLimitReset,
    /// Headers and half the body, then a TCP reset; `n` times.
    Reset(usize),
    /// A `Content-Length` larger than the body, then the connection closes; `n` times.
    ShortBody(usize),
    /// An answer slower than `--timeout`; `n` times.
    Slow(usize),
    /// Status 200 with JSON cut in half (honest length).
    Truncated,
    /// Status 200 with an HTML page.
    Html,
    /// NeoAgent: HTTP 200 with `Success: false`.
    NeoFailure,
    /// Robofy: the page hands out a token already used (A, B, A).
    TokenCycle,
    /// The page also carries a record of another page.
    Duplicate,
    /// Chatzuri: a new record appears at the head of the listing right
    /// after this page was served, so the next page repeats a record.
    HeadInsert,
    /// Chatzuri: the server ignores `page` and always answers page 1.
    PageIgnored,
    /// Chatzuri with pages in flight at once: page 2 is answered first, then
    /// a record appears at the head, then page 1 is answered.
    HeadInsertRace,
}

impl Fault {
    /// `None`: the run recovers; `Some(code)`: it fails with that exit code.
    fn expected_exit(self) -> Option<i32> {
        match self {
            Fault::Status(_, FOREVER) | Fault::RetryAfterTooLong => Some(5),
            Fault::Reset(FOREVER) | Fault::ShortBody(FOREVER) | Fault::Slow(FOREVER) => Some(6),
            Fault::Truncated
            | Fault::Html
            | Fault::NeoFailure
            | Fault::TokenCycle
            | Fault::PageIgnored => Some(5),
            _ => None,
        }
    }

    fn needs_raw_server(self) -> bool {
        matches!(
            self,
            Fault::Reset(_) | Fault::ShortBody(_) | Fault::HeadInsertRace
        )
    }

    /// How many faulty answers the page gives before clean ones.
    fn count(self) -> usize {
        match self {
            Fault::Status(_, n) | Fault::Reset(n) | Fault::ShortBody(n) | Fault::Slow(n) => n,
            Fault::RetryAfterSeconds | Fault::RetryAfterDate | Fault::RateLimitReset => 1,
            Fault::RetryAfterTooLong | Fault::Truncated | Fault::Html | Fault::NeoFailure => {
                FOREVER
            }
            Fault::TokenCycle
            | Fault::Duplicate
            | Fault::HeadInsert
            | Fault::PageIgnored
            | Fault::HeadInsertRace => 0,
        }
    }
}

/// One lead as the scripted vendor holds it: number `n` on day `day` of
/// January 2025, at 10:`n` UTC, with a unique email (the identity compared
/// across vendors, since NeoAgent lead ids are derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    n: u32,
    day: u32,
}

impl Rec {
    fn email(self) -> String {
        format!("lead{}@example.test", self.n)
    }

    fn render(self, vendor: V) -> Value {
        let (n, d) = (self.n, self.day);
        match vendor {
            V::Chatzuri => json!({
                "id": n,
                "created_at": format!("2025-01-{d:02}T10:{n:02}:00Z"),
                "chatbot_owner_user_id": "usr_1",
                "chatbot_id": CZ_AGENT,
                "phone": "",
                "email": self.email(),
                "name": format!("Lead {n}")
            }),
            V::Neoagent => json!({
                "Type": "Lead",
                "Name": format!("Lead {n}"),
                "Email": self.email(),
                "PhoneNumber": "",
                "CreateTime": format!("2025-01-{d:02}T02:{n:02}:00.000001-08:00"),
                "Content": "hello",
                "SessionID": 30000 + n,
                "URI": "www.example.test",
                "Count": 1
            }),
            V::Chatbase => json!({
                "id": format!("lead_{n:04}"),
                "name": format!("Lead {n}"),
                "email": self.email(),
                "phone": "",
                "created_at": format!("2025-01-{d:02}T10:{n:02}:00Z"),
                "chatbot_id": CB_AGENT,
                "account_id": "acc_71b0c2"
            }),
            V::Robofy => json!({
                "id": format!("rf-{n}"),
                "created_at": format!("2025-01-{d:02} 10:{n:02}:00"),
                "source": "chatbot",
                "page_url": "https://example.test/",
                "ip_address": "127.0.0.1",
                "lead_data": [
                    {"field_name": "name", "field_type": "text", "field_value": format!("Lead {n}")},
                    {"field_name": "email", "field_type": "email", "field_value": self.email()}
                ]
            }),
        }
    }
}

#[derive(Default)]
struct State {
    /// Chatzuri: the flat listing, newest first, paged by `page`/`size`.
    listing: Vec<Rec>,
    /// NeoAgent windows and Robofy token pages.
    pages: Vec<Vec<Rec>>,
    /// Request times per page index.
    hits: Vec<Vec<SystemTime>>,
    faults_left: usize,
    faults_served: usize,
    /// Emails of every record in a clean answer.
    served: BTreeSet<String>,
    /// Records in clean answers, repeats included.
    served_count: usize,
    inserted: bool,
    /// The instant a `Retry-After` date named.
    retry_at: Option<SystemTime>,
    /// Emails of the records listed from the start to the end of the run.
    throughout: BTreeSet<String>,
}

/// The scripted vendor: three pages, one fault.
struct Script {
    vendor: V,
    fault: Fault,
    target: usize,
    state: Mutex<State>,
}

const PAGE_SIZE: usize = 2;

impl Script {
    fn new(vendor: V, fault: Fault, pos: Pos) -> Arc<Script> {
        let target = pos.index();
        let mut pages: Vec<Vec<Rec>> = vec![
            vec![Rec { n: 1, day: 1 }, Rec { n: 2, day: 1 }],
            vec![Rec { n: 3, day: 2 }, Rec { n: 4, day: 2 }],
            vec![Rec { n: 5, day: 3 }],
        ];
        if !vendor.numbered() {
            pages[2].push(Rec { n: 6, day: 3 });
        }
        let mut listing: Vec<Rec> = pages.iter().flatten().copied().collect();
        let throughout = listing.iter().map(|r| r.email()).collect();
        if fault == Fault::Duplicate {
            // A record of another page shows up on the target page as well.
            let copy = if target == 0 {
                pages[2][0]
            } else {
                pages[0][0]
            };
            if vendor.numbered() {
                listing.insert(target * PAGE_SIZE, copy);
            } else {
                pages[target].push(copy);
            }
        }
        Arc::new(Script {
            vendor,
            fault,
            target,
            state: Mutex::new(State {
                listing,
                pages,
                faults_left: fault.count(),
                throughout,
                ..State::default()
            }),
        })
    }

    fn page_index(&self, req: &Request) -> Option<usize> {
        match self.vendor {
            V::Chatzuri | V::Chatbase => {
                let page: usize = req.query("page")?.parse().ok()?;
                if self.fault == Fault::PageIgnored {
                    Some(0)
                } else {
                    page.checked_sub(1)
                }
            }
            V::Neoagent => {
                let body: Value = serde_json::from_slice(&req.body).ok()?;
                let start = body.get("startTime")?.as_str()?;
                let day: usize = start.strip_prefix("2025-01-")?.parse().ok()?;
                day.checked_sub(1)
            }
            V::Robofy => match req.query("nextPageToken") {
                None => Some(0),
                Some(token) => token
                    .strip_prefix("tok-")?
                    .parse::<usize>()
                    .ok()?
                    .checked_sub(1),
            },
        }
    }

    fn authorized(&self, req: &Request) -> bool {
        let expected = match self.vendor {
            V::Chatzuri => format!("Bearer {CHATZURI_KEY}"),
            V::Neoagent => NEOAGENT_KEY.to_owned(),
            V::Robofy => format!("Bearer {ROBOFY_KEY}"),
            V::Chatbase => format!("Bearer {CHATBASE_KEY}"),
        };
        let path_ok = match self.vendor {
            V::Chatzuri => req.path == "/get-leads" && req.query("agentId") == Some(CZ_AGENT),
            V::Neoagent => req.path == "/chat/Chatbot/LeadList",
            V::Robofy => req.path == format!("/v1/ai-agent/leads/{RF_PROJECT}/{RF_BOT}"),
            V::Chatbase => {
                req.path == "/api/v1/get-leads"
                    && req.query("chatbotId") == Some(CB_AGENT)
                    && req.query("agentId").is_none()
            }
        };
        path_ok && req.authorization.as_deref() == Some(expected.as_str())
    }

    fn respond(&self, req: &Request) -> Answer {
        if !self.authorized(req) {
            return Answer::json(
                401,
                &json!({"message": "Unauthorized", "error": {"code": "UNAUTHORIZED"}}),
            );
        }
        let Some(index) = self.page_index(req) else {
            return Answer::json(400, &json!({"message": "bad request"}));
        };
        let mut state = self.state.lock().unwrap();
        if state.hits.len() <= index {
            state.hits.resize(index + 1, Vec::new());
        }
        state.hits[index].push(SystemTime::now());
        if index == self.target && state.faults_left > 0 {
            if state.faults_left != FOREVER {
                state.faults_left -= 1;
            }
            state.faults_served += 1;
            let (records, token) = self.page(&state, index);
            let body = self.body(&records, token);
            return match self.fault {
                Fault::Status(status, _) => Answer::json(status, &json!({"message": "upstream trouble"})),
                Fault::RetryAfterSeconds => Answer::Http {
                    status: 429,
                    content_type: "application/json",
                    headers: vec![("Retry-After", "1".to_owned())],
                    body: b"{\"message\":\"slow down\"}".to_vec(),
                    delay: Duration::ZERO,
                },
                Fault::RetryAfterDate | Fault::RetryAfterTooLong => {
                    let (header, at) = if self.fault == Fault::RetryAfterDate {
                        let at = SystemTime::now() + Duration::from_secs(1);
                        (httpdate::fmt_http_date(at), at)
                    } else {
                        ("3600".to_owned(), SystemTime::now() + Duration::from_secs(3600))
                    };
                    // The date has whole seconds: that truncated instant is the earliest retry.
                    state.retry_at = Some(httpdate::parse_http_date(&httpdate::fmt_http_date(at)).unwrap());
                    Answer::Http {
                        status: 429,
                        content_type: "application/json",
                        headers: vec![("Retry-After", header)],
                        body: b"{\"message\":\"slow down\"}".to_vec(),
                        delay: Duration::ZERO,
                    }
                }
                Fault::RateLimitReset => {
                    let at = SystemTime::now() + Duration::from_secs(1);
                    let millis = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
                    state.retry_at = Some(at);
                    Answer::Http {
                        status: 429,
                        content_type: "application/json",
                        headers: vec![
                            ("X-RateLimit-Limit", "1000".to_owned()),
                            ("X-RateLimit-Remaining", "0".to_owned()),
                            ("X-RateLimit-Reset", millis.to_string()),
                        ],
                        body: br#"{"error":{"code":"RATE_LIMIT_TOO_MANY_REQUESTS","message":"Too many requests, please try again later"}}"#.to_vec(),
                        delay: Duration::ZERO,
                    }
                }
                Fault::Reset(_) => Answer::Reset(body),
                Fault::ShortBody(_) => Answer::ShortBody { body, missing: 100 },
                Fault::Slow(_) => Answer::Http {
                    status: 200,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body,
                    delay: Duration::from_secs(1),
                },
                Fault::Truncated => Answer::Http {
                    status: 200,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: body[..body.len() / 2].to_vec(),
                    delay: Duration::ZERO,
                },
                Fault::Html => Answer::Http {
                    status: 200,
                    content_type: "text/html; charset=utf-8",
                    headers: Vec::new(),
                    body: b"<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>\n".to_vec(),
                    delay: Duration::ZERO,
                },
                Fault::NeoFailure => Answer::json(
                    200,
                    &json!({"Data": null, "Version": "1.0.0", "Success": false, "Code": 500, "Message": "internal error, try later"}),
                ),
                Fault::TokenCycle | Fault::Duplicate | Fault::HeadInsert | Fault::PageIgnored | Fault::HeadInsertRace => {
                    unreachable!("data faults are not counted")
                }
            };
        }
        // A clean answer.
        let (records, token) = self.page(&state, index);
        for record in &records {
            state.served.insert(record.email());
        }
        state.served_count += records.len();
        if self.fault == Fault::HeadInsert && index == self.target && !state.inserted {
            state.inserted = true;
            state.listing.insert(0, Rec { n: 9, day: 3 });
        }
        let body = self.body(&records, token);
        let status = if self.vendor == V::Chatzuri { 202 } else { 200 };
        Answer::Http {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }

    /// The records of a page and, for Robofy, its next token.
    fn page(&self, state: &State, index: usize) -> (Vec<Rec>, Option<String>) {
        match self.vendor {
            V::Chatzuri | V::Chatbase => {
                let start = (index * PAGE_SIZE).min(state.listing.len());
                let end = (start + PAGE_SIZE).min(state.listing.len());
                (state.listing[start..end].to_vec(), None)
            }
            V::Neoagent | V::Robofy => {
                let records = state.pages.get(index).cloned().unwrap_or_default();
                let mut token =
                    (index + 1 < state.pages.len()).then(|| format!("tok-{}", index + 2));
                if self.fault == Fault::TokenCycle && index == self.target {
                    // Page 2 points at itself (A, A); page 3 back at page 2 (A, B, A).
                    token = Some("tok-2".to_owned());
                }
                (records, token)
            }
        }
    }

    fn body(&self, records: &[Rec], token: Option<String>) -> Vec<u8> {
        let rows: Vec<Value> = records.iter().map(|r| r.render(self.vendor)).collect();
        let value = match self.vendor {
            V::Chatzuri => json!({ "data": rows }),
            // The nested shape seen live (docs/vendor-apis.md §6.4).
            V::Chatbase => json!({ "collectedCustomers": { "data": rows } }),
            V::Neoagent => {
                json!({"Data": rows, "Version": "1.0.0", "Success": true, "Code": 200, "Message": ""})
            }
            V::Robofy => json!({
                "message": "Leads retrieved",
                "data": {"report": {
                    "columns": ["id", "created_at", "source", "page_url", "ip_address", "lead_data"],
                    "rows": rows,
                    "next_page_token": token
                }}
            }),
        };
        serde_json::to_vec(&value).unwrap()
    }
}

struct Wire(Arc<Script>);

impl Respond for Wire {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let req = Request {
            connection: 0,
            path: request.url.path().to_owned(),
            query: request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            authorization: request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: request.body.clone(),
        };
        match self.0.respond(&req) {
            Answer::Http {
                status,
                content_type,
                headers,
                body,
                delay,
            } => {
                let mut template = ResponseTemplate::new(status)
                    .set_body_raw(body, content_type)
                    .set_delay(delay);
                for (name, value) in headers {
                    template = template.insert_header(name, value.as_str());
                }
                template
            }
            Answer::Reset(_)
            | Answer::ShortBody { .. }
            | Answer::Raw { .. }
            | Answer::Silent
            | Answer::Trickle { .. } => {
                unreachable!("socket faults go through the raw server")
            }
        }
    }
}

/// The shared fake vendor, for the faults wiremock cannot produce.
async fn start_raw(script: Arc<Script>) -> String {
    fake::serve(move |req| {
        let script = script.clone();
        async move {
            if script.fault == Fault::HeadInsertRace && req.query("page") == Some("1") {
                // Hold page 1 until page 2 was answered, then insert at the head.
                for _ in 0..400 {
                    if script
                        .state
                        .lock()
                        .unwrap()
                        .hits
                        .get(1)
                        .is_some_and(|h| !h.is_empty())
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut state = script.state.lock().unwrap();
                state.inserted = true;
                state.listing.insert(0, Rec { n: 9, day: 3 });
            }
            script.respond(&req)
        }
    })
    .await
    .base
}

/// The output and state files of a run, with known contents beforehand.
struct Files {
    dir: tempfile::TempDir,
    out: PathBuf,
    state: PathBuf,
    state_before: Vec<u8>,
}

fn bookmark_key(vendor: V) -> String {
    match vendor {
        V::Chatzuri => format!("chatzuri/{CZ_AGENT}/leads"),
        V::Neoagent => format!("neoagent/{NA_SERIAL}/leads"),
        V::Robofy => format!("robofy/{RF_BOT}/leads"),
        V::Chatbase => format!("chatbase/{CB_AGENT}/leads"),
    }
}

impl Files {
    fn new(vendor: V) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.ndjson");
        let state = dir.path().join("state.json");
        std::fs::write(&out, OUT_BEFORE).unwrap();
        let state_before = serde_json::to_vec_pretty(&json!({
            "version": 1,
            "bookmarks": { bookmark_key(vendor): {"created_at": OLD_MARK, "ids": ["old-1"], "updated_at": OLD_MARK} }
        }))
        .unwrap();
        std::fs::write(&state, &state_before).unwrap();
        Files {
            dir,
            out,
            state,
            state_before,
        }
    }

    /// Only the output, the state and the state's lock: no temporary file.
    fn assert_no_leftovers(&self) {
        let names = dir_names(self.dir.path());
        assert_eq!(
            names,
            ["out.ndjson", "state.json", "state.json.lock"],
            "files left in the directory"
        );
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn command(vendor: V, base: &str, files: &Files, fault: Fault) -> Command {
    let mut cmd = leads();
    cmd.env("LEADS_NOW", "2025-02-01T00:00:00Z");
    match vendor {
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
            // Three one-day windows: 01-01..01-02, 01-02..01-03, 01-03..01-04.
            cmd.args([
                "--since",
                "2025-01-01",
                "--until",
                "2025-01-04",
                "--window",
                "1",
            ]);
        }
        V::Chatbase => {
            cmd.env("CHATBASE_API_KEY", CHATBASE_KEY);
            cmd.args([
                "pull",
                "--vendor",
                "chatbase",
                "--agent",
                CB_AGENT,
                "--page-size",
                "2",
            ]);
        }
        V::Robofy => {
            cmd.env("ROBOFY_API_KEY", ROBOFY_KEY);
            cmd.args([
                "pull",
                "--vendor",
                "robofy",
                "--agent",
                &format!("{RF_PROJECT}/{RF_BOT}"),
            ]);
        }
    }
    let timeout = if matches!(fault, Fault::Slow(_)) {
        "0.3"
    } else {
        "5"
    };
    // A head insert is about sequential paging: page 2 asked after page 1 was served.
    let concurrency = if fault == Fault::HeadInsert { "1" } else { "4" };
    // One base URL for both of Chatbase's API versions, as its docs give them.
    let base = match vendor {
        V::Chatbase => format!("{base}/api"),
        _ => base.to_owned(),
    };
    cmd.args([
        "--base-url",
        &base,
        "--format",
        "ndjson",
        "--retries",
        "3",
        "--timeout",
        timeout,
        "--concurrency",
        concurrency,
    ]);
    cmd.arg("-o")
        .arg(&files.out)
        .arg("--state")
        .arg(&files.state);
    cmd
}

async fn check(vendor: V, fault: Fault, pos: Pos) {
    let script = Script::new(vendor, fault, pos);
    let wire = MockServer::start().await;
    let base = if fault.needs_raw_server() {
        start_raw(script.clone()).await
    } else {
        Mock::given(any())
            .respond_with(Wire(script.clone()))
            .mount(&wire)
            .await;
        wire.uri()
    };
    let files = Files::new(vendor);
    let output = run(command(vendor, &base, &files, fault)).await;
    assert_no_key(&output);
    let state = script.state.lock().unwrap();
    let target = pos.index();
    match fault.expected_exit() {
        None => {
            assert_exit(&output, 0);
            let written: Vec<Value> = std::fs::read_to_string(&files.out)
                .unwrap()
                .lines()
                .map(|line| {
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("bad NDJSON line {line:?}: {e}"))
                })
                .collect();
            let emails: Vec<String> = written
                .iter()
                .map(|r| r["email"].as_str().unwrap().to_owned())
                .collect();
            let unique: BTreeSet<String> = emails.iter().cloned().collect();
            assert_eq!(
                unique.len(),
                emails.len(),
                "a record was written twice: {emails:?}"
            );
            let ids: BTreeSet<&str> = written.iter().map(|r| r["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), written.len(), "an id was written twice");
            assert!(
                written
                    .iter()
                    .all(|r| r["vendor"] == format!("{vendor:?}").to_lowercase())
            );
            assert_eq!(
                unique, state.served,
                "written records differ from the records served"
            );
            let missing: Vec<&String> = state.throughout.difference(&unique).collect();
            assert!(
                missing.is_empty(),
                "records listed for the whole run were not written: {missing:?}"
            );
            // The fault did happen, as often as scripted.
            assert_eq!(state.faults_served, fault.count(), "faulty answers given");
            let hits = &state.hits[target];
            // With pages in flight together, Chatzuri fetches page 1 once
            // more at the end to prove the head of the listing did not move.
            let head_check =
                usize::from(vendor.numbered() && fault != Fault::HeadInsert && target == 0);
            assert_eq!(
                hits.len(),
                fault.count() + 1 + head_check,
                "requests to the faulty page"
            );
            match fault {
                Fault::RetryAfterSeconds => {
                    let gap = hits[1].duration_since(hits[0]).unwrap();
                    assert!(
                        gap >= Duration::from_millis(950),
                        "Retry-After: 1 not obeyed: retried after {gap:?}"
                    );
                }
                Fault::RetryAfterDate | Fault::RateLimitReset => {
                    let at = state.retry_at.unwrap();
                    assert!(
                        hits[1] + Duration::from_millis(20) >= at,
                        "Retry-After date not obeyed"
                    );
                }
                Fault::HeadInsert | Fault::Duplicate => {
                    assert!(
                        state.served_count > state.served.len(),
                        "no record was served twice"
                    );
                    assert!(fault != Fault::HeadInsert || state.inserted);
                }
                _ => {}
            }
            // The state moved to the newest record written.
            let saved: Value =
                serde_json::from_slice(&std::fs::read(&files.state).unwrap()).unwrap();
            let newest = written
                .iter()
                .map(|r| r["created_at"].as_str().unwrap())
                .max()
                .unwrap();
            assert_eq!(
                saved["bookmarks"][bookmark_key(vendor)]["created_at"],
                newest,
                "state: {saved}"
            );
        }
        Some(code) => {
            assert_exit(&output, code);
            let err = stderr(&output);
            assert!(
                err.starts_with("leads: error: ") || err.contains("\nleads: error: "),
                "stderr: {err}"
            );
            assert_eq!(
                std::fs::read(&files.out).unwrap(),
                OUT_BEFORE,
                "the output file changed"
            );
            assert_eq!(
                std::fs::read(&files.state).unwrap(),
                files.state_before,
                "the state file changed"
            );
            match fault {
                Fault::Status(_, FOREVER)
                | Fault::Reset(FOREVER)
                | Fault::ShortBody(FOREVER)
                | Fault::Slow(FOREVER) => {
                    assert_eq!(state.hits[target].len(), 4, "one try and --retries 3");
                }
                Fault::RetryAfterTooLong => {
                    assert_eq!(
                        state.hits[target].len(),
                        1,
                        "a Retry-After above 120 s fails at once"
                    );
                    assert!(err.contains("hint:"), "says when to retry: {err}");
                }
                Fault::Truncated | Fault::Html | Fault::NeoFailure => {
                    assert_eq!(
                        state.hits[target].len(),
                        1,
                        "a malformed or refused body is not retried"
                    );
                }
                _ => {}
            }
        }
    }
    files.assert_no_leftovers();
}

/// `fault_case!(name, vendor, fault)` makes a module `name` with one test
/// per page position; a list of positions narrows it.
macro_rules! fault_case {
    ($name:ident, $vendor:ident, $fault:expr) => {
        fault_case!($name, $vendor, $fault, [first: First, middle: Middle, last: Last]);
    };
    ($name:ident, $vendor:ident, $fault:expr, [$($pos:ident : $variant:ident),+]) => {
        mod $name {
            use super::*;
            $(
                fault_case!(@test $pos, $vendor, $fault, $variant);
            )+
        }
    };
    (@test first, $vendor:ident, $fault:expr, $variant:ident) => {
        #[tokio::test]
        async fn on_first_page() {
            check(V::$vendor, $fault, Pos::$variant).await;
        }
    };
    (@test middle, $vendor:ident, $fault:expr, $variant:ident) => {
        #[tokio::test]
        async fn on_middle_page() {
            check(V::$vendor, $fault, Pos::$variant).await;
        }
    };
    (@test last, $vendor:ident, $fault:expr, $variant:ident) => {
        #[tokio::test]
        async fn on_last_page() {
            check(V::$vendor, $fault, Pos::$variant).await;
        }
    };
}

// Recoverable: the run ends with every record served written once.
fault_case!(chatzuri_500_burst_recovers, Chatzuri, Fault::Status(500, 2));
fault_case!(chatzuri_502_burst_recovers, Chatzuri, Fault::Status(502, 2));
fault_case!(chatzuri_503_burst_recovers, Chatzuri, Fault::Status(503, 3));
fault_case!(chatzuri_504_burst_recovers, Chatzuri, Fault::Status(504, 1));
fault_case!(chatzuri_408_burst_recovers, Chatzuri, Fault::Status(408, 1));
fault_case!(
    chatzuri_429_retry_after_seconds_recovers,
    Chatzuri,
    Fault::RetryAfterSeconds
);
fault_case!(
    chatzuri_429_retry_after_http_date_recovers,
    Chatzuri,
    Fault::RetryAfterDate
);
fault_case!(
    chatzuri_connection_reset_mid_body_recovers,
    Chatzuri,
    Fault::Reset(2)
);
fault_case!(
    chatzuri_body_shorter_than_content_length_recovers,
    Chatzuri,
    Fault::ShortBody(1)
);
fault_case!(
    chatzuri_slower_than_timeout_recovers,
    Chatzuri,
    Fault::Slow(1)
);
fault_case!(
    chatzuri_same_record_on_two_pages_recovers,
    Chatzuri,
    Fault::Duplicate
);
fault_case!(
    chatzuri_record_inserted_at_head_while_paging_recovers,
    Chatzuri,
    Fault::HeadInsert,
    [first: First, middle: Middle]
);

fault_case!(neoagent_500_burst_recovers, Neoagent, Fault::Status(500, 2));
fault_case!(neoagent_502_burst_recovers, Neoagent, Fault::Status(502, 2));
fault_case!(neoagent_503_burst_recovers, Neoagent, Fault::Status(503, 3));
fault_case!(neoagent_504_burst_recovers, Neoagent, Fault::Status(504, 1));
fault_case!(
    neoagent_429_retry_after_seconds_recovers,
    Neoagent,
    Fault::RetryAfterSeconds
);
fault_case!(
    neoagent_429_retry_after_http_date_recovers,
    Neoagent,
    Fault::RetryAfterDate
);
fault_case!(
    neoagent_connection_reset_mid_body_recovers,
    Neoagent,
    Fault::Reset(2)
);
fault_case!(
    neoagent_body_shorter_than_content_length_recovers,
    Neoagent,
    Fault::ShortBody(1)
);
fault_case!(
    neoagent_slower_than_timeout_recovers,
    Neoagent,
    Fault::Slow(1)
);
fault_case!(
    neoagent_same_record_in_two_windows_recovers,
    Neoagent,
    Fault::Duplicate
);

fault_case!(robofy_500_burst_recovers, Robofy, Fault::Status(500, 2));
fault_case!(robofy_502_burst_recovers, Robofy, Fault::Status(502, 2));
fault_case!(robofy_503_burst_recovers, Robofy, Fault::Status(503, 3));
fault_case!(robofy_504_burst_recovers, Robofy, Fault::Status(504, 1));
fault_case!(
    robofy_429_retry_after_seconds_recovers,
    Robofy,
    Fault::RetryAfterSeconds
);
fault_case!(
    robofy_429_retry_after_http_date_recovers,
    Robofy,
    Fault::RetryAfterDate
);
fault_case!(
    robofy_connection_reset_mid_body_recovers,
    Robofy,
    Fault::Reset(2)
);
fault_case!(
    robofy_body_shorter_than_content_length_recovers,
    Robofy,
    Fault::ShortBody(1)
);
fault_case!(robofy_slower_than_timeout_recovers, Robofy, Fault::Slow(1));
fault_case!(
    robofy_same_record_on_two_pages_recovers,
    Robofy,
    Fault::Duplicate
);

fault_case!(chatbase_500_burst_recovers, Chatbase, Fault::Status(500, 2));
fault_case!(chatbase_502_burst_recovers, Chatbase, Fault::Status(502, 2));
fault_case!(chatbase_503_burst_recovers, Chatbase, Fault::Status(503, 3));
fault_case!(chatbase_504_burst_recovers, Chatbase, Fault::Status(504, 1));
fault_case!(
    chatbase_429_retry_after_seconds_recovers,
    Chatbase,
    Fault::RetryAfterSeconds
);
fault_case!(
    chatbase_429_rate_limit_reset_in_milliseconds_recovers,
    Chatbase,
    Fault::RateLimitReset
);
fault_case!(
    chatbase_connection_reset_mid_body_recovers,
    Chatbase,
    Fault::Reset(2)
);
fault_case!(
    chatbase_body_shorter_than_content_length_recovers,
    Chatbase,
    Fault::ShortBody(1)
);
fault_case!(
    chatbase_slower_than_timeout_recovers,
    Chatbase,
    Fault::Slow(1)
);
fault_case!(
    chatbase_same_record_on_two_pages_recovers,
    Chatbase,
    Fault::Duplicate
);
fault_case!(
    chatbase_record_inserted_at_head_while_paging_recovers,
    Chatbase,
    Fault::HeadInsert,
    [first: First, middle: Middle]
);

// Unrecoverable: the run fails with the documented exit code and leaves
// the output and state files as they were.
fault_case!(
    chatzuri_503_retries_exhausted_exit_5,
    Chatzuri,
    Fault::Status(503, FOREVER)
);
fault_case!(chatzuri_500_retries_exhausted_exit_5, Chatzuri, Fault::Status(500, FOREVER), [middle: Middle]);
fault_case!(chatzuri_429_retries_exhausted_exit_5, Chatzuri, Fault::Status(429, FOREVER), [last: Last]);
fault_case!(chatzuri_429_retry_after_over_120s_exit_5, Chatzuri, Fault::RetryAfterTooLong, [middle: Middle]);
fault_case!(
    chatzuri_connection_reset_every_time_exit_6,
    Chatzuri,
    Fault::Reset(FOREVER)
);
fault_case!(chatzuri_body_always_short_exit_6, Chatzuri, Fault::ShortBody(FOREVER), [middle: Middle]);
fault_case!(chatzuri_always_slower_than_timeout_exit_6, Chatzuri, Fault::Slow(FOREVER), [last: Last]);
fault_case!(chatzuri_truncated_json_exit_5, Chatzuri, Fault::Truncated);
fault_case!(chatzuri_html_with_status_200_exit_5, Chatzuri, Fault::Html);
fault_case!(chatzuri_server_ignores_page_loop_exit_5, Chatzuri, Fault::PageIgnored, [middle: Middle]);

fault_case!(
    neoagent_503_retries_exhausted_exit_5,
    Neoagent,
    Fault::Status(503, FOREVER)
);
fault_case!(neoagent_502_retries_exhausted_exit_5, Neoagent, Fault::Status(502, FOREVER), [first: First]);
fault_case!(neoagent_429_retry_after_over_120s_exit_5, Neoagent, Fault::RetryAfterTooLong, [last: Last]);
fault_case!(
    neoagent_connection_reset_every_time_exit_6,
    Neoagent,
    Fault::Reset(FOREVER)
);
fault_case!(neoagent_always_slower_than_timeout_exit_6, Neoagent, Fault::Slow(FOREVER), [middle: Middle]);
fault_case!(neoagent_truncated_json_exit_5, Neoagent, Fault::Truncated);
fault_case!(neoagent_html_with_status_200_exit_5, Neoagent, Fault::Html);
fault_case!(neoagent_success_false_exit_5, Neoagent, Fault::NeoFailure);

fault_case!(
    robofy_503_retries_exhausted_exit_5,
    Robofy,
    Fault::Status(503, FOREVER)
);
fault_case!(robofy_500_retries_exhausted_exit_5, Robofy, Fault::Status(500, FOREVER), [last: Last]);
fault_case!(robofy_429_retry_after_over_120s_exit_5, Robofy, Fault::RetryAfterTooLong, [first: First]);
fault_case!(
    robofy_connection_reset_every_time_exit_6,
    Robofy,
    Fault::Reset(FOREVER)
);
fault_case!(robofy_always_slower_than_timeout_exit_6, Robofy, Fault::Slow(FOREVER), [first: First]);
fault_case!(robofy_truncated_json_exit_5, Robofy, Fault::Truncated);
fault_case!(robofy_html_with_status_200_exit_5, Robofy, Fault::Html);
fault_case!(robofy_token_cycle_exit_5, Robofy, Fault::TokenCycle, [middle: Middle, last: Last]);

fault_case!(
    chatbase_503_retries_exhausted_exit_5,
    Chatbase,
    Fault::Status(503, FOREVER)
);
fault_case!(chatbase_429_retries_exhausted_exit_5, Chatbase, Fault::Status(429, FOREVER), [middle: Middle]);
fault_case!(chatbase_429_retry_after_over_120s_exit_5, Chatbase, Fault::RetryAfterTooLong, [last: Last]);
fault_case!(
    chatbase_connection_reset_every_time_exit_6,
    Chatbase,
    Fault::Reset(FOREVER)
);
fault_case!(chatbase_always_slower_than_timeout_exit_6, Chatbase, Fault::Slow(FOREVER), [first: First]);
fault_case!(chatbase_truncated_json_exit_5, Chatbase, Fault::Truncated);
fault_case!(chatbase_html_with_status_200_exit_5, Chatbase, Fault::Html);
fault_case!(chatbase_server_ignores_page_loop_exit_5, Chatbase, Fault::PageIgnored, [middle: Middle]);

/// Numbered pages fetched concurrently from a newest-first listing: a
/// record inserted at the head between the answers to page 2 and page 1
/// pushes the last record of page 1 onto page 2, which was already
/// answered, so that record is never fetched; with `--state` the bookmark
/// then moves past it and no later run writes it.
#[tokio::test]
async fn chatzuri_record_inserted_at_head_with_pages_in_flight_recovers() {
    check(V::Chatzuri, Fault::HeadInsertRace, Pos::First).await;
}

#[tokio::test]
async fn chatbase_record_inserted_at_head_with_pages_in_flight_recovers() {
    check(V::Chatbase, Fault::HeadInsertRace, Pos::First).await;
}
