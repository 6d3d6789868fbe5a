//! Streaming output (SPEC sections 1 "Output", 3 and 6): record writers for
//! JSON, NDJSON and CSV, the CSV formula guard, and the output file that is
//! only put in place once everything was written.
//!
//! Nothing here collects records: every `write` goes straight into a buffered
//! writer, so memory stays flat however many records a run exports. Write
//! errors come back as the original `io::Error` so the caller can tell a
//! closed pipe (`| head -1`, a quiet success) from a real failure.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::model::Record;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Ndjson,
    Csv,
    /// A SQLite database file (SPEC section 11): not a stream, written by
    /// `crate::db`.
    Sqlite,
}

impl Format {
    /// The format an output path's extension asks for, when `--format` was
    /// not given: `.csv`, `.ndjson`/`.jsonl`, `.json`, in any letter case.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?;
        [
            ("csv", Format::Csv),
            ("ndjson", Format::Ndjson),
            ("jsonl", Format::Ndjson),
            ("json", Format::Json),
            ("db", Format::Sqlite),
            ("sqlite", Format::Sqlite),
            ("sqlite3", Format::Sqlite),
        ]
        .into_iter()
        .find(|(name, _)| ext.eq_ignore_ascii_case(name))
        .map(|(_, format)| format)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Sqlite => "sqlite",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub format: Format,
    /// SPEC 6; only CSV is ever guarded.
    pub formula_guard: bool,
    /// UTF-8 byte-order mark at the start of CSV; ignored for JSON formats,
    /// where a BOM would make the output invalid for most parsers.
    pub bom: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            format: Format::Json,
            formula_guard: true,
            bom: false,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

enum Inner<W: Write> {
    Json(W),
    Ndjson(W),
    /// CSV before its preamble: the BOM must go out ahead of the csv
    /// writer's own buffer, which offers no way back to the writer inside.
    /// `None` only after starting it failed.
    CsvPending(Option<W>),
    /// The csv writer is created once and reused, so its buffer and quoting
    /// tables are not rebuilt per record.
    /// Boxed: it carries its own buffer state, far larger than a `W`.
    Csv(Box<csv::Writer<W>>),
    /// A database format: databases are written by `crate::db`, never
    /// through a byte stream; every write is an error.
    NotAStream,
}

/// Writes records of one kind, one at a time, in one format.
///
/// The CSV header is the `CSV_HEADER` of the record type of the first
/// `write` (or of `finish` when nothing was written); mixing record types
/// in one writer is a caller bug the csv crate reports as `InvalidData`
/// when the column counts differ.
pub struct RecordWriter<W: Write> {
    inner: Inner<W>,
    formula_guard: bool,
    bom: bool,
    records: u64,
    /// One record's JSON, reused: one write per record into `out`.
    scratch: Vec<u8>,
}

impl<W: Write> RecordWriter<W> {
    /// Writes nothing yet, so a run that fails before its first record
    /// leaves no half-started JSON array or lonely header behind.
    pub fn new(out: W, options: &OutputOptions) -> Self {
        let inner = match options.format {
            Format::Json => Inner::Json(out),
            Format::Ndjson => Inner::Ndjson(out),
            Format::Csv => Inner::CsvPending(Some(out)),
            Format::Sqlite => Inner::NotAStream,
        };
        RecordWriter {
            inner,
            formula_guard: options.formula_guard,
            bom: options.bom,
            records: 0,
            scratch: Vec::with_capacity(4096),
        }
    }

    /// BOM and header row, once.
    fn start_csv<R: Record>(&mut self) -> io::Result<()> {
        if let Inner::CsvPending(out) = &mut self.inner {
            let mut out = out
                .take()
                .ok_or_else(|| io::Error::other("CSV output failed earlier"))?;
            if self.bom {
                out.write_all(BOM)?;
            }
            let mut csv = csv::WriterBuilder::new()
                .has_headers(false)
                .terminator(csv::Terminator::Any(b'\n'))
                .quote_style(csv::QuoteStyle::Necessary)
                .from_writer(out);
            csv.write_record(R::CSV_HEADER).map_err(csv_error)?;
            self.inner = Inner::Csv(Box::new(csv));
        }
        Ok(())
    }

