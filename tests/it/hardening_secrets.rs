//! Hardening of secrets and of what a vendor can make us print: each test is
//! named after the defect it guards against, and runs the real binary against
//! a real server on loopback (wiremock, a scripted TCP server, or a TLS server
//! with a CA made in the test). Every run's stdout and stderr (and files) are
//! searched for the key and for every 12-character run of it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const CZ_AGENT: &str = "agent-7";
const CZ_PATH: &str = "/api/v1/get-leads";
/// A key with `/` in it, the character PHP's JSON encoder escapes.
const SLASH_KEY: &str = "czk/live/8f7a6b5c4d3e2f1a9b0c";

fn cz_page(ids: &[u64]) -> Value {
    json!({ "data": ids.iter().map(|id| json!({
        "id": id,
        "created_at": "2025-01-15T10:30:00Z",
        "chatbot_id": CZ_AGENT,
        "email": format!("lead{id}@example.com"),
        "name": format!("Lead {id}")
    })).collect::<Vec<_>>() })
}

/// `leads pull` for Chatzuri against `base` with `key`, one attempt only.
fn chatzuri_with(key: &str, base: &str, args: &[&str]) -> Command {
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", key);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", CZ_AGENT]);
    cmd.args(["--base-url", &format!("{base}/api/v1"), "--retries", "0"]);
    cmd.args(args);
    cmd
}

fn chatzuri(base: &str, args: &[&str]) -> Command {
    chatzuri_with(CHATZURI_KEY, base, args)
}

/// Runs, checks the exit code, and that neither the test keys nor `extra`
/// (nor any 12-character run of them) appear in what was written.
async fn run_clean(cmd: Command, code: i32, extra: &[&str]) -> Output {
    let output = run(cmd).await;
    assert_exit(&output, code);
    assert_no_key(&output);
    for secret in extra {
        assert_no_secret_in("stdout", &output.stdout, secret);
        assert_no_secret_in("stderr", &output.stderr, secret);
    }
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    output
}

async fn serve_once(status: u16, body: impl Into<Vec<u8>>, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CZ_PATH))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body.into(), content_type))
        .mount(&server)
        .await;
    server
}

fn bytes_free_of_terminal_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for c in text.chars() {
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
        assert!(
            (c == '\n' || !c.is_control()) && !bidi,
            "{what} carries the control or bidi character U+{:04X}: {text}",
            c as u32
        );
    }
}

// ===========================================================================
// 1. The key echoed back by a vendor, in disguise
// ===========================================================================

