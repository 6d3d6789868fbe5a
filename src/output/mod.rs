//! Output: everything between a record and the bytes of the output (docs/SPEC.md
//! sections 1 "Output", 3 and 6). The model holds data; this module decides
//! every byte of it.
//!
//! - `fields`: one field table per record kind, which drives JSON key order,
//!   the CSV header and cells and the XLSX columns;
//! - `json`, `csv` (with the formula guard), `xlsx`: the formats, `table` the
//!   column choice they share;
//! - `spool`: a record already formatted, held by a source of a multi-source
//!   run until it is its turn;
//! - `file`: stdout, or a file only put in place once everything was written.
//!
//! Nothing here collects records (but the first 100 for `--columns
//! all-fields`): every `write` goes straight into a buffered writer, so
//! memory stays flat however many records a run exports.

pub mod csv;
pub mod fields;
pub mod file;
pub mod json;
pub mod spool;
pub mod table;
pub mod xlsx;

use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::Path;

use flate2::write::GzEncoder;

pub use self::csv::guard_cell;
pub use self::fields::{Columns, Formatted};
pub use self::file::{OutputFile, OutputWriter, resolve_path};
pub(crate) use self::file::{os_reason, remove_stale_temps, sync_parent, temp_prefix};
use self::table::{Row, Table, rows_of};
use crate::cli::OutputArgs;
use crate::error::{Error, Result};
use crate::model::Resource;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    #[value(alias = "jsonl")]
    Ndjson,
    Csv,
    Xlsx,
    /// A SQLite database file (docs/SPEC.md section 11): records go to
    /// tables, written by `crate::db`, not as bytes. A `postgres://` output
    /// is settled with this format too: both are database destinations.
    Sqlite,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Ndjson,
        Format::Csv,
        Format::Xlsx,
        Format::Sqlite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Sqlite => "sqlite",
        }
    }

    /// The `-o` extensions of a format, in any letter case.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["json"],
            Format::Ndjson => &["ndjson", "jsonl"],
            Format::Csv => &["csv"],
            Format::Xlsx => &["xlsx"],
            Format::Sqlite => &["db", "sqlite", "sqlite3"],
        }
    }

    fn is_tabular(self) -> bool {
        matches!(self, Format::Csv | Format::Xlsx)
    }

    /// What an `-o` path asks for: its format (when it has an extension)
    /// and whether a `.gz` follows it. An extension that is none of the
    /// known ones is an error naming them.
    pub fn from_path(path: &Path) -> std::result::Result<(Option<Format>, Compression), String> {
        let (path, compression) = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case(GZ) => {
                (path.with_extension(""), Compression::Gzip)
            }
            _ => (path.to_owned(), Compression::None),
        };
        let Some(ext) = path.extension() else {
            return Ok((None, compression));
        };
        let ext = ext.to_string_lossy();
        Format::ALL
            .into_iter()
            .find(|f| f.extensions().iter().any(|e| ext.eq_ignore_ascii_case(e)))
            .map(|f| (Some(f), compression))
            .ok_or_else(|| ext.into_owned())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const GZ: &str = "gz";

/// `.gz` after a text format's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// The known `-o` extensions, for messages.
pub fn known_extensions() -> String {
    let mut names: Vec<String> = Format::ALL
        .iter()
        .flat_map(|f| f.extensions())
        .map(|e| format!(".{e}"))
        .collect();
    names.push("each text format + .gz".to_owned());
    names.join(", ")
}

/// How one format writes; what a source's spool needs to format records
/// exactly as the output will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    pub format: Format,
    /// CSV and XLSX: which columns.
    pub columns: Columns,
    /// docs/SPEC.md section 6; CSV only.
    pub formula_guard: bool,
    /// UTF-8 byte-order mark at the start of CSV.
    pub bom: bool,
    /// XLSX data rows per sheet (Excel's limit; lower only in tests).
    pub rows_per_sheet: u32,
}

impl FormatOptions {
    pub fn new(format: Format, resource: Resource) -> FormatOptions {
        FormatOptions {
            format,
            columns: Columns::all(resource),
            formula_guard: true,
            bom: false,
            rows_per_sheet: xlsx::MAX_ROWS_PER_SHEET,
        }
    }
}

/// Where a run's records go, settled before any I/O. A database output is
/// settled by [`settle`] and opened (asynchronously, before anything is
/// fetched) by the run, then wrapped by [`Output::database`] behind the same
/// `write`/`finish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Bytes to stdout.
    Stdout,
    /// Bytes to a file, written atomically ([`OutputFile`]).
    File(std::path::PathBuf),
    /// SQLite or PostgreSQL tables (docs/SPEC.md section 11).
    Database(crate::db::DatabaseSettings),
}

