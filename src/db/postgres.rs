//! The PostgreSQL backend: tokio-postgres on the writer thread's own
//! runtime, TLS by rustls with the system trust store (as the HTTP client).
//!
//! The run is one transaction: temporary `ON COMMIT DROP` staging tables
//! are filled by `COPY ... FROM STDIN` (text format, a few MB at a time, so a
//! million leads cost a few hundred round trips, not a million), then one
//! `INSERT ... SELECT ... ON CONFLICT DO UPDATE` merges them under a table
//! lock that serialises concurrent runs' merges, and `COMMIT`.
//!
//! The password never comes from the command line: a URL carrying one is
//! refused (exit 2), and it is read from `PGPASSWORD` or the pgpass file,
//! as `psql` does.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::schema::{self, Dialect, Kind, Table};
use super::{Backend, Cell, Counts, DatabaseSettings, Item};
use crate::config::Environment;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Resource;
use crate::secret::ApiKey;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// The directory of a Unix-domain socket (libpq's `host=/run/postgresql`).
    Socket(PathBuf),
}

/// A settled `postgres://` output. Holds no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// `sslmode=require` or stricter: TLS, with the certificate verified.
    pub tls: bool,
    /// `sslrootcert`: also trusted, besides the system store.
    pub root_cert: Option<PathBuf>,
    /// `options` (e.g. `-c search_path=crm`), passed to the server.
    pub options: Option<String>,
    pub connect_timeout: Duration,
}

const PARAMETERS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "host",
    "port",
    "user",
    "dbname",
    "options",
    "application_name",
    "connect_timeout",
];

impl Target {
    pub fn shown(&self) -> String {
        let host = match &self.host {
            Host::Tcp(host) if host.contains(':') => format!("[{host}]"),
            Host::Tcp(host) => host.clone(),
            Host::Socket(dir) => dir.display().to_string(),
        };
        format!(
            "postgres://{}@{host}:{}/{}",
            self.user, self.port, self.dbname
        )
    }

    fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Socket(_) => true,
            Host::Tcp(host) => {
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }

    /// Parses a `postgres://` or `postgresql://` URL, libpq style, with the
    /// `PG*` variables for what it leaves out.
    pub fn parse(text: &str, env: &dyn Environment) -> Result<Target> {
        let shown = without_userinfo(text);
        // libpq allows an empty host (`postgres:///db`, `postgres://u@/db`:
        // the default socket, or `?host=`); the URL parser does not, so a
        // placeholder stands in for it.
        let (with_host, empty_host) = fill_empty_host(text.trim());
        let url = url::Url::parse(&with_host).map_err(|e| {
            Error::usage(format!("-o {shown}: not a PostgreSQL URL ({e})"))
                .with_hint("postgres://USER@HOST:PORT/DATABASE?sslmode=require")
        })?;
        let no_password = || {
            Error::usage(format!(
                "-o {shown}: the PostgreSQL URL holds a password; passwords never go on the command line"
            ))
            .with_hint("remove it from the URL and set PGPASSWORD, or put it in ~/.pgpass (HOST:PORT:DATABASE:USER:PASSWORD, mode 600)")
        };
        if url.password().is_some() {
            return Err(no_password());
        }
        let param = |name: &str| -> Option<String> {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        for (name, _) in url.query_pairs() {
            if name == "password" {
                return Err(no_password());
            }
            if !PARAMETERS.contains(&name.as_ref()) {
                return Err(Error::usage(format!(
                    "-o {shown}: unknown PostgreSQL URL parameter {name:?}"
                ))
                .with_hint(format!("known: {}", PARAMETERS.join(", "))));
            }
        }
        let host_text = param("host")
            .or_else(|| {
                url.host_str()
                    .filter(|_| !empty_host)
                    .map(|h| percent_decode(h.trim_start_matches('[').trim_end_matches(']')))
                    .filter(|h| !h.is_empty())
            })
            .or_else(|| env.var("PGHOST"));
        let host = match host_text {
            Some(h) if h.starts_with('/') => Host::Socket(PathBuf::from(h)),
            Some(h) => Host::Tcp(h),
            None => Host::Socket(default_socket_dir()),
        };
        let port = match param("port").or_else(|| url.port().map(|p| p.to_string())) {
            Some(p) => p.parse::<u16>().ok(),
            None => Some(
                env.var("PGPORT")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(5432),
            ),
        }
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::usage(format!("-o {shown}: the port is not a number")))?;
        let user = param("user")
            .or_else(|| Some(percent_decode(url.username())).filter(|u| !u.is_empty()))
            .or_else(|| env.var("PGUSER"))
            .or_else(|| env.var("USER"))
            .ok_or_else(|| {
                Error::usage(format!("-o {shown}: which PostgreSQL user?"))
                    .with_hint("postgres://USER@HOST/DATABASE, or set PGUSER")
            })?;
        let dbname = param("dbname")
            .or_else(|| {
                Some(percent_decode(url.path().trim_start_matches('/'))).filter(|d| !d.is_empty())
            })
            .or_else(|| env.var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let sslmode = param("sslmode").or_else(|| env.var("PGSSLMODE"));
        let tls = match sslmode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => false,
            Some("require" | "verify-ca" | "verify-full") => true,
            Some(other) => {
                return Err(Error::usage(format!(
                    "-o {shown}: sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let connect_timeout = match param("connect_timeout") {
            Some(secs) => secs
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "-o {shown}: connect_timeout={secs} is not a number of seconds (1 to 3600)"
                    ))
                })?,
            None => Duration::from_secs(30),
        };
        let root_cert = param("sslrootcert").map(PathBuf::from);
        if let Some(path) = &root_cert {
            read_root_certs(path)?;
        }
        let target = Target {
            host,
            port,
            user,
            dbname,
            tls,
            root_cert,
            options: param("options"),
            connect_timeout,
        };
        if !target.tls && !target.is_loopback() {
            return Err(Error::usage(format!(
                "-o {}: refusing a PostgreSQL connection without TLS to a host that is not loopback",
                target.shown()
            ))
            .with_hint("add ?sslmode=require (or verify-full) to the URL; the certificate is verified against the system trust store, add sslrootcert=PATH for a private CA"));
        }
        Ok(target)
    }
}

