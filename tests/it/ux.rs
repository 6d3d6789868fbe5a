//! Everyday-use defects a new user met (issue 13): argument errors that lost
//! clap's detail, flags that silently did nothing, errors that blamed the
//! wrong thing, log lines in another voice, plural slips.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{CHATZURI_KEY, ROBOFY_KEY, assert_exit, assert_no_key, leads, run, stderr};

async fn usage_error(args: &[&str]) -> String {
    let mut cmd = leads();
    cmd.args(args);
    let output = run(cmd).await;
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(
        err.lines().any(|l| l.starts_with("leads: error: ")),
        "{err}"
    );
    err
}

#[tokio::test]
async fn completions_without_a_shell_names_the_missing_argument() {
    let err = usage_error(&["completions"]).await;
    assert!(err.contains("<SHELL>"), "{err}");
    assert!(err.contains("leads completions --help"), "{err}");
}

#[tokio::test]
async fn an_unknown_format_lists_the_possible_values() {
    let err = usage_error(&["pull", "--format", "xml"]).await;
    assert!(
        err.contains("possible values") && err.contains("ndjson"),
        "{err}"
    );
}

#[tokio::test]
async fn a_negative_number_gets_a_message_about_the_number() {
    for (flag, value) in [
        ("--limit", "-1"),
        ("--concurrency", "-3"),
        ("--retries", "-1"),
        ("--page-size", "-5"),
    ] {
        let err = usage_error(&["pull", flag, value]).await;
        assert!(!err.contains("use '--"), "{flag}: {err}");
        assert!(err.contains(value) && err.contains(flag), "{flag}: {err}");
    }
}

#[tokio::test]
async fn lock_timeout_without_state_is_refused_not_ignored() {
    let err = usage_error(&[
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        "a",
        "--lock-timeout",
        "5",
    ])
    .await;
    assert!(
        err.contains("--lock-timeout") && err.contains("--state"),
        "{err}"
    );
}

#[tokio::test]
async fn a_toml_error_gives_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[sources.a]\nvendor = \"chatzuri\"\nagent = \n").unwrap();
    let err = usage_error(&["pull", "--all", "--config", config.to_str().unwrap()]).await;
    assert!(err.contains("line 3, column 9"), "{err}");
}

#[tokio::test]
async fn warnings_use_the_same_prefix_as_errors() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[sources.a]\nvendor = \"chatzuri\"\nagent = \"a\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = leads();
    cmd.args(["pull", "--all", "--config", config.to_str().unwrap()]);
    let err = stderr(&run(cmd).await);
    let warning = err
        .lines()
        .find(|l| l.contains("readable by group or others"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(warning.starts_with("leads: warning: "), "{warning}");
}

#[tokio::test]
async fn robofy_404_project_not_found_blames_the_project_not_the_agent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/ai-agent/leads/42/bot-1"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "Project not found",
            "error": {"code": "PROJECT_NOT_FOUND", "detail": "No project 42"}
        })))
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("ROBOFY_API_KEY", ROBOFY_KEY);
    cmd.args(["pull", "--vendor", "robofy", "--agent", "42/bot-1"]);
    cmd.args(["--base-url", &server.uri()]);
    let output = run(cmd).await;
    assert_exit(&output, 4);
    assert_no_key(&output);
    let err = stderr(&output);
    assert!(err.contains("does not know the project"), "{err}");
    assert!(!err.contains("does not know agent"), "{err}");
    assert!(err.contains("hint: check --project"), "{err}");
}

#[tokio::test]
async fn a_redirect_names_where_it_points_as_the_base_url_to_use() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-leads"))
        .respond_with(
            ResponseTemplate::new(301)
                .insert_header("location", "https://api.example.test/v2/get-leads"),
        )
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", "a"]);
    cmd.args(["--base-url", &format!("{}/api/v1", server.uri())]);
    let output = run(cmd).await;
    assert_exit(&output, 5);
    let err = stderr(&output);
    assert!(
        err.contains("the base URL redirects to https://api.example.test/v2"),
        "{err}"
    );
    assert!(err.contains("use that as --base-url"), "{err}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not followed"
    );
}