/// The settled output of a run.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub destination: Destination,
    pub compression: Compression,
    pub options: FormatOptions,
}

impl OutputSettings {
    /// The file the output is written to, if any (for clash checks).
    pub fn file(&self) -> Option<&Path> {
        match &self.destination {
            Destination::File(path) => Some(path),
            Destination::Database(db) => match &db.target {
                crate::db::Target::Sqlite(path) => Some(path),
                crate::db::Target::Postgres(_) => None,
            },
            Destination::Stdout => None,
        }
    }
}

/// Hidden, for tests: XLSX data rows per sheet.
pub const ROWS_PER_SHEET_ENV: &str = "LEADS_XLSX_ROWS_PER_SHEET";

/// Settles the output flags: format (from `--format` or the `-o`
/// extension), compression, columns, and the flags that would do nothing
/// in the combination given (exit 2 naming them).
pub fn settle(
    args: &OutputArgs,
    resource: Resource,
    env: &dyn crate::config::Environment,
) -> Result<OutputSettings> {
    let postgres = args
        .output
        .as_deref()
        .and_then(|p| p.to_str())
        .filter(|text| crate::db::is_postgres_url(text));
    if let Some(url) = postgres {
        if let Some(format) = args.format {
            return Err(Error::usage(format!(
                "--format {format} cannot be written to PostgreSQL: a postgres:// output is a database"
            ))
            .with_hint("drop --format"));
        }
        let target = crate::db::postgres::Target::parse(url, env)?;
        return settle_database(args, resource, crate::db::Target::Postgres(target));
    }
    let destination = match &args.output {
        Some(path) if path.as_os_str() == "-" => Destination::Stdout,
        Some(path) => Destination::File(path.clone()),
        None => Destination::Stdout,
    };
    let (from_path, compression) = match &destination {
        Destination::Stdout | Destination::Database(_) => (None, Compression::None),
        Destination::File(path) => match Format::from_path(path) {
            Ok(found) => found,
            // An explicit --format decides whatever the name says.
            Err(_) if args.format.is_some() => (None, Compression::None),
            Err(ext) => {
                return Err(Error::usage(format!(
                    "-o {}: the extension .{ext} is not one leads knows ({})",
                    path.display(),
                    known_extensions()
                ))
                .with_hint("name the file with one of those, or give --format"));
            }
        },
    };
    if let (None, None, Compression::Gzip, Destination::File(path)) =
        (args.format, from_path, compression, &destination)
    {
        return Err(Error::usage(format!(
            "-o {}: .gz alone does not say which format to compress ({})",
            path.display(),
            known_extensions()
        ))
        .with_hint("name the file like leads.ndjson.gz, or give --format"));
    }
    let format = args.format.or(from_path).unwrap_or_default();
    if format == Format::Sqlite {
        return match (&destination, compression) {
            (Destination::File(_), Compression::Gzip) => {
                Err(Error::usage("a SQLite database cannot be written with .gz")
                    .with_hint("drop the .gz"))
            }
            (Destination::File(path), Compression::None) => {
                settle_database(args, resource, crate::db::Target::Sqlite(path.clone()))
            }
            _ => Err(
                Error::usage("a SQLite database cannot be written to stdout")
                    .with_hint("give a file: -o leads.db"),
            ),
        };
    }
    if format == Format::Xlsx && compression == Compression::Gzip {
        return Err(Error::usage(
            "XLSX cannot be written with .gz: an XLSX file is already compressed",
        )
        .with_hint("drop the .gz"));
    }
    let idle: Vec<&str> = [
        (args.raw && format.is_tabular(), "--raw"),
        (args.bom && format != Format::Csv, "--bom"),
        (args.columns.is_some() && !format.is_tabular(), "--columns"),
        (
            args.no_formula_guard && format != Format::Csv,
            "--no-formula-guard",
        ),
    ]
    .into_iter()
    .filter_map(|(idle, flag)| idle.then_some(flag))
    .collect();
    if !idle.is_empty() {
        let only = |flag: &str| match flag {
            "--raw" => "JSON and NDJSON",
            "--columns" => "CSV and XLSX",
            _ => "CSV",
        };
        return Err(Error::usage(format!(
            "{} {} nothing with {format} output",
            idle.join(", "),
            if idle.len() == 1 { "does" } else { "do" },
        ))
        .with_hint(
            idle.iter()
                .map(|flag| format!("{flag} is for {} only", only(flag)))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let columns = match &args.columns {
        Some(text) => Columns::parse(text, resource).map_err(Error::usage)?,
        None => Columns::all(resource),
    };
    let rows_per_sheet = match env.var(ROWS_PER_SHEET_ENV) {
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=xlsx::MAX_ROWS_PER_SHEET).contains(n))
            .ok_or_else(|| {
                Error::usage(format!(
                    "{ROWS_PER_SHEET_ENV} must be 1 to {}",
                    xlsx::MAX_ROWS_PER_SHEET
                ))
            })?,
        None => xlsx::MAX_ROWS_PER_SHEET,
    };
    Ok(OutputSettings {
        destination,
        compression,
        options: FormatOptions {
            format,
            columns,
            formula_guard: !args.no_formula_guard,
            bom: args.bom,
            rows_per_sheet,
        },
    })
}

/// A database destination: the text-format flags do nothing there (exit 2
/// naming the first); `--raw` fills the `raw` column. `--lock-timeout` and
/// `--incremental` are set by the caller, which has those flags.
fn settle_database(
    args: &OutputArgs,
    resource: Resource,
    target: crate::db::Target,
) -> Result<OutputSettings> {
    let unused = [
        (args.bom, "--bom"),
        (args.no_formula_guard, "--no-formula-guard"),
        (args.columns.is_some(), "--columns"),
    ];
    if let Some((_, flag)) = unused.iter().find(|(set, _)| *set) {
        return Err(Error::usage(format!(
            "{flag} has no effect with a database output"
        )));
    }
    Ok(OutputSettings {
        destination: Destination::Database(crate::db::DatabaseSettings {
            target,
            lock_timeout: crate::db::DEFAULT_LOCK_TIMEOUT,
            incremental: false,
        }),
        compression: Compression::None,
        options: FormatOptions::new(Format::Sqlite, resource),
    })
}

enum Inner<W: Write + Send> {
    Json(W),
    Ndjson(W),
    Csv(Table<csv::CsvSink<W>>),
    /// Boxed: the workbook state is far larger than the other writers.
    Xlsx(Box<Table<xlsx::XlsxSink<W>>>),
    /// A database format: tables are written by `crate::db` through
    /// [`Output::database`], never as bytes; every write is an error.
    NotAStream,
}

/// What goes before a JSON array's next record, after `written` records.
fn array_separator(written: u64) -> &'static [u8] {
    if written == 0 { b"[\n" } else { b",\n" }
}