const NO_HOST: &str = "leads-empty-host.invalid";

/// The URL with [`NO_HOST`] where its host is empty, and whether it was.
fn fill_empty_host(text: &str) -> (String, bool) {
    let Some((scheme, rest)) = text.split_once("://") else {
        return (text.to_owned(), false);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
        None => (String::new(), authority),
    };
    if host_port.is_empty() || host_port.starts_with(':') {
        (
            format!("{scheme}://{userinfo}{NO_HOST}{host_port}{tail}"),
            true,
        )
    } else {
        (text.to_owned(), false)
    }
}

fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_owned()
    } else {
        PathBuf::from("/tmp")
    }
}

/// The URL as it may be shown: userinfo (which may hold a password) and
/// query dropped.
fn without_userinfo(text: &str) -> String {
    let text = text.trim();
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    crate::secret::escape_controls(&format!("{scheme}://{host}{path}"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_root_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::usage(format!(
                "sslrootcert {}: cannot read PEM certificates ({e})",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "sslrootcert {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn tls_config(root_cert: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    // Only a bare container has no system store at all (as in src/fetch.rs).
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = root_cert {
        for cert in read_root_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| Error::usage(format!("sslrootcert {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The password, from `PGPASSWORD` or the pgpass file (`PGPASSFILE`, else
/// `~/.pgpass`), as libpq finds it.
fn password(target: &Target) -> Option<ApiKey> {
    if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return ApiKey::new(&password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = std::fs::read_to_string(&file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "the password file {} is readable by group or others and is ignored (chmod 600 it)",
                file.display()
            );
            return None;
        }
    }
    let hosts: Vec<String> = match &target.host {
        Host::Tcp(host) => vec![host.clone()],
        Host::Socket(dir) => vec!["localhost".to_owned(), dir.display().to_string()],
    };
    let port = target.port.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields = pgpass_fields(line);
            let [host, line_port, db, user, password] = <[String; 5]>::try_from(fields).ok()?;
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (hosts.iter().any(|h| matches(&host, h))
                && matches(&line_port, &port)
                && matches(&db, &target.dbname)
                && matches(&user, &target.user))
            .then_some(password)
        })
        .find_map(|password| ApiKey::new(&password))
}

/// A pgpass line split at unescaped colons, `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

/// An existing table's columns (name, type) and primary key columns.
type ExistingTable = (Vec<(String, String)>, Vec<String>);

/// Bytes of COPY text buffered before they are sent: big enough that a
/// million leads cost a few hundred round trips, small enough that the
/// buffer and the driver's copies of it stay a few MB.
const COPY_CHUNK: usize = 1024 * 1024;

fn copy_buffer() -> Vec<u8> {
    Vec::with_capacity(COPY_CHUNK + 64 * 1024)
}

pub struct Postgres {
    runtime: tokio::runtime::Runtime,
    client: Client,
    table: &'static Table,
    now: DateTime<Utc>,
    shown: String,
    lock_timeout: Duration,
    records: Vec<u8>,
    messages: Vec<u8>,
}

impl Postgres {
    pub fn open(
        target: &Target,
        settings: &DatabaseSettings,
        resource: Resource,
        now: DateTime<Utc>,
    ) -> Result<Postgres> {
        let shown = target.shown();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the database runtime: {e}")))?;
        let mut config = tokio_postgres::Config::new();
        match &target.host {
            Host::Tcp(host) => config.host(host),
            Host::Socket(dir) => config.host_path(dir),
        };
        config
            .port(target.port)
            .user(&target.user)
            .dbname(&target.dbname)
            .application_name("leads")
            .connect_timeout(target.connect_timeout);
        if let Some(options) = &target.options {
            config.options(options);
        }
        let password = password(target);
        if let Some(password) = &password {
            config.password(password.expose());
        }
        let client = runtime.block_on(async {
            if target.tls {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                    target.root_cert.as_deref(),
                )?);
                let (client, connection) = config
                    .connect(tls)
                    .await
                    .map_err(|e| connect_error(&shown, target, password.is_some(), &e))?;
                tokio::spawn(connection);
                Ok::<_, Error>(client)
            } else {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| connect_error(&shown, target, password.is_some(), &e))?;
                tokio::spawn(connection);
                Ok(client)
            }
        })?;
        let mut db = Postgres {
            runtime,
            client,
            table: super::table_of(resource),
            now,
            shown,
            lock_timeout: settings.lock_timeout,
            records: copy_buffer(),
            messages: Vec::new(),
        };
        db.prepare()?;
        Ok(db)
    }

    fn error(&self, doing: &str, e: &tokio_postgres::Error) -> Error {
        pg_error(&self.shown, doing, self.lock_timeout, e)
    }

    fn batch(&self, doing: &str, sql: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| self.error(doing, &e))
    }

    /// The schema, created or checked in its own transaction (serialised
    /// with other runs by an advisory lock, so two first runs do not race
    /// to create the tables), then the run's transaction and staging tables.
    fn prepare(&mut self) -> Result<()> {
        let millis = self.lock_timeout.as_millis().max(1);
        self.batch(
            "lock",
            &format!(
                "BEGIN; SET LOCAL lock_timeout = '{millis}ms'; SELECT pg_advisory_xact_lock(7417723001)"
            ),
        )?;
        let checked = self.check_and_create();
        let end = if checked.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = self.batch("create the tables of", end);
        checked?;
        ended?;

        let mut begin = vec![
            "BEGIN".to_owned(),
            schema::create_staging(self.table, Dialect::Postgres),
        ];
        if self.table.name == schema::CONVERSATIONS.name {
            begin.push(schema::create_staging(&schema::MESSAGES, Dialect::Postgres));
        }
        self.batch("stage rows for", &begin.join("; "))
    }

    fn existing_columns(&self, table: &str) -> Result<Option<ExistingTable>> {
        self.runtime.block_on(async {
            let columns = self
                .client
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                    &[&table],
                )
                .await
                .map_err(|e| self.error("read", &e))?;
            if columns.is_empty() {
                return Ok(None);
            }
            let key = self
                .client
                .query(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_class c ON c.oid = i.indrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) \
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
                     WHERE c.relname = $1 AND i.indisprimary ORDER BY k.position",
                    &[&table],
                )
                .await
                .map_err(|e| self.error("read", &e))?;
            Ok(Some((
                columns.iter().map(|r| (r.get(0), r.get(1))).collect(),
                key.iter().map(|r| r.get(0)).collect(),
            )))
        })
    }

    fn check_and_create(&mut self) -> Result<()> {
        if self.existing_columns(schema::VERSION_TABLE)?.is_some() {
            let version: Option<i64> = self
                .runtime
                .block_on(self.client.query_one(
                    &format!("SELECT max(version)::bigint FROM {}", schema::VERSION_TABLE),
                    &[],
                ))
                .map_err(|e| self.error("read", &e))?
                .get(0);
            if let Some(version) = version
                && version > schema::SCHEMA_VERSION
            {
                return Err(super::newer_schema(&self.shown, version));
            }
        }
        for table in schema::TABLES {
            if let Some((columns, key)) = self.existing_columns(table.name)? {
                let found: Vec<(&str, &str)> = columns
                    .iter()
                    .map(|(n, t)| (n.as_str(), t.as_str()))
                    .collect();
                let key: Vec<&str> = key.iter().map(String::as_str).collect();
                super::check_shape(&self.shown, table, &found, &key, Kind::postgres_reported)?;
            }
        }
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (version integer NOT NULL)",
            schema::VERSION_TABLE
        )];
        for table in schema::TABLES {
            statements.extend(table.create(true));
        }
        statements.push(format!(
            "INSERT INTO {0} (version) SELECT {1} WHERE NOT EXISTS (SELECT 1 FROM {0})",
            schema::VERSION_TABLE,
            schema::SCHEMA_VERSION
        ));
        self.batch("create the tables of", &statements.join("; "))
    }

    fn copy(&self, table: &Table, extra: &str, data: Vec<u8>) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "COPY {} ({}{extra}) FROM STDIN",
            Dialect::Postgres.staged(table),
            table.data_names()
        );
        self.runtime
            .block_on(async {
                let sink = self.client.copy_in::<_, Bytes>(&sql).await?;
                futures::pin_mut!(sink);
                sink.send(Bytes::from(data)).await?;
                sink.finish().await
            })
            .map(|_| ())
            .map_err(|e| self.error("stage rows for", &e))
    }

    fn flush(&mut self, all: bool) -> Result<()> {
        let extra = if self.table.name == schema::CONVERSATIONS.name {
            ", message_count"
        } else {
            ""
        };
        if all || self.records.len() >= COPY_CHUNK {
            let data = std::mem::replace(&mut self.records, copy_buffer());
            self.copy(self.table, extra, data)?;
        }
        if all || self.messages.len() >= COPY_CHUNK {
            let data = std::mem::take(&mut self.messages);
            self.copy(&schema::MESSAGES, "", data)?;
        }
        Ok(())
    }

    fn merge(&mut self) -> Result<Counts> {
        let table = self.table;
        let millis = self.lock_timeout.as_millis().max(1);
        let mut lock = vec![format!("SET LOCAL lock_timeout = '{millis}ms'")];
        lock.push(format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            table.name
        ));
        if table.name == schema::CONVERSATIONS.name {
            lock.push(format!(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                schema::MESSAGES.name
            ));
        }
        self.batch("lock", &lock.join("; "))?;
        self.runtime.block_on(async {
            let fail = |e: tokio_postgres::Error| self.error("merge into", &e);
            let staged: i64 = self
                .client
                .query_one(
                    &format!("SELECT count(*) FROM {}", Dialect::Postgres.staged(table)),
                    &[],
                )
                .await
                .map_err(fail)?
                .get(0);
            let changes = self
                .client
                .query_one(&schema::count_changes(table, Dialect::Postgres), &[])
                .await
                .map_err(fail)?;
            let (inserted, unchanged): (i64, i64) = (changes.get(0), changes.get(1));
            self.client
                .execute(&schema::merge(table, Dialect::Postgres), &[&self.now])
                .await
                .map_err(fail)?;
            if table.name == schema::CONVERSATIONS.name {
                for statement in schema::replace_messages(Dialect::Postgres) {
                    self.client.execute(&statement, &[]).await.map_err(fail)?;
                }
            }
            Ok(Counts::of_merge(staged, inserted, unchanged))
        })
    }
}

