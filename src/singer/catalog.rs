//! The tap's streams, the catalog `--discover` prints, and what a catalog
//! given with `--catalog`/`--properties` selects (streams and properties,
//! by the Singer metadata rules Meltano writes).

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::Resource;
use crate::schema::RecordKind;

/// One Singer stream: a record kind, and the export it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream(pub RecordKind);

impl Stream {
    pub const ALL: [Stream; 3] = [
        Stream(RecordKind::Leads),
        Stream(RecordKind::Conversations),
        Stream(RecordKind::Messages),
    ];

    pub fn name(self) -> &'static str {
        self.0.as_str()
    }

    pub fn by_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The vendor listing this stream's records come from.
    pub fn resource(self) -> Resource {
        match self.0 {
            RecordKind::Leads => Resource::Leads,
            RecordKind::Conversations | RecordKind::Messages => Resource::Conversations,
        }
    }

    /// The record kind's schema less `raw`, which the tap never emits.
    pub fn schema(self) -> Value {
        let mut schema = self.0.schema();
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.remove("raw");
        }
        schema
    }

    /// Selected when a run has no catalog.
    fn selected_by_default(self) -> bool {
        self.0 == RecordKind::Leads
    }

    fn automatic(self, property: &str) -> bool {
        property == "created_at" || self.0.key_properties().contains(&property)
    }

    /// The stream's entry in the catalog.
    pub fn catalog_entry(self) -> Value {
        let schema = self.schema();
        let keys = self.0.key_properties();
        let mut metadata = vec![json!({
            "breadcrumb": [],
            "metadata": {
                "inclusion": "available",
                "selected-by-default": self.selected_by_default(),
                "table-key-properties": keys,
                "valid-replication-keys": ["created_at"],
                "forced-replication-method": "INCREMENTAL",
            }
        })];
        if let Some(properties) = schema["properties"].as_object() {
            for name in properties.keys() {
                let inclusion = if self.automatic(name) {
                    "automatic"
                } else {
                    "available"
                };
                metadata.push(json!({
                    "breadcrumb": ["properties", name],
                    "metadata": {"inclusion": inclusion, "selected-by-default": true},
                }));
            }
        }
        json!({
            "tap_stream_id": self.name(),
            "stream": self.name(),
            "schema": schema,
            "key_properties": keys,
            "replication_key": "created_at",
            "replication_method": "INCREMENTAL",
            "metadata": metadata,
        })
    }
}

/// `--discover`.
pub fn discover() -> Value {
    json!({"streams": Stream::ALL.map(Stream::catalog_entry)})
}

/// The streams a run emits, each with the properties it keeps (`None`: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub streams: Vec<(Stream, Option<HashSet<String>>)>,
}

impl Selection {
    /// Without a catalog: the streams selected by default, every property.
    pub fn default_streams() -> Selection {
        Selection {
            streams: Stream::ALL
                .into_iter()
                .filter(|s| s.selected_by_default())
                .map(|s| (s, None))
                .collect(),
        }
    }

    pub fn load(path: &Path) -> Result<Selection> {
        let text = std::fs::read(path).map_err(|e| {
            Error::usage(format!("cannot read the catalog {}: {e}", path.display()))
        })?;
        let value: Value = serde_json::from_slice(&text).map_err(|e| {
            Error::usage(format!("the catalog {} is not JSON: {e}", path.display()))
        })?;
        Selection::from_catalog(&value)
            .map_err(|m| Error::usage(format!("catalog {}: {m}", path.display())))
    }

