//! Database outputs (SPEC section 11): a run's records upserted into SQLite
//! or PostgreSQL tables keyed by `(vendor, agent_id, id)`, the whole run one
//! transaction, and the table itself the bookmark of `--incremental`.
//!
//! Shaped like this:
//! - the export hands each record to [`Database::write`], which batches
//!   copies of them into a bounded channel; one blocking writer thread owns
//!   the connection, so memory stays flat and the export's runtime never
//!   waits on the database except when the channel is full;
//! - the writer thread *stages* rows into temporary tables (SQLite `TEMP`
//!   tables, PostgreSQL `COPY` into `ON COMMIT DROP` tables), which no other
//!   connection sees and which take no lock on the real tables;
//! - [`Database::commit`] merges the staged rows in one transaction with
//!   `INSERT ... ON CONFLICT (key) DO UPDATE`, counting what was inserted,
//!   updated and unchanged. Until then no row of the real tables changed, and
//!   a run that fails, is interrupted or is killed leaves them as they were
//!   (the staged rows die with the connection).
//!
//! This module only needs records and their vendor and agent names; the
//! schema is described once in [`schema`].

pub mod postgres;
pub mod schema;
pub mod sqlite;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::model::{Conversation, Lead, Record, Resource};
use schema::Table;

/// Where a database output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(postgres::Target),
}

/// A settled database output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub target: Target,
    /// How long to wait for another run's write lock (SQLite
    /// `busy_timeout`, PostgreSQL `lock_timeout`).
    pub lock_timeout: Duration,
    /// `--incremental`: start each source from the newest `created_at`
    /// stored for its vendor and agent.
    pub incremental: bool,
}

/// How long a database output waits for another run's lock when
/// `--lock-timeout` is not given: long enough for another run's merge of a
/// million rows, short enough that a stuck run shows up in the next cron mail.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

impl DatabaseSettings {
    /// The database as it may be shown in messages (never a password).
    pub fn shown(&self) -> String {
        match &self.target {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(target) => target.shown(),
        }
    }
}

/// Whether an `-o` value is a PostgreSQL URL.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// One record as the writer thread receives it: the cells of its row, in
/// the order of its table in [`schema`], and (conversations) the rows of its
/// messages. `message_count` is added when staged.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub record: Vec<Cell<'static>>,
    /// `None` for a lead; a conversation's messages, maybe none.
    pub messages: Option<Vec<Vec<Cell<'static>>>>,
}

/// A record kind that has a table.
pub trait Stored: Record {
    fn to_item(&self) -> Item;
}

fn owned<'a>(cells: impl IntoIterator<Item = Cell<'a>>) -> Vec<Cell<'static>> {
    cells.into_iter().map(Cell::into_owned).collect()
}

impl Stored for Lead {
    fn to_item(&self) -> Item {
        Item {
            record: owned(lead_cells(self)),
            messages: None,
        }
    }
}

impl Stored for Conversation {
    fn to_item(&self) -> Item {
        Item {
            record: owned(conversation_cells(self)),
            messages: Some(message_cells(self).map(owned).collect()),
        }
    }
}