impl Backend for Postgres {
    fn newest(
        &mut self,
        vendor: &str,
        agent: &str,
        not_after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        self.runtime
            .block_on(self.client.query_one(
                &schema::newest(self.table, Dialect::Postgres),
                &[&vendor, &agent, &not_after],
            ))
            .map(|row| row.get(0))
            .map_err(|e| self.error("read", &e))
    }

    fn stage(&mut self, items: &[Item]) -> Result<()> {
        for item in items {
            match &item.messages {
                None => copy_row(&mut self.records, &item.record),
                Some(messages) => {
                    let count = Cell::Integer(i64::try_from(messages.len()).unwrap_or(i64::MAX));
                    let row: Vec<Cell<'_>> = item.record.iter().cloned().chain([count]).collect();
                    copy_row(&mut self.records, &row);
                    for message in messages {
                        copy_row(&mut self.messages, message);
                    }
                }
            }
        }
        self.flush(false)
    }

    fn commit(&mut self) -> Result<Counts> {
        self.flush(true)?;
        let merged = self.merge();
        if merged.is_err() {
            let _ = self.batch("roll back", "ROLLBACK");
            return merged;
        }
        self.batch("commit to", "COMMIT")?;
        merged
    }
}

/// One row of COPY text format: tab-separated, `\N` for null, backslash,
/// tab, newline and carriage return escaped. PostgreSQL text cannot hold
/// U+0000, nor jsonb a `\u0000` escape: both become U+FFFD.
pub fn copy_row(out: &mut Vec<u8>, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Null => out.extend_from_slice(b"\\N"),
            Cell::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Cell::Text(text) => {
                let json_nul_free;
                let text: &str = if text.contains("\\u0000") {
                    json_nul_free = replace_json_nul(text);
                    &json_nul_free
                } else {
                    text
                };
                for c in text.chars() {
                    match c {
                        '\\' => out.extend_from_slice(b"\\\\"),
                        '\t' => out.extend_from_slice(b"\\t"),
                        '\n' => out.extend_from_slice(b"\\n"),
                        '\r' => out.extend_from_slice(b"\\r"),
                        '\0' => out.extend_from_slice("\u{FFFD}".as_bytes()),
                        c => {
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

/// `\u0000` escapes (not an escaped backslash followed by `u0000`) replaced
/// by `\ufffd`.
fn replace_json_nul(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        if let Some(after) = escape.strip_prefix("\\u0000") {
            out.push_str("\\ufffd");
            rest = after;
        } else {
            let len = escape[1..].chars().next().map_or(1, |c| 1 + c.len_utf8());
            out.push_str(&escape[..len]);
            rest = &escape[len..];
        }
    }
    out.push_str(rest);
    out
}

fn connect_error(
    shown: &str,
    target: &Target,
    had_password: bool,
    e: &tokio_postgres::Error,
) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::local_file(format!(
                "PostgreSQL {shown} refused the login of user {}: {}",
                target.user,
                db.message()
            ))
            .with_hint(if had_password {
                "check the password in PGPASSWORD or ~/.pgpass, and the server's pg_hba.conf"
            } else {
                "set PGPASSWORD, or add HOST:PORT:DATABASE:USER:PASSWORD to ~/.pgpass (mode 600)"
            });
        }
        if *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::TOO_MANY_CONNECTIONS {
            return Error::new(
                ErrorKind::Network,
                format!(
                    "PostgreSQL {shown} is not accepting connections: {}",
                    db.message()
                ),
            );
        }
        return Error::local_file(format!("cannot open PostgreSQL {shown}: {}", db.message()));
    }
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        chain.push(inner.to_string());
        source = inner.source();
    }
    if chain.iter().any(|t| t.contains("password missing")) {
        return Error::local_file(format!(
            "PostgreSQL {shown} asks user {} for a password, and none was found",
            target.user
        ))
        .with_hint(
            "set PGPASSWORD, or add HOST:PORT:DATABASE:USER:PASSWORD to ~/.pgpass (mode 600)",
        );
    }
    if let Some(reason) = untrusted_certificate(e) {
        return Error::new(
            ErrorKind::Network,
            format!("cannot connect to PostgreSQL {shown}: {reason}"),
        )
        .with_hint("for a private CA add sslrootcert=PATH (PEM) to the URL, or set SSL_CERT_FILE");
    }
    let detail = chain.pop().unwrap_or_default();
    Error::new(
        ErrorKind::Network,
        format!("cannot reach PostgreSQL {shown}: {detail}"),
    )
    .with_hint("is the server running, and are host and port right?")
}

