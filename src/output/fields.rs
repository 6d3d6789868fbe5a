//! The field tables: one per record kind (leads, conversations, the messages
//! inside a conversation, and the message rows of tabular output). Each table
//! lists the fields in output order with a getter, and is the only place that
//! order is written down: JSON key order, the CSV header and cells, the XLSX
//! columns and `--columns` names all come from it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{Conversation, Fields, Lead, Message, Record, Resource};

/// One field of one record, borrowed from it, before it is formatted.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    Null,
    Str(&'a str),
    Time(DateTime<Utc>),
    /// `fields`: a JSON object (compact JSON in a table cell).
    Object(&'a Fields),
    /// `messages`: JSON only.
    Messages(&'a [Message]),
    /// `message_index`: a number in JSON, text in a table cell.
    Index(usize),
    /// `raw`: JSON only, and left out entirely when absent.
    Raw(Option<&'a Value>),
}

impl<'a> FieldValue<'a> {
    pub fn text(value: &'a Option<String>) -> FieldValue<'a> {
        value.as_deref().map_or(FieldValue::Null, FieldValue::Str)
    }

    pub fn time(value: Option<DateTime<Utc>>) -> FieldValue<'a> {
        value.map_or(FieldValue::Null, FieldValue::Time)
    }

    /// The value as a table cell; `None` for the JSON-only kinds.
    pub fn cell(self) -> Option<Cell<'a>> {
        Some(match self {
            FieldValue::Null => Cell::Empty,
            FieldValue::Str(text) => Cell::Text(Cow::Borrowed(text)),
            FieldValue::Time(t) => Cell::Time(t),
            FieldValue::Object(map) => {
                let mut out = Vec::with_capacity(2 + map.len() * 16);
                super::json::push_map(&mut out, map);
                Cell::Text(Cow::Owned(utf8(out)))
            }
            FieldValue::Index(n) => Cell::Text(Cow::Owned(n.to_string())),
            FieldValue::Messages(_) | FieldValue::Raw(_) => return None,
        })
    }
}

/// JSON bytes written from `String`s are UTF-8; no copy, no panic path.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One cell of tabular output (CSV, XLSX), before CSV's formula guard.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Text(Cow<'a, str>),
    /// Text in CSV (six fraction digits), a date-time cell in XLSX.
    Time(DateTime<Utc>),
}

impl Cell<'_> {
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Empty => Cell::Empty,
            Cell::Text(text) => Cell::Text(Cow::Owned(text.into_owned())),
            Cell::Time(t) => Cell::Time(t),
        }
    }

    /// A custom field's value as a cell: strings as they are, other JSON
    /// values compact, absent and `null` empty.
    pub fn of_custom(value: Option<&Value>) -> Cell<'_> {
        match value {
            None | Some(Value::Null) => Cell::Empty,
            Some(Value::String(text)) => Cell::Text(Cow::Borrowed(text)),
            Some(other) => {
                let mut out = Vec::new();
                super::json::push_value(&mut out, other);
                Cell::Text(Cow::Owned(utf8(out)))
            }
        }
    }
}

/// One entry of a field table.
pub struct Field<G> {
    pub name: &'static str,
    /// `,"NAME":`, what JSON writes before the value (without the comma
    /// for the first field): one copy per field on the hot path.
    pub json_key: &'static str,
    pub get: G,
}

/// A table entry: the name once, its JSON key made from it.
macro_rules! field {
    ($name:literal, $get:expr) => {
        Field {
            name: $name,
            json_key: concat!(",\"", $name, "\":"),
            get: $get,
        }
    };
}

/// A field of a record kind that owns its data.
pub type Getter<R> = for<'a> fn(&'a R) -> FieldValue<'a>;
/// A field of a message row, which borrows its conversation.
pub type RowGetter = for<'a> fn(MessageRow<'a>) -> FieldValue<'a>;

