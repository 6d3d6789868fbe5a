//! The JSON Schema (draft 2020-12) of each record kind as `pull` and
//! `conversations` write it (SPEC section 12), generated from the model
//! types with `schemars`, so a field added to the model is in the schema
//! without anyone remembering. `leads schema` prints it and the Singer tap
//! emits the same schema in its catalog and `SCHEMA` messages.
//!
//! Subschemas are inlined (no `$ref`): Singer targets validate with older
//! drafts and some resolve no references at all.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde_json::Value;

use crate::model::{Conversation, Lead, Vendor, format_timestamp};

/// The record kinds that have a schema: the two exported kinds, and the
/// messages of conversations as rows of their own (the tap's `messages`
/// stream, the database's `messages` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RecordKind {
    Leads,
    Conversations,
    Messages,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [
        RecordKind::Leads,
        RecordKind::Conversations,
        RecordKind::Messages,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Leads => "leads",
            RecordKind::Conversations => "conversations",
            RecordKind::Messages => "messages",
        }
    }

    /// The properties that identify one record.
    pub fn key_properties(self) -> &'static [&'static str] {
        match self {
            RecordKind::Leads | RecordKind::Conversations => &["vendor", "agent_id", "id"],
            RecordKind::Messages => &["vendor", "agent_id", "conversation_id", "message_index"],
        }
    }

    /// The JSON Schema of one record of this kind.
    pub fn schema(self) -> Value {
        let mut settings = SchemaSettings::draft2020_12();
        settings.inline_subschemas = true;
        let generator = settings.into_generator();
        let (schema, title) = match self {
            RecordKind::Leads => (generator.into_root_schema_for::<Lead>(), "leads lead"),
            RecordKind::Conversations => (
                generator.into_root_schema_for::<Conversation>(),
                "leads conversation",
            ),
            RecordKind::Messages => (
                generator.into_root_schema_for::<MessageRecord>(),
                "leads conversation message",
            ),
        };
        let mut value = schema.to_value();
        // The model's doc comments are written for its maintainers.
        strip_descriptions(&mut value);
        if let Value::Object(map) = &mut value {
            map.insert("title".to_owned(), Value::from(title));
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for schema in properties.values_mut() {
                    // "Anything" as `{}`: a boolean schema is not valid in
                    // the older drafts Singer targets validate with.
                    if *schema == Value::Bool(true) {
                        *schema = Value::Object(serde_json::Map::new());
                    }
                }
            }
            // Every field is always written (`null` when empty); only `raw`
            // depends on a flag.
            let required: Vec<Value> = map["properties"]
                .as_object()
                .map(|p| {
                    p.keys()
                        .filter(|k| *k != "raw")
                        .map(|k| Value::from(k.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            map.insert("required".to_owned(), Value::Array(required));
        }
        value
    }
}

fn strip_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// One message of a conversation as a record of its own.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MessageRecord {
    pub vendor: Vendor,
    pub agent_id: String,
    pub conversation_id: String,
    /// Position in the conversation, from 0.
    pub message_index: u64,
    pub role: String,
    pub content: Option<String>,
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub created_at: Option<String>,
}

impl MessageRecord {
    /// The messages of a conversation, in conversation order.
    pub fn of(conversation: &Conversation) -> impl Iterator<Item = MessageRecord> + '_ {
        conversation
            .messages
            .iter()
            .enumerate()
            .map(|(index, message)| MessageRecord {
                vendor: conversation.vendor,
                agent_id: conversation.agent_id.clone(),
                conversation_id: conversation.id.clone(),
                message_index: index as u64,
                role: message.role.clone(),
                content: message.content.clone(),
                created_at: message.created_at.as_ref().map(format_timestamp),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_an_object_schema_of_draft_2020_12_listing_its_key_properties() {
        for kind in RecordKind::ALL {
            let schema = kind.schema();
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{kind:?}"
            );
            assert_eq!(schema["type"], "object", "{kind:?}");
            for key in kind.key_properties() {
                assert!(
                    schema["properties"].get(*key).is_some(),
                    "{kind:?} lacks {key}"
                );
                assert!(
                    schema["required"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|k| k == key)),
                    "{kind:?}: {key} not required"
                );
            }
            assert!(
                !schema.to_string().contains("$ref"),
                "{kind:?} is not inlined"
            );
        }
    }

    #[test]
    fn created_at_is_a_nullable_date_time_and_vendor_lists_every_vendor() {
        for kind in RecordKind::ALL {
            let schema = kind.schema();
            let created = &schema["properties"]["created_at"];
            assert_eq!(created["format"], "date-time", "{kind:?}: {created}");
            assert_eq!(created["type"], serde_json::json!(["string", "null"]));
            let vendors: Vec<&str> = schema["properties"]["vendor"]["enum"]
                .as_array()
                .expect("vendor is an enum")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let all: Vec<&str> = Vendor::all().iter().map(|v| v.as_str()).collect();
            assert_eq!(vendors, all, "{kind:?}");
        }
    }
}