fn untrusted_certificate(e: &tokio_postgres::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let tls = inner.downcast_ref::<rustls::Error>().or_else(|| {
            inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            return Some(format!("TLS certificate not trusted ({reason:?})"));
        }
        source = inner.source();
    }
    None
}

fn pg_error(shown: &str, doing: &str, lock_timeout: Duration, e: &tokio_postgres::Error) -> Error {
    if e.is_closed()
        || (e.as_db_error().is_none()
            && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()))
    {
        return Error::new(
            ErrorKind::Network,
            format!("lost the connection to PostgreSQL {shown}: {e}"),
        );
    }
    let Some(db) = e.as_db_error() else {
        return Error::local_file(format!("cannot {doing} PostgreSQL {shown}: {e}"));
    };
    let code = db.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        return Error::local_file(format!(
            "PostgreSQL {shown}: the tables are locked by another run (waited {:.0}s)",
            lock_timeout.as_secs_f64()
        ))
        .with_hint("wait for that run to finish, or pass --lock-timeout SECS to wait longer");
    }
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        return Error::local_file(format!(
            "cannot write PostgreSQL {shown}: the server is read-only ({})",
            db.message()
        ))
        .with_hint("connect to the primary, not a standby");
    }
    if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        return Error::local_file(format!("cannot {doing} PostgreSQL {shown}: {}", db.message()))
            .with_hint("the user needs CREATE on the schema (first run) and INSERT, UPDATE, DELETE, SELECT on the tables");
    }
    Error::local_file(format!(
        "cannot {doing} PostgreSQL {shown}: {}",
        db.message()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    struct Env(Vec<(&'static str, &'static str)>);
    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn parse(text: &str) -> Result<Target> {
        Target::parse(text, &Env(vec![("USER", "me")]))
    }

    #[test]
    fn urls_parse_like_libpq() {
        let t = parse("postgres://leads@127.0.0.1:5433/crm").unwrap();
        assert_eq!(t.host, Host::Tcp("127.0.0.1".into()));
        assert_eq!(
            (t.port, t.user.as_str(), t.dbname.as_str(), t.tls),
            (5433, "leads", "crm", false)
        );
        let t = parse("postgresql:///crm?host=/run/pg&port=6000").unwrap();
        assert_eq!(t.host, Host::Socket("/run/pg".into()));
        assert_eq!((t.port, t.user.as_str()), (6000, "me"));
        let t = parse("postgres://u@:6001/d").unwrap();
        assert_eq!((t.port, t.is_loopback()), (6001, true));
        assert!(matches!(t.host, Host::Socket(_)));
        let t = parse("postgres://u@%2Ftmp%2Fpg/d").unwrap();
        assert_eq!(t.host, Host::Socket("/tmp/pg".into()));
        let t = parse("postgres://u@[::1]/d").unwrap();
        assert_eq!(t.host, Host::Tcp("::1".into()));
        let t = parse("postgres://u@db.example.com/d?sslmode=verify-full").unwrap();
        assert!(t.tls);
        assert_eq!(t.shown(), "postgres://u@db.example.com:5432/d");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        for url in [
            "postgres://u:hunter2-secret@localhost/d",
            "postgres://u@localhost/d?password=hunter2-secret",
        ] {
            let e = parse(url).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Usage);
            assert!(!e.message.contains("hunter2"), "{}", e.message);
            assert!(e.hint.unwrap().contains("PGPASSWORD"));
        }
    }

    #[test]
    fn a_remote_host_needs_tls() {
        let e = parse("postgres://u@db.example.com/d").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(e.hint.unwrap().contains("sslmode=require"));
        let e = parse("postgres://u@10.0.0.5/d?sslmode=prefer").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(parse("postgres://u@localhost/d?sslmode=bogus").is_err());
        assert!(parse("postgres://u@localhost/d?colour=blue").is_err());
    }

    #[test]
    fn copy_text_escapes_and_removes_nul() {
        let mut out = Vec::new();
        copy_row(
            &mut out,
            &[
                Cell::Text(Cow::Borrowed("a\tb\nc\\d\re\0f")),
                Cell::Null,
                Cell::Integer(-3),
                Cell::Text(Cow::Borrowed(r#"{"x":"\u0000 and \\u0000"}"#)),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\\\d\\re\u{FFFD}f\t\\N\t-3\t{\"x\":\"\\\\ufffd and \\\\\\\\u0000\"}\n"
        );
    }

    #[test]
    fn pgpass_lines_split_at_unescaped_colons() {
        assert_eq!(
            pgpass_fields(r"db\:1:5432:*:me:pa\:ss:word"),
            ["db:1", "5432", "*", "me", "pa:ss:word"]
        );
    }
}