impl Item {
    /// As a spool holds it (a multi-source run): one row of cells for the
    /// record, then one per message; integers as their digits.
    pub fn into_unit(self) -> crate::output::Unit<'static> {
        use crate::output::fields::Cell as Out;
        let row = |cells: Vec<Cell<'static>>| crate::output::table::Row {
            cells: cells
                .into_iter()
                .map(|cell| match cell {
                    Cell::Null => Out::Empty,
                    Cell::Text(text) => Out::Text(text),
                    Cell::Integer(n) => Out::Text(Cow::Owned(n.to_string())),
                })
                .collect(),
            custom: Vec::new(),
        };
        let mut rows = vec![row(self.record)];
        rows.extend(self.messages.into_iter().flatten().map(row));
        crate::output::Unit::Rows(rows)
    }

    /// The inverse of [`Item::into_unit`]; which table the record row is
    /// for follows from its width, which cells are integers from the schema.
    pub fn from_unit(unit: crate::output::Unit<'_>) -> Result<Item> {
        use crate::output::fields::Cell as Out;
        let damaged = || Error::local_file("a spool file is damaged: not a database record");
        let crate::output::Unit::Rows(rows) = unit else {
            return Err(damaged());
        };
        let cells = |columns: &[schema::Column], row: crate::output::table::Row<'_>| {
            if row.cells.len() != columns.len() {
                return Err(damaged());
            }
            row.cells
                .into_iter()
                .zip(columns)
                .map(|(cell, column)| match (cell, column.kind) {
                    (Out::Empty, _) => Ok(Cell::Null),
                    (Out::Text(text), schema::Kind::Integer) => {
                        text.parse().map(Cell::Integer).map_err(|_| damaged())
                    }
                    (Out::Text(text), _) => Ok(Cell::Text(Cow::Owned(text.into_owned()))),
                    (Out::Time(t), _) => Ok(Cell::Text(Cow::Owned(format_time(&t)))),
                })
                .collect::<Result<Vec<_>>>()
        };
        let mut rows = rows.into_iter();
        let first = rows.next().ok_or_else(damaged)?;
        if first.cells.len() == schema::LEADS.data.len() {
            return Ok(Item {
                record: cells(schema::LEADS.data, first)?,
                messages: None,
            });
        }
        Ok(Item {
            record: cells(schema::CONVERSATIONS.data, first)?,
            messages: Some(
                rows.map(|row| cells(schema::MESSAGES.data, row))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

/// The table a resource's records go to.
pub fn table_of(resource: Resource) -> &'static Table {
    match resource {
        Resource::Leads => &schema::LEADS,
        Resource::Conversations => &schema::CONVERSATIONS,
    }
}

/// One value of a staged row, in the column order of [`schema`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Integer(i64),
}

impl Cell<'_> {
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Null => Cell::Null,
            Cell::Text(text) => Cell::Text(Cow::Owned(text.into_owned())),
            Cell::Integer(n) => Cell::Integer(n),
        }
    }
}

/// A timestamp as stored: RFC 3339 in UTC with exactly six fraction digits,
/// so that in SQLite text order is time order (PostgreSQL parses it).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The inverse of [`format_time`] (any RFC 3339 is accepted).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn text<S: AsRef<str>>(value: &Option<S>) -> Cell<'_> {
    match value {
        Some(text) => Cell::Text(Cow::Borrowed(text.as_ref())),
        None => Cell::Null,
    }
}

fn time(value: &Option<DateTime<Utc>>) -> Cell<'static> {
    match value {
        Some(t) => Cell::Text(Cow::Owned(format_time(t))),
        None => Cell::Null,
    }
}

