//! CSV (docs/SPEC.md section 3): RFC 4180 quoting, `\n` line ends, a header row
//! always, an optional byte-order mark, and the formula guard of docs/SPEC.md
//! section 6 on every cell.

use std::borrow::Cow;
use std::io::{self, Write};

use super::fields::Cell;
use super::table::TableSink;
use crate::model::{format_timestamp, timestamp_bytes};

const BOM: &[u8] = b"\xEF\xBB\xBF";

enum State<W: Write> {
    /// Before the header: the BOM must go out ahead of the csv writer's own
    /// buffer, which offers no way back to the writer inside. `None` only
    /// after starting failed.
    Pending(Option<W>),
    /// Boxed: it carries its own buffer state, far larger than a `W`.
    Started(Box<csv::Writer<W>>),
}

pub struct CsvSink<W: Write> {
    state: State<W>,
    formula_guard: bool,
    bom: bool,
}

impl<W: Write> CsvSink<W> {
    pub fn new(out: W, formula_guard: bool, bom: bool) -> Self {
        CsvSink {
            state: State::Pending(Some(out)),
            formula_guard,
            bom,
        }
    }

    fn started(&mut self) -> io::Result<&mut csv::Writer<W>> {
        match &mut self.state {
            State::Started(csv) => Ok(csv),
            State::Pending(_) => Err(io::Error::other("CSV row before its header")),
        }
    }
}

impl<W: Write> TableSink for CsvSink<W> {
    type Out = W;

    fn header(&mut self, names: &[String]) -> io::Result<()> {
        let State::Pending(out) = &mut self.state else {
            return Err(io::Error::other("CSV header written twice"));
        };
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
        csv.write_record(names).map_err(csv_error)?;
        self.state = State::Started(Box::new(csv));
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        let guard = self.formula_guard;
        let csv = self.started()?;
        for cell in cells {
            let text = match cell {
                Cell::Empty => Cow::Borrowed(""),
                Cell::Text(text) => Cow::Borrowed(text.as_ref()),
                Cell::Time(t) => match timestamp_bytes(t) {
                    // ASCII digits and punctuation: never guarded, never quoted.
                    Some(bytes) => {
                        csv.write_field(bytes).map_err(csv_error)?;
                        continue;
                    }
                    None => Cow::Owned(format_timestamp(t)),
                },
            };
            let text = if guard {
                match guard_cell(&text) {
                    Cow::Borrowed(_) => text,
                    Cow::Owned(guarded) => Cow::Owned(guarded),
                }
            } else {
                text
            };
            csv.write_field(text.as_bytes()).map_err(csv_error)?;
        }
        csv.write_record(std::iter::empty::<&[u8]>())
            .map_err(csv_error)
    }

    /// Flushes the csv buffer and then the writer inside.
    fn finish(self) -> io::Result<W> {
        match self.state {
            State::Started(csv) => csv.into_inner().map_err(|e| e.into_error()),
            State::Pending(_) => Err(io::Error::other("CSV finished before its header")),
        }
    }
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

/// The CSV formula guard (docs/SPEC.md section 6). Prefixes `'` to a cell a spreadsheet
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
