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
