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
    /// A name the program itself spells (a vendor's, a record kind's):
    /// plain ASCII, so JSON takes it without an escape check.
    Name(&'static str),
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
    pub fn text<S: AsRef<str>>(value: &'a Option<S>) -> FieldValue<'a> {
        value
            .as_ref()
            .map_or(FieldValue::Null, |text| FieldValue::Str(text.as_ref()))
    }

    /// A lead's kind: the program's own name for it, or the vendor's.
    #[expect(
        clippy::ptr_arg,
        reason = "a borrowed kind is one of the program's names, so it is the Cow that tells"
    )]
    pub fn kind(kind: &'a Cow<'static, str>) -> FieldValue<'a> {
        match kind {
            Cow::Borrowed(name) => FieldValue::Name(name),
            Cow::Owned(text) => FieldValue::Str(text),
        }
    }

    pub fn time(value: Option<DateTime<Utc>>) -> FieldValue<'a> {
        value.map_or(FieldValue::Null, FieldValue::Time)
    }

    /// The value as a table cell; `None` for the JSON-only kinds.
    pub fn cell(self) -> Option<Cell<'a>> {
        Some(match self {
            FieldValue::Null => Cell::Empty,
            FieldValue::Str(text) | FieldValue::Name(text) => Cell::Text(Cow::Borrowed(text)),
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
    /// `,"NAME":null`: what JSON writes for the field when it is empty,
    /// and, without `null`, before its value (without the comma for the
    /// first field); see `json::push_member`.
    pub key_null: &'static str,
    pub get: G,
}

/// A table entry: the name once, its JSON key made from it.
macro_rules! field {
    ($name:literal, $get:expr) => {
        Field {
            name: $name,
            key_null: concat!(",\"", $name, "\":null"),
            get: $get,
        }
    };
}

/// A record kind's field table and its JSON writer, from one list: the
/// table (for columns, names and the generic walk) and a function that
/// writes the fields in the same order, calling each getter directly so
/// that it and its value's formatting are inlined rather than called
/// through the table once per field (about a tenth of an NDJSON export's
/// instructions).
macro_rules! json_table {
    ($(#[$doc:meta])* $table:ident, $push:ident: $record:ty { $($name:literal => $get:expr,)* }) => {
        $(#[$doc])*
        pub static $table: &[Field<Getter<$record>>] = &[$(field!($name, $get)),*];

        /// The record as one JSON object, in the order of its table.
        pub fn $push(out: &mut Vec<u8>, record: &$record) {
            let mut first = true;
            out.push(b'{');
            $({
                let get: Getter<$record> = $get;
                super::json::push_member(
                    out,
                    &mut first,
                    concat!(",\"", $name, "\":null"),
                    get(record),
                );
            })*
            out.push(b'}');
        }
    };
}

/// A field of a record kind that owns its data.
pub type Getter<R> = for<'a> fn(&'a R) -> FieldValue<'a>;
/// A field of a message row, which borrows its conversation.
pub type RowGetter = for<'a> fn(MessageRow<'a>) -> FieldValue<'a>;

json_table! {
    /// Lead fields in output order (docs/SPEC.md section 2).
    LEAD_FIELDS, push_lead: Lead {
        "id" => |l| FieldValue::Str(&l.id),
        "vendor" => |l| FieldValue::Name(l.vendor.as_str()),
        "agent_id" => |l| FieldValue::Str(&l.agent_id),
        "kind" => |l| FieldValue::kind(&l.kind),
        "created_at" => |l| FieldValue::time(l.created_at),
        "name" => |l| FieldValue::text(&l.name),
        "email" => |l| FieldValue::text(&l.email),
        "phone" => |l| FieldValue::text(&l.phone),
        "source" => |l| FieldValue::text(&l.source),
        "page_url" => |l| FieldValue::text(&l.page_url),
        "ip_address" => |l| FieldValue::text(&l.ip_address),
        "session_id" => |l| FieldValue::text(&l.session_id),
        "message" => |l| FieldValue::text(&l.message),
        "fields" => |l| FieldValue::Object(&l.fields),
        "raw" => |l| FieldValue::Raw(l.raw.as_ref()),
    }
}

json_table! {
    /// Conversation fields in JSON order.
    CONVERSATION_FIELDS, push_conversation: Conversation {
        "id" => |c| FieldValue::Str(&c.id),
        "vendor" => |c| FieldValue::Name(c.vendor.as_str()),
        "agent_id" => |c| FieldValue::Str(&c.agent_id),
        "created_at" => |c| FieldValue::time(c.created_at),
        "source" => |c| FieldValue::text(&c.source),
        "customer" => |c| FieldValue::text(&c.customer),
        "session_id" => |c| FieldValue::text(&c.session_id),
        "page_url" => |c| FieldValue::text(&c.page_url),
        "messages" => |c| FieldValue::Messages(&c.messages),
        "fields" => |c| FieldValue::Object(&c.fields),
        "raw" => |c| FieldValue::Raw(c.raw.as_ref()),
    }
}

json_table! {
    /// The fields of one message inside a conversation's JSON.
    MESSAGE_FIELDS, push_message: Message {
        "role" => |m| FieldValue::Str(&m.role),
        "content" => |m| FieldValue::text(&m.content),
        "created_at" => |m| FieldValue::time(m.created_at),
    }
}

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

    /// Appends the record as one JSON object, as its table orders it.
    fn push_json(&self, out: &mut Vec<u8>);

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

    fn push_json(&self, out: &mut Vec<u8>) {
        push_lead(out, self);
    }

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

    fn push_json(&self, out: &mut Vec<u8>) {
        push_conversation(out, self);
    }

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