fn not_a_stream() -> io::Error {
    io::Error::other("a database format has no byte-stream writer")
}

/// Writes records of one kind, one at a time, in one format. Writes
/// nothing before the first record or `finish`, so a run that fails before
/// its first record leaves no half-started JSON array or lonely header.
pub struct RecordWriter<R, W: Write + Send> {
    inner: Inner<W>,
    columns: Columns,
    records: u64,
    /// One record's JSON, reused: one write per record into `out`.
    scratch: Vec<u8>,
    kind: PhantomData<fn(&R)>,
}

/// A record formatted for the output, not yet written: what a spool holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit<'a> {
    /// JSON and NDJSON: the record's object.
    Json(Vec<u8>),
    /// CSV and XLSX: its rows.
    Rows(Vec<Row<'a>>),
}

impl<R: Formatted, W: Write + Send> RecordWriter<R, W> {
    pub fn new(out: W, options: &FormatOptions) -> Self {
        let names = R::column_names();
        let inner = match options.format {
            Format::Json => Inner::Json(out),
            Format::Ndjson => Inner::Ndjson(out),
            Format::Csv => Inner::Csv(Table::new(
                csv::CsvSink::new(out, options.formula_guard, options.bom),
                &options.columns,
                &names,
            )),
            Format::Xlsx => Inner::Xlsx(Box::new(Table::new(
                xlsx::XlsxSink::new(out, R::RESOURCE.as_str(), options.rows_per_sheet),
                &options.columns,
                &names,
            ))),
            Format::Sqlite => Inner::NotAStream,
        };
        RecordWriter {
            inner,
            columns: options.columns.clone(),
            records: 0,
            scratch: Vec::with_capacity(4096),
            kind: PhantomData,
        }
    }

    pub fn write(&mut self, record: &R) -> io::Result<()> {
        match &mut self.inner {
            Inner::Json(_) | Inner::Ndjson(_) => {
                return self.write_object(|line| record.push_json(line));
            }
            Inner::Csv(table) => table.write_record(rows_of(record, &self.columns)?)?,
            Inner::Xlsx(table) => table.write_record(rows_of(record, &self.columns)?)?,
            Inner::NotAStream => return Err(not_a_stream()),
        }
        self.records += 1;
        Ok(())
    }