    pub fn from_catalog(catalog: &Value) -> std::result::Result<Selection, String> {
        let entries = catalog["streams"]
            .as_array()
            .ok_or("no \"streams\" list (give a catalog from --discover)")?;
        let mut streams = Vec::new();
        for entry in entries {
            let id = entry["tap_stream_id"]
                .as_str()
                .or_else(|| entry["stream"].as_str())
                .ok_or("a stream without tap_stream_id")?;
            let Some(stream) = Stream::by_name(id) else {
                tracing::warn!("the catalog names a stream tap-leads does not have: {id}");
                continue;
            };
            let metadata = metadata_by_breadcrumb(entry);
            let top = metadata.get(&Vec::new());
            let selected = top
                .and_then(|m| m.get("selected"))
                .and_then(Value::as_bool)
                .or_else(|| entry["schema"]["selected"].as_bool())
                .or_else(|| {
                    top.and_then(|m| m.get("selected-by-default"))
                        .and_then(Value::as_bool)
                })
                .unwrap_or(false);
            if !selected || streams.iter().any(|(s, _)| *s == stream) {
                continue;
            }
            let schema = stream.schema();
            let mut keep = HashSet::new();
            let mut all = true;
            for name in schema["properties"]
                .as_object()
                .map(Map::keys)
                .into_iter()
                .flatten()
            {
                let meta = metadata.get(&vec!["properties".to_owned(), name.clone()]);
                let flag = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_bool);
                let unsupported = meta
                    .and_then(|m| m.get("inclusion"))
                    .is_some_and(|i| i == "unsupported");
                let wanted = stream.automatic(name)
                    || (!unsupported
                        && flag("selected")
                            .or_else(|| flag("selected-by-default"))
                            .unwrap_or(true));
                if wanted {
                    keep.insert(name.clone());
                } else {
                    all = false;
                }
            }
            streams.push((stream, (!all).then_some(keep)));
        }
        // Export order: a source's leads, then its conversations.
        streams.sort_by_key(|(s, _)| Stream::ALL.iter().position(|x| x == s));
        Ok(Selection { streams })
    }

    pub fn properties(&self, stream: Stream) -> Option<&Option<HashSet<String>>> {
        self.streams
            .iter()
            .find(|(s, _)| *s == stream)
            .map(|(_, p)| p)
    }
}

fn metadata_by_breadcrumb(
    entry: &Value,
) -> std::collections::HashMap<Vec<String>, &Map<String, Value>> {
    let mut out = std::collections::HashMap::new();
    for item in entry["metadata"].as_array().into_iter().flatten() {
        let breadcrumb: Vec<String> = item["breadcrumb"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        if let Some(meta) = item["metadata"].as_object() {
            out.insert(breadcrumb, meta);
        }
    }
    out
}

/// A schema cut down to the properties kept.
pub fn selected_schema(stream: Stream, keep: &Option<HashSet<String>>) -> Value {
    let mut schema = stream.schema();
    if let Some(keep) = keep {
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.retain(|name, _| keep.contains(name));
        }
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|name| name.as_str().is_some_and(|n| keep.contains(n)));
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovered_catalog_selects_leads_only_and_meltano_selections_are_honoured() {
        let mut catalog = discover();
        assert_eq!(
            Selection::from_catalog(&catalog).unwrap(),
            Selection::default_streams()
        );
        // What Meltano writes for `select: [conversations.id, conversations.customer, messages.*]`.
        for entry in catalog["streams"].as_array_mut().unwrap() {
            let stream = entry["stream"].as_str().unwrap().to_owned();
            for item in entry["metadata"].as_array_mut().unwrap() {
                let crumb = item["breadcrumb"].clone();
                let selected = match (stream.as_str(), crumb.as_array().unwrap().len()) {
                    ("leads", _) => false,
                    ("conversations", 0) => true,
                    ("conversations", _) => crumb[1] == "customer" || crumb[1] == "id",
                    ("messages", _) => true,
                    _ => unreachable!(),
                };
                item["metadata"]["selected"] = json!(selected);
            }
        }
        let selection = Selection::from_catalog(&catalog).unwrap();
        let names: Vec<&str> = selection.streams.iter().map(|(s, _)| s.name()).collect();
        assert_eq!(names, ["conversations", "messages"]);
        let kept = selection.streams[0].1.clone().unwrap();
        let mut kept: Vec<&str> = kept.iter().map(String::as_str).collect();
        kept.sort();
        // Key properties and the replication key are automatic.
        assert_eq!(kept, ["agent_id", "created_at", "customer", "id", "vendor"]);
        assert_eq!(selection.streams[1].1, None);
    }
}