/// `fields` as JSON, written by the output layer's JSON writer so the
/// column holds exactly what the JSON outputs hold.
fn json_map(map: &crate::model::Fields) -> Cell<'static> {
    let mut out = Vec::with_capacity(64);
    crate::output::json::push_map(&mut out, map);
    Cell::Text(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

/// `raw` as JSON, likewise.
fn json_value(value: &serde_json::Value) -> Cell<'static> {
    let mut out = Vec::with_capacity(256);
    crate::output::json::push_value(&mut out, value);
    Cell::Text(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

/// A lead's cells, in the order of [`schema::LEADS`].
pub fn lead_cells(lead: &Lead) -> [Cell<'_>; 15] {
    [
        Cell::Text(Cow::Borrowed(lead.vendor.as_str())),
        Cell::Text(Cow::Borrowed(&lead.agent_id)),
        Cell::Text(Cow::Borrowed(&lead.id)),
        Cell::Text(Cow::Borrowed(&lead.kind)),
        time(&lead.created_at),
        text(&lead.name),
        text(&lead.email),
        text(&lead.phone),
        text(&lead.source),
        text(&lead.page_url),
        text(&lead.ip_address),
        text(&lead.session_id),
        text(&lead.message),
        json_map(&lead.fields),
        lead.raw.as_ref().map_or(Cell::Null, json_value),
    ]
}

/// A conversation's cells, in the order of [`schema::CONVERSATIONS`].
pub fn conversation_cells(conversation: &Conversation) -> [Cell<'_>; 10] {
    [
        Cell::Text(Cow::Borrowed(conversation.vendor.as_str())),
        Cell::Text(Cow::Borrowed(&conversation.agent_id)),
        Cell::Text(Cow::Borrowed(&conversation.id)),
        time(&conversation.created_at),
        text(&conversation.source),
        text(&conversation.customer),
        text(&conversation.session_id),
        text(&conversation.page_url),
        json_map(&conversation.fields),
        conversation.raw.as_ref().map_or(Cell::Null, json_value),
    ]
}

/// The cells of a conversation's messages, in the order of
/// [`schema::MESSAGES`], numbered from 0.
pub fn message_cells(conversation: &Conversation) -> impl Iterator<Item = [Cell<'_>; 7]> {
    conversation
        .messages
        .iter()
        .enumerate()
        .map(move |(index, message)| {
            [
                Cell::Text(Cow::Borrowed(conversation.vendor.as_str())),
                Cell::Text(Cow::Borrowed(&conversation.agent_id)),
                Cell::Text(Cow::Borrowed(&conversation.id)),
                Cell::Integer(i64::try_from(index).unwrap_or(i64::MAX)),
                Cell::Text(Cow::Borrowed(&message.role)),
                text(&message.content),
                time(&message.created_at),
            ]
        })
}

/// What a run's merge did to the records' table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Keys that were not in the table.
    pub inserted: u64,
    /// Keys that were, with other data (or other messages).
    pub updated: u64,
    /// Keys that were, with the same data: only `last_seen_at` moved.
    pub unchanged: u64,
}

/// A database written by a newer leads: exit 7, left alone.
fn newer_schema(shown: &str, version: i64) -> Error {
    Error::local_file(format!(
        "the database {shown} has schema version {version}, newer than this leads writes ({})",
        schema::SCHEMA_VERSION
    ))
    .with_hint("it was written by a newer leads: upgrade leads, or write to another database")
}

/// Checks an existing table against the schema: every column this build
/// writes present with its type, and the primary key the upserts need.
/// Other columns are allowed (a user's own, nullable or with a default).
fn check_shape(
    shown: &str,
    table: &Table,
    found: &[(&str, &str)],
    key: &[&str],
    type_name: fn(schema::Kind) -> &'static str,
) -> Result<()> {
    let mut problems = Vec::new();
    for (name, kind) in table.expected() {
        match found.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => problems.push(format!("column {name} is missing")),
            Some((_, found_type)) if !found_type.eq_ignore_ascii_case(type_name(kind)) => problems
                .push(format!(
                    "column {name} is {found_type}, not {}",
                    type_name(kind)
                )),
            Some(_) => {}
        }
    }
    let same_key = key.len() == table.key.len()
        && key
            .iter()
            .zip(table.key)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same_key {
        problems.push(format!(
            "its primary key is ({}), not ({})",
            key.join(", "),
            table.key.join(", ")
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::local_file(format!(
        "the database {shown} has a table {} of another shape: {}",
        table.name,
        problems.join("; ")
    ))
    .with_hint("leads keeps its own leads, conversations and messages tables: write to another database (PostgreSQL: or another schema, ?options=-csearch_path%3DNAME), or rename that table"))
}

impl Counts {
    /// From what the merge's count query saw: rows staged, of them new, of
    /// them stored with the same data.
    fn of_merge(staged: i64, inserted: i64, unchanged: i64) -> Counts {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Counts {
            inserted: count(inserted),
            updated: count(staged - inserted - unchanged),
            unchanged: count(unchanged),
        }
    }
}

/// The part of a database that differs between SQLite and PostgreSQL. Runs
/// on the writer thread; dropping it without `commit` rolls back.
trait Backend {
    /// The newest `created_at` stored for a vendor and agent, ignoring rows
    /// dated after `not_after`.
    fn newest(
        &mut self,
        vendor: &str,
        agent: &str,
        not_after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Adds records to the staging tables.
    fn stage(&mut self, items: &[Item]) -> Result<()>;
    /// Merges the staged records into the real tables, in one transaction.
    fn commit(&mut self) -> Result<Counts>;
}

enum Command {
    Newest {
        vendor: String,
        agent: String,
        not_after: DateTime<Utc>,
        reply: tokio::sync::oneshot::Sender<Result<Option<DateTime<Utc>>>>,
    },
    Stage(Vec<Item>),
    Commit(tokio::sync::oneshot::Sender<Result<Counts>>),
}

/// Records per message to the writer thread, and messages in flight: at
/// most a few MB of copied records wait for the database.
const BATCH: usize = 512;
const BATCHES_IN_FLIGHT: usize = 8;

/// An open database output. Dropping it without [`Database::commit`] rolls
/// the run back: no row of the real tables changes.
pub struct Database {
    commands: Option<SyncSender<Command>>,
    worker: Option<JoinHandle<Result<()>>>,
    batch: Vec<Item>,
    shown: String,
}

impl Database {
    /// Opens (SQLite: creates) the database, creates missing tables, checks
    /// the shape and version of existing ones, and starts the writer thread.
    /// `now` is the run's clock: `first_seen_at`/`last_seen_at`.
    pub async fn open(
        settings: &DatabaseSettings,
        resource: Resource,
        now: DateTime<Utc>,
    ) -> Result<Database> {
        let (commands, receiver) = sync_channel::<Command>(BATCHES_IN_FLIGHT);
        let (ready, opened) = tokio::sync::oneshot::channel::<Result<()>>();
        let thread_settings = settings.clone();
        let worker = std::thread::Builder::new()
            .name("leads-db".into())
            .spawn(move || {
                let backend: Result<Box<dyn Backend>> = match &thread_settings.target {
                    Target::Sqlite(path) => {
                        sqlite::Sqlite::open(path, &thread_settings, resource, now)
                            .map(|b| Box::new(b) as Box<dyn Backend>)
                    }
                    Target::Postgres(target) => {
                        postgres::Postgres::open(target, &thread_settings, resource, now)
                            .map(|b| Box::new(b) as Box<dyn Backend>)
                    }
                };
                match backend {
                    Ok(backend) => {
                        let _ = ready.send(Ok(()));
                        serve(backend, receiver)
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        Ok(())
                    }
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the database writer: {e}")))?;
        let mut database = Database {
            commands: Some(commands),
            worker: Some(worker),
            batch: Vec::with_capacity(BATCH),
            shown: settings.shown(),
        };
        match opened.await {
            Ok(Ok(())) => Ok(database),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(database.worker_error()),
        }
    }

    /// The newest `created_at` stored for `vendor` and `agent`, ignoring
    /// rows dated after `not_after`.
    pub async fn newest(
        &mut self,
        vendor: &str,
        agent: &str,
        not_after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::Newest {
            vendor: vendor.to_owned(),
            agent: agent.to_owned(),
            not_after,
            reply,
        })?;
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(self.worker_error()),
        }
    }

    /// Hands one record to the writer thread (in batches; blocks only while
    /// the database is behind by [`BATCHES_IN_FLIGHT`] batches).
    pub fn write<R: Stored>(&mut self, record: &R) -> Result<()> {
        self.write_item(record.to_item())
    }

    /// Hands one record's cells to the writer thread, like [`Database::write`].
    pub fn write_item(&mut self, item: Item) -> Result<()> {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.send(Command::Stage(batch))?;
        }
        Ok(())
    }

    /// Merges everything written into the tables in one transaction.
    pub async fn commit(mut self) -> Result<Counts> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.send(Command::Stage(batch))?;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::Commit(reply))?;
        let counts = match answer.await {
            Ok(result) => result?,
            Err(_) => return Err(self.worker_error()),
        };
        self.commands = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        Ok(counts)
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn send(&mut self, command: Command) -> Result<()> {
        let sent = match &self.commands {
            Some(commands) => commands.send(command).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.worker_error())
        }
    }

    /// Why the writer thread stopped: its own error, or a bug.
    fn worker_error(&mut self) -> Error {
        self.commands = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => Error::internal("the database writer panicked"),
            _ => Error::internal("the database writer stopped"),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Closing the channel makes the writer drop its backend, which
        // rolls back. It is not waited for: the process may be exiting on a
        // signal, and a connection that dies mid-transaction rolls back too.
        self.commands = None;
    }
}

fn serve(mut backend: Box<dyn Backend>, commands: Receiver<Command>) -> Result<()> {
    for command in commands {
        match command {
            Command::Newest {
                vendor,
                agent,
                not_after,
                reply,
            } => {
                let _ = reply.send(backend.newest(&vendor, &agent, not_after));
            }
            Command::Stage(items) => backend.stage(&items)?,
            Command::Commit(reply) => {
                let _ = reply.send(backend.commit());
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_times_are_fixed_width_so_text_order_is_time_order() {
        let whole = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap();
        let micro = whole + chrono::Duration::microseconds(1);
        let nano = whole + chrono::Duration::nanoseconds(1_500);
        assert_eq!(format_time(&whole), "2025-01-15T10:30:00.000000Z");
        assert_eq!(format_time(&micro), "2025-01-15T10:30:00.000001Z");
        assert_eq!(format_time(&nano), "2025-01-15T10:30:00.000001Z");
        assert!(format_time(&whole) < format_time(&micro));
        assert_eq!(parse_time(&format_time(&micro)), Some(micro));
    }

    /// A multi-source run spools each record (output::spool) and replays
    /// it into the database: the replayed rows must be the rows written.
    #[test]
    fn database_items_survive_the_spool_of_a_multi_source_run() {
        let mut lead = Lead::new(crate::model::Vendor::Chatzuri, "bot", "7");
        lead.email = Some("a@b.c".into());
        lead.created_at = Some(Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap());
        lead.fields
            .insert("company", serde_json::json!({"n": [1, "x\"y"]}));
        let mut conversation = Conversation::new(crate::model::Vendor::Robofy, "b", "c".into());
        for (role, content) in [("user", Some("hi")), ("assistant", None)] {
            conversation.messages.push(crate::model::Message {
                role: role.into(),
                content: content.map(Into::into),
                created_at: None,
            });
        }
        let empty = Conversation::new(crate::model::Vendor::Robofy, "b", "d".into());
        for item in [lead.to_item(), conversation.to_item(), empty.to_item()] {
            let mut frame = Vec::new();
            crate::output::spool::encode(&mut frame, "a", "i", &item.clone().into_unit()).unwrap();
            let spooled = crate::output::spool::decode(&mut frame.as_slice())
                .unwrap()
                .unwrap();
            assert_eq!(Item::from_unit(spooled.unit).unwrap(), item);
        }
        assert_eq!(
            lead.to_item().record[13],
            Cell::Text(Cow::Borrowed(r#"{"company":{"n":[1,"x\"y"]}}"#))
        );
    }

    #[test]
    fn postgres_urls_are_recognised_in_any_case() {
        assert!(is_postgres_url("postgres://h/db"));
        assert!(is_postgres_url("PostgreSQL://h/db"));
        assert!(!is_postgres_url("leads.db"));
        assert!(!is_postgres_url("postgres.db"));
    }

    #[test]
    fn cells_follow_the_schema_order() {
        let mut lead = Lead::new(crate::model::Vendor::Chatzuri, "bot", "7");
        lead.email = Some("a@b.c".into());
        let cells = lead_cells(&lead);
        assert_eq!(cells.len(), schema::LEADS.data.len());
        let email = schema::LEADS
            .data
            .iter()
            .position(|c| c.name == "email")
            .unwrap();
        assert_eq!(cells[email], Cell::Text(Cow::Borrowed("a@b.c")));
        assert_eq!(
            conversation_cells(&Conversation::new(
                crate::model::Vendor::Robofy,
                "b",
                "c".into()
            ))
            .len(),
            schema::CONVERSATIONS.data.len()
        );
    }
}