    pub fn write<R: Record>(&mut self, record: &R) -> io::Result<()> {
        self.start_csv::<R>()?;
        match &mut self.inner {
            Inner::Json(out) => {
                // "[\n" rides with the first record, ",\n" separates the
                // rest, and `finish` closes with "\n]\n": one record per line.
                self.scratch.clear();
                self.scratch
                    .extend_from_slice(if self.records == 0 { b"[\n" } else { b",\n" });
                record.write_json(&mut self.scratch)?;
                out.write_all(&self.scratch)?;
            }
            Inner::Ndjson(out) => {
                self.scratch.clear();
                record.write_json(&mut self.scratch)?;
                self.scratch.push(b'\n');
                out.write_all(&self.scratch)?;
            }
            Inner::CsvPending(_) => unreachable!("start_csv ran"),
            Inner::NotAStream => return Err(not_a_stream()),
            Inner::Csv(csv) => {
                for row in record.csv_rows() {
                    for cell in &row {
                        let cell = if self.formula_guard {
                            guard_cell(cell)
                        } else {
                            Cow::Borrowed(cell.as_str())
                        };
                        csv.write_field(cell.as_bytes()).map_err(csv_error)?;
                    }
                    csv.write_record(std::iter::empty::<&[u8]>())
                        .map_err(csv_error)?;
                }
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Completes the document (closes the JSON array, or writes the CSV
    /// header when no record came) and flushes `out`, so a full disk or a
    /// closed pipe is reported here rather than lost in a drop.
    pub fn finish<R: Record>(mut self) -> io::Result<W> {
        self.start_csv::<R>()?;
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
            Inner::CsvPending(_) => unreachable!("start_csv ran"),
            Inner::NotAStream => Err(not_a_stream()),
            // into_inner flushes the csv buffer and then `out` itself.
            Inner::Csv(csv) => csv.into_inner().map_err(|e| e.into_error()),
        }
    }

    /// Records (not CSV rows) written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }
}

fn not_a_stream() -> io::Error {
    io::Error::other("a database format has no byte-stream writer")
}

/// The csv crate's own `From` wraps every error as `ErrorKind::Other`, which
/// would hide a broken pipe; hand the original I/O error back instead.
fn csv_error(e: csv::Error) -> io::Error {
    if !e.is_io_error() {
        return io::Error::new(io::ErrorKind::InvalidData, e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// The CSV formula guard (SPEC 6). Prefixes `'` to a cell a spreadsheet
/// would run as a formula:
///
/// - a cell beginning with `=`, `@`, tab or carriage return, always;
/// - a cell beginning with `-` unless the whole cell is a decimal number:
///   `-12.5`, `-0100`, `-.5`, `-1e5`, `-2.5E-3`;
/// - a cell beginning with `+` unless it is such a number (`+3`) or a phone
///   number: `+` then a digit or `(`, then only digits, spaces and
///   `-` `.` `(` `)`, with 7 to 15 digits in all (E.164 allows at most 15):
///   `+1 415 555 0100`, `+44 (20) 7946-0958`, `+1.415.555.0100`.
///
/// A phone number is only recognised after `+`: `-555-0100` is not a phone
/// format anyone writes, and a spreadsheet evaluates it to -655. A cell let
/// through holds no letter (bar an exponent's `e`), no `!`, `|`, `:`, `*`,
/// `/`, `&` or quote, so it cannot call a function, reference a cell or
/// reach DDE; the digit count keeps short arithmetic such as `+1-2` out.
/// `-0100` counts as a number: at worst a spreadsheet drops its leading
/// zero, which is not what the guard is for.
/// Everything else, including the empty cell, is returned unchanged and
/// unallocated.
pub fn guard_cell(cell: &str) -> Cow<'_, str> {
    let dangerous = match cell.as_bytes().first() {
        Some(b'=' | b'@' | b'\t' | b'\r') => true,
        Some(b'-') => !is_number(cell),
        Some(b'+') => !is_number(cell) && !is_phone(cell),
        _ => false,
    };
    if dangerous {
        let mut guarded = String::with_capacity(cell.len() + 1);
        guarded.push('\'');
        guarded.push_str(cell);
        Cow::Owned(guarded)
    } else {
        Cow::Borrowed(cell)
    }
}

/// `[+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?`
fn is_number(s: &str) -> bool {
    fn digits(b: &[u8]) -> usize {
        b.iter().take_while(|c| c.is_ascii_digit()).count()
    }
    let mut b = s.as_bytes();
    if let [b'+' | b'-', rest @ ..] = b {
        b = rest;
    }
    let int = digits(b);
    b = &b[int..];
    let mut frac = 0;
    if let [b'.', rest @ ..] = b {
        frac = digits(rest);
        b = &rest[frac..];
    }
    if int + frac == 0 {
        return false;
    }
    if let [b'e' | b'E', rest @ ..] = b {
        let rest = match rest {
            [b'+' | b'-', r @ ..] => r,
            r => r,
        };
        let exp = digits(rest);
        if exp == 0 {
            return false;
        }
        b = &rest[exp..];
    }
    b.is_empty()
}

fn is_phone(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    if !matches!(rest.as_bytes().first(), Some(b'0'..=b'9' | b'(')) {
        return false;
    }
    let mut digit_count = 0;
    for c in rest.bytes() {
        match c {
            b'0'..=b'9' => digit_count += 1,
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return false,
        }
    }
    (7..=15).contains(&digit_count)
}

/// Where records go: stdout, or a file written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
    /// SQLite or PostgreSQL (SPEC section 11), written by `crate::db`.
    Database(crate::db::DatabaseSettings),
}

enum Sink {
    Stdout(StdoutLock<'static>),
    File(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

const BUFFER_SIZE: usize = 64 * 1024;

/// The buffered writer of an [`OutputFile`]. A concrete type rather than
/// `dyn Write` so serde_json's many small writes hit `BufWriter`'s inlined
/// fast path instead of a virtual call each.
pub struct OutputWriter {
    inner: BufWriter<Sink>,
}

impl Write for OutputWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Target {
    Stdout,
    /// A regular file (new or existing): written to a temporary file beside
    /// it and renamed over it on commit.
    Atomic {
        path: PathBuf,
        temp: TempPath,
    },
    /// An existing non-regular file such as `/dev/null`, a FIFO or a
    /// process substitution (`-o >(gzip > out.gz)`): there is nothing to
    /// rename over, and replacing a device node with a regular file would be
    /// a disaster, so it is written directly.
    Direct {
        path: PathBuf,
    },
}

/// An open destination. Dropping it without [`commit`](OutputFile::commit)
/// removes the temporary file and leaves an existing target untouched.
pub struct OutputFile {
    // Declared before `target` so the file handle is closed before the
    // temporary path is deleted (required on Windows, tidy elsewhere).
    writer: OutputWriter,
    target: Target,
}

impl OutputFile {
    pub fn open(dest: &Destination) -> Result<OutputFile> {
        let (sink, target) = match dest {
            Destination::Stdout => (Sink::Stdout(io::stdout().lock()), Target::Stdout),
            Destination::File(path) => open_file(path)?,
            Destination::Database(_) => {
                return Err(Error::internal("a database output is not opened as a file"));
            }
        };
        Ok(OutputFile {
            writer: OutputWriter {
                inner: BufWriter::with_capacity(BUFFER_SIZE, sink),
            },
            target,
        })
    }

    pub fn writer(&mut self) -> &mut OutputWriter {
        &mut self.writer
    }

    /// Flushes, syncs and renames the temporary file over the target. For
    /// stdout only flushes, and a reader that already went away (broken
    /// pipe) is success, as SPEC 1 asks for `| head -1`.
    pub fn commit(self) -> Result<()> {
        let OutputFile { writer, target } = self;
        match target {
            Target::Stdout => match writer.inner.into_inner() {
                Ok(_) => Ok(()),
                Err(e) if e.error().kind() == io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(Error::local_file(format!(
                    "cannot write to stdout: {}",
                    e.error()
                ))),
            },
            Target::Direct { path } => {
                let sink = writer
                    .inner
                    .into_inner()
                    .map_err(|e| cannot_write(&path, e.error()))?;
                drop(sink);
                Ok(())
            }
            Target::Atomic { path, temp } => {
                let file = match writer.inner.into_inner() {
                    Ok(Sink::File(file)) => file,
                    Ok(Sink::Stdout(_)) => {
                        return Err(Error::internal("output file writes to stdout"));
                    }
                    Err(e) => return Err(cannot_write(&path, e.error())),
                };
                // Without the sync a crash soon after the rename can leave
                // an empty or partial file under the final name.
                file.sync_all().map_err(|e| cannot_write(&path, &e))?;
                drop(file);
                temp.persist(&path)
                    .map_err(|e| cannot_write(&path, &e.error))?;
                sync_parent(&path);
                Ok(())
            }
        }
    }
}

fn open_file(path: &Path) -> Result<(Sink, Target)> {
    let existing = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(cannot_write(path, &e)),
    };
    if let Some(meta) = &existing {
        if meta.is_dir() {
            return Err(Error::local_file(format!(
                "cannot write {}: it is a directory",
                path.display()
            ))
            .with_hint("give a file name, e.g. -o leads.json"));
        }
        if !meta.is_file() {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| cannot_write(path, &e))?;
            let target = Target::Direct {
                path: path.to_owned(),
            };
            return Ok((Sink::File(file), target));
        }
        // The rename would replace a read-only file without complaint;
        // whoever made it read-only meant it not to be overwritten.
        if meta.permissions().readonly() {
            return Err(Error::local_file(format!(
                "cannot write {}: the file is read-only",
                path.display()
            )));
        }
    }

    // Like a shell's `>`, write through a symlink to the file it points at
    // (also one that does not exist yet) rather than replacing the link
    // with a regular file.
    let real = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            resolve_path(path).map_err(|e| cannot_write(path, &e))?
        }
        _ => path.to_owned(),
    };
    let Some(name) = real.file_name() else {
        return Err(Error::local_file(format!(
            "cannot write {}: not a file name",
            path.display()
        )));
    };
    let dir = match real.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    remove_stale_temps(dir, name);
    let prefix = temp_prefix(name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX).rand_bytes(6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile's default is 0600; a new output file should get the
        // usual 0666 minus umask (open(2) applies the umask to this mode),
        // and a replaced one keeps its mode.
        let mode = existing
            .as_ref()
            .map(|meta| meta.permissions().mode() & 0o7777)
            .unwrap_or(0o666);
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    let temp = builder
        .tempfile_in(dir)
        .map_err(|e| {
            cannot_write(path, &e).with_hint(format!(
                "the directory {} must exist and be writable (the output is written there first, then renamed)",
                dir.display()
            ))
        })?;
    #[cfg(unix)]
    if let Some(meta) = &existing {
        // The umask also applied to the copied mode; restore it exactly.
        let _ = fs::set_permissions(temp.path(), meta.permissions());
    }
    let (file, temp) = temp.into_parts();
    Ok((Sink::File(file), Target::Atomic { path: real, temp }))
}

/// How many symlinks are followed before giving up (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// The real location of `path`: every symlink followed, also when the last
/// one points at a file that does not exist yet (then its directory is
/// resolved and the name kept), so that every spelling of one state file
/// gives the same path, and so the same lock.
pub fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    use std::io::{Error as IoError, ErrorKind as IoKind};
    let mut current = std::path::absolute(path)?;
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return fs::canonicalize(&current),
            Err(e) if e.kind() == IoKind::NotFound => {
                let name = current
                    .file_name()
                    .ok_or_else(|| IoError::new(IoKind::InvalidInput, "not a file name"))?;
                let dir = match current.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                return Ok(fs::canonicalize(dir)?.join(name));
            }
            Err(e) => return Err(e),
        }
    }
    Err(IoError::new(
        IoKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

const TEMP_SUFFIX: &str = ".tmp";

/// The name start of a temporary file written beside `name`:
/// `.NAME.leads-PID-`, then random letters and `.tmp`. The writer's pid is
/// in the name so that a later run can tell a file left behind by a killed
/// run (SIGKILL, power loss) from one a live run is still writing.
pub(crate) fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(format!(".leads-{}-", std::process::id()));
    prefix
}

/// Removes the temporary files beside `name` (in `dir`) whose writer is no
/// longer running. Without a way to tell (no `/proc`), nothing is removed:
/// deleting a live run's file would break that run. A file carrying this
/// process's own pid is stale too: this process creates its file for
/// `name` only after this sweep (and a container's leads is often pid 1
/// every time). Best effort: a file that cannot be removed stays.
pub(crate) fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Some(name) = name.to_str() else { return };
    let prefix = format!(".{name}.leads-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(|n| n.split_once('-'))
            .filter(|(_, random)| {
                !random.is_empty() && random.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid != own && proc_root.join(pid.to_string()).exists();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !alive && regular {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes the rename itself durable; best effort, as not every platform or
/// file system lets a directory be opened and synced.
pub(crate) fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn cannot_write(path: &Path, e: &io::Error) -> Error {
    Error::local_file(format!("cannot write {}: {}", path.display(), os_reason(e)))
}

/// tempfile appends the temporary file's path to OS errors ("... at path
/// \"/dir/.out.json.x1Y2z3.tmp\""), which means nothing to the user and
/// would only confuse; its wrapper type is private, so cut the text.
pub(crate) fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    if e.raw_os_error().is_none()
        && let Some((reason, _)) = text.rsplit_once(" at path \"")
    {
        return reason.to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conversation, Lead, Message, Vendor};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn opts(format: Format, formula_guard: bool, bom: bool) -> OutputOptions {
        OutputOptions {
            format,
            formula_guard,
            bom,
        }
    }

    fn lead(id: &str) -> Lead {
        let mut l = Lead::new(Vendor::Chatzuri, "bot1", id.to_owned());
        l.created_at = Some(Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap());
        l.name = Some("José".into());
        l.email = Some("jose@example.com".into());
        l
    }

    fn conversation(id: &str, messages: usize) -> Conversation {
        let mut c = Conversation::new(Vendor::Robofy, "bot2", id.to_owned());
        c.created_at = Some(Utc.with_ymd_and_hms(2025, 2, 1, 8, 0, 0).unwrap());
        for i in 0..messages {
            c.messages.push(Message {
                role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
                content: Some(format!("m{i}")),
                created_at: None,
            });
        }
        c
    }

    fn render<R: Record>(options: &OutputOptions, records: &[R]) -> String {
        let mut w = RecordWriter::new(Vec::new(), options);
        for r in records {
            w.write(r).unwrap();
        }
        assert_eq!(w.records_written(), records.len() as u64);
        String::from_utf8(w.finish::<R>().unwrap()).unwrap()
    }

    const LEAD_A: &str = r#"{"id":"a","vendor":"chatzuri","agent_id":"bot1","kind":"lead","created_at":"2025-01-15T10:30:00Z","name":"José","email":"jose@example.com","phone":null,"source":null,"page_url":null,"ip_address":null,"session_id":null,"message":null,"fields":{}}"#;
    const LEAD_CSV_HEADER: &str = "id,vendor,agent_id,kind,created_at,name,email,phone,source,page_url,ip_address,session_id,message,fields\n";
    const LEAD_A_CSV: &str =
        "a,chatzuri,bot1,lead,2025-01-15T10:30:00Z,José,jose@example.com,,,,,,,{}\n";

    #[test]
    fn json_exact_bytes() {
        let o = opts(Format::Json, true, true);
        assert_eq!(render::<Lead>(&o, &[]), "[]\n");
        assert_eq!(render(&o, &[lead("a")]), format!("[\n{LEAD_A}\n]\n"));
        let three = render(&o, &[lead("a"), lead("b"), lead("c")]);
        assert_eq!(
            three,
            format!(
                "[\n{LEAD_A},\n{},\n{}\n]\n",
                LEAD_A.replace("\"a\"", "\"b\""),
                LEAD_A.replace("\"a\"", "\"c\"")
            )
        );
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&three).unwrap();
        assert_eq!(parsed.len(), 3);
    }

    #[test]
    fn ndjson_exact_bytes() {
        let o = opts(Format::Ndjson, true, true);
        assert_eq!(render::<Lead>(&o, &[]), "");
        assert_eq!(render(&o, &[lead("a")]), format!("{LEAD_A}\n"));
        let out = render(&o, &[lead("a"), lead("b"), lead("c")]);
        assert_eq!(out.lines().count(), 3);
        assert!(out.ends_with("}\n"));
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn raw_appears_only_when_set() {
        let o = opts(Format::Ndjson, true, false);
        let mut l = lead("a");
        l.raw = Some(json!({"x": 1}));
        let out = render(&o, &[l]);
        assert!(
            out.ends_with(",\"fields\":{},\"raw\":{\"x\":1}}\n"),
            "{out}"
        );
        assert!(!render(&o, &[lead("a")]).contains("raw"));
    }

    #[test]
    fn conversations_json() {
        let o = opts(Format::Json, true, false);
        let out = render(&o, &[conversation("c1", 2), conversation("c2", 0)]);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[0]["messages"][1]["role"], "assistant");
        assert_eq!(parsed[1]["messages"], json!([]));
        assert_eq!(out.lines().count(), 4);
    }

    #[test]
    fn csv_exact_bytes() {
        let o = opts(Format::Csv, true, false);
        assert_eq!(render::<Lead>(&o, &[]), LEAD_CSV_HEADER);
        assert_eq!(
            render(&o, &[lead("a")]),
            format!("{LEAD_CSV_HEADER}{LEAD_A_CSV}")
        );
        let out = render(&o, &[lead("a"), lead("b"), lead("c")]);
        assert_eq!(out.lines().count(), 4);
        assert!(out.ends_with("lead,2025-01-15T10:30:00Z,José,jose@example.com,,,,,,,{}\n"));
    }

    #[test]
    fn csv_fields_are_compact_json() {
        let mut l = lead("a");
        l.fields.insert("Count".into(), json!(3));
        l.fields.insert("note".into(), json!("x,y"));
        let out = render(&opts(Format::Csv, true, false), &[l]);
        assert!(
            out.ends_with(",\"{\"\"Count\"\":3,\"\"note\"\":\"\"x,y\"\"}\"\n"),
            "{out}"
        );
    }

    #[test]
    fn csv_conversations_one_row_per_message() {
        let o = opts(Format::Csv, true, false);
        let header = "conversation_id,vendor,agent_id,conversation_created_at,source,customer,session_id,message_index,role,content,message_created_at\n";
        assert_eq!(render::<Conversation>(&o, &[]), header);
        let out = render(&o, &[conversation("c1", 2), conversation("c2", 0)]);
        assert_eq!(
            out,
            format!(
                "{header}\
                 c1,robofy,bot2,2025-02-01T08:00:00Z,,,,0,user,m0,\n\
                 c1,robofy,bot2,2025-02-01T08:00:00Z,,,,1,assistant,m1,\n\
                 c2,robofy,bot2,2025-02-01T08:00:00Z,,,,,,,\n"
            )
        );
    }

    #[test]
    fn csv_round_trips_awkward_text() {
        let awkward = [
            "a,b",
            "say \"hi\"",
            "line1\nline2",
            "cr\rhere",
            "crlf\r\nend",
            "José",
            "王小明",
            "🎉 party",
            " padded ",
            "",
        ];
        let leads: Vec<Lead> = awkward
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut l = lead(&i.to_string());
                l.name = Some((*text).to_owned());
                l.message = Some(format!("{text}|{text}"));
                l
            })
            .collect();
        for guard in [true, false] {
            let out = render(&opts(Format::Csv, guard, false), &leads);
            let mut reader = csv::ReaderBuilder::new().from_reader(out.as_bytes());
            let headers = reader.headers().unwrap().clone();
            assert_eq!(headers.iter().collect::<Vec<_>>(), Lead::CSV_HEADER);
            let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            assert_eq!(rows.len(), awkward.len());
            for (row, text) in rows.iter().zip(awkward) {
                assert_eq!(&row[5], text);
                assert_eq!(row[12], format!("{text}|{text}"));
            }
        }
    }

    #[test]
    fn bom_only_when_asked_and_only_for_csv() {
        let with = render::<Lead>(&opts(Format::Csv, true, true), &[]);
        assert_eq!(with.as_bytes()[..3], *BOM);
        assert_eq!(&with[3..], LEAD_CSV_HEADER);
        let with_rows = render(&opts(Format::Csv, true, true), &[lead("a"), lead("b")]);
        assert_eq!(with_rows.matches('\u{feff}').count(), 1);
        assert!(with_rows.starts_with('\u{feff}'));
        assert!(!render(&opts(Format::Csv, true, false), &[lead("a")]).contains('\u{feff}'));
        assert!(!render(&opts(Format::Json, true, true), &[lead("a")]).contains('\u{feff}'));
        assert!(!render(&opts(Format::Ndjson, true, true), &[lead("a")]).contains('\u{feff}'));
    }

    #[test]
    fn guard_table() {
        // (cell, guarded form)
        let table = [
            ("=SUM(1)", "'=SUM(1)"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("+1 415 555 0100", "+1 415 555 0100"),
            ("+44 (20) 7946-0958", "+44 (20) 7946-0958"),
            ("+1.415.555.0100", "+1.415.555.0100"),
            ("+14155550100", "+14155550100"),
            ("-12.5", "-12.5"),
            ("+3", "+3"),
            ("-0100", "-0100"),
            ("-.5", "-.5"),
            ("-1e5", "-1e5"),
            ("+2.5E-3", "+2.5E-3"),
            ("1e5", "1e5"),
            ("-A", "'-A"),
            ("+A", "'+A"),
            ("-2+3", "'-2+3"),
            ("+1-2", "'+1-2"),
            ("-555-0100", "'-555-0100"),
            ("+1 415 555 0100 ext 2", "'+1 415 555 0100 ext 2"),
            ("+1 234 567 890 123 456", "'+1 234 567 890 123 456"),
            ("+HYPERLINK(\"x\")", "'+HYPERLINK(\"x\")"),
            ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
            ("-", "'-"),
            ("+", "'+"),
            ("-1e", "'-1e"),
            ("-.", "'-."),
            ("", ""),
            ("hello world", "hello world"),
            ("a=b", "a=b"),
            ("{}", "{}"),
            ("José", "José"),
        ];
        for (cell, guarded) in table {
            assert_eq!(guard_cell(cell), guarded, "cell {cell:?}");
            if cell == guarded {
                assert!(matches!(guard_cell(cell), Cow::Borrowed(_)), "{cell:?}");
            }
        }
    }

    #[test]
    fn guard_applies_to_csv_only_and_can_be_turned_off() {
        let mut l = lead("=1+1");
        l.name = Some("@cmd".into());
        l.phone = Some("+1 415 555 0100".into());
        l.message = Some("-2+3".into());
        let read = |out: String| {
            let mut reader = csv::Reader::from_reader(out.as_bytes());
            reader.records().next().unwrap().unwrap()
        };
        let on = read(render(
            &opts(Format::Csv, true, false),
            std::slice::from_ref(&l),
        ));
        assert_eq!(
            (&on[0], &on[5], &on[7], &on[12]),
            ("'=1+1", "'@cmd", "+1 415 555 0100", "'-2+3")
        );
        let off = read(render(
            &opts(Format::Csv, false, false),
            std::slice::from_ref(&l),
        ));
        assert_eq!(
            (&off[0], &off[5], &off[7], &off[12]),
            ("=1+1", "@cmd", "+1 415 555 0100", "-2+3")
        );
        let json = render(&opts(Format::Json, true, false), std::slice::from_ref(&l));
        assert!(json.contains(r#""id":"=1+1""#) && json.contains(r#""name":"@cmd""#));
        assert!(!json.contains('\''));
    }

    #[test]
    fn from_path_table() {
        let table = [
            ("out.csv", Some(Format::Csv)),
            ("OUT.CSV", Some(Format::Csv)),
            ("a/b.ndjson", Some(Format::Ndjson)),
            ("x.jsonl", Some(Format::Ndjson)),
            ("x.JsonL", Some(Format::Ndjson)),
            ("x.json", Some(Format::Json)),
            ("x.Json", Some(Format::Json)),
            ("x.txt", None),
            ("x", None),
            (".csv", None),
            ("x.csv.gz", None),
            ("-", None),
        ];
        for (path, format) in table {
            assert_eq!(Format::from_path(Path::new(path)), format, "{path}");
        }
    }

    /// A writer that fails with a given kind after `ok` bytes.
    struct Failing {
        ok: usize,
        kind: io::ErrorKind,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::from(self.kind));
            }
            let n = buf.len().min(self.ok);
            self.ok -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_keep_their_kind() {
        for format in [Format::Json, Format::Ndjson, Format::Csv] {
            let mut w = RecordWriter::new(
                Failing {
                    ok: 50,
                    kind: io::ErrorKind::BrokenPipe,
                },
                &opts(format, true, true),
            );
            let mut err = None;
            for i in 0..100 {
                if let Err(e) = w.write(&lead(&i.to_string())) {
                    err = Some(e);
                    break;
                }
            }
            let err = match err {
                Some(e) => e,
                // csv buffers internally; the error then comes from finish.
                None => w.finish::<Lead>().err().expect("an error"),
            };
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{format}");
        }
    }

    #[test]
    fn writes_into_output_writer_by_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        let mut w = RecordWriter::new(file.writer(), &opts(Format::Ndjson, true, false));
        w.write(&lead("a")).unwrap();
        w.finish::<Lead>().unwrap();
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{LEAD_A}\n"));
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old contents").unwrap();
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        // Nothing visible under the final name until commit.
        assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
        let temps = dir_entries(dir.path());
        assert_eq!(temps.len(), 2);
        assert!(
            temps
                .iter()
                .any(|n| n.starts_with(".out.json.") && n.ends_with(".tmp")),
            "{temps:?}"
        );
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(dir_entries(dir.path()), ["out.json"]);
    }

    #[test]
    fn commit_creates_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.csv");
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        let w = RecordWriter::new(file.writer(), &opts(Format::Csv, true, false));
        w.finish::<Lead>().unwrap();
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), LEAD_CSV_HEADER);
        assert_eq!(dir_entries(dir.path()), ["fresh.csv"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Not tempfile's private 0600: readable like any new file.
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_ne!(mode & 0o044, 0, "mode {mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn commit_keeps_the_mode_of_a_replaced_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        file.commit().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o640
        );
    }

    #[test]
    fn drop_without_commit_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let original = b"id,vendor\n1,x\n\xEF\xBB\xBFbinary\x00tail".to_vec();
        fs::write(&path, &original).unwrap();
        {
            let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
            let mut w = RecordWriter::new(file.writer(), &opts(Format::Csv, true, false));
            for i in 0..5000 {
                w.write(&lead(&i.to_string())).unwrap();
            }
            // Dropped mid-stream, as on an error or Ctrl-C.
        }
        assert_eq!(fs::read(&path).unwrap(), original);
        assert_eq!(dir_entries(dir.path()), ["out.csv"]);

        // And when there was no target, none appears.
        let fresh = dir.path().join("new.json");
        let mut file = OutputFile::open(&Destination::File(fresh.clone())).unwrap();
        file.writer().write_all(b"[").unwrap();
        drop(file);
        assert!(!fresh.exists());
        assert_eq!(dir_entries(dir.path()), ["out.csv"]);
    }

    #[test]
    fn open_in_a_missing_directory_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        let err = OutputFile::open(&Destination::File(path.clone()))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::LocalFile);
        assert_eq!(err.kind.exit_code(), 7);
        assert!(
            err.message
                .starts_with(&format!("cannot write {}: ", path.display())),
            "{}",
            err.message
        );
        assert!(!err.message.contains(".out.json."), "{}", err.message);
    }

    #[test]
    fn open_on_a_directory_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutputFile::open(&Destination::File(dir.path().to_owned()))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::LocalFile);
        assert!(err.message.contains("directory"), "{}", err.message);
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_written_directly() {
        let dev_null = Path::new("/dev/null");
        let mut file = OutputFile::open(&Destination::File(dev_null.to_owned())).unwrap();
        file.writer().write_all(b"discarded").unwrap();
        file.commit().unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata(dev_null).unwrap().file_type().is_char_device());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut file = OutputFile::open(&Destination::File(link.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_to_a_missing_file_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        let mut file = OutputFile::open(&Destination::File(link.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("real.json")).unwrap(),
            "new"
        );
        assert_eq!(dir_entries(dir.path()), ["link.json", "real.json"]);
    }
}