/// Lead fields in output order (docs/SPEC.md section 2).
pub static LEAD_FIELDS: &[Field<Getter<Lead>>] = &[
    field!("id", |l| FieldValue::Str(&l.id)),
    field!("vendor", |l| FieldValue::Str(l.vendor.as_str())),
    field!("agent_id", |l| FieldValue::Str(&l.agent_id)),
    field!("kind", |l| FieldValue::Str(&l.kind)),
    field!("created_at", |l| FieldValue::time(l.created_at)),
    field!("name", |l| FieldValue::text(&l.name)),
    field!("email", |l| FieldValue::text(&l.email)),
    field!("phone", |l| FieldValue::text(&l.phone)),
    field!("source", |l| FieldValue::text(&l.source)),
    field!("page_url", |l| FieldValue::text(&l.page_url)),
    field!("ip_address", |l| FieldValue::text(&l.ip_address)),
    field!("session_id", |l| FieldValue::text(&l.session_id)),
    field!("message", |l| FieldValue::text(&l.message)),
    field!("fields", |l| FieldValue::Object(&l.fields)),
    field!("raw", |l| FieldValue::Raw(l.raw.as_ref())),
];

/// Conversation fields in JSON order.
pub static CONVERSATION_FIELDS: &[Field<Getter<Conversation>>] = &[
    field!("id", |c| FieldValue::Str(&c.id)),
    field!("vendor", |c| FieldValue::Str(c.vendor.as_str())),
    field!("agent_id", |c| FieldValue::Str(&c.agent_id)),
    field!("created_at", |c| FieldValue::time(c.created_at)),
    field!("source", |c| FieldValue::text(&c.source)),
    field!("customer", |c| FieldValue::text(&c.customer)),
    field!("session_id", |c| FieldValue::text(&c.session_id)),
    field!("page_url", |c| FieldValue::text(&c.page_url)),
    field!("messages", |c| FieldValue::Messages(&c.messages)),
    field!("fields", |c| FieldValue::Object(&c.fields)),
    field!("raw", |c| FieldValue::Raw(c.raw.as_ref())),
];

/// The fields of one message inside a conversation's JSON.
pub static MESSAGE_FIELDS: &[Field<Getter<Message>>] = &[
    field!("role", |m| FieldValue::Str(&m.role)),
    field!("content", |m| FieldValue::text(&m.content)),
    field!("created_at", |m| FieldValue::time(m.created_at)),
];

/// One row of a conversation in tabular output: one per message (`index`
/// is the message's), or one with empty message cells (`index` is `None`)
/// for a conversation without messages, so that it is not lost.
#[derive(Debug, Clone, Copy)]
pub struct MessageRow<'a> {
    pub conversation: &'a Conversation,
    pub index: Option<usize>,
}

impl<'a> MessageRow<'a> {
    fn message(self) -> Option<&'a Message> {
        self.conversation.messages.get(self.index?)
    }

    fn message_value(self, get: fn(&'a Message) -> FieldValue<'a>) -> FieldValue<'a> {
        self.message().map_or(FieldValue::Null, get)
    }
}

/// The tabular columns of conversations (docs/SPEC.md section 3).
pub static MESSAGE_ROW_FIELDS: &[Field<RowGetter>] = &[
    field!("conversation_id", |r| FieldValue::Str(&r.conversation.id)),
    field!("vendor", |r| FieldValue::Str(
        r.conversation.vendor.as_str()
    )),
    field!("agent_id", |r| FieldValue::Str(&r.conversation.agent_id)),
    field!("conversation_created_at", |r| FieldValue::time(
        r.conversation.created_at
    )),
    field!("source", |r| FieldValue::text(&r.conversation.source)),
    field!("customer", |r| FieldValue::text(&r.conversation.customer)),
    field!("session_id", |r| FieldValue::text(
        &r.conversation.session_id
    )),
    field!("message_index", |r| r
        .index
        .map_or(FieldValue::Null, FieldValue::Index)),
    field!("role", |r| r.message_value(|m| FieldValue::Str(&m.role))),
    field!("content", |r| r
        .message_value(|m| FieldValue::text(&m.content))),
    field!("message_created_at", |r| r
        .message_value(|m| FieldValue::time(m.created_at))),
];

/// What the writers need of a record kind: its JSON table, and its rows for
/// tabular output.
pub trait Formatted: Record {
    /// JSON keys and values, in order.
    const JSON_FIELDS: &'static [Field<Getter<Self>>];

    /// The names of the tabular columns, in order.
    fn column_names() -> Vec<&'static str>;

    /// Calls `emit` once per tabular row, with the value of column `i`
    /// (an index into [`column_names`](Formatted::column_names)).
    fn each_row<'a, E>(&'a self, emit: E) -> std::io::Result<()>
    where
        E: FnMut(&dyn Fn(usize) -> FieldValue<'a>) -> std::io::Result<()>;
}

