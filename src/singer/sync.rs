//! One sync: each source in config order, its leads and then its
//! conversations (with their messages), through the same export functions
//! as `pull`/`conversations`. A stream's bookmark for a source moves only
//! after that source's stream is complete and flushed, and the `STATE`
//! that carries it follows at once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::{Endpoint, Environment};
use crate::error::{Error, Result};
use crate::export::{self, Bookmark, SeenIds};
use crate::model::{Conversation, Lead, Resource, format_timestamp};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::schema::{MessageRecord, RecordKind};

use super::catalog::{Selection, Stream};
use super::config::TapConfig;
use super::messages::SingerWriter;

/// The Singer state: `{"bookmarks": {STREAM: {"VENDOR/AGENT": BOOKMARK}}}`.
/// Bookmarks of streams or sources this run does not touch are kept as
/// they came.
#[derive(Debug, Clone, Default)]
pub struct TapState {
    bookmarks: Map<String, Value>,
}

impl TapState {
    pub fn load(path: &Path) -> Result<TapState> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::local_file(format!("cannot read the state {}: {e}", path.display()))
        })?;
        TapState::parse(&bytes)
            .map_err(|m| Error::local_file(format!("state {}: {m}", path.display())))
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<TapState, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(TapState::default());
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
        let bookmarks = match value.get("bookmarks") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err("\"bookmarks\" is not an object".to_owned()),
        };
        let state = TapState { bookmarks };
        // Every bookmark of a known stream must parse: a broken one would
        // otherwise be a silent full re-export.
        for stream in Stream::ALL {
            if let Some(sources) = state.bookmarks.get(stream.name()) {
                let sources = sources
                    .as_object()
                    .ok_or_else(|| format!("bookmarks of {} are not an object", stream.name()))?;
                for key in sources.keys() {
                    state.bookmark(stream, key)?;
                }
            }
        }
        Ok(state)
    }

    fn bookmark(&self, stream: Stream, key: &str) -> std::result::Result<Option<Bookmark>, String> {
        let Some(value) = self.bookmarks.get(stream.name()).and_then(|s| s.get(key)) else {
            return Ok(None);
        };
        let bad = || {
            format!(
                "bookmark {}/{key} is not {{\"created_at\": RFC 3339, \"ids\": [...]}}",
                stream.name()
            )
        };
        let created_at = value["created_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)?;
        let ids = match &value["ids"] {
            Value::Null => Vec::new(),
            Value::Array(ids) => ids
                .iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        Ok(Some(Bookmark {
            created_at: Some(created_at),
            ids,
        }))
    }

    fn advance(&mut self, stream: Stream, key: &str, newest: &Bookmark) {
        let old = self.bookmark(stream, key).ok().flatten();
        let Some(Bookmark {
            created_at: Some(created),
            ids,
        }) = crate::state::advanced(old.as_ref(), newest)
        else {
            return;
        };
        let sources = self
            .bookmarks
            .entry(stream.name())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(sources) = sources {
            sources.insert(
                key.to_owned(),
                json!({"created_at": format_timestamp(&created), "ids": ids}),
            );
        }
    }

    pub fn value(&self) -> Value {
        json!({"bookmarks": self.bookmarks})
    }
}

pub async fn run(
    config: &TapConfig,
    selection: &Selection,
    mut state: TapState,
    env: &dyn Environment,
    now: DateTime<Utc>,
) -> Result<()> {
    // Every source is settled before anything is sent: a bad setting in the
    // third source must not come after two sources' worth of records.
    let mut plans = Vec::new();
    for source in &config.sources {
        for resource in [Resource::Leads, Resource::Conversations] {
            let streams: Vec<Stream> = selection
                .streams
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| s.resource() == resource)
                .collect();
            if streams.is_empty() {
                continue;
            }
            let mut settings = source.settle(resource, env, now)?;
            let mut settled = settings
                .sources
                .pop()
                .ok_or_else(|| Error::internal("tap: a source settled to nothing"))?;
            settled.name = source.name.clone();
            if matches!(settled.endpoint, Endpoint::Sandbox)
                && crate::sandbox::key(settled.job.vendor.as_str()).is_none()
            {
                return Err(Error::usage(format!(
                    "tap config: the sandbox does not simulate {} yet",
                    settled.job.vendor.display_name()
                )));
            }
            plans.push((source, streams, settled, settings.fetch));
        }
    }
    let sandbox = if plans
        .iter()
        .any(|(_, _, s, _)| matches!(s.endpoint, Endpoint::Sandbox))
    {
        Some(
            Sandbox::start(SandboxOptions::default())
                .await
                .map_err(|e| Error::internal(format!("cannot start the sandbox: {e}")))?,
        )
    } else {
        None
    };
    let mut out = SingerWriter::new(std::io::BufWriter::with_capacity(
        256 * 1024,
        std::io::stdout().lock(),
    ));
    for (source, streams, settled, fetch) in &plans {
        // Streams of one export whose bookmarks agree share it; otherwise
        // each stream runs its own export from its own bookmark.
        let mut groups: Vec<(Option<Bookmark>, Vec<Stream>)> = Vec::new();
        for stream in streams {
            let bookmark = state
                .bookmark(*stream, &source.state_key())
                .map_err(Error::local_file)?;
            match groups.iter_mut().find(|(b, _)| *b == bookmark) {
                Some((_, members)) => members.push(*stream),
                None => groups.push((bookmark, vec![*stream])),
            }
        }
        for (bookmark, members) in groups {
            for stream in &members {
                let keep = selection.properties(*stream).cloned().flatten();
                out.schema(*stream, &keep)?;
            }
            let job = &settled.job;
            let fetcher = Arc::new(crate::app::build_fetcher(settled, fetch, sandbox.as_ref())?);
            let mut seen = SeenIds::default();
            let stats = match job.resource {
                Resource::Leads => {
                    let keep = selection
                        .properties(Stream(RecordKind::Leads))
                        .cloned()
                        .flatten();
                    let mut sink = |lead: &Lead| out.record(Stream(RecordKind::Leads), lead, &keep);
                    export::export(job, bookmark.as_ref(), fetcher, &mut seen, &mut sink).await
                }
                Resource::Conversations => {
                    let wanted = |kind| members.contains(&Stream(kind));
                    let (conversations, messages) = (
                        wanted(RecordKind::Conversations),
                        wanted(RecordKind::Messages),
                    );
                    let keep_of = |kind| selection.properties(Stream(kind)).cloned().flatten();
                    let (keep_conversations, keep_messages): (
                        Option<HashSet<String>>,
                        Option<HashSet<String>>,
                    ) = (
                        keep_of(RecordKind::Conversations),
                        keep_of(RecordKind::Messages),
                    );
                    let mut sink = |conversation: &Conversation| {
                        if conversations {
                            out.record(
                                Stream(RecordKind::Conversations),
                                conversation,
                                &keep_conversations,
                            )?;
                        }
                        if messages {
                            for message in MessageRecord::of(conversation) {
                                out.serialized(
                                    Stream(RecordKind::Messages),
                                    &message,
                                    &keep_messages,
                                )?;
                            }
                        }
                        Ok(())
                    };
                    export::export(job, bookmark.as_ref(), fetcher, &mut seen, &mut sink).await
                }
            };
            let stats = stats.map_err(|mut e| {
                if let Some(name) = &source.name {
                    e.message = format!("source {name}: {}", e.message);
                }
                e
            })?;
            if stats.future_dated > 0 {
                tracing::warn!(
                    "{} records dated more than a day after this run's clock ({}): emitted, but the bookmark does not move to them",
                    stats.future_dated,
                    format_timestamp(&now)
                );
            }
            tracing::info!(
                "{}: {} {} records emitted, {} pages",
                source.state_key(),
                stats.written,
                job.resource.as_str(),
                stats.pages
            );
            if let Some(newest) = &stats.newest {
                for stream in &members {
                    state.advance(*stream, &source.state_key(), newest);
                }
            }
            out.state(&state.value())?;
        }
    }
    out.flush()?;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_keeps_other_streams_and_refuses_a_broken_bookmark() {
        let text = br#"{"bookmarks": {"leads": {"chatzuri/a": {"created_at": "2025-01-02T03:04:05Z", "ids": ["7"]}},
            "other": {"x": 1}}}"#;
        let mut state = TapState::parse(text).unwrap();
        let leads = Stream(RecordKind::Leads);
        let mark = state.bookmark(leads, "chatzuri/a").unwrap().unwrap();
        assert_eq!(mark.ids, ["7"]);
        let older = Bookmark {
            created_at: Some(mark.created_at.unwrap() - chrono::Duration::days(1)),
            ids: vec!["1".into()],
        };
        state.advance(leads, "chatzuri/a", &older);
        assert_eq!(state.bookmark(leads, "chatzuri/a").unwrap(), Some(mark));
        assert_eq!(state.value()["bookmarks"]["other"], json!({"x": 1}));
        for broken in [
            &br#"{"bookmarks": {"leads": {"chatzuri/a": {"created_at": "soon"}}}}"#[..],
            br#"{"bookmarks": 3}"#,
            b"{nope",
        ] {
            assert!(TapState::parse(broken).is_err());
        }
        assert!(TapState::parse(b"").unwrap().value()["bookmarks"] == json!({}));
    }
}
