//! The tables of SPEC section 11, described once: both dialects' `CREATE`
//! statements, the shape check of an existing database and the column lists
//! of the staging and merge statements are all generated from this list, so
//! a column cannot be added to one and forgotten in another.

/// The schema this build writes; a database at a higher version was written
/// by a newer leads and is left alone (exit 7).
pub const SCHEMA_VERSION: i64 = 1;

/// The table holding the schema-version row.
pub const VERSION_TABLE: &str = "leads_schema";

/// What a column holds, spelled per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// PostgreSQL `timestamptz`; SQLite fixed-width RFC 3339 text
    /// (`2025-01-15T10:30:00.000000Z`), so text order is time order.
    Time,
    /// PostgreSQL `jsonb`; SQLite JSON text.
    Json,
    Integer,
}

impl Kind {
    pub fn sqlite(self) -> &'static str {
        match self {
            Kind::Text | Kind::Time | Kind::Json => "TEXT",
            Kind::Integer => "INTEGER",
        }
    }

    pub fn postgres(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Time => "timestamptz",
            Kind::Json => "jsonb",
            Kind::Integer => "integer",
        }
    }

    /// As `information_schema.columns.data_type` reports it.
    pub fn postgres_reported(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Time => "timestamp with time zone",
            Kind::Json => "jsonb",
            Kind::Integer => "integer",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub not_null: bool,
}

const fn col(name: &'static str, kind: Kind, not_null: bool) -> Column {
    Column {
        name,
        kind,
        not_null,
    }
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Every column but `first_seen_at`/`last_seen_at`, in the order rows
    /// are staged.
    pub data: &'static [Column],
    /// The upsert key: a prefix-free subset of `data`.
    pub key: &'static [&'static str],
    /// Whether the table carries `first_seen_at`/`last_seen_at`.
    pub seen_times: bool,
    /// An index on `(vendor, agent_id, created_at)`, for `--incremental`
    /// and for "what is new since" queries.
    pub time_index: bool,
}

impl Table {
    /// Data columns that are not part of the key: what an upsert updates.
    pub fn non_key(&self) -> impl Iterator<Item = &Column> {
        self.data.iter().filter(|c| !self.key.contains(&c.name))
    }

