//! The Singer message writer: `SCHEMA` once before a stream's first
//! record, `RECORD` with `time_extracted`, `STATE`. stdout carries these and
//! nothing else; it is flushed before every `STATE`, so a target never sees
//! a bookmark ahead of the records it has been sent.

use std::collections::HashSet;
use std::io::Write;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::output::Formatted;

use super::catalog::{Stream, selected_schema};

pub struct SingerWriter<W: Write> {
    out: W,
    schemas_sent: HashSet<Stream>,
    line: Vec<u8>,
    json: Vec<u8>,
}

impl<W: Write> SingerWriter<W> {
    pub fn new(out: W) -> SingerWriter<W> {
        SingerWriter {
            out,
            schemas_sent: HashSet::new(),
            line: Vec::with_capacity(4096),
            json: Vec::with_capacity(4096),
        }
    }

    /// Writes the stream's `SCHEMA` unless it was written already.
    pub fn schema(&mut self, stream: Stream, keep: &Option<HashSet<String>>) -> Result<()> {
        if !self.schemas_sent.insert(stream) {
            return Ok(());
        }
        let message = json!({
            "type": "SCHEMA",
            "stream": stream.name(),
            "schema": selected_schema(stream, keep),
            "key_properties": stream.0.key_properties(),
            "bookmark_properties": ["created_at"],
        });
        self.value_line(&message)
    }

    /// One `RECORD` of a model record, as `pull` writes it in JSON.
    pub fn record<R: Formatted>(
        &mut self,
        stream: Stream,
        record: &R,
        keep: &Option<HashSet<String>>,
    ) -> Result<()> {
        let mut json = std::mem::take(&mut self.json);
        json.clear();
        record.push_json(&mut json);
        let written = self.record_json(stream, &json, keep);
        self.json = json;
        written
    }

    /// One `RECORD` of a value that serializes itself (a message row).
    pub fn serialized<T: Serialize>(
        &mut self,
        stream: Stream,
        value: &T,
        keep: &Option<HashSet<String>>,
    ) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(internal)?;
        self.record_json(stream, &json, keep)
    }

    /// One `RECORD` around a record's JSON; with `keep`, only those
    /// properties.
    fn record_json(
        &mut self,
        stream: Stream,
        json: &[u8],
        keep: &Option<HashSet<String>>,
    ) -> Result<()> {
        self.line.clear();
        self.line
            .extend_from_slice(b"{\"type\":\"RECORD\",\"stream\":\"");
        self.line.extend_from_slice(stream.name().as_bytes());
        self.line.extend_from_slice(b"\",\"record\":");
        match keep {
            None => self.line.extend_from_slice(json),
            Some(keep) => {
                let mut value: Value = serde_json::from_slice(json).map_err(internal)?;
                if let Value::Object(map) = &mut value {
                    map.retain(|name, _| keep.contains(name));
                }
                serde_json::to_writer(&mut self.line, &value).map_err(internal)?;
            }
        }
        self.line.extend_from_slice(b",\"time_extracted\":\"");
        self.line.extend_from_slice(
            Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_bytes(),
        );
        self.line.extend_from_slice(b"\"}\n");
        self.out
            .write_all(&self.line)
            .map_err(crate::app::write_error)
    }

    /// `STATE`, after everything before it is flushed.
    pub fn state(&mut self, value: &Value) -> Result<()> {
        self.value_line(&json!({"type": "STATE", "value": value}))?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(crate::app::write_error)
    }

    fn value_line(&mut self, message: &Value) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, message).map_err(internal)?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(crate::app::write_error)
    }
}

fn internal(e: serde_json::Error) -> crate::error::Error {
    crate::error::Error::internal(format!("cannot serialize a Singer message: {e}"))
}
