//! A source's spool in a multi-source run: its records already formatted
//! for the output, so replaying a spool into the output is a copy and not
//! a parse.
//!
//! Two layouts ([`Layout`]). JSON and NDJSON records that need no second
//! look are held as the output's own text, replayed as one copy. The rest
//! (CSV and XLSX rows, database items, and records that must be looked up
//! again because another source shares their vendor) are held as frames:
//! `agent_id`, `id`, then the unit: lengths are u32 little-endian.
//! JSON: tag 0, length, bytes. Rows: tag 1, row count, and per row its
//! cells and its custom (key, cell) pairs; a cell is tag 0 (empty), 1 (text:
//! length, bytes) or 2 (time: i64 seconds, u32 nanoseconds).

use std::borrow::Cow;
use std::io::{self, BufRead, Read, Write};

use chrono::{DateTime, Utc};

use super::fields::{Cell, Formatted};
use super::table::Row;
use super::{Format, FormatOptions, Unit, format_unit};
use crate::error::Error;

/// Spool files are written and read back in pieces of this size: a
/// million records are about 400 MB of them, 8 KiB a system call at std's
/// default.
pub const BUFFER: usize = 256 * 1024;

/// A spool that cannot be written: a local file error, as for the output.
pub fn write_error(e: io::Error) -> Error {
    Error::local_file(format!("cannot write a spool file: {e}"))
}

/// A spool that cannot be read back.
pub fn read_error(e: io::Error) -> Error {
    Error::local_file(format!("cannot read a spool file: {e}"))
}

/// How a spool holds its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One frame per record, with its key: replayed record by record.
    Framed,
    /// JSON objects joined by ",\n": what a JSON array holds between its
    /// brackets, replayed after one separator.
    JsonText,
    /// NDJSON lines, replayed as they are.
    NdjsonText,
}