/// The JSON-only fields are not columns.
fn tabular<G>(table: &[Field<G>], is_column: impl Fn(&Field<G>) -> bool) -> Vec<&'static str> {
    table
        .iter()
        .filter(|f| is_column(f))
        .map(|f| f.name)
        .collect()
}

impl Formatted for Lead {
    const JSON_FIELDS: &'static [Field<Getter<Self>>] = LEAD_FIELDS;

    fn column_names() -> Vec<&'static str> {
        tabular(LEAD_FIELDS, |f| f.name != "raw")
    }

    fn each_row<'a, E>(&'a self, mut emit: E) -> std::io::Result<()>
    where
        E: FnMut(&dyn Fn(usize) -> FieldValue<'a>) -> std::io::Result<()>,
    {
        emit(&|i| (LEAD_FIELDS[i].get)(self))
    }
}

impl Formatted for Conversation {
    const JSON_FIELDS: &'static [Field<Getter<Self>>] = CONVERSATION_FIELDS;

    fn column_names() -> Vec<&'static str> {
        tabular(MESSAGE_ROW_FIELDS, |_| true)
    }

    fn each_row<'a, E>(&'a self, mut emit: E) -> std::io::Result<()>
    where
        E: FnMut(&dyn Fn(usize) -> FieldValue<'a>) -> std::io::Result<()>,
    {
        let indexes: Box<dyn Iterator<Item = Option<usize>>> = if self.messages.is_empty() {
            Box::new(std::iter::once(None))
        } else {
            Box::new((0..self.messages.len()).map(Some))
        };
        for index in indexes {
            let row = MessageRow {
                conversation: self,
                index,
            };
            emit(&|i| (MESSAGE_ROW_FIELDS[i].get)(row))?;
        }
        Ok(())
    }
}

/// The tabular column names of a resource, for checking `--columns`.
pub fn column_names(resource: Resource) -> Vec<&'static str> {
    match resource {
        Resource::Leads => Lead::column_names(),
        Resource::Conversations => Conversation::column_names(),
    }
}

/// One chosen column of tabular output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A column of the kind's table, by index.
    Field(usize),
    /// `fields.NAME`: one custom field, flattened.
    Custom(String),
}

impl Column {
    pub fn header(&self, names: &[&'static str]) -> String {
        match self {
            Column::Field(i) => names[*i].to_owned(),
            Column::Custom(name) => format!("{CUSTOM_PREFIX}{name}"),
        }
    }
}

pub const CUSTOM_PREFIX: &str = "fields.";
/// `--columns all-fields`.
pub const ALL_FIELDS: &str = "all-fields";

/// The settled `--columns`: which columns, and whether the custom field
/// keys of the first records are added at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub list: Vec<Column>,
    pub all_fields: bool,
}

impl Columns {
    /// Every column of the kind's table, in order.
    pub fn all(resource: Resource) -> Columns {
        Columns {
            list: (0..column_names(resource).len())
                .map(Column::Field)
                .collect(),
            all_fields: false,
        }
    }

    /// Parses `--columns`: names from the kind's table, `fields.NAME`, and
    /// `all-fields` (alone: every column, then one per custom field key).
    pub fn parse(text: &str, resource: Resource) -> std::result::Result<Columns, String> {
        let names = column_names(resource);
        let mut columns = Columns {
            list: Vec::new(),
            all_fields: false,
        };
        for item in text.split(',').map(str::trim) {
            if item == ALL_FIELDS {
                columns.all_fields = true;
            } else if let Some(name) = item.strip_prefix(CUSTOM_PREFIX) {
                if name.is_empty() {
                    return Err(format!("--columns: {item:?} names no field"));
                }
                columns.list.push(Column::Custom(name.to_owned()));
            } else if let Some(i) = names.iter().position(|n| *n == item) {
                columns.list.push(Column::Field(i));
            } else if item.is_empty() {
                return Err("--columns: an empty column name".to_owned());
            } else {
                return Err(format!(
                    "--columns: {item:?} is not a {} column (known: {}, fields.NAME, {ALL_FIELDS})",
                    resource.as_str(),
                    names.join(", ")
                ));
            }
        }
        if let Some(dup) = columns
            .list
            .iter()
            .enumerate()
            .find(|(i, c)| columns.list[..*i].contains(c))
            .map(|(_, c)| c.header(&names))
        {
            return Err(format!("--columns: {dup} is named twice"));
        }
        if columns.list.is_empty() {
            columns.list = Columns::all(resource).list;
        }
        Ok(columns)
    }
}