    /// Writes a record that a spool formatted with the same options.
    pub fn write_unit(&mut self, unit: Unit<'_>) -> io::Result<()> {
        match (&mut self.inner, unit) {
            (Inner::Json(_) | Inner::Ndjson(_), Unit::Json(object)) => {
                return self.write_object(|line| line.extend_from_slice(&object));
            }
            (Inner::Csv(table), Unit::Rows(rows)) => table.write_record(rows)?,
            (Inner::Xlsx(table), Unit::Rows(rows)) => table.write_record(rows)?,
            _ => return Err(io::Error::other("a spooled record of another format")),
        }
        self.records += 1;
        Ok(())
    }

    /// Starts the text of a spool of `records` JSON or NDJSON records
    /// (`spool::Layout::JsonText`, `NdjsonText`), which then comes through
    /// [`write_spooled_text`](Self::write_spooled_text): a JSON array's
    /// opening or separator goes first, the spool holds the rest.
    pub fn start_spooled_text(&mut self, records: u64) -> io::Result<()> {
        match &mut self.inner {
            Inner::Json(out) if records > 0 => {
                out.write_all(array_separator(self.records))?;
            }
            Inner::Json(_) | Inner::Ndjson(_) => {}
            _ => return Err(io::Error::other("spooled JSON written to a table")),
        }
        self.records += records;
        Ok(())
    }

    /// A piece of a spool's text, after [`start_spooled_text`](Self::start_spooled_text).
    pub fn write_spooled_text(&mut self, text: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Json(out) | Inner::Ndjson(out) => out.write_all(text),
            _ => Err(io::Error::other("spooled JSON written to a table")),
        }
    }

    /// One JSON object, which `object` appends, with its separators, in
    /// one write: "[\n" rides with the first record, ",\n" separates the
    /// rest, and `finish` closes with "\n]\n" (one record per line); in
    /// NDJSON each object ends with its newline.
    fn write_object(&mut self, object: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let (out, ndjson) = match &mut self.inner {
            Inner::Json(out) => (out, false),
            Inner::Ndjson(out) => (out, true),
            _ => return Err(io::Error::other("JSON written to a table")),
        };
        let line = &mut self.scratch;
        line.clear();
        if !ndjson {
            line.extend_from_slice(array_separator(self.records));
        }
        object(line);
        if ndjson {
            line.push(b'\n');
        }
        out.write_all(line)?;
        self.records += 1;
        Ok(())
    }

    /// Completes the document (closes the JSON array, writes the CSV header
    /// when no record came, saves the workbook) and flushes, so a full disk
    /// or a closed pipe is reported here rather than lost in a drop.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Json(mut out) => {
                out.write_all(if self.records == 0 { b"[]\n" } else { b"\n]\n" })?;
                out.flush()?;
                Ok(out)
            }
            Inner::Ndjson(mut out) => {
                out.flush()?;
                Ok(out)
            }
            Inner::Csv(table) => table.finish(),
            Inner::NotAStream => Err(not_a_stream()),
            Inner::Xlsx(table) => {
                let mut out = table.finish()?;
                out.flush()?;
                Ok(out)
            }
        }
    }

    /// Records (not rows) written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }
}

/// Formats records as a writer with the same options would, for a spool
/// (a database's: the cells of its rows, see `crate::db::Item`).
pub fn format_unit<'a, R: Formatted + crate::db::Stored>(
    record: &'a R,
    options: &FormatOptions,
) -> io::Result<Unit<'a>> {
    Ok(match options.format {
        Format::Json | Format::Ndjson => {
            let mut object = Vec::with_capacity(512);
            record.push_json(&mut object);
            Unit::Json(object)
        }
        Format::Csv | Format::Xlsx => Unit::Rows(rows_of(record, &options.columns)?),
        Format::Sqlite => record.to_item().into_unit(),
    })
}

/// The bytes under the record writer: plain, or gzip.
pub enum Encoder<W: Write> {
    Plain(W),
    /// Boxed: its state is far larger than a plain writer.
    Gzip(Box<GzEncoder<W>>),
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, compression: Compression) -> Self {
        match compression {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(Box::new(GzEncoder::new(
                out,
                flate2::Compression::default(),
            ))),
        }
    }

    /// Ends the gzip stream (its trailer) and hands back the writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(out) => Ok(out),
            Encoder::Gzip(gz) => (*gz).finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(out) => out.write(buf),
            Encoder::Gzip(gz) => gz.write(buf),
        }
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(out) => out.write_all(buf),
            Encoder::Gzip(gz) => gz.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(out) => out.flush(),
            Encoder::Gzip(gz) => gz.flush(),
        }
    }
}