    pub fn data_names(&self) -> String {
        self.data
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` and its index, in a dialect.
    pub fn create(&self, postgres: bool) -> Vec<String> {
        let kind = |k: Kind| if postgres { k.postgres() } else { k.sqlite() };
        let mut columns: Vec<String> = self
            .data
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    kind(c.kind),
                    if c.not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        if self.seen_times {
            columns.push(format!("first_seen_at {} NOT NULL", kind(Kind::Time)));
            columns.push(format!("last_seen_at {} NOT NULL", kind(Kind::Time)));
        }
        columns.push(format!("PRIMARY KEY ({})", self.key.join(", ")));
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.name,
            columns.join(", ")
        )];
        if self.time_index {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {0}_created_at ON {0} (vendor, agent_id, created_at)",
                self.name
            ));
        }
        statements
    }

    /// Every column this build reads or writes, with its kind.
    pub fn expected(&self) -> Vec<(&'static str, Kind)> {
        let mut all: Vec<_> = self.data.iter().map(|c| (c.name, c.kind)).collect();
        if self.seen_times {
            all.push(("first_seen_at", Kind::Time));
            all.push(("last_seen_at", Kind::Time));
        }
        all
    }
}

pub const LEADS: Table = Table {
    name: "leads",
    data: &[
        col("vendor", Kind::Text, true),
        col("agent_id", Kind::Text, true),
        col("id", Kind::Text, true),
        col("kind", Kind::Text, true),
        col("created_at", Kind::Time, false),
        col("name", Kind::Text, false),
        col("email", Kind::Text, false),
        col("phone", Kind::Text, false),
        col("source", Kind::Text, false),
        col("page_url", Kind::Text, false),
        col("ip_address", Kind::Text, false),
        col("session_id", Kind::Text, false),
        col("message", Kind::Text, false),
        col("fields", Kind::Json, true),
        col("raw", Kind::Json, false),
    ],
    key: &["vendor", "agent_id", "id"],
    seen_times: true,
    time_index: true,
};

pub const CONVERSATIONS: Table = Table {
    name: "conversations",
    data: &[
        col("vendor", Kind::Text, true),
        col("agent_id", Kind::Text, true),
        col("id", Kind::Text, true),
        col("created_at", Kind::Time, false),
        col("source", Kind::Text, false),
        col("customer", Kind::Text, false),
        col("session_id", Kind::Text, false),
        col("page_url", Kind::Text, false),
        col("fields", Kind::Json, true),
        col("raw", Kind::Json, false),
    ],
    key: &["vendor", "agent_id", "id"],
    seen_times: true,
    time_index: true,
};

pub const MESSAGES: Table = Table {
    name: "messages",
    data: &[
        col("vendor", Kind::Text, true),
        col("agent_id", Kind::Text, true),
        col("conversation_id", Kind::Text, true),
        col("message_index", Kind::Integer, true),
        col("role", Kind::Text, true),
        col("content", Kind::Text, false),
        col("created_at", Kind::Time, false),
    ],
    key: &["vendor", "agent_id", "conversation_id", "message_index"],
    seen_times: false,
    time_index: false,
};

pub const TABLES: [&Table; 3] = [&LEADS, &CONVERSATIONS, &MESSAGES];

/// The two SQL dialects, as far as the statements below differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A real table, qualified so a temporary table can never shadow it.
    fn real(self, table: &Table) -> String {
        match self {
            Dialect::Sqlite => format!("main.{}", table.name),
            Dialect::Postgres => table.name.to_owned(),
        }
    }

    /// A table's staging table, seen only by this run's connection.
    pub fn staged(self, table: &Table) -> String {
        match self {
            Dialect::Sqlite => format!("temp.stage_{}", table.name),
            Dialect::Postgres => format!("pg_temp.stage_{}", table.name),
        }
    }

    /// Null-safe equality.
    fn same(self) -> &'static str {
        match self {
            Dialect::Sqlite => "IS",
            Dialect::Postgres => "IS NOT DISTINCT FROM",
        }
    }

    fn param(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    fn kind(self, kind: Kind) -> &'static str {
        match self {
            Dialect::Sqlite => kind.sqlite(),
            Dialect::Postgres => kind.postgres(),
        }
    }
}

fn key_match(table: &Table, left: &str, right: &str, right_key: &[&str]) -> String {
    table
        .key
        .iter()
        .zip(right_key)
        .map(|(l, r)| format!("{left}.{l} = {right}.{r}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The staging table of a table (no constraints: rows are checked when
/// merged), plus for conversations the number of messages staged with each.
pub fn create_staging(table: &Table, dialect: Dialect) -> String {
    let mut columns: Vec<String> = table
        .data
        .iter()
        .map(|c| format!("{} {}", c.name, dialect.kind(c.kind)))
        .collect();
    if table.name == CONVERSATIONS.name {
        columns.push(format!("message_count {}", dialect.kind(Kind::Integer)));
    }
    if table.name == MESSAGES.name {
        // The messages of one conversation are looked up when comparing.
        columns.push(format!("PRIMARY KEY ({})", table.key.join(", ")));
    }
    let (name, columns) = (table.name, columns.join(", "));
    match dialect {
        Dialect::Sqlite => format!("CREATE TEMP TABLE IF NOT EXISTS stage_{name} ({columns})"),
        Dialect::Postgres => format!("CREATE TEMP TABLE stage_{name} ({columns}) ON COMMIT DROP"),
    }
}

/// One row: how many staged records are new, and how many are stored with
/// exactly the same data (and, for conversations, the same messages).
pub fn count_changes(table: &Table, dialect: Dialect) -> String {
    let same = dialect.same();
    let mut unchanged: Vec<String> = table
        .non_key()
        .map(|c| format!("s.{0} {same} t.{0}", c.name))
        .collect();
    if table.name == CONVERSATIONS.name {
        let messages = dialect.real(&MESSAGES);
        let staged_messages = dialect.staged(&MESSAGES);
        let stored_of_s = key_match(&MESSAGES, "m", "s", &["vendor", "agent_id", "id"]);
        let staged_of_s = key_match(&MESSAGES, "n", "s", &["vendor", "agent_id", "id"]);
        let same_message = MESSAGES
            .data
            .iter()
            .map(|c| format!("m.{0} {same} n.{0}", c.name))
            .collect::<Vec<_>>()
            .join(" AND ");
        unchanged.push(format!(
            "s.message_count = (SELECT count(*) FROM {messages} m WHERE {stored_of_s})"
        ));
        unchanged.push(format!(
            "NOT EXISTS (SELECT 1 FROM {staged_messages} n WHERE {staged_of_s} AND NOT EXISTS (SELECT 1 FROM {messages} m WHERE {same_message}))"
        ));
    }
    format!(
        "SELECT count(*) FILTER (WHERE t.{k} IS NULL), count(*) FILTER (WHERE t.{k} IS NOT NULL AND {unchanged}) FROM {staged} s LEFT JOIN {real} t ON {on}",
        k = table.key[0],
        unchanged = unchanged.join(" AND "),
        staged = dialect.staged(table),
        real = dialect.real(table),
        on = key_match(table, "t", "s", table.key),
    )
}

/// The upsert of every staged row: data and `last_seen_at` updated,
/// `first_seen_at` kept. Parameter 1 is the run's clock.
pub fn merge(table: &Table, dialect: Dialect) -> String {
    let names = table.data_names();
    let (seen_columns, seen_values) = if table.seen_times {
        let now = dialect.param(1);
        (
            ", first_seen_at, last_seen_at".to_owned(),
            format!(", {now}, {now}"),
        )
    } else {
        (String::new(), String::new())
    };
    let mut updates: Vec<String> = table
        .non_key()
        .map(|c| format!("{0} = excluded.{0}", c.name))
        .collect();
    if table.seen_times {
        updates.push("last_seen_at = excluded.last_seen_at".to_owned());
    }
    // SQLite needs the WHERE to read ON CONFLICT as the upsert clause
    // rather than as a join constraint of the SELECT.
    let where_true = if dialect == Dialect::Sqlite {
        " WHERE true"
    } else {
        ""
    };
    format!(
        "INSERT INTO {real} ({names}{seen_columns}) SELECT {names}{seen_values} FROM {staged}{where_true} ON CONFLICT ({key}) DO UPDATE SET {updates}",
        real = dialect.real(table),
        staged = dialect.staged(table),
        key = table.key.join(", "),
        updates = updates.join(", "),
    )
}

/// A staged conversation's messages replace the stored ones: the stored
/// messages of every staged conversation are deleted, then the staged
/// messages inserted.
pub fn replace_messages(dialect: Dialect) -> [String; 2] {
    let messages = dialect.real(&MESSAGES);
    [
        format!(
            "DELETE FROM {messages} WHERE (vendor, agent_id, conversation_id) IN (SELECT vendor, agent_id, id FROM {})",
            dialect.staged(&CONVERSATIONS)
        ),
        format!(
            "INSERT INTO {messages} ({names}) SELECT {names} FROM {}",
            dialect.staged(&MESSAGES),
            names = MESSAGES.data_names()
        ),
    ]
}

/// The newest `created_at` of a vendor and agent, not after parameter 3.
pub fn newest(table: &Table, dialect: Dialect) -> String {
    format!(
        "SELECT max(created_at) FROM {} WHERE vendor = {} AND agent_id = {} AND created_at <= {}",
        dialect.real(table),
        dialect.param(1),
        dialect.param(2),
        dialect.param(3)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_data_columns() {
        for table in TABLES {
            for key in table.key {
                assert!(
                    table.data.iter().any(|c| c.name == *key && c.not_null),
                    "{}.{key}",
                    table.name
                );
            }
        }
    }

    #[test]
    fn create_statements_name_every_column() {
        let sql = LEADS.create(true).join(";");
        assert!(sql.contains("created_at timestamptz"), "{sql}");
        assert!(sql.contains("fields jsonb NOT NULL"), "{sql}");
        assert!(sql.contains("PRIMARY KEY (vendor, agent_id, id)"), "{sql}");
        let sql = LEADS.create(false).join(";");
        assert!(sql.contains("created_at TEXT,"), "{sql}");
        assert!(sql.contains("last_seen_at TEXT NOT NULL"), "{sql}");
    }
}
