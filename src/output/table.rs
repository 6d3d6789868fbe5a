//! Tabular output (CSV, XLSX): the chosen columns of every row, the header
//! once, and `--columns all-fields`, which holds back the first records to
//! learn their custom field keys before the header can be written.

use std::borrow::Cow;
use std::io;

use super::fields::{Cell, Column, Columns, Formatted};

/// How many records `all-fields` looks at for custom field keys: the first
/// page at Chatzuri's default page size (and more than one page of the
/// other vendors' usual pages). Held back in memory, then written.
pub const ALL_FIELDS_SAMPLE: usize = 100;

/// Where rows go: a CSV writer or an XLSX sheet.
pub trait TableSink {
    type Out;
    fn header(&mut self, names: &[String]) -> io::Result<()>;
    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()>;
    fn finish(self) -> io::Result<Self::Out>;
}

/// One row: the chosen columns, and with `all-fields` every custom field of
/// its record as (key, cell).
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub cells: Vec<Cell<'a>>,
    pub custom: Vec<(Cow<'a, str>, Cell<'a>)>,
}

impl Row<'_> {
    fn into_owned(self) -> Row<'static> {
        Row {
            cells: self.cells.into_iter().map(Cell::into_owned).collect(),
            custom: self
                .custom
                .into_iter()
                .map(|(k, c)| (Cow::Owned(k.into_owned()), c.into_owned()))
                .collect(),
        }
    }
}

/// The rows of one record, borrowed from it.
pub fn rows_of<'a, R: Formatted>(record: &'a R, columns: &Columns) -> io::Result<Vec<Row<'a>>> {
    let mut rows = Vec::with_capacity(1);
    let fields = record.fields();
    record.each_row(|get| {
        let cells = columns
            .list
            .iter()
            .map(|column| match column {
                Column::Field(i) => get(*i).cell().unwrap_or(Cell::Empty),
                Column::Custom(name) => Cell::of_custom(fields.get(name)),
            })
            .collect();
        let custom = if columns.all_fields {
            fields
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k), Cell::of_custom(Some(v))))
                .collect()
        } else {
            Vec::new()
        };
        rows.push(Row { cells, custom });
        Ok(())
    })?;
    Ok(rows)
}

enum State {
    /// `all-fields`: the first records' rows, until the sample is full.
    Sampling {
        rows: Vec<Row<'static>>,
        records: usize,
    },
    Writing {
        custom_keys: Vec<String>,
    },
}

pub struct Table<S: TableSink> {
    sink: S,
    headers: Vec<String>,
    state: State,
    /// The header goes out with the first record (or at `finish`), so a run
    /// that fails before it leaves no lonely header behind.
    header_written: bool,
}

impl<S: TableSink> Table<S> {
    pub fn new(sink: S, columns: &Columns, names: &[&'static str]) -> Table<S> {
        let headers = columns.list.iter().map(|c| c.header(names)).collect();
        let state = if columns.all_fields {
            State::Sampling {
                rows: Vec::new(),
                records: 0,
            }
        } else {
            State::Writing {
                custom_keys: Vec::new(),
            }
        };
        Table {
            sink,
            headers,
            state,
            header_written: false,
        }
    }

    pub fn write_record(&mut self, rows: Vec<Row<'_>>) -> io::Result<()> {
        if let State::Sampling {
            rows: held,
            records,
        } = &mut self.state
        {
            held.extend(rows.into_iter().map(Row::into_owned));
            *records += 1;
            if *records >= ALL_FIELDS_SAMPLE {
                self.end_sample()?;
            }
            return Ok(());
        }
        self.start()?;
        for row in rows {
            self.put(row)?;
        }
        Ok(())
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            self.sink.header(&self.headers)?;
        }
        Ok(())
    }

    /// The custom keys of the sample, in the order first seen, become
    /// `fields.KEY` columns after the chosen ones (a key chosen explicitly
    /// is not repeated).
    fn end_sample(&mut self) -> io::Result<()> {
        let State::Sampling { rows, .. } = std::mem::replace(
            &mut self.state,
            State::Writing {
                custom_keys: Vec::new(),
            },
        ) else {
            return Ok(());
        };
        let mut keys: Vec<String> = Vec::new();
        for row in &rows {
            for (key, _) in &row.custom {
                let header = format!("{}{key}", super::fields::CUSTOM_PREFIX);
                if !keys.iter().any(|k| k == key) && !self.headers.contains(&header) {
                    keys.push(key.to_string());
                }
            }
        }
        self.headers.extend(
            keys.iter()
                .map(|k| format!("{}{k}", super::fields::CUSTOM_PREFIX)),
        );
        self.state = State::Writing { custom_keys: keys };
        self.start()?;
        for row in rows {
            self.put(row)?;
        }
        Ok(())
    }

    fn put(&mut self, row: Row<'_>) -> io::Result<()> {
        let State::Writing { custom_keys } = &self.state else {
            return Err(io::Error::other("row written while sampling"));
        };
        if custom_keys.is_empty() {
            return self.sink.row(&row.cells);
        }
        let mut cells = row.cells;
        let mut custom = row.custom;
        for key in custom_keys {
            let cell = match custom.iter().position(|(k, _)| k == key) {
                Some(at) => custom.swap_remove(at).1,
                None => Cell::Empty,
            };
            cells.push(cell);
        }
        self.sink.row(&cells)
    }

    pub fn finish(mut self) -> io::Result<S::Out> {
        self.end_sample()?;
        self.start()?;
        self.sink.finish()
    }
}