/// A 401 body that echoes the key JSON-escaped (`\/`, as PHP writes it, or
/// every character as `\uXXXX`) was redacted on the raw bytes and then
/// decoded, so the key reached stderr even with `-q`; with `-vv` too.
#[tokio::test]
async fn json_escaped_key_echo_is_redacted() {
    let slashes = SLASH_KEY.replace('/', "\\/");
    let every: String = SLASH_KEY
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    for echoed in [slashes, every] {
        let body = format!(r#"{{"error":"invalid key Bearer {echoed}"}}"#);
        for flags in [&["-q"][..], &["-vv"][..], &[][..]] {
            let server = serve_once(401, body.clone(), "application/json").await;
            let output = run_clean(
                chatzuri_with(SLASH_KEY, &server.uri(), flags),
                3,
                &[SLASH_KEY],
            )
            .await;
            let err = stderr(&output);
            assert!(err.contains("invalid key Bearer"), "{err}");
            assert!(err.contains("(redacted)"), "{err}");
        }
    }
}

/// A vendor that echoes only the first 16 characters of the key leaked it:
/// only the whole key was searched for.
#[tokio::test]
async fn partial_key_echo_of_sixteen_characters_is_redacted() {
    let body = format!(r#"{{"error":"unknown key {}..."}}"#, &CHATZURI_KEY[..16]);
    let server = serve_once(401, body, "application/json").await;
    let output = run_clean(chatzuri(&server.uri(), &["-v"]), 3, &[]).await;
    assert!(
        stderr(&output).contains("unknown key (redacted)"),
        "{}",
        stderr(&output)
    );
    // The tail of the key, in a body that is not JSON, in an excerpt.
    let body = format!("<html>bad key ...{}</html>", &CHATZURI_KEY[8..]);
    let server = serve_once(500, body, "text/html").await;
    run_clean(chatzuri(&server.uri(), &[]), 5, &[]).await;
}

/// The excerpt of a body that is not JSON was redacted only in its raw form:
/// a percent-encoded key (a vendor echoing the request URL) or a JSON escape
/// inside a broken JSON body went through.
#[tokio::test]
async fn encoded_key_in_a_non_json_body_is_redacted() {
    let percent: String = SLASH_KEY.bytes().map(|b| format!("%{b:02X}")).collect();
    let broken_json = format!(
        r#"{{"data": [ "token": "{}""#,
        SLASH_KEY.replace('/', "\\/")
    );
    for (status, code, body) in [
        (
            502u16,
            5,
            format!("<p>upstream GET /get-leads?key={percent} failed</p>"),
        ),
        (200, 5, broken_json),
        (
            401,
            3,
            format!("denied for key={}", SLASH_KEY.replace('/', "%2F")),
        ),
    ] {
        let server = serve_once(status, body, "text/plain").await;
        run_clean(
            chatzuri_with(SLASH_KEY, &server.uri(), &["-vv"]),
            code,
            &[SLASH_KEY],
        )
        .await;
    }
}

/// NeoAgent's refusal inside a 200 (`Success: false`) carries the vendor's
/// `Message`: it goes through the same redaction.
#[tokio::test]
async fn escaped_key_in_a_refusal_inside_a_200_is_redacted() {
    let server = MockServer::start().await;
    let body = format!(
        r#"{{"Success":false,"Code":401,"Message":"key {} is not valid","Data":null}}"#,
        NEOAGENT_KEY
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect::<String>()
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("NEOAGENT_API_KEY", NEOAGENT_KEY);
    cmd.args([
        "pull",
        "--vendor",
        "neoagent",
        "--agent",
        "3254a9d0424c4806b9ea3d0763ccf000",
    ]);
    cmd.args(["--base-url", &server.uri(), "--retries", "0"]);
    let output = run_clean(cmd, 3, &[]).await;
    assert!(
        stderr(&output).contains("is not valid"),
        "{}",
        stderr(&output)
    );
}

// ===========================================================================
// 2. Vendor text that drives the terminal
// ===========================================================================

/// Escape sequences (ESC, BEL, CSI/OSC) and bidi overrides in a vendor's
/// error message or body reached the terminal as they were.
#[tokio::test]
async fn terminal_escapes_and_bidi_overrides_from_a_vendor_are_escaped() {
    let json_body =
        r#"{"error":"\u001b]0;pwned\u0007\u001b[2J\u009b31m bad \u202egnp.exe\u2066x\u2069"}"#;
    let raw_body = "\u{1b}[31mred\u{7} \u{202e}evil\u{200f} body"
        .as_bytes()
        .to_vec();
    for (status, code, body) in [
        (401u16, 3, json_body.as_bytes().to_vec()),
        (503, 5, raw_body.clone()),
        (200, 5, raw_body),
    ] {
        for flags in [&[][..], &["-vv"][..]] {
            let server = serve_once(status, body.clone(), "text/plain").await;
            let output = run_clean(chatzuri(&server.uri(), flags), code, &[]).await;
            bytes_free_of_terminal_controls("stderr", &output.stderr);
            let err = stderr(&output);
            assert!(
                err.contains("\\u{001b}") || err.contains("\\u{202e}"),
                "{err}"
            );
        }
    }
}

/// An id a vendor sent (here: a Robofy page token, echoed in the loop
/// error) is vendor text too.
#[tokio::test]
async fn control_characters_in_an_echoed_vendor_token_are_escaped() {
    let server = MockServer::start().await;
    let token = "\u{1b}[2Jtok\u{202e}";
    let page =
        json!({ "message": "ok", "data": { "report": { "rows": [], "next_page_token": token } } });
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY);
    cmd.args([
        "pull",
        "--vendor",
        "robofy",
        "--project",
        "42",
        "--agent",
        "bot-1",
    ]);
    cmd.args([
        "--base-url",
        &server.uri(),
        "--retries",
        "0",
        "--concurrency",
        "1",
    ]);
    let output = run_clean(cmd, 5, &[]).await;
    bytes_free_of_terminal_controls("stderr", &output.stderr);
    assert!(stderr(&output).contains("loop"), "{}", stderr(&output));
}

// ===========================================================================
// 3. Proxies and loopback
// ===========================================================================

/// A fake proxy on loopback that records every byte it is sent.
fn recording_proxy() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            if let Ok(n) = stream.read(&mut buf) {
                record.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            record.lock().unwrap().extend_from_slice(b"<connection>");
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (url, seen)
}

/// With `HTTP_PROXY` set, a loopback `http://` base URL sent the key in
/// clear text to the proxy.
#[tokio::test]
async fn loopback_requests_never_go_through_a_proxy() {
    let server = serve_once(
        200,
        serde_json::to_vec(&cz_page(&[1, 2])).unwrap(),
        "application/json",
    )
    .await;
    let (proxy, seen) = recording_proxy();
    for host in ["127.0.0.1", "localhost"] {
        let base = server.uri().replace("127.0.0.1", host);
        let mut cmd = chatzuri(&base, &["--format", "ndjson"]);
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
        ] {
            cmd.env(var, &proxy);
        }
        let output = run_clean(cmd, 0, &[]).await;
        assert_eq!(ndjson(&output).len(), 2, "{host}");
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.is_empty(),
        "the proxy was sent: {}",
        String::from_utf8_lossy(&seen)
    );
}

/// The proxy is still honoured for a remote (https) host: the run reaches
/// the proxy (which fails it), rather than ignoring HTTPS_PROXY.
#[tokio::test]
async fn https_proxy_is_still_honoured_for_remote_hosts() {
    let (proxy, seen) = recording_proxy();
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.env("HTTPS_PROXY", &proxy);
    cmd.args([
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        CZ_AGENT,
        "--retries",
        "0",
    ]);
    cmd.args(["--base-url", "https://vendor.invalid/api/v1"]);
    run_clean(cmd, 6, &[]).await;
    let seen = seen.lock().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("CONNECT vendor.invalid:443"), "{text}");
}