/// An open output of one record kind: `write` each record, then `finish`;
/// the output is put in place only by [`Finished::commit`], so the caller
/// can prepare its state in between.
pub struct Output<R> {
    sink: Sink<R>,
    options: FormatOptions,
}

/// One variant per kind of destination.
enum Sink<R> {
    /// Stdout or a file: formatted bytes, maybe compressed.
    Bytes {
        writer: RecordWriter<R, Encoder<OutputWriter>>,
        file: file::PendingFile,
    },
    /// SQLite or PostgreSQL: rows handed to the database's writer thread.
    Database(crate::db::Database),
}

/// Everything written and flushed, not yet in place.
pub struct Finished {
    sink: FinishedSink,
}

enum FinishedSink {
    File(OutputFile),
    Database(crate::db::Database),
}

impl Finished {
    /// Puts a file in place. A database is handed back: its merge (one
    /// transaction, see [`crate::db::Database::commit`]) is the caller's
    /// to await.
    pub fn commit(self) -> Result<Option<crate::db::Database>> {
        match self.sink {
            FinishedSink::File(file) => file.commit().map(|()| None),
            FinishedSink::Database(database) => Ok(Some(database)),
        }
    }
}

impl<R: Formatted + crate::db::Stored> Output<R> {
    /// Opens stdout or a file; a database destination is opened by the run
    /// (before anything is fetched) and given to [`Output::database`].
    pub fn open(settings: &OutputSettings) -> Result<Output<R>> {
        let sink = match &settings.destination {
            Destination::Stdout | Destination::File(_) => {
                let (writer, file) = OutputFile::open(&settings.destination)?.split();
                Sink::Bytes {
                    writer: RecordWriter::new(
                        Encoder::new(writer, settings.compression),
                        &settings.options,
                    ),
                    file,
                }
            }
            Destination::Database(_) => {
                return Err(Error::internal(
                    "a database output is opened with Output::database",
                ));
            }
        };
        Ok(Output {
            sink,
            options: settings.options.clone(),
        })
    }

    /// An opened database as the run's output.
    pub fn database(database: crate::db::Database, options: &FormatOptions) -> Output<R> {
        Output {
            sink: Sink::Database(database),
            options: options.clone(),
        }
    }

    pub fn write(&mut self, record: &R) -> Result<()> {
        match &mut self.sink {
            Sink::Bytes { writer, .. } => writer.write(record).map_err(crate::app::write_error),
            Sink::Database(database) => database.write(record),
        }
    }

    /// A record a spool formatted with [`options`](Output::options).
    pub fn write_unit(&mut self, unit: Unit<'_>) -> Result<()> {
        match &mut self.sink {
            Sink::Bytes { writer, .. } => writer.write_unit(unit).map_err(crate::app::write_error),
            Sink::Database(database) => database.write_item(crate::db::Item::from_unit(unit)?),
        }
    }

    /// Copies a spool of the output's own text (`spool::Layout::JsonText`
    /// or `NdjsonText`) holding `records` records: no record is parsed or
    /// formatted again.
    pub fn copy_spooled_text(&mut self, spool: &mut impl io::Read, records: u64) -> Result<()> {
        let Sink::Bytes { writer, .. } = &mut self.sink else {
            return Err(Error::internal("a spool of text for a database"));
        };
        writer
            .start_spooled_text(records)
            .map_err(crate::app::write_error)?;
        let mut block = vec![0; spool::BUFFER];
        loop {
            let read = match spool.read(&mut block) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(spool::read_error(e));
                }
            };
            writer
                .write_spooled_text(&block[..read])
                .map_err(crate::app::write_error)?;
        }
    }

    /// Whether what is written stays invisible until the run commits (a
    /// file renamed in place, a database transaction), so a failed run
    /// leaves no trace of it.
    pub fn is_atomic(&self) -> bool {
        match &self.sink {
            Sink::Bytes { file, .. } => file.is_atomic(),
            Sink::Database(_) => true,
        }
    }

    /// How records are formatted: what a spool needs.
    pub fn options(&self) -> &FormatOptions {
        &self.options
    }

    pub fn finish(self) -> Result<Finished> {
        let sink = match self.sink {
            Sink::Bytes { writer, file } => {
                let writer = writer
                    .finish()
                    .and_then(Encoder::finish)
                    .map_err(crate::app::write_error)?;
                FinishedSink::File(file.join(writer))
            }
            Sink::Database(database) => FinishedSink::Database(database),
        };
        Ok(Finished { sink })
    }
}

#[cfg(test)]
mod tests;
