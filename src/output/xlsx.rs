//! XLSX (docs/SPEC.md section 3) in rust_xlsxwriter's constant-memory mode: rows go
//! to a temporary file per sheet as they come, and the workbook is zipped
//! into the output at `finish`. One sheet per record kind (more past the
//! row limit), header bold and frozen with an autofilter, `created_at`
//! cells real date-times in UTC, every other value a string cell: a string
//! cell is never evaluated, so no formula guard is needed.

use std::io::{self, Write};

use chrono::{DateTime, Datelike, Utc};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::fields::Cell;
use super::table::TableSink;

/// Excel's rows per sheet, less the header row.
pub const MAX_ROWS_PER_SHEET: u32 = 1_048_575;
/// Column widths follow the content up to this many characters.
pub const MAX_COLUMN_WIDTH: usize = 60;
/// Excel's limit for the text of one cell, in UTF-16 units.
const MAX_CELL_CHARS: usize = 32_767;

pub struct XlsxSink<W: Write + Send> {
    out: W,
    workbook: Workbook,
    /// The sheet being written; earlier ones are already in the workbook.
    sheet: Option<Worksheet>,
    sheet_name: &'static str,
    sheets: u32,
    header: Vec<String>,
    /// Data rows in the current sheet.
    rows: u32,
    rows_per_sheet: u32,
    widths: Vec<usize>,
    bold: Format,
    date_time: Format,
    /// Cells cut to Excel's limit, for one warning at the end.
    truncated: u64,
}

/// An I/O error keeps its kind (a closed pipe must stay a closed pipe),
/// also from inside the zip writer's own error type.
fn xlsx_error(e: XlsxError) -> io::Error {
    if let XlsxError::IoError(e) = e {
        return e;
    }
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return io::Error::new(io.kind(), io.to_string());
        }
        source = inner.source();
    }
    io::Error::other(format!("XLSX: {e}"))
}

impl<W: Write + Send> XlsxSink<W> {
    /// `sheet_name` is the record kind (`leads`, `conversations`); later
    /// sheets are `leads 2`, `leads 3`, ...
    pub fn new(out: W, sheet_name: &'static str, rows_per_sheet: u32) -> Self {
        XlsxSink {
            out,
            workbook: Workbook::new(),
            sheet: None,
            sheet_name,
            sheets: 0,
            header: Vec::new(),
            rows: 0,
            rows_per_sheet: rows_per_sheet.clamp(1, MAX_ROWS_PER_SHEET),
            widths: Vec::new(),
            bold: Format::new().set_bold(),
            date_time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            truncated: 0,
        }
    }

    fn new_sheet(&mut self) -> io::Result<()> {
        self.close_sheet()?;
        self.sheets += 1;
        let mut sheet = self
            .workbook
            .new_worksheet_with_constant_memory()
            .map_err(xlsx_error)?;
        let name = match self.sheets {
            1 => self.sheet_name.to_owned(),
            n => format!("{} {n}", self.sheet_name),
        };
        sheet.set_name(name).map_err(xlsx_error)?;
        sheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        for (col, name) in self.header.iter().enumerate() {
            sheet
                .write_string_with_format(0, col as u16, name, &self.bold)
                .map_err(xlsx_error)?;
        }
        self.widths = self.header.iter().map(|h| h.chars().count() + 2).collect();
        self.rows = 0;
        self.sheet = Some(sheet);
        Ok(())
    }

    /// Autofilter and widths are known only now; in constant-memory mode
    /// both are written with the sheet's head when the workbook is saved.
    fn close_sheet(&mut self) -> io::Result<()> {
        let Some(mut sheet) = self.sheet.take() else {
            return Ok(());
        };
        let last_col = self.header.len().saturating_sub(1) as u16;
        sheet
            .autofilter(0, 0, self.rows, last_col)
            .map_err(xlsx_error)?;
        for (col, width) in self.widths.iter().enumerate() {
            sheet
                .set_column_width(col as u16, (*width).min(MAX_COLUMN_WIDTH) as f64)
                .map_err(xlsx_error)?;
        }
        self.workbook.push_worksheet(sheet);
        Ok(())
    }
}

/// Excel shows dates from 1900 to 9999; others stay text.
fn excel_time(t: &DateTime<Utc>) -> Option<chrono::NaiveDateTime> {
    (1900..=9999).contains(&t.year()).then(|| t.naive_utc())
}

/// Cut to Excel's cell limit, on a character boundary.
fn fit(text: &str) -> Option<&str> {
    if text.len() <= MAX_CELL_CHARS {
        return None;
    }
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > MAX_CELL_CHARS {
            return Some(&text[..at]);
        }
    }
    None
}

impl<W: Write + Send> TableSink for XlsxSink<W> {
    type Out = W;

    fn header(&mut self, names: &[String]) -> io::Result<()> {
        self.header = names.to_vec();
        self.new_sheet()
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        if self.rows >= self.rows_per_sheet {
            self.new_sheet()?;
        }
        self.rows += 1;
        let row = self.rows;
        let sheet = self
            .sheet
            .as_mut()
            .ok_or_else(|| io::Error::other("XLSX row before its header"))?;
        for (col, cell) in cells.iter().enumerate() {
            let width = match cell {
                Cell::Empty => 0,
                Cell::Text(text) => {
                    let text = match fit(text) {
                        Some(cut) => {
                            self.truncated += 1;
                            cut
                        }
                        None => text,
                    };
                    sheet
                        .write_string(row, col as u16, text)
                        .map_err(xlsx_error)?;
                    text.chars().take(MAX_COLUMN_WIDTH).count()
                }
                Cell::Time(t) => match excel_time(t) {
                    Some(naive) => {
                        sheet
                            .write_datetime_with_format(row, col as u16, naive, &self.date_time)
                            .map_err(xlsx_error)?;
                        19
                    }
                    None => {
                        let text = crate::model::format_timestamp(t);
                        sheet
                            .write_string(row, col as u16, &text)
                            .map_err(xlsx_error)?;
                        text.len()
                    }
                },
            };
            if let Some(w) = self.widths.get_mut(col) {
                *w = (*w).max(width + 1);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.close_sheet()?;
        if self.truncated > 0 {
            tracing::warn!(
                "{} {} longer than Excel's 32,767 characters per cell, cut to that length in the XLSX file",
                self.truncated,
                if self.truncated == 1 {
                    "value was"
                } else {
                    "values were"
                }
            );
        }
        self.workbook
            .save_to_writer(&mut self.out)
            .map_err(xlsx_error)?;
        Ok(self.out)
    }
}