// ===========================================================================
// 4. Base URLs with userinfo, query or fragment
// ===========================================================================

fn config_with(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// `http://user:pass@host` logged the password under -v and sent a second
/// Authorization header: it is refused before anything is sent, from the
/// flag, the variable and a named source alike, without echoing it.
#[tokio::test]
async fn base_url_with_userinfo_is_refused_without_echoing_the_password() {
    const PASSWORD: &str = "hunter2-Pa55word-xyz";
    let server = serve_once(
        200,
        serde_json::to_vec(&cz_page(&[1])).unwrap(),
        "application/json",
    )
    .await;
    let with_userinfo = server
        .uri()
        .replace("http://", &format!("http://admin:{PASSWORD}@"));
    let flag = chatzuri(&with_userinfo, &["-vv"]);
    let mut variable = leads();
    variable.env("CHATZURI_API_KEY", CHATZURI_KEY);
    variable.env("CHATZURI_BASE_URL", format!("{with_userinfo}/api/v1"));
    variable.args(["-vv", "pull", "--vendor", "chatzuri", "--agent", CZ_AGENT]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        &format!(
            "[sources.website]\nvendor = \"chatzuri\"\nagent = \"{CZ_AGENT}\"\nbase_url = \"{with_userinfo}/api/v1\"\n"
        ),
    );
    let mut named = leads();
    named.env("CHATZURI_API_KEY", CHATZURI_KEY);
    named
        .args(["-vv", "pull", "--config"])
        .arg(&config)
        .arg("website");
    for cmd in [flag, variable, named] {
        let output = run_clean(cmd, 2, &[PASSWORD]).await;
        assert!(
            stderr(&output).contains("user name or password"),
            "{}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("admin"), "{}", stderr(&output));
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// A base URL with a query string or a fragment was accepted, and endpoint
/// paths were appended after the query.
#[tokio::test]
async fn base_url_with_query_or_fragment_is_refused() {
    let server = serve_once(
        200,
        serde_json::to_vec(&cz_page(&[1])).unwrap(),
        "application/json",
    )
    .await;
    for suffix in ["/api/v1?token=abc", "/api/v1#frag", "/api/v1?"] {
        let mut cmd = leads();
        cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
        cmd.args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            CZ_AGENT,
            "--base-url",
        ]);
        cmd.arg(format!("{}{suffix}", server.uri()));
        let output = run_clean(cmd, 2, &[]).await;
        assert!(
            stderr(&output).contains("query string or fragment"),
            "{}",
            stderr(&output)
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ===========================================================================
// 5. A key given where a path or a variable name goes
// ===========================================================================

/// `--api-key-file KEY`, `api_key_file = "KEY"`, `api_key_env = "KEY"` and a
/// source named like a key all echoed the key in the error.
#[tokio::test]
async fn key_given_where_a_path_or_variable_name_goes_is_not_echoed() {
    let mut as_path = leads();
    as_path.args([
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        CZ_AGENT,
        "--api-key-file",
        CHATZURI_KEY,
    ]);
    let output = run_clean(as_path, 2, &[]).await;
    assert!(
        stderr(&output).contains("--api-key-file"),
        "{}",
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    for field in ["api_key_env", "api_key_file"] {
        let config = config_with(
            dir.path(),
            &format!(
                "[sources.website]\nvendor = \"chatzuri\"\nagent = \"{CZ_AGENT}\"\n{field} = \"{CHATZURI_KEY}\"\n"
            ),
        );
        let mut cmd = leads();
        cmd.args(["pull", "--config"]).arg(&config).arg("website");
        let output = run_clean(cmd, 2, &[]).await;
        assert!(stderr(&output).contains(field), "{}", stderr(&output));
    }

    let config = config_with(
        dir.path(),
        &format!("[sources.website]\nvendor = \"chatzuri\"\nagent = \"{CZ_AGENT}\"\n"),
    );
    let mut cmd = leads();
    cmd.args(["pull", "--config"])
        .arg(&config)
        .arg(CHATZURI_KEY);
    run_clean(cmd, 2, &[]).await;

    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.env("CHATZURI_BASE_URL", NEOAGENT_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", CZ_AGENT]);
    run_clean(cmd, 2, &[]).await;
}

// ===========================================================================
// 6. Retry-After beyond any clock
// ===========================================================================

/// A huge `Retry-After` panicked (`SystemTime::now() + wait` overflowed, or
/// the date could not be formatted): it is the documented exit 5 that says
/// when to retry.
#[tokio::test]
async fn huge_retry_after_is_exit_5_not_a_panic() {
    for value in [
        "18446744073709551615",
        "300000000000",
        "99999999999999999999999",
        "3600",
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(CZ_PATH))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", value))
            .mount(&server)
            .await;
        let mut cmd = leads();
        cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
        cmd.args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            CZ_AGENT,
            "--retries",
            "3",
        ]);
        cmd.args(["--base-url", &format!("{}/api/v1", server.uri())]);
        let output = run_clean(cmd, 5, &[]).await;
        let err = stderr(&output);
        assert!(err.contains("retry after"), "{value}: {err}");
        if value == "3600" {
            assert!(err.contains("GMT"), "{err}");
        }
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{value}"
        );
    }
}

// ===========================================================================
// 7. TLS trust: system store, SSL_CERT_FILE, --ca-cert
// ===========================================================================

fn tls_run(base: &str, args: &[&str]) -> Command {
    let mut cmd = chatzuri(base, &["--format", "ndjson"]);
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    cmd.args(args);
    cmd
}

/// Only the bundled webpki roots were trusted: an internal CA or a
/// TLS-inspecting proxy could not be trusted at all. It now can, through
/// `SSL_CERT_FILE`, `--ca-cert` and `ca_cert` in a named source; without any
/// of them the certificate is refused with exit 6 and a message that says
/// the certificate is not trusted, and how to trust it.
#[tokio::test]
async fn internal_ca_is_trusted_through_ssl_cert_file_or_ca_cert_and_refused_otherwise() {
    let ca = make_ca();
    let base = tls_server(&ca, serde_json::to_vec(&cz_page(&[1, 2, 3])).unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("internal-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();

    let refused = run_clean(tls_run(&base, &["-v"]), 6, &[]).await;
    let err = stderr(&refused);
    assert!(err.contains("certificate not trusted"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");

    let mut env_trust = tls_run(&base, &[]);
    env_trust.env("SSL_CERT_FILE", &ca_file);
    let output = run_clean(env_trust, 0, &[]).await;
    assert_eq!(ndjson(&output).len(), 3);

    let flag_trust = tls_run(&base, &["--ca-cert", ca_file.to_str().unwrap()]);
    let output = run_clean(flag_trust, 0, &[]).await;
    assert_eq!(ndjson(&output).len(), 3);

    let config = config_with(
        dir.path(),
        &format!(
            "[sources.internal]\nvendor = \"chatzuri\"\nagent = \"{CZ_AGENT}\"\nbase_url = \"{base}/api/v1\"\nca_cert = \"{}\"\n",
            ca_file.display()
        ),
    );
    let mut named = leads();
    named.env("CHATZURI_API_KEY", CHATZURI_KEY);
    named.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    named
        .args(["pull", "--format", "ndjson", "--config"])
        .arg(&config)
        .arg("internal");
    let output = run_clean(named, 0, &[]).await;
    assert_eq!(ndjson(&output).len(), 3);
}

/// `--ca-cert` with an unreadable or invalid file, or with `--sandbox`, is a
/// usage error before anything is sent.
#[tokio::test]
async fn ca_cert_that_is_missing_invalid_or_with_sandbox_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let corrupt = dir.path().join("corrupt.pem");
    std::fs::write(
        &corrupt,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    for file in [&garbage, &corrupt, &missing] {
        let cmd = tls_run(
            "https://127.0.0.1:9",
            &["--ca-cert", file.to_str().unwrap()],
        );
        let output = run_clean(cmd, 2, &[]).await;
        assert!(
            stderr(&output).contains("CA certificate file"),
            "{}",
            stderr(&output)
        );
    }
    let mut sandbox = leads();
    sandbox.args([
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        "demo",
        "--sandbox",
        "--ca-cert",
    ]);
    sandbox.arg(&garbage);
    let output = run_clean(sandbox, 2, &[]).await;
    assert!(stderr(&output).contains("--ca-cert"), "{}", stderr(&output));
}

// ===========================================================================
// 8. Reading key and config files
// ===========================================================================

/// `/dev/zero` as key file or config file read until memory ran out.
#[tokio::test]
async fn dev_zero_as_key_or_config_file_is_exit_2_not_a_runaway_read() {
    let mut key = leads();
    key.timeout(Duration::from_secs(30));
    key.args([
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        CZ_AGENT,
        "--api-key-file",
        "/dev/zero",
    ]);
    let output = run_clean(key, 2, &[]).await;
    assert!(stderr(&output).contains("64 KiB"), "{}", stderr(&output));

    let mut config = leads();
    config.timeout(Duration::from_secs(30));
    config.args(["pull", "--config", "/dev/zero", "website"]);
    let output = run_clean(config, 2, &[]).await;
    assert!(stderr(&output).contains("1 MiB"), "{}", stderr(&output));
}

/// A FIFO as key file (`--api-key-file <(pass show x)`) must be read to its
/// first line and work, whether or not the writer closes.
#[cfg(unix)]
#[tokio::test]
async fn fifo_key_file_is_read_to_its_first_line() {
    let server = serve_once(
        200,
        serde_json::to_vec(&cz_page(&[1])).unwrap(),
        "application/json",
    )
    .await;
    for close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new()
                .write(true)
                .open(&writer_path)
                .unwrap();
            pipe.write_all(format!("{CHATZURI_KEY}\n").as_bytes())
                .unwrap();
            if !close {
                // Keep the pipe open until the reader is done.
                std::thread::sleep(Duration::from_secs(3));
            }
        });
        let mut cmd = leads();
        cmd.timeout(Duration::from_secs(30));
        cmd.args([
            "pull", "--vendor", "chatzuri", "--agent", CZ_AGENT, "--format", "ndjson",
        ]);
        cmd.args([
            "--base-url",
            &format!("{}/api/v1", server.uri()),
            "--api-key-file",
        ]);
        cmd.arg(&fifo);
        let output = run_clean(cmd, 0, &[]).await;
        assert_eq!(ndjson(&output).len(), 1);
        assert!(
            !stderr(&output).contains("readable by group"),
            "{}",
            stderr(&output)
        );
        writer.join().unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap() == format!("Bearer {CHATZURI_KEY}"))
    }));
}

/// A key file readable by group or others drew no warning (the config file
/// did).
#[cfg(unix)]
#[tokio::test]
async fn key_file_readable_by_others_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let server = serve_once(
        200,
        serde_json::to_vec(&cz_page(&[1])).unwrap(),
        "application/json",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("chatzuri.key");
    std::fs::write(&key_file, format!("{CHATZURI_KEY}\n")).unwrap();
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false)] {
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut cmd = leads();
        cmd.args([
            "pull", "--vendor", "chatzuri", "--agent", CZ_AGENT, "--format", "ndjson",
        ]);
        cmd.args([
            "--base-url",
            &format!("{}/api/v1", server.uri()),
            "--api-key-file",
        ]);
        cmd.arg(&key_file);
        let output = run_clean(cmd, 0, &[]).await;
        let err = stderr(&output);
        assert_eq!(
            err.contains("key file") && err.contains("readable by group or others"),
            warned,
            "mode {mode:o}: {err}"
        );
    }
}
