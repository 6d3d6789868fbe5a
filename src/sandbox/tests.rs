//! Tests of the sandbox over real HTTP on loopback: each vendor's auth
//! form, errors, paging, filters, the fault knobs and determinism.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::data;
use super::*;

use SimVendor as Vendor;

fn key(vendor: Vendor) -> &'static str {
    vendor.key()
}

async fn start(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.expect("sandbox starts")
}

fn bearer(vendor: Vendor) -> String {
    format!("Bearer {}", key(vendor))
}

pub(super) async fn get(
    url: &str,
    auth: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = Client::new().get(url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn post(url: &str, auth: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = Client::new().post(url).json(&body);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn neoagent(
    sandbox: &Sandbox,
    endpoint: &str,
    auth: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let url = format!("{}/chat/Chatbot/{endpoint}", sandbox.url(Vendor::Neoagent));
    post(&url, auth, body).await
}

/// NeoAgent's conversations (`ChatContentHistory`) of the demo agent.
async fn neoagent_history(sandbox: &Sandbox, auth: Option<&str>) -> (StatusCode, Value) {
    neoagent(
        sandbox,
        "ChatContentHistory",
        auth,
        json!({"SerialNumber": "demo"}),
    )
    .await
}

fn chatzuri_url(sandbox: &Sandbox, endpoint: &str, query: &str) -> String {
    format!("{}/{endpoint}?{query}", sandbox.url(Vendor::Chatzuri))
}

fn robofy_leads_url(sandbox: &Sandbox, project: &str, chatbot: &str) -> String {
    format!(
        "{}/v1/ai-agent/leads/{project}/{chatbot}",
        sandbox.url(Vendor::Robofy)
    )
}

#[tokio::test]
async fn each_vendor_checks_its_own_auth_form() {
    let sandbox = start(SandboxOptions::default()).await;
    let leads = chatzuri_url(&sandbox, "get-leads", "agentId=demo");
    let (status, _, body) = get(&leads, Some(&bearer(Vendor::Chatzuri))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body["data"].is_array());
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(key(Vendor::Chatzuri)),
        Some(bearer(Vendor::Robofy).as_str()),
    ] {
        let (status, _, body) = get(&leads, auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(body["message"].as_str().unwrap().contains("Unauthorized"));
    }

    let request = json!({"serialNumber": "demo"});
    let (status, body) = neoagent(
        &sandbox,
        "LeadList",
        Some(key(Vendor::Neoagent)),
        request.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Success"], true);
    assert_eq!(body["Code"], 200);
    assert_eq!(body["Version"], "1.0.0");
    for auth in [None, Some(bearer(Vendor::Neoagent).as_str()), Some("nope")] {
        let (status, body) = neoagent(&sandbox, "LeadList", auth, request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{auth:?}");
        assert_eq!(body["Success"], false);
        assert_eq!(body["Code"], 401);
        assert_eq!(body["Data"], Value::Null);
        assert!(!body["Message"].as_str().unwrap().is_empty());
    }

    let url = robofy_leads_url(&sandbox, "1", "demo");
    let (status, _, body) = get(&url, Some(&bearer(Vendor::Robofy))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "OK");
    for auth in [None, Some("Bearer x"), Some(key(Vendor::Robofy))] {
        let (status, _, body) = get(&url, auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["message"], "Unauthorized");
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
    // Every endpoint checks, not only the lead listings.
    let sessions = format!(
        "{}/v1/ai-agent/inbox/sessions/demo",
        sandbox.url(Vendor::Robofy)
    );
    assert_eq!(get(&sessions, None).await.0, StatusCode::UNAUTHORIZED);
    let (_, body) = neoagent_history(&sandbox, None).await;
    assert_eq!(body["Code"], 401);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_agents_and_projects_get_the_vendors_404() {
    let sandbox = start(SandboxOptions::default()).await;
    let auth = bearer(Vendor::Chatzuri);
    for endpoint in ["get-leads", "get-conversations"] {
        let (status, _, _) = get(
            &chatzuri_url(&sandbox, endpoint, "agentId=other"),
            Some(&auth),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _, _) = get(&chatzuri_url(&sandbox, "get-leads", ""), Some(&auth)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = get(
        &chatzuri_url(&sandbox, "get-leads", "chatbotId=demo"),
        Some(&auth),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the older parameter name works too"
    );

    let neo = Some(key(Vendor::Neoagent));
    let (status, body) = neoagent(&sandbox, "LeadList", neo, json!({"serialNumber": "x"})).await;
    assert_eq!(
        (status, body["Success"].clone(), body["Code"].clone()),
        (StatusCode::OK, json!(false), json!(404))
    );
    let (_, body) = neoagent(
        &sandbox,
        "ChatContentHistory",
        neo,
        json!({"SerialNumber": "x"}),
    )
    .await;
    assert_eq!(body["Code"], 404);
    // Documented casing only: LeadList is camelCase.
    let (_, body) = neoagent(&sandbox, "LeadList", neo, json!({"SerialNumber": "demo"})).await;
    assert_eq!(body["Code"], 400);

    let auth = bearer(Vendor::Robofy);
    let (status, _, body) = get(&robofy_leads_url(&sandbox, "2", "demo"), Some(&auth)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "PROJECT_NOT_FOUND");
    let (status, _, body) = get(&robofy_leads_url(&sandbox, "1", "bot"), Some(&auth)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "CHATBOT_NOT_FOUND");
    let (status, _, body) = get(&robofy_leads_url(&sandbox, "abc", "demo"), Some(&auth)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
    let chat = format!(
        "{}/v1/ai-agent/inbox/chats/demo/no-such-session",
        sandbox.url(Vendor::Robofy)
    );
    let (status, _, body) = get(&chat, Some(&auth)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "SESSION_NOT_FOUND");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn chatzuri_pages_to_the_end_with_every_lead_once() {
    let options = SandboxOptions {
        leads: 250,
        ..Default::default()
    };
    let sandbox = start(options).await;
    let auth = bearer(Vendor::Chatzuri);
    let mut ids = Vec::new();
    for page in 1.. {
        let url = chatzuri_url(
            &sandbox,
            "get-leads",
            &format!("agentId=demo&page={page}&size=100"),
        );
        let (status, _, body) = get(&url, Some(&auth)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let rows = body["data"].as_array().unwrap().clone();
        for row in &rows {
            assert_eq!(row["chatbot_id"], "demo");
            ids.push(row["id"].as_u64().unwrap());
        }
        if rows.len() < 100 {
            break;
        }
    }
    assert_eq!(ids.len(), 250);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 250);
    let expected: Vec<u64> = (0..250)
        .map(|i| {
            data::lead(Vendor::Chatzuri, 42, i, 250)
                .id
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, expected, "oldest first, as the oracle says");

    // size above the maximum is capped; without size the default is 10.
    let (_, _, body) = get(
        &chatzuri_url(&sandbox, "get-leads", "agentId=demo&size=1000"),
        Some(&auth),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 100);
    let (_, _, body) = get(
        &chatzuri_url(&sandbox, "get-leads", "agentId=demo"),
        Some(&auth),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    let (_, _, body) = get(
        &chatzuri_url(&sandbox, "get-leads", "agentId=demo&page=99&size=100"),
        Some(&auth),
    )
    .await;
    assert_eq!(body["data"], json!([]));
    for bad in ["page=0", "size=0", "page=x"] {
        let (status, _, _) = get(
            &chatzuri_url(&sandbox, "get-leads", &format!("agentId=demo&{bad}")),
            Some(&auth),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Conversations: 200, GET or POST with a JSON body.
    let url = chatzuri_url(&sandbox, "get-conversations", "agentId=demo&size=100");
    let (status, _, body) = get(&url, Some(&auth)).await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 40);
    let oracle = data::conversation(Vendor::Chatzuri, 42, 7, 40);
    assert_eq!(rows[7], oracle.wire());
    assert_eq!(
        rows[7]["messages"].as_array().unwrap().len(),
        oracle.messages.len()
    );
    let url = format!("{}/get-conversations", sandbox.url(Vendor::Chatzuri));
    let (status, post_body) = post(
        &url,
        Some(&auth),
        json!({"agentId": "demo", "size": "100", "page": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(post_body, body);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn chatzuri_post_only_prefix_refuses_get_with_405() {
    let sandbox = start(SandboxOptions::default()).await;
    let auth = bearer(Vendor::Chatzuri);
    let base = sandbox.chatzuri_post_only_base_url();
    let (status, headers, _) = get(
        &format!("{base}/get-conversations?agentId=demo"),
        Some(&auth),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    let (status, body) = post(
        &format!("{base}/get-conversations"),
        Some(&auth),
        json!({"agentId": "demo"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn chatzuri_date_and_source_filters() {
    let sandbox = start(SandboxOptions {
        leads: 2000,
        conversations: 500,
        ..Default::default()
    })
    .await;
    let auth = bearer(Vendor::Chatzuri);
    let query = "agentId=demo&startDate=2025-02-01&endDate=2025-02-28&size=100";
    let mut got = Vec::new();
    for page in 1.. {
        let (_, _, body) = get(
            &chatzuri_url(&sandbox, "get-leads", &format!("{query}&page={page}")),
            Some(&auth),
        )
        .await;
        let rows = body["data"].as_array().unwrap().clone();
        let n = rows.len();
        got.extend(
            rows.into_iter()
                .map(|r| r["created_at"].as_str().unwrap().to_owned()),
        );
        if n < 100 {
            break;
        }
    }
    let expected: Vec<String> = (0..2000)
        .map(|i| data::lead(Vendor::Chatzuri, 42, i, 2000).created_at)
        .filter(|t| t.format("%Y-%m").to_string() == "2025-02")
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect();
    assert!(expected.len() > 250);
    assert_eq!(got, expected);
    for bad in [
        "startDate=2025-2-01",
        "endDate=2025-02-30",
        "startDate=yesterday",
    ] {
        let (status, _, body) = get(
            &chatzuri_url(&sandbox, "get-leads", &format!("agentId=demo&{bad}")),
            Some(&auth),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["message"].as_str().unwrap().contains("YYYY-MM-DD"));
    }

    let query = "agentId=demo&filteredSources=WhatsApp,API&startDate=2025-03-01&size=7";
    let mut sources = Vec::new();
    for page in 1.. {
        let url = chatzuri_url(
            &sandbox,
            "get-conversations",
            &format!("{query}&page={page}"),
        );
        let (_, _, body) = get(&url, Some(&auth)).await;
        let rows = body["data"].as_array().unwrap().clone();
        let n = rows.len();
        sources.extend(rows.into_iter().map(|r| {
            (
                r["source"].as_str().unwrap().to_owned(),
                r["created_at"].clone(),
            )
        }));
        if n < 7 {
            break;
        }
    }
    let expected = (0..500)
        .map(|i| data::conversation(Vendor::Chatzuri, 42, i, 500))
        .filter(|c| c.created_at.format("%Y-%m-%d").to_string().as_str() >= "2025-03-01")
        .filter(|c| matches!(c.source.as_deref(), Some("WhatsApp" | "API")))
        .count();
    assert!(expected > 20);
    assert_eq!(sources.len(), expected);
    assert!(sources.iter().all(|(s, _)| s == "WhatsApp" || s == "API"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn neoagent_serves_the_whole_window_with_utc_day_filters() {
    // Enough records that the body is streamed in several chunks.
    let total = 3000;
    let sandbox = start(SandboxOptions {
        leads: total,
        ..Default::default()
    })
    .await;
    let neo = Some(key(Vendor::Neoagent));
    let (_, body) = neoagent(&sandbox, "LeadList", neo, json!({"serialNumber": "demo"})).await;
    let rows = body["Data"].as_array().unwrap();
    assert_eq!(rows.len(), total);
    assert_eq!(body["Success"], true);
    for (index, row) in rows.iter().enumerate().step_by(97) {
        assert_eq!(*row, data::lead(Vendor::Neoagent, 42, index, total).wire());
    }
    assert!(rows.iter().any(|r| r["Type"] == "Appointment"));
    assert!(
        rows.iter()
            .all(|r| r["CreateTime"].as_str().unwrap().ends_with("-08:00"))
    );

    let request =
        json!({"serialNumber": "demo", "startTime": "2025-03-10", "endTime": "2025-03-12"});
    let (_, body) = neoagent(&sandbox, "LeadList", neo, request).await;
    let got: Vec<_> = body["Data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["CreateTime"].clone())
        .collect();
    let expected: Vec<_> = (0..total)
        .map(|i| data::lead(Vendor::Neoagent, 42, i, total))
        .filter(|l| {
            let day = l.created_at.format("%Y-%m-%d").to_string();
            ("2025-03-10".to_owned()..="2025-03-12".to_owned()).contains(&day)
        })
        .map(|l| l.wire()["CreateTime"].clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);

    let lead = data::lead(Vendor::Neoagent, 42, 10, total);
    let session = lead.neoagent_session().unwrap();
    let (_, body) = neoagent(
        &sandbox,
        "LeadList",
        neo,
        json!({"serialNumber": "demo", "sessionID": session}),
    )
    .await;
    let rows = body["Data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["SessionID"] == json!(session)));
    assert_eq!(rows[0], lead.wire());

    let (_, body) = neoagent(
        &sandbox,
        "LeadList",
        neo,
        json!({"serialNumber": "demo", "startTime": "2025/01/01"}),
    )
    .await;
    assert_eq!(
        (body["Success"].clone(), body["Code"].clone()),
        (json!(false), json!(400))
    );

    let (_, body) = neoagent_history(&sandbox, neo).await;
    let sessions = body["Data"].as_array().unwrap();
    assert_eq!(sessions.len(), 40);
    let oracle = data::conversation(Vendor::Neoagent, 42, 2, 40);
    assert_eq!(sessions[2], oracle.wire());
    assert!(oracle.messages.len() >= 30);
    assert!(sessions[2]["CreateTime"].as_str().unwrap().ends_with('Z'));
    let (_, body) = neoagent(
        &sandbox,
        "GetMessageCountByChatbot",
        neo,
        json!({"SerialNumber": "demo"}),
    )
    .await;
    let count: usize = (0..40)
        .map(|i| {
            data::conversation(Vendor::Neoagent, 42, i, 40)
                .messages
                .len()
        })
        .sum();
    assert_eq!(body["Data"], json!(count));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn robofy_tokens_move_between_both_documented_places() {
    let sandbox = start(SandboxOptions {
        leads: 250,
        ..Default::default()
    })
    .await;
    let auth = bearer(Vendor::Robofy);
    let base = robofy_leads_url(&sandbox, "1", "demo");
    let mut ids = Vec::new();
    let mut places = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            None => base.clone(),
            Some(t) => format!(
                "{base}?nextPageToken={}",
                url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
            ),
        };
        let (status, _, body) = get(&url, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK);
        let report = &body["data"]["report"];
        assert_eq!(report["columns"].as_array().unwrap().len(), 6);
        ids.extend(
            report["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        let (place, next) = if report.get("next_page_token").is_some() {
            ("report", report["next_page_token"].clone())
        } else {
            ("data", body["data"]["next_page_token"].clone())
        };
        places.push(place);
        match next {
            Value::String(t) => token = Some(t),
            Value::Null => break,
            other => panic!("token {other}"),
        }
    }
    assert_eq!(places, ["report", "data", "report"]);
    assert_eq!(ids.len(), 250);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 250);
    assert_eq!(ids[0], "lead_10001");

    for bad in ["undefined", "garbage", "eyJwYWdlIjo5fQ=="] {
        let (status, _, body) = get(&format!("{base}?nextPageToken={bad}"), Some(&auth)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["message"], "Bad Request");
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
    }
    let (status, _, _) = get(&format!("{base}?sessionId=undefined"), Some(&auth)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let lead = data::lead(Vendor::Robofy, 42, 41, 250);
    let session = lead.session_id.clone().unwrap();
    let (_, _, body) = get(&format!("{base}?sessionId={session}"), Some(&auth)).await;
    let rows = body["data"]["report"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], lead.wire());
    assert_eq!(body["data"]["report"]["next_page_token"], Value::Null);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn robofy_inbox_lists_sessions_and_their_messages() {
    let sandbox = start(SandboxOptions {
        conversations: 60,
        ..Default::default()
    })
    .await;
    let auth = bearer(Vendor::Robofy);
    let base = sandbox.url(Vendor::Robofy);
    let mut sessions = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/ai-agent/inbox/sessions/demo");
        if let Some(t) = &token {
            url = format!(
                "{url}?nextPageToken={}",
                url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
            );
        }
        let (status, _, body) = get(&url, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK);
        let page = body["data"]["sessions"].as_array().unwrap().clone();
        assert!(page.len() <= 25);
        sessions.extend(page);
        match &body["data"]["next_page_token"] {
            Value::String(t) => token = Some(t.clone()),
            _ => break,
        }
    }
    assert_eq!(sessions.len(), 60);
    for (index, session) in sessions.iter().enumerate().step_by(7) {
        let oracle = data::conversation(Vendor::Robofy, 42, index, 60);
        assert_eq!(*session, oracle.wire());
        let id = session["session_id"].as_str().unwrap();
        let (status, _, body) = get(
            &format!("{base}/v1/ai-agent/inbox/chats/demo/{id}"),
            Some(&auth),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let messages = body["data"]["messages"].as_array().unwrap();
        assert_eq!(messages.len(), oracle.messages.len());
        assert_eq!(body["data"]["next_page_token"], Value::Null);
        for (wire, expected) in messages.iter().zip(&oracle.messages) {
            assert_eq!(wire["message"], expected.content.as_str());
            assert_eq!(wire["direction"], expected.role.wire(Vendor::Robofy));
            let at = chrono::NaiveDateTime::parse_from_str(
                wire["created_at"].as_str().unwrap(),
                "%Y-%m-%d %H:%M:%S",
            )
            .ok()
            .map(|t| t.and_utc());
            assert_eq!(at, expected.created_at);
        }
        assert_eq!(session["last_message"], messages.last().unwrap()["message"]);
        assert_eq!(
            session["last_message_time"],
            messages.last().unwrap()["created_at"]
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn fail_every_answers_each_nth_request_with_503() {
    let sandbox = start(SandboxOptions {
        fail_every: Some(3),
        ..Default::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let url = robofy_leads_url(&sandbox, "1", "demo");
        let (status, _, body) = get(&url, Some(&bearer(Vendor::Robofy))).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
    let (status, body) =
        neoagent(&sandbox, "LeadList", Some(key(Vendor::Neoagent)), json!({})).await;
    assert_eq!(status, StatusCode::OK, "request 7 is not failed");
    assert_eq!(body["Code"], 400);
    neoagent(&sandbox, "LeadList", Some(key(Vendor::Neoagent)), json!({})).await;
    let (status, body) =
        neoagent(&sandbox, "LeadList", Some(key(Vendor::Neoagent)), json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (body["Success"].clone(), body["Code"].clone()),
        (json!(false), json!(503))
    );
    assert_eq!(sandbox.stats().requests, 9);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sandbox = start(SandboxOptions {
        rate_limit: Some(3),
        ..Default::default()
    })
    .await;
    let url = chatzuri_url(&sandbox, "get-leads", "agentId=demo");
    let auth = bearer(Vendor::Chatzuri);
    let mut limited = 0;
    for _ in 0..12 {
        let (status, headers, _) = get(&url, Some(&auth)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(headers["retry-after"], "1");
            limited += 1;
        } else {
            assert_eq!(status, StatusCode::ACCEPTED);
        }
    }
    // At most two one-second windows were touched: at most 6 passed.
    assert!(limited >= 6, "{limited}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&url, Some(&auth)).await.0, StatusCode::ACCEPTED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn latency_is_applied_and_concurrency_is_counted() {
    let latency = Duration::from_millis(200);
    let sandbox = start(SandboxOptions {
        latency,
        ..Default::default()
    })
    .await;
    let url = chatzuri_url(&sandbox, "get-leads", "agentId=demo");
    let auth = bearer(Vendor::Chatzuri);
    let started = std::time::Instant::now();
    let requests = (0..4).map(|_| get(&url, Some(&auth)));
    let results = futures::future::join_all(requests).await;
    assert!(results.iter().all(|(s, _, _)| *s == StatusCode::ACCEPTED));
    let elapsed = started.elapsed();
    assert!(elapsed >= latency && elapsed < latency * 3, "{elapsed:?}");
    let stats = sandbox.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.max_in_flight, 4);
    assert_eq!(stats.in_flight, 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_bytes_other_seed_other_data() {
    async fn page(seed: u64) -> Vec<Vec<u8>> {
        let sandbox = start(SandboxOptions {
            seed,
            ..Default::default()
        })
        .await;
        let client = Client::new();
        let mut bodies = Vec::new();
        let requests = [
            (
                chatzuri_url(&sandbox, "get-leads", "agentId=demo&size=100"),
                bearer(Vendor::Chatzuri),
            ),
            (
                robofy_leads_url(&sandbox, "1", "demo"),
                bearer(Vendor::Robofy),
            ),
        ];
        for (url, auth) in requests {
            let response = client
                .get(url)
                .header("Authorization", auth)
                .send()
                .await
                .unwrap();
            bodies.push(response.bytes().await.unwrap().to_vec());
        }
        let url = format!("{}/chat/Chatbot/LeadList", sandbox.url(Vendor::Neoagent));
        let response = client
            .post(url)
            .header("Authorization", key(Vendor::Neoagent))
            .json(&json!({"serialNumber": "demo"}))
            .send()
            .await
            .unwrap();
        bodies.push(response.bytes().await.unwrap().to_vec());
        sandbox.shutdown().await;
        bodies
    }
    let a = page(7).await;
    assert_eq!(a, page(7).await);
    let b = page(8).await;
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x, y);
    }
}

#[tokio::test]
async fn describe_names_every_base_url_and_key() {
    let sandbox = start(SandboxOptions::default()).await;
    let text = describe(&sandbox);
    for vendor in Vendor::ALL {
        assert!(text.contains(&sandbox.url(vendor)));
        assert!(text.contains(key(vendor)));
        assert!(text.contains(vendor.key_env()));
    }
    assert!(text.contains("--agent demo"));
    assert!(text.contains("--project 1"));
    // Unknown prefixes get a plain 404, not a vendor's.
    let (status, _, _) = get(&format!("http://{}/nope", sandbox.addr()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sandbox.shutdown().await;
}

/// Throughput of the server with a client that fetches and parses Chatzuri
/// pages of 100 with 4 requests in flight, both in this process:
/// `cargo test --release --lib sandbox::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn throughput() {
    use futures::StreamExt;
    let total = 200_000;
    let mut buf = Vec::new();
    for vendor in Vendor::ALL {
        let started = std::time::Instant::now();
        for index in 0..total {
            buf.clear();
            data::lead(vendor, 42, index, total).write_wire(&mut buf);
        }
        let rate = total as f64 / started.elapsed().as_secs_f64();
        println!("render {vendor}: {rate:.0} leads/s on one core");
    }
    let sandbox = start(SandboxOptions {
        leads: total,
        ..Default::default()
    })
    .await;
    let client = Client::new();
    let auth = bearer(Vendor::Chatzuri);
    let pages = total / 100;
    let started = std::time::Instant::now();
    let counts: Vec<usize> = futures::stream::iter(1..=pages)
        .map(|page| {
            let request = client
                .get(chatzuri_url(
                    &sandbox,
                    "get-leads",
                    &format!("agentId=demo&page={page}&size=100"),
                ))
                .header("Authorization", &auth);
            async move {
                let body = request.send().await.unwrap().bytes().await.unwrap();
                let value: Value = serde_json::from_slice(&body).unwrap();
                value["data"].as_array().unwrap().len()
            }
        })
        .buffered(4)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(counts.iter().sum::<usize>(), total);
    println!(
        "chatzuri: {total} leads in {elapsed:?}: {:.0} leads/s (client parse included)",
        total as f64 / elapsed.as_secs_f64()
    );

    let started = std::time::Instant::now();
    let url = format!("{}/chat/Chatbot/LeadList", sandbox.url(Vendor::Neoagent));
    let response = client
        .post(url)
        .header("Authorization", key(Vendor::Neoagent))
        .json(&json!({"serialNumber": "demo"}))
        .send()
        .await
        .unwrap();
    let mut bytes = 0usize;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        bytes += chunk.unwrap().len();
    }
    let elapsed = started.elapsed();
    println!(
        "neoagent: {total} leads ({} MB streamed) in {elapsed:?}: {:.0} leads/s",
        bytes / 1_000_000,
        total as f64 / elapsed.as_secs_f64()
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_quick_while_a_client_keeps_connections_alive() {
    let sandbox = start(SandboxOptions::default()).await;
    let client = Client::new();
    let url = chatzuri_url(&sandbox, "get-leads", "agentId=demo");
    let response = client
        .get(&url)
        .header("Authorization", bearer(Vendor::Chatzuri))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.bytes().await.unwrap();
    let started = std::time::Instant::now();
    sandbox.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        client.get(&url).send().await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn message_bytes_serves_big_messages_from_every_conversation_endpoint() {
    let bytes = 2_000;
    let sandbox = start(SandboxOptions {
        conversations: 6,
        message_bytes: Some(bytes),
        ..Default::default()
    })
    .await;
    let oracle = |vendor, index| data::conversation_sized(vendor, 42, index, 6, Some(bytes));

    let auth = bearer(Vendor::Chatzuri);
    let url = chatzuri_url(&sandbox, "get-conversations", "agentId=demo&size=100");
    let (status, _, body) = get(&url, Some(&auth)).await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(*row, oracle(Vendor::Chatzuri, index).wire());
        for message in row["messages"].as_array().unwrap() {
            let len = message["content"].as_str().unwrap().len();
            assert!(len > bytes - 100 && len <= bytes, "{len}");
        }
    }

    let neo = Some(key(Vendor::Neoagent));
    let (_, body) = neoagent_history(&sandbox, neo).await;
    assert_eq!(body["Data"][3], oracle(Vendor::Neoagent, 3).wire());

    let robofy = oracle(Vendor::Robofy, 4);
    let (status, _, body) = get(
        &format!(
            "{}/v1/ai-agent/inbox/chats/demo/{}",
            sandbox.url(Vendor::Robofy),
            robofy.id
        ),
        Some(&bearer(Vendor::Robofy)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let messages = body["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), robofy.messages.len());
    for (message, want) in messages.iter().zip(&robofy.messages) {
        assert_eq!(message["message"].as_str().unwrap(), want.content);
        assert!(want.content.len() > bytes - 100);
    }
    sandbox.shutdown().await;
}
