//! Tests of the simulated Chatbase over real HTTP on loopback: v1 leads and
//! conversations, the v2 export's cursor paging, limits, dates, errors, the
//! plan without v2, and the headers. Expected values come from the
//! generator (the oracle) or from the request itself, never from the client.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::{Client, StatusCode, header::HeaderMap};
use serde_json::Value;

use super::data;
use super::*;

const KEY: &str = "sk-sandbox-chatbase-0123456789";

async fn start(leads: usize, conversations: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        leads,
        conversations,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

use super::tests::get as get_with;

async fn get(url: &str) -> (StatusCode, HeaderMap, Value) {
    get_with(url, Some(&format!("Bearer {KEY}"))).await
}

fn export_url(sandbox: &Sandbox, agent: &str, query: &str) -> String {
    format!(
        "{}/v2/agents/{agent}/conversations/export?{query}",
        sandbox.base_url("chatbase").unwrap()
    )
}

fn v1_url(sandbox: &Sandbox, endpoint: &str, query: &str) -> String {
    format!(
        "{}/v1/{endpoint}?{query}",
        sandbox.base_url("chatbase").unwrap()
    )
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Follows the export's cursors from `query` to the end; returns each page's
/// data and pagination.
async fn export_all(sandbox: &Sandbox, query: &str) -> Vec<(Vec<Value>, Value)> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => query.to_owned(),
            Some(c) => format!("{query}&cursor={}", encode(c)),
        };
        let (status, _, body) = get(&export_url(sandbox, "demo", &q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        let page = body["data"].as_array().unwrap().clone();
        let pagination = body["pagination"].clone();
        pages.push((page, pagination.clone()));
        assert!(pages.len() < 10_000, "the cursor chain must end");
        match (&pagination["hasMore"], &pagination["cursor"]) {
            (Value::Bool(true), Value::String(c)) => cursor = Some(c.clone()),
            (Value::Bool(false), Value::Null) => return pages,
            other => panic!("hasMore and cursor disagree: {other:?}"),
        }
    }
}

fn created(c: &Value) -> i64 {
    c["createdAt"]
        .as_i64()
        .expect("createdAt is a number of seconds")
}

#[tokio::test]
async fn export_pages_by_cursor_to_the_end_newest_first_with_every_conversation_once() {
    let total = 95;
    let sandbox = start(10, total).await;
    let pages = export_all(&sandbox, "limit=20").await;
    let sizes: Vec<usize> = pages.iter().map(|(p, _)| p.len()).collect();
    assert_eq!(sizes, [20, 20, 20, 20, 15]);
    assert!(pages.iter().all(|(_, p)| p["total"] == total));
    let all: Vec<Value> = pages.into_iter().flat_map(|(p, _)| p).collect();
    let ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), total);
    assert!(
        all.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
        "newest first"
    );
    // The oracle, newest first.
    for (k, wire) in all.iter().enumerate().step_by(7) {
        let oracle = data::conversation(SimVendor::Chatbase, 42, total - 1 - k, total);
        assert_eq!(wire["id"], oracle.id.as_str());
        assert_eq!(created(wire), oracle.created_at.timestamp());
        assert_eq!(wire["userId"].as_str(), oracle.customer.as_deref());
        assert_eq!(wire["source"].as_str(), oracle.source.as_deref());
        let messages = wire["messages"].as_array().unwrap();
        assert_eq!(messages.len(), oracle.messages.len());
        for (m, o) in messages.iter().zip(&oracle.messages) {
            assert_eq!(m["role"], o.role.model());
            let text: Vec<&str> = m["parts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["type"] == "text")
                .map(|p| p["text"].as_str().unwrap())
                .collect();
            assert_eq!(text.join("\n"), o.content);
            assert_eq!(
                m.get("createdAt").and_then(Value::as_i64),
                o.created_at.map(|t| t.timestamp())
            );
        }
    }
    // The awkward cases a client must handle are on the wire.
    let messages: Vec<&Value> = all
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .collect();
    let parts = |m: &Value| m["parts"].as_array().unwrap().clone();
    assert!(
        messages
            .iter()
            .any(|m| parts(m).iter().all(|p| p["type"] != "text")),
        "a tool-only message"
    );
    assert!(
        messages
            .iter()
            .any(|m| parts(m).iter().any(|p| p["type"] == "tool-result")
                && parts(m).iter().any(|p| p["type"] == "text")),
        "tool parts beside text"
    );
    assert!(messages.iter().any(|m| m.get("createdAt").is_none()));
    assert!(all.iter().any(|c| c["userId"].is_null()));
    assert!(all.iter().any(|c| c["source"].is_null()));
    assert!(all.iter().any(|c| c["title"].is_null()));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn export_limit_is_1_to_20_and_defaults_to_20() {
    let sandbox = start(10, 50).await;
    let (status, _, body) = get(&export_url(&sandbox, "demo", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    let (_, _, body) = get(&export_url(&sandbox, "demo", "limit=1")).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    for bad in ["limit=21", "limit=0", "limit=-3", "limit=ten", "limit=100"] {
        let (status, headers, body) = get(&export_url(&sandbox, "demo", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "VALIDATION_INVALID_BODY", "{bad}");
        assert!(
            body["error"]["details"]["limit"].is_string(),
            "{bad}: {body}"
        );
        assert!(headers.contains_key("x-request-id"));
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn export_errors_come_in_the_v2_envelope_with_a_request_id() {
    let sandbox = start(10, 30).await;
    let url = export_url(&sandbox, "demo", "limit=5");
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "AUTH_MISSING_API_KEY"),
        (
            Some("Bearer nope"),
            StatusCode::UNAUTHORIZED,
            "AUTH_INVALID_API_KEY",
        ),
        (Some(KEY), StatusCode::UNAUTHORIZED, "AUTH_INVALID_API_KEY"),
        (
            Some("Bearer sk-sandbox-chatzuri-0123456789"),
            StatusCode::UNAUTHORIZED,
            "AUTH_INVALID_API_KEY",
        ),
    ];
    let mut request_ids = HashSet::new();
    for (auth, status, code) in cases {
        let (got, headers, body) = get_with(&url, auth).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{auth:?}"
        );
        assert!(body["error"]["message"].is_string());
        request_ids.insert(headers["x-request-id"].to_str().unwrap().to_owned());
    }
    assert_eq!(request_ids.len(), 4, "one request id per request");

    let (status, _, body) = get(&export_url(&sandbox, "nobody", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "AGENT_NOT_FOUND");
    let (status, _, body) = get(&export_url(&sandbox, CHATBASE_V1_ONLY_AGENT, "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "SUBSCRIPTION_API_RESTRICTED_PLAN",
            "message": "A Standard plan or higher is required to access the API"}})
    );
    for bad in [
        "cursor=garbage",
        "cursor=eyJ0IjoiMjAyNS0wMy0wNiJ9",
        "include=all",
    ] {
        let (status, _, body) = get(&export_url(&sandbox, "demo", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "VALIDATION_INVALID_BODY", "{bad}");
    }
    // A cursor only works with the query that produced it (limit aside).
    let (_, _, body) = get(&export_url(&sandbox, "demo", "limit=5&source=API,Slack")).await;
    let cursor = encode(body["pagination"]["cursor"].as_str().unwrap());
    let (status, _, body) = get(&export_url(
        &sandbox,
        "demo",
        &format!("limit=5&cursor={cursor}"),
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["details"]["cursor"].is_string());
    let (status, _, _) = get(&export_url(
        &sandbox,
        "demo",
        &format!("limit=7&source=API,Slack&cursor={cursor}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);

    let base = sandbox.base_url("chatbase").unwrap();
    let (status, headers, body) = get(&format!("{base}/v2/agents/demo/conversations")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "RESOURCE_NOT_FOUND");
    assert!(headers.contains_key("x-request-id"));
    let response = Client::new()
        .post(export_url(&sandbox, "demo", ""))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
    sandbox.shutdown().await;
}

fn day(text: &str) -> DateTime<Utc> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

#[tokio::test]
async fn export_dates_are_days_inclusive_or_exact_instants_and_inverted_is_400() {
    let total = 400;
    let sandbox = start(10, total).await;
    let pages = export_all(&sandbox, "startDate=2025-03-01&endDate=2025-03-31").await;
    let got: Vec<i64> = pages
        .iter()
        .flat_map(|(p, _)| p.iter().map(created))
        .collect();
    let (from, to) = (day("2025-03-01").timestamp(), day("2025-04-01").timestamp());
    let expected: Vec<i64> = (0..total)
        .rev()
        .map(|i| {
            data::conversation(SimVendor::Chatbase, 42, i, total)
                .created_at
                .timestamp()
        })
        .filter(|&t| (from..to).contains(&t))
        .collect();
    assert!(expected.len() > 40);
    assert_eq!(got, expected);
    assert_eq!(pages[0].1["total"], expected.len());

    // Exact instants: endDate is inclusive, startDate too.
    let at = DateTime::from_timestamp(expected[5], 0).unwrap();
    let instant = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (_, _, body) = get(&export_url(
        &sandbox,
        "demo",
        &format!("limit=1&endDate={instant}"),
    ))
    .await;
    assert_eq!(created(&body["data"][0]), expected[5]);
    let (_, _, body) = get(&export_url(
        &sandbox,
        "demo",
        &format!("startDate={instant}&endDate={instant}"),
    ))
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let later = (at + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, _, body) = get(&export_url(
        &sandbox,
        "demo",
        &format!("startDate={}&endDate={instant}", encode(&later)),
    ))
    .await;
    assert_eq!(body["error"]["code"], "VALIDATION_INVALID_DATE_RANGE");

    let (status, _, body) = get(&export_url(
        &sandbox,
        "demo",
        "startDate=2025-03-02&endDate=2025-03-01",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "VALIDATION_INVALID_DATE_RANGE");
    assert_eq!(
        body["error"]["message"],
        "startDate must not be after endDate"
    );
    for bad in [
        "startDate=2025-3-01",
        "endDate=yesterday",
        "startDate=2025-02-30",
    ] {
        let (status, _, body) = get(&export_url(&sandbox, "demo", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "VALIDATION_INVALID_BODY", "{bad}");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn export_source_filter_can_give_short_and_empty_pages_while_has_more() {
    let total = 300;
    let sandbox = start(10, total).await;
    let pages = export_all(&sandbox, "limit=5&source=Slack,Email").await;
    assert!(
        pages
            .iter()
            .any(|(p, pagination)| p.len() < 5 && pagination["hasMore"] == true),
        "a short page that is not the last"
    );
    assert!(
        pages
            .iter()
            .any(|(p, pagination)| p.is_empty() && pagination["hasMore"] == true)
    );
    let got: Vec<String> = pages
        .iter()
        .flat_map(|(p, _)| p.iter().map(|c| c["id"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<String> = (0..total)
        .rev()
        .map(|i| data::conversation(SimVendor::Chatbase, 42, i, total))
        .filter(|c| matches!(c.source.as_deref(), Some("Slack" | "Email")))
        .map(|c| c.id)
        .collect();
    assert!(expected.len() > 20);
    assert_eq!(got, expected);
    assert!(pages.iter().all(|(_, p)| p["total"] == expected.len()));

    // One conversation by id, and the summary form without messages.
    let id = &expected[3];
    let (_, _, body) = get(&export_url(
        &sandbox,
        "demo",
        &format!("conversationId={id}"),
    ))
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["id"], id.as_str());
    assert_eq!(
        body["pagination"],
        serde_json::json!({"cursor": null, "hasMore": false, "total": 1})
    );
    let (_, _, body) = get(&export_url(&sandbox, "demo", "include=summary&limit=3")).await;
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("messages").is_none())
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn v1_leads_page_by_number_with_size_at_most_100() {
    let total = 250;
    let sandbox = start(total, 10).await;
    let mut leads = Vec::new();
    for page in 1.. {
        let (status, headers, body) = get(&v1_url(
            &sandbox,
            "get-leads",
            &format!("chatbotId=demo&page={page}&size=100"),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key("x-ratelimit-limit"));
        let rows = body["collectedCustomers"].as_array().unwrap().clone();
        let n = rows.len();
        leads.extend(rows);
        if n < 100 {
            break;
        }
    }
    assert_eq!(leads.len(), total);
    let ids: HashSet<&str> = leads.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), total);
    for (index, lead) in leads.iter().enumerate().step_by(11) {
        let oracle = data::lead(SimVendor::Chatbase, 42, index, total);
        assert_eq!(lead["id"].as_str(), oracle.id.as_deref());
        assert_eq!(lead["chatbot_id"], "demo");
        let at = DateTime::parse_from_rfc3339(lead["created_at"].as_str().unwrap()).unwrap();
        assert_eq!(at, oracle.created_at);
    }
    // Absent values in all three forms, and leads without account_id.
    assert!(leads.iter().any(|l| l.get("phone").is_none()));
    assert!(
        leads
            .iter()
            .any(|l| l["phone"].is_null() && l.get("phone").is_some())
    );
    assert!(leads.iter().any(|l| l["phone"] == ""));
    assert!(leads.iter().any(|l| l.get("account_id").is_none()));
    assert!(
        leads
            .iter()
            .any(|l| l["name"].as_str().is_some_and(|n| n.starts_with("  ")))
    );

    let (_, _, body) = get(&v1_url(&sandbox, "get-leads", "chatbotId=demo")).await;
    assert_eq!(body["collectedCustomers"].as_array().unwrap().len(), 10);
    let (_, _, body) = get(&v1_url(&sandbox, "get-leads", "chatbotId=v1-only&size=3")).await;
    assert_eq!(body["collectedCustomers"][0]["chatbot_id"], "v1-only");
    for bad in [
        "size=101",
        "size=0",
        "page=0",
        "page=x",
        "startDate=2025-1-01",
        "",
    ] {
        let (status, _, body) = get(&v1_url(
            &sandbox,
            "get-leads",
            &format!(
                "{}&{bad}",
                if bad.is_empty() { "" } else { "chatbotId=demo" }
            ),
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["message"], "Invalid request parameters");
        assert!(body["issues"][0]["field"].is_string(), "{bad}");
    }
    let (status, _, body) = get(&v1_url(&sandbox, "get-leads", "chatbotId=nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Chatbot not found");
    let (status, _, body) = get_with(
        &v1_url(&sandbox, "get-leads", "chatbotId=demo"),
        Some("Bearer x"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Unauthorized access");

    // Whole UTC days, both inclusive.
    let (_, _, body) = get(&v1_url(
        &sandbox,
        "get-leads",
        "chatbotId=demo&startDate=2025-02-01&endDate=2025-02-28&size=100",
    ))
    .await;
    let got: Vec<&str> = body["collectedCustomers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    let (from, to) = (day("2025-02-01"), day("2025-03-01"));
    let expected: Vec<String> = (0..total)
        .map(|i| data::lead(SimVendor::Chatbase, 42, i, total))
        .filter(|l| l.created_at >= from && l.created_at < to)
        .map(|l| l.id.unwrap())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn v1_conversations_are_the_fallback_for_a_plan_without_v2() {
    let total = 130;
    let sandbox = start(10, total).await;
    let mut rows = Vec::new();
    for page in 1.. {
        let url = v1_url(
            &sandbox,
            "get-conversations",
            &format!("chatbotId=v1-only&page={page}&size=50"),
        );
        let (status, _, body) = get(&url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = body["data"].as_array().unwrap().clone();
        let n = data.len();
        rows.extend(data);
        if n < 50 {
            break;
        }
    }
    assert_eq!(rows.len(), total);
    for (k, row) in rows.iter().enumerate().step_by(9) {
        let oracle = data::conversation(SimVendor::Chatbase, 42, total - 1 - k, total);
        assert_eq!(*row, chatbase_v1_conversation_wire(&oracle, "v1-only"));
        assert_eq!(row["id"], oracle.id.as_str(), "the v2 id");
        let texts = oracle
            .messages
            .iter()
            .filter(|m| !m.content.is_empty())
            .count();
        assert_eq!(row["messages"].as_array().unwrap().len(), texts);
        assert!(row["created_at"].as_str().unwrap().ends_with(".000Z"));
    }
    let url = v1_url(
        &sandbox,
        "get-conversations",
        "chatbotId=demo&filteredSources=WhatsApp&size=100",
    );
    let (_, _, body) = get(&url).await;
    let expected = (0..total)
        .filter(|&i| data::chatbase_source(42, i) == Some("WhatsApp"))
        .count();
    assert!(expected > 0);
    assert_eq!(body["data"].as_array().unwrap().len(), expected);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["source"] == "WhatsApp")
    );
    let url = v1_url(&sandbox, "get-conversations", "chatbotId=demo&size=101");
    assert_eq!(get(&url).await.0, StatusCode::BAD_REQUEST);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limit_and_outage_faults_apply_to_chatbase_with_its_headers() {
    let sandbox = Sandbox::start(SandboxOptions {
        rate_limit: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = export_url(&sandbox, "demo", "limit=1");
    let mut limited = 0;
    for _ in 0..8 {
        let (status, headers, body) = get(&url).await;
        assert_eq!(headers["x-ratelimit-limit"], "2");
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = Utc::now().timestamp() as u64;
        assert!(
            reset >= now && reset <= now + 2,
            "{reset} vs {now}: Unix seconds"
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(headers["retry-after"], "1");
            assert_eq!(headers["x-ratelimit-remaining"], "0");
            assert_eq!(body["error"]["code"], "RATE_LIMIT_TOO_MANY_REQUESTS");
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!(limited >= 4, "{limited}");
    sandbox.shutdown().await;

    let sandbox = Sandbox::start(SandboxOptions {
        fail_every: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = export_url(&sandbox, "demo", "limit=1");
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let (status, _, body) = get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "SERVICE_UNDER_MAINTENANCE");
    let url = v1_url(&sandbox, "get-leads", "chatbotId=demo");
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let (status, _, body) = get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["message"].is_string());
    sandbox.shutdown().await;
}
