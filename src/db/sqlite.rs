//! The SQLite backend: one file, WAL mode, `busy_timeout` for a second run.
//!
//! Records are staged into `TEMP` tables (a separate temporary database
//! that takes no lock on the file), so another run can read and even merge
//! while this one is still fetching; the write lock is taken only for the
//! merge (`BEGIN IMMEDIATE`), which waits for another run's merge up to the
//! lock timeout. Times are stored as fixed-width RFC 3339 text.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::schema::{self, Dialect, Kind, Table};
use super::{Backend, Cell, Counts, DatabaseSettings, Item};
use crate::error::{Error, Result};
use crate::model::Resource;

pub struct Sqlite {
    conn: Connection,
    table: &'static Table,
    now: String,
    shown: String,
    lock_timeout: Duration,
    /// A transaction on the staging tables is open.
    staging: bool,
}

impl Sqlite {
    pub fn open(
        path: &Path,
        settings: &DatabaseSettings,
        resource: Resource,
        now: DateTime<Utc>,
    ) -> Result<Sqlite> {
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(Error::local_file(format!(
                "cannot open the database {shown}: it is a directory"
            ))
            .with_hint("give a file name, e.g. -o leads.db"));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite_error(&shown, "open", settings.lock_timeout, e))?;
        let mut db = Sqlite {
            conn,
            table: super::table_of(resource),
            now: super::format_time(&now),
            shown,
            lock_timeout: settings.lock_timeout,
            staging: false,
        };
        db.prepare()?;
        Ok(db)
    }

    fn error(&self, doing: &str, e: rusqlite::Error) -> Error {
        sqlite_error(&self.shown, doing, self.lock_timeout, e)
    }

    /// Settings, the schema (created or checked, in one transaction that
    /// changes nothing when the check fails) and the staging tables.
    fn prepare(&mut self) -> Result<()> {
        self.conn
            .busy_timeout(self.lock_timeout)
            .map_err(|e| self.error("open", e))?;
        if self
            .conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| self.error("open", e))?
        {
            return Err(read_only(&self.shown));
        }
        // A file that is not a database fails here, at the first read.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| self.error("open", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::debug!("{}: journal mode {mode}, not WAL", self.shown);
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA temp_store = FILE;")
            .map_err(|e| self.error("open", e))?;

        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.error("lock", e))?;
        let checked = self.check_and_create();
        let end = if checked.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = self.conn.execute_batch(end);
        checked?;
        ended.map_err(|e| self.error("create the tables of", e))?;

        let mut staging = vec![schema::create_staging(self.table, Dialect::Sqlite)];
        if self.table.name == schema::CONVERSATIONS.name {
            staging.push(schema::create_staging(&schema::MESSAGES, Dialect::Sqlite));
        }
        for statement in staging {
            self.conn
                .execute_batch(&statement)
                .map_err(|e| self.error("stage rows for", e))?;
        }
        Ok(())
    }

    fn check_and_create(&mut self) -> Result<()> {
        let version_table_exists = self.table_exists(schema::VERSION_TABLE)?;
        if version_table_exists {
            let version: Option<i64> = self
                .conn
                .query_row(
                    &format!("SELECT max(version) FROM main.{}", schema::VERSION_TABLE),
                    [],
                    |row| row.get(0),
                )
                .map_err(|e| self.error("read", e))?;
            if let Some(version) = version {
                check_version(&self.shown, version)?;
            }
        }
        for table in schema::TABLES {
            if self.table_exists(table.name)? {
                self.check_shape(table)?;
            }
        }
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS main.{} (version INTEGER NOT NULL)",
            schema::VERSION_TABLE
        )];
        for table in schema::TABLES {
            statements.extend(table.create(false));
        }
        for statement in statements {
            self.conn
                .execute_batch(&statement)
                .map_err(|e| self.error("create the tables of", e))?;
        }
        self.conn
            .execute(
                &format!(
                    "INSERT INTO main.{0} (version) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM main.{0})",
                    schema::VERSION_TABLE
                ),
                params![schema::SCHEMA_VERSION],
            )
            .map_err(|e| self.error("create the tables of", e))?;
        Ok(())
    }

    fn table_exists(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
                params![name],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.error("read", e))
    }

    fn check_shape(&self, table: &Table) -> Result<()> {
        let mut statement = self
            .conn
            .prepare(&format!("PRAGMA main.table_info({})", table.name))
            .map_err(|e| self.error("read", e))?;
        let columns: Vec<(String, String, i64)> = statement
            .query_map([], |row| Ok((row.get(1)?, row.get(2)?, row.get(5)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error("read", e))?;
        let found: Vec<(&str, &str)> = columns
            .iter()
            .map(|(name, kind, _)| (name.as_str(), kind.as_str()))
            .collect();
        let mut key: Vec<(i64, &str)> = columns
            .iter()
            .filter(|(_, _, pk)| *pk > 0)
            .map(|(name, _, pk)| (*pk, name.as_str()))
            .collect();
        key.sort();
        let key: Vec<&str> = key.into_iter().map(|(_, name)| name).collect();
        super::check_shape(&self.shown, table, &found, &key, Kind::sqlite)
    }

    fn begin_staging(&mut self) -> Result<()> {
        if !self.staging {
            self.conn
                .execute_batch("BEGIN")
                .map_err(|e| self.error("stage rows for", e))?;
            self.staging = true;
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    fn newest(
        &mut self,
        vendor: &str,
        agent: &str,
        not_after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let newest: Option<String> = self
            .conn
            .query_row(
                &schema::newest(self.table, Dialect::Sqlite),
                params![vendor, agent, super::format_time(&not_after)],
                |row| row.get(0),
            )
            .map_err(|e| self.error("read", e))?;
        newest
            .map(|text| {
                super::parse_time(&text).ok_or_else(|| {
                    Error::local_file(format!(
                        "the database {}: {}.created_at holds {text:?}, which is not an RFC 3339 time",
                        self.shown, self.table.name
                    ))
                    .with_hint("fix or delete that row; leads writes 2025-01-15T10:30:00.000000Z")
                })
            })
            .transpose()
    }

    fn stage(&mut self, items: &[Item]) -> Result<()> {
        self.begin_staging()?;
        let insert = |table: &Table| {
            let placeholders: Vec<String> =
                (1..=table.data.len()).map(|i| format!("?{i}")).collect();
            let extra = if table.name == schema::CONVERSATIONS.name {
                (", message_count", format!(", ?{}", table.data.len() + 1))
            } else {
                ("", String::new())
            };
            format!(
                "INSERT INTO {} ({}{}) VALUES ({}{})",
                Dialect::Sqlite.staged(table),
                table.data_names(),
                extra.0,
                placeholders.join(", "),
                extra.1
            )
        };
        let shown = self.shown.clone();
        let timeout = self.lock_timeout;
        let fail = |e| sqlite_error(&shown, "stage rows for", timeout, e);
        let mut records = self
            .conn
            .prepare_cached(&insert(self.table))
            .map_err(fail)?;
        match self.table.name {
            "leads" => {
                for item in items {
                    if item.messages.is_none() {
                        records
                            .execute(rusqlite::params_from_iter(item.record.iter().map(bind)))
                            .map_err(fail)?;
                    }
                }
            }
            _ => {
                let mut messages = self
                    .conn
                    .prepare_cached(&insert(&schema::MESSAGES))
                    .map_err(fail)?;
                for item in items {
                    if let Some(rows) = &item.messages {
                        let count = Cell::Integer(i64::try_from(rows.len()).unwrap_or(i64::MAX));
                        records
                            .execute(rusqlite::params_from_iter(
                                item.record.iter().chain([&count]).map(bind),
                            ))
                            .map_err(fail)?;
                        for message in rows {
                            messages
                                .execute(rusqlite::params_from_iter(message.iter().map(bind)))
                                .map_err(fail)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<Counts> {
        if std::mem::take(&mut self.staging) {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| self.error("stage rows for", e))?;
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.error("lock", e))?;
        let merged = self.merge();
        if merged.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return merged;
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.error("commit to", e))?;
        merged
    }
}

impl Sqlite {
    fn merge(&mut self) -> Result<Counts> {
        let table = self.table;
        let (staged, inserted, unchanged): (i64, i64, i64) = {
            let staged: i64 = self
                .conn
                .query_row(
                    &format!("SELECT count(*) FROM {}", Dialect::Sqlite.staged(table)),
                    [],
                    |row| row.get(0),
                )
                .map_err(|e| self.error("merge into", e))?;
            let (inserted, unchanged) = self
                .conn
                .query_row(&schema::count_changes(table, Dialect::Sqlite), [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(|e| self.error("merge into", e))?;
            (staged, inserted, unchanged)
        };
        self.conn
            .execute(&schema::merge(table, Dialect::Sqlite), params![self.now])
            .map_err(|e| self.error("merge into", e))?;
        if table.name == schema::CONVERSATIONS.name {
            for statement in schema::replace_messages(Dialect::Sqlite) {
                self.conn
                    .execute(&statement, [])
                    .map_err(|e| self.error("merge into", e))?;
            }
        }
        Ok(Counts::of_merge(staged, inserted, unchanged))
    }
}

fn bind<'a>(cell: &'a Cell<'a>) -> rusqlite::types::ToSqlOutput<'a> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    match cell {
        Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        Cell::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        Cell::Integer(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
    }
}

fn check_version(shown: &str, version: i64) -> Result<()> {
    if version > schema::SCHEMA_VERSION {
        return Err(super::newer_schema(shown, version));
    }
    Ok(())
}

fn read_only(shown: &str) -> Error {
    Error::local_file(format!(
        "cannot write the database {shown}: it is read-only"
    ))
    .with_hint("the file and its directory must be writable (SQLite writes a -wal file beside it)")
}

/// One line a person can act on; every database failure is exit 7.
fn sqlite_error(shown: &str, doing: &str, lock_timeout: Duration, e: rusqlite::Error) -> Error {
    let code = e.sqlite_error_code();
    let detail = match &e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    };
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::local_file(format!(
            "the database {shown} is locked by another run (waited {:.0}s)",
            lock_timeout.as_secs_f64()
        ))
        .with_hint("wait for that run to finish, or pass --lock-timeout SECS to wait longer"),
        Some(ErrorCode::ReadOnly) => read_only(shown),
        Some(ErrorCode::NotADatabase) => Error::local_file(format!(
            "cannot open the database {shown}: it is not a SQLite database"
        ))
        .with_hint("give a new file name, or --format to write another format to this file"),
        Some(ErrorCode::CannotOpen) => {
            Error::local_file(format!("cannot open the database {shown}: {detail}"))
                .with_hint("its directory must exist and be writable")
        }
        Some(ErrorCode::DiskFull) => Error::local_file(format!(
            "cannot write the database {shown}: the disk is full"
        )),
        _ => Error::local_file(format!("cannot {doing} the database {shown}: {detail}")),
    }
}
