//! The Chatbase client against the simulated Chatbase, end to end: the
//! generator (`leads::sandbox::data`) is the oracle for every lead and
//! conversation the binary writes, through v1 leads, the v2 export's cursor,
//! and the v1 fallback of an agent whose plan has no v2.

use chrono::{DateTime, SecondsFormat, Utc};
use leads::sandbox::data::{self, GeneratedConversation};
use leads::sandbox::{CHATBASE_V1_ONLY_AGENT, DEMO_AGENT, Sandbox, SandboxOptions, SimVendor};
use serde_json::Value;

use crate::common::{assert_exit, assert_no_key, leads, ndjson, run, stderr};

const SEED: u64 = 42;

async fn sandbox(leads: usize, conversations: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        leads,
        conversations,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

async fn export(sandbox: &Sandbox, command: &str, agent: &str) -> Vec<Value> {
    let mut cmd = leads();
    cmd.args([
        command, "--vendor", "chatbase", "--agent", agent, "--format", "ndjson",
    ]);
    cmd.args(["--base-url", &sandbox.base_url("chatbase").unwrap()]);
    cmd.env("CHATBASE_API_KEY", SimVendor::Chatbase.key());
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    assert!(
        !stderr(&output).contains(SimVendor::Chatbase.key()),
        "the sandbox key is not printed"
    );
    ndjson(&output)
}

/// The output's spelling: always six fraction digits (issue 13).
fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn by_created(mut records: Vec<Value>) -> Vec<Value> {
    records.sort_by(|a, b| {
        (a["created_at"].as_str(), a["id"].as_str())
            .cmp(&(b["created_at"].as_str(), b["id"].as_str()))
    });
    records
}

#[tokio::test]
async fn chatbase_pull_writes_every_generated_lead_once() {
    let total = 230;
    let sandbox = sandbox(total, 5).await;
    let got = by_created(export(&sandbox, "pull", DEMO_AGENT).await);
    assert_eq!(got.len(), total);
    for (index, lead) in got.iter().enumerate() {
        let oracle = data::lead(SimVendor::Chatbase, SEED, index, total);
        assert_eq!(lead["vendor"], "chatbase");
        assert_eq!(lead["id"].as_str(), oracle.id.as_deref(), "{index}");
        assert_eq!(lead["created_at"], utc(oracle.created_at));
        assert_eq!(lead["name"].as_str(), oracle.name.as_deref());
        assert_eq!(lead["email"].as_str(), oracle.email.as_deref());
        assert_eq!(lead["phone"].as_str(), oracle.phone.as_deref());
    }
    sandbox.shutdown().await;
}

fn assert_conversations(got: &[Value], want: &[GeneratedConversation], v1: bool) {
    assert_eq!(got.len(), want.len());
    for (record, oracle) in got.iter().zip(want) {
        assert_eq!(record["id"], oracle.id.as_str());
        assert_eq!(record["created_at"], utc(oracle.created_at));
        assert_eq!(record["source"].as_str(), oracle.source.as_deref());
        let messages: Vec<_> = oracle
            .messages
            .iter()
            .filter(|m| !v1 || m.model_content().is_some())
            .collect();
        let wire = record["messages"].as_array().unwrap();
        assert_eq!(wire.len(), messages.len(), "{}", oracle.id);
        for (m, o) in wire.iter().zip(messages) {
            assert_eq!(m["role"], o.role.model());
            assert_eq!(m["content"].as_str(), o.model_content());
            let at = if v1 { None } else { o.created_at.map(utc) };
            assert_eq!(m["created_at"].as_str(), at.as_deref());
        }
    }
}

#[tokio::test]
async fn chatbase_conversations_come_through_the_export_cursor_and_the_v1_fallback() {
    let total = 47;
    let sandbox = sandbox(5, total).await;
    let want: Vec<GeneratedConversation> = (0..total)
        .map(|i| data::conversation(SimVendor::Chatbase, SEED, i, total))
        .collect();
    assert!(
        want.iter()
            .flat_map(|c| &c.messages)
            .any(|m| m.model_content().is_none()),
        "some message is tool-only"
    );
    let got = by_created(export(&sandbox, "conversations", DEMO_AGENT).await);
    assert_conversations(&got, &want, false);
    let got = by_created(export(&sandbox, "conversations", CHATBASE_V1_ONLY_AGENT).await);
    assert_conversations(&got, &want, true);
    sandbox.shutdown().await;
}
