//! Regression tests for the defects the one-registry, one-driver
//! restructuring removed, and for what the registry promises: a vendor
//! described once shows up everywhere without code of its own.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{CHATZURI_KEY, assert_exit, assert_no_key, leads, ndjson, run, stdout};

/// docs/vendor-apis.md documents the older Chatzuri revision's POST form for both
/// endpoints; the fallback used to exist for get-conversations only.
#[tokio::test]
async fn chatzuri_leads_get_answered_405_is_resent_as_post_like_conversations() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-leads"))
        .respond_with(ResponseTemplate::new(405).insert_header("allow", "POST"))
        .expect(1)
        .mount(&server)
        .await;
    let lead = json!({"id": 7, "created_at": "2025-01-15T10:30:00Z", "name": "Ana", "email": "ana@example.test"});
    Mock::given(method("POST"))
        .and(path("/get-leads"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [lead]})))
        .expect(1)
        .mount(&server)
        .await;
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", "cz-agent"]);
    cmd.args(["--base-url", &server.uri(), "--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let records = ndjson(&output);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], "7");
    let requests = server.received_requests().await.unwrap();
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    assert_eq!(post.url.query(), None);
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["agentId"], "cz-agent");
    assert_eq!(body["page"], "1");
}

/// Every vendor in the registry is listed by `leads vendors`, offered by
/// the completions and named in `--help`, with nothing written for it.
#[tokio::test]
async fn every_registered_vendor_is_in_vendors_completions_and_help() {
    let mut cmd = leads();
    cmd.arg("vendors");
    let table = stdout(&run(cmd).await);
    let mut cmd = leads();
    cmd.args(["completions", "bash"]);
    let completions = stdout(&run(cmd).await);
    let mut cmd = leads();
    cmd.arg("--help");
    let help = stdout(&run(cmd).await);
    let mut cmd = leads();
    cmd.args(["pull", "--help"]);
    let pull_help = stdout(&run(cmd).await);
    for vendor in leads::model::Vendor::all() {
        for resource in ["leads", "conversations"] {
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with(vendor.as_str()) && l.contains(resource)),
                "{vendor} {resource} not in `leads vendors`:\n{table}"
            );
        }
        assert!(
            completions.contains(vendor.as_str()),
            "{vendor} not completed"
        );
        assert!(
            help.contains(vendor.display_name()),
            "{vendor} not in --help"
        );
        assert!(
            help.contains(vendor.key_env()),
            "{} not in --help",
            vendor.key_env()
        );
        assert!(
            pull_help.contains(vendor.base_url_env()),
            "{} not in pull --help",
            vendor.base_url_env()
        );
    }
}
