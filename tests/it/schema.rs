//! `leads schema` (SPEC section 12, issue 12): the printed JSON Schema of
//! each record kind validates every record the sandbox yields, for every
//! vendor, with and without `--raw` — and rejects records that break it.

use leads::model::Vendor;
use serde_json::{Value, json};

use crate::common::{assert_exit, leads, ndjson, run, stderr, stdout};

async fn schema_of(kind: &str) -> Value {
    let mut cmd = leads();
    cmd.args(["schema", kind]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("the schema is JSON")
}

fn validator(schema: &Value) -> jsonschema::Validator {
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    // Formats (date-time) are only annotations in 2020-12 unless asked for.
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the schema itself is valid draft 2020-12")
}

fn assert_valid(validator: &jsonschema::Validator, record: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(record)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{record}");
}

async fn sandbox_records(command: &str, vendor: Vendor, raw: bool) -> Vec<Value> {
    let mut cmd = leads();
    cmd.args([
        command,
        "--sandbox",
        "--agent",
        "demo",
        "--format",
        "ndjson",
    ])
    .args(["--vendor", vendor.as_str()]);
    if raw {
        cmd.arg("--raw");
    }
    let output = run(cmd).await;
    assert_exit(&output, 0);
    ndjson(&output)
}

/// The messages of conversations as the `messages` record kind writes them.
fn message_rows(conversation: &Value) -> Vec<Value> {
    conversation["messages"]
        .as_array()
        .expect("messages is an array")
        .iter()
        .enumerate()
        .map(|(index, message)| {
            json!({
                "vendor": conversation["vendor"],
                "agent_id": conversation["agent_id"],
                "conversation_id": conversation["id"],
                "message_index": index,
                "role": message["role"],
                "content": message["content"],
                "created_at": message["created_at"],
            })
        })
        .collect()
}

#[tokio::test]
async fn every_sandbox_record_of_every_vendor_validates_against_the_printed_schema() {
    let leads_schema = validator(&schema_of("leads").await);
    let conversations_schema = validator(&schema_of("conversations").await);
    let messages_schema = validator(&schema_of("messages").await);
    for &vendor in Vendor::all() {
        for raw in [false, true] {
            let leads = sandbox_records("pull", vendor, raw).await;
            assert!(leads.len() > 100, "{vendor}: the sandbox yields leads");
            for lead in &leads {
                assert_valid(&leads_schema, lead, &format!("{vendor} lead (raw {raw})"));
            }
            let conversations = sandbox_records("conversations", vendor, raw).await;
            assert!(!conversations.is_empty(), "{vendor}: conversations");
            let mut messages = 0;
            for conversation in &conversations {
                assert_valid(
                    &conversations_schema,
                    conversation,
                    &format!("{vendor} conversation"),
                );
                for row in message_rows(conversation) {
                    assert_valid(&messages_schema, &row, &format!("{vendor} message"));
                    messages += 1;
                }
            }
            assert!(messages > 0, "{vendor}: the conversations have messages");
        }
    }
}

#[tokio::test]
async fn the_schema_rejects_records_that_break_the_model() {
    let schema = validator(&schema_of("leads").await);
    let leads = sandbox_records("pull", Vendor::Chatzuri, false).await;
    let good = leads[0].clone();
    assert!(schema.is_valid(&good));
    let breakages: [(&str, Value); 5] = [
        ("vendor", json!("acme")),
        ("created_at", json!("yesterday")),
        ("email", json!(42)),
        ("fields", json!([])),
        ("id", Value::Null),
    ];
    for (field, value) in breakages {
        let mut bad = good.clone();
        bad[field] = value.clone();
        assert!(!schema.is_valid(&bad), "{field} = {value} was accepted");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("session_id");
    assert!(!schema.is_valid(&missing), "a missing field was accepted");
}

#[tokio::test]
async fn an_unknown_record_kind_is_a_usage_error() {
    let mut cmd = leads();
    cmd.args(["schema", "appointments"]);
    let output = run(cmd).await;
    assert_exit(&output, 2);
    assert!(
        stderr(&output).starts_with("leads: error: "),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}