#[tokio::test]
async fn one_of_a_thing_is_singular_and_v_logs_status_page_and_size() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-leads"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"data": [
            {"id": 1, "created_at": "2025-01-15T10:30:00Z", "email": "a@example.test"}
        ]})))
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", "a", "-v"]);
    cmd.args(["--base-url", &server.uri(), "--concurrency", "1"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(
        err.contains("leads: 1 lead written, 1 page, 1 request (0 retried), 0 duplicates dropped"),
        "{err}"
    );
    let request = err
        .lines()
        .find(|l| l.contains("/get-leads?"))
        .unwrap_or_else(|| panic!("no request line: {err}"));
    assert!(request.contains("(page 1) -> 202 in "), "{request}");
    assert!(
        request.contains(" ms, ") && request.ends_with(" bytes"),
        "{request}"
    );
}

/// `leads sandbox -v` logs each request it serves, and Ctrl-C (SIGINT),
/// the documented way to stop it, is a clean exit 0.
#[test]
fn leads_sandbox_logs_requests_with_v_and_ctrl_c_is_a_clean_exit() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_leads"))
        .args(["sandbox", "--port", "0", "--leads", "5", "-v"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("leads sandbox starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut base = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(url) = line.trim().strip_prefix("base URL")
            && url.contains("/chatzuri/")
        {
            base = Some(url.trim().to_owned());
        }
        if line.contains("Stop with Ctrl-C") {
            break;
        }
        line.clear();
    }
    let base = base.expect("a Chatzuri base URL");
    let pull = Command::new(env!("CARGO_BIN_EXE_leads"))
        .args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "demo",
            "--base-url",
            &base,
        ])
        .env_clear()
        .env("CHATZURI_API_KEY", "sk-sandbox-chatzuri-0123456789")
        .output()
        .unwrap();
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("error"), "{err}");
    assert!(
        err.lines().any(
            |l| l.starts_with("leads: sandbox: #1 GET /chatzuri/api/v1/get-leads?")
                && l.contains("-> 202 in ")
        ),
        "{err}"
    );
}

#[tokio::test]
async fn man_prints_a_roff_page_and_help_lists_the_environment() {
    let mut cmd = leads();
    cmd.arg("man");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let page = crate::common::stdout(&output);
    assert!(
        page.contains(".TH leads 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    for command in ["pull", "conversations", "vendors"] {
        assert!(
            page.contains(command),
            "{command} missing from the man page"
        );
    }
    let mut cmd = leads();
    cmd.arg("--help");
    let help = crate::common::stdout(&run(cmd).await);
    let environment = help
        .split("Environment:")
        .nth(1)
        .expect("an Environment section");
    let mut variables: Vec<&str> = leads::model::Vendor::all()
        .iter()
        .flat_map(|v| [v.key_env(), v.base_url_env()])
        .collect();
    variables.extend([
        "LEADS_CONFIG",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "RUST_LOG",
    ]);
    for variable in variables {
        assert!(environment.contains(variable), "{variable} not in --help");
    }
}

/// What a terminal would show of a transcript: escape sequences removed,
/// and of each line only what is left after its last carriage return.
fn visible_lines(transcript: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = transcript.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    // A terminal's line ends are CR LF; a bare CR returns to the line's start.
    plain
        .replace("\r\n", "\n")
        .split('\n')
        .map(|line| line.rsplit('\r').next().unwrap_or("").trim_end().to_owned())
        .collect()
}

/// On a terminal (a pseudo-terminal from `script`), the indicator ticks
/// while a slow page is awaited, shows the vendor's total, and log lines
/// come out whole, with no indicator glued to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_ticks_while_a_slow_page_is_awaited_and_leaves_no_debris() {
    use leads::sandbox::{Sandbox, SandboxOptions, SimVendor};
    let sandbox = Sandbox::start(SandboxOptions {
        conversations: 40,
        latency: std::time::Duration::from_millis(1500),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let command = format!(
        "{} conversations --vendor chatbase --agent demo --base-url {} -v -o {}",
        env!("CARGO_BIN_EXE_leads"),
        sandbox.base_url("chatbase").unwrap(),
        out.display()
    );
    let transcript = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .env("CHATBASE_API_KEY", SimVendor::Chatbase.key())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(transcript.status.success(), "{transcript:?}");
    let raw = String::from_utf8_lossy(&transcript.stdout).into_owned();
    assert!(!raw.contains(SimVendor::Chatbase.key()));
    // Frames drawn while the first page (1.5 s) was awaited, before any
    // record: the elapsed time moved from 0s to 1s with nothing written.
    assert!(
        raw.contains("0 records  0s") || raw.contains("0 records  1s"),
        "{raw:?}"
    );
    assert!(
        raw.contains("0 records  1s"),
        "no tick while waiting: {raw:?}"
    );
    assert!(raw.contains("of 40 records"), "the vendor's total: {raw:?}");
    let lines = visible_lines(&raw);
    let logged: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("/conversations/export"))
        .collect();
    assert_eq!(logged.len(), 2, "{lines:#?}");
    for line in logged {
        assert!(line.starts_with("leads: GET "), "debris: {line:?}");
        assert!(!line.contains("records"), "debris: {line:?}");
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 40);
    sandbox.shutdown().await;
}