impl Layout {
    /// The layout for records in `format`; `looked_up` when each must be
    /// checked against the run's other sources on replay, which needs its
    /// key.
    pub fn for_format(format: Format, looked_up: bool) -> Layout {
        match format {
            Format::Json if !looked_up => Layout::JsonText,
            Format::Ndjson if !looked_up => Layout::NdjsonText,
            _ => Layout::Framed,
        }
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) -> io::Result<()> {
    let len = u32::try_from(len).map_err(|_| io::Error::other("spool entry over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, text: &str) -> io::Result<()> {
    put_len(out, text.len())?;
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_cell(out: &mut Vec<u8>, cell: &Cell<'_>) -> io::Result<()> {
    match cell {
        Cell::Empty => out.push(0),
        Cell::Text(text) => {
            out.push(1);
            put_str(out, text)?;
        }
        Cell::Time(t) => {
            out.push(2);
            out.extend_from_slice(&t.timestamp().to_le_bytes());
            out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
        }
    }
    Ok(())
}

/// Appends one frame.
pub fn encode(out: &mut Vec<u8>, agent_id: &str, id: &str, unit: &Unit<'_>) -> io::Result<()> {
    put_str(out, agent_id)?;
    put_str(out, id)?;
    match unit {
        Unit::Json(bytes) => {
            out.push(0);
            put_len(out, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Unit::Rows(rows) => {
            out.push(1);
            put_len(out, rows.len())?;
            for row in rows {
                put_len(out, row.cells.len())?;
                for cell in &row.cells {
                    put_cell(out, cell)?;
                }
                put_len(out, row.custom.len())?;
                for (key, cell) in &row.custom {
                    put_str(out, key)?;
                    put_cell(out, cell)?;
                }
            }
        }
    }
    Ok(())
}

/// Writes one source's records in one layout; a spool is written by one
/// source and read once.
pub struct SpoolWriter<W: Write> {
    out: W,
    layout: Layout,
    options: FormatOptions,
    records: u64,
    /// One record's bytes, reused: one write per record into `out`.
    frame: Vec<u8>,
}

impl<W: Write> SpoolWriter<W> {
    /// `options` are the output's: a spooled record is formatted as it
    /// will be written.
    pub fn new(out: W, layout: Layout, options: &FormatOptions) -> Self {
        SpoolWriter {
            out,
            layout,
            options: options.clone(),
            records: 0,
            frame: Vec::with_capacity(1024),
        }
    }

    pub fn write<R: Formatted + crate::db::Stored>(&mut self, record: &R) -> io::Result<()> {
        self.frame.clear();
        match self.layout {
            Layout::Framed => {
                let unit = format_unit(record, &self.options)?;
                encode(&mut self.frame, record.agent_id(), record.id(), &unit)?;
            }
            Layout::JsonText => {
                if self.records > 0 {
                    self.frame.extend_from_slice(b",\n");
                }
                record.push_json(&mut self.frame);
            }
            Layout::NdjsonText => {
                record.push_json(&mut self.frame);
                self.frame.push(b'\n');
            }
        }
        self.records += 1;
        self.out.write_all(&self.frame)
    }

    /// The spool's writer, its layout and how many records it holds.
    pub fn into_parts(self) -> (W, Layout, u64) {
        (self.out, self.layout, self.records)
    }
}

/// One spooled record.
#[derive(Debug, PartialEq)]
pub struct Spooled {
    pub agent_id: String,
    pub id: String,
    pub unit: Unit<'static>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("spool file damaged: {what}"),
    )
}

fn take<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn take_len(input: &mut impl Read) -> io::Result<usize> {
    Ok(u32::from_le_bytes(take::<4>(input)?) as usize)
}

fn take_bytes(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = take_len(input)?;
    // Grown as it is read, not sized by the length first: a damaged
    // length must not be an allocation of up to 4 GiB.
    let mut bytes = Vec::with_capacity(len.min(BUFFER));
    input.take(len as u64).read_to_end(&mut bytes)?;
    if bytes.len() != len {
        return Err(bad("cut short"));
    }
    Ok(bytes)
}

fn take_str(input: &mut impl Read) -> io::Result<String> {
    String::from_utf8(take_bytes(input)?).map_err(|_| bad("not UTF-8"))
}

fn take_cell(input: &mut impl Read) -> io::Result<Cell<'static>> {
    Ok(match take::<1>(input)?[0] {
        0 => Cell::Empty,
        1 => Cell::Text(Cow::Owned(take_str(input)?)),
        2 => {
            let seconds = i64::from_le_bytes(take::<8>(input)?);
            let nanos = u32::from_le_bytes(take::<4>(input)?);
            Cell::Time(DateTime::<Utc>::from_timestamp(seconds, nanos).ok_or_else(|| bad("time"))?)
        }
        _ => return Err(bad("cell tag")),
    })
}

/// Reads the next frame; `None` at the end.
pub fn decode(input: &mut impl BufRead) -> io::Result<Option<Spooled>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let agent_id = take_str(input)?;
    let id = take_str(input)?;
    let unit = match take::<1>(input)?[0] {
        0 => Unit::Json(take_bytes(input)?),
        1 => {
            let count = take_len(input)?;
            let mut rows = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                let cells = (0..take_len(input)?)
                    .map(|_| take_cell(input))
                    .collect::<io::Result<_>>()?;
                let custom = (0..take_len(input)?)
                    .map(|_| Ok((Cow::Owned(take_str(input)?), take_cell(input)?)))
                    .collect::<io::Result<_>>()?;
                rows.push(Row { cells, custom });
            }
            Unit::Rows(rows)
        }
        _ => return Err(bad("unit tag")),
    };
    Ok(Some(Spooled { agent_id, id, unit }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A spool that fails is the machine's problem, exit 7, said once.
    #[test]
    fn spool_errors_are_local_file_errors() {
        for (error, says) in [
            (
                write_error(io::Error::other("disk full")),
                "cannot write a spool file: disk full",
            ),
            (
                read_error(io::Error::other("gone")),
                "cannot read a spool file: gone",
            ),
        ] {
            assert_eq!(error.kind.exit_code(), 7);
            assert_eq!(error.message, says);
        }
    }

    #[test]
    fn frames_read_back_as_written() {
        let t = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap()
            + chrono::Duration::nanoseconds(1_234_567);
        let units = [
            ("bot", "1", Unit::Json(b"{\"id\":\"1\"}".to_vec())),
            ("", "", Unit::Json(Vec::new())),
            (
                "b\u{e9}t",
                "2",
                Unit::Rows(vec![
                    Row {
                        cells: vec![Cell::Text("a,b".into()), Cell::Empty, Cell::Time(t)],
                        custom: vec![("company".into(), Cell::Text("Acme".into()))],
                    },
                    Row {
                        cells: vec![],
                        custom: vec![],
                    },
                ]),
            ),
        ];
        let mut bytes = Vec::new();
        for (agent, id, unit) in &units {
            encode(&mut bytes, agent, id, unit).unwrap();
        }
        let mut input = &bytes[..];
        for (agent, id, unit) in units {
            let read = decode(&mut input).unwrap().unwrap();
            assert_eq!(
                read,
                Spooled {
                    agent_id: agent.into(),
                    id: id.into(),
                    unit
                }
            );
        }
        assert_eq!(decode(&mut input).unwrap(), None);
        // A cut spool is an error, not a short read taken for the end.
        let mut cut = &bytes[..bytes.len() - 3];
        let mut last = Ok(None);
        for _ in 0..3 {
            last = decode(&mut cut);
        }
        assert!(last.is_err());
    }
}
