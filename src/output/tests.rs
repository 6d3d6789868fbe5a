//! The writers, format by format, against exact bytes.

use std::borrow::Cow;
use std::io::{self, Write};

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::fields::{Column, LEAD_FIELDS, MESSAGE_ROW_FIELDS};
use super::*;
use crate::model::{Conversation, Lead, Message, Vendor};

fn opts(format: Format, formula_guard: bool, bom: bool) -> FormatOptions {
    FormatOptions {
        formula_guard,
        bom,
        ..FormatOptions::new(format, Resource::Leads)
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

fn render<R: Formatted>(options: &FormatOptions, records: &[R]) -> String {
    let mut w = RecordWriter::<R, _>::new(Vec::new(), options);
    for r in records {
        w.write(r).unwrap();
    }
    assert_eq!(w.records_written(), records.len() as u64);
    String::from_utf8(w.finish().unwrap()).unwrap()
}

const LEAD_A: &str = r#"{"id":"a","vendor":"chatzuri","agent_id":"bot1","kind":"lead","created_at":"2025-01-15T10:30:00.000000Z","name":"José","email":"jose@example.com","phone":null,"source":null,"page_url":null,"ip_address":null,"session_id":null,"message":null,"fields":{}}"#;
const LEAD_A_CSV: &str =
    "a,chatzuri,bot1,lead,2025-01-15T10:30:00.000000Z,José,jose@example.com,,,,,,,{}\n";

fn lead_csv_header() -> String {
    format!("{}\n", Lead::column_names().join(","))
}

#[test]
fn the_tables_spell_spec_section_3() {
    // docs/SPEC.md section 3, written out once here: the tables are the source of
    // truth everywhere else.
    assert_eq!(
        Lead::column_names().join(","),
        "id,vendor,agent_id,kind,created_at,name,email,phone,source,page_url,ip_address,session_id,message,fields"
    );
    assert_eq!(
        Conversation::column_names().join(","),
        "conversation_id,vendor,agent_id,conversation_created_at,source,customer,session_id,message_index,role,content,message_created_at"
    );
    // Lead columns index LEAD_FIELDS directly: the JSON-only field is last.
    assert_eq!(LEAD_FIELDS.last().map(|f| f.name), Some("raw"));
    assert_eq!(MESSAGE_ROW_FIELDS.len(), Conversation::column_names().len());
}

#[test]
fn json_exact_bytes() {
    let o = opts(Format::Json, true, false);
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
    let o = opts(Format::Ndjson, true, false);
    assert_eq!(render::<Lead>(&o, &[]), "");
    assert_eq!(render(&o, &[lead("a")]), format!("{LEAD_A}\n"));
    let out = render(&o, &[lead("a"), lead("b"), lead("c")]);
    assert_eq!(out.lines().count(), 3);
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
    let o = FormatOptions::new(Format::Json, Resource::Conversations);
    let out = render(&o, &[conversation("c1", 2), conversation("c2", 0)]);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed[0]["messages"][1]["role"], "assistant");
    assert_eq!(parsed[1]["messages"], json!([]));
    assert_eq!(out.lines().count(), 4);
}

#[test]
fn csv_exact_bytes() {
    let o = opts(Format::Csv, true, false);
    let header = lead_csv_header();
    assert_eq!(render::<Lead>(&o, &[]), header);
    assert_eq!(render(&o, &[lead("a")]), format!("{header}{LEAD_A_CSV}"));
    let out = render(&o, &[lead("a"), lead("b"), lead("c")]);
    assert_eq!(out.lines().count(), 4);
    assert!(out.ends_with(&LEAD_A_CSV[1..]));
}

#[test]
fn csv_fields_are_compact_json() {
    let mut l = lead("a");
    l.fields.insert("Count", json!(3));
    l.fields.insert("note", json!("x,y"));
    let out = render(&opts(Format::Csv, true, false), &[l]);
    assert!(
        out.ends_with(",\"{\"\"Count\"\":3,\"\"note\"\":\"\"x,y\"\"}\"\n"),
        "{out}"
    );
}

#[test]
fn csv_conversations_one_row_per_message() {
    let o = FormatOptions::new(Format::Csv, Resource::Conversations);
    let header = format!("{}\n", Conversation::column_names().join(","));
    assert_eq!(render::<Conversation>(&o, &[]), header);
    let out = render(&o, &[conversation("c1", 2), conversation("c2", 0)]);
    assert_eq!(
        out,
        format!(
            "{header}\
             c1,robofy,bot2,2025-02-01T08:00:00.000000Z,,,,0,user,m0,\n\
             c1,robofy,bot2,2025-02-01T08:00:00.000000Z,,,,1,assistant,m1,\n\
             c2,robofy,bot2,2025-02-01T08:00:00.000000Z,,,,,,,\n"
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
            l.name = Some((*text).into());
            l.message = Some(format!("{text}|{text}").into());
            l
        })
        .collect();
    let names = Lead::column_names();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for guard in [true, false] {
        let out = render(&opts(Format::Csv, guard, false), &leads);
        let mut reader = ::csv::ReaderBuilder::new().from_reader(out.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(headers.iter().collect::<Vec<_>>(), names);
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), awkward.len());
        for (row, text) in rows.iter().zip(awkward) {
            assert_eq!(&row[at("name")], text);
            assert_eq!(row[at("message")], format!("{text}|{text}"));
        }
    }
}

#[test]
fn bom_starts_csv_once() {
    let with = render::<Lead>(&opts(Format::Csv, true, true), &[]);
    assert_eq!(with.as_bytes()[..3], *b"\xEF\xBB\xBF");
    assert_eq!(&with[3..], lead_csv_header());
    let with_rows = render(&opts(Format::Csv, true, true), &[lead("a"), lead("b")]);
    assert_eq!(with_rows.matches('\u{feff}').count(), 1);
    assert!(with_rows.starts_with('\u{feff}'));
    assert!(!render(&opts(Format::Csv, true, false), &[lead("a")]).contains('\u{feff}'));
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
        let mut reader = ::csv::Reader::from_reader(out.as_bytes());
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
    use Compression::{Gzip, None as Plain};
    type Expected = Result<(Option<Format>, Compression), &'static str>;
    let table: [(&str, Expected); 20] = [
        ("out.csv", Ok((Some(Format::Csv), Plain))),
        ("OUT.CSV", Ok((Some(Format::Csv), Plain))),
        ("a/b.ndjson", Ok((Some(Format::Ndjson), Plain))),
        ("x.jsonl", Ok((Some(Format::Ndjson), Plain))),
        ("x.JsonL", Ok((Some(Format::Ndjson), Plain))),
        ("x.json", Ok((Some(Format::Json), Plain))),
        ("x.Json", Ok((Some(Format::Json), Plain))),
        ("x.xlsx", Ok((Some(Format::Xlsx), Plain))),
        ("x.csv.gz", Ok((Some(Format::Csv), Gzip))),
        ("X.NDJSON.GZ", Ok((Some(Format::Ndjson), Gzip))),
        ("x.json.gz", Ok((Some(Format::Json), Gzip))),
        ("x.gz", Ok((None, Gzip))),
        ("x", Ok((None, Plain))),
        (".csv", Ok((None, Plain))),
        ("-", Ok((None, Plain))),
        ("/dev/fd/63", Ok((None, Plain))),
        ("x.txt", Err("txt")),
        ("x.tsv", Err("tsv")),
        ("x.csv.zip", Err("zip")),
        ("x.tsv.gz", Err("tsv")),
    ];
    for (path, expected) in table {
        assert_eq!(
            Format::from_path(Path::new(path)),
            expected.map_err(str::to_owned),
            "{path}"
        );
    }
}

#[test]
fn columns_parse_names_custom_fields_and_all_fields() {
    let names = Lead::column_names();
    let at = |n: &str| Column::Field(names.iter().position(|x| *x == n).unwrap());
    let columns = Columns::parse("id, created_at,email,fields.company", Resource::Leads).unwrap();
    assert_eq!(
        columns.list,
        [
            at("id"),
            at("created_at"),
            at("email"),
            Column::Custom("company".into())
        ]
    );
    assert!(!columns.all_fields);
    let all = Columns::parse("all-fields", Resource::Leads).unwrap();
    assert_eq!(all.list, Columns::all(Resource::Leads).list);
    assert!(all.all_fields);
    let some = Columns::parse("id,all-fields", Resource::Leads).unwrap();
    assert_eq!((some.list, some.all_fields), (vec![at("id")], true));
    for bad in [
        "id,nope",
        "id,,email",
        "fields.",
        "id,id",
        "conversation_id",
    ] {
        assert!(Columns::parse(bad, Resource::Leads).is_err(), "{bad}");
    }
    assert!(Columns::parse("conversation_id,role", Resource::Conversations).is_ok());
    let err = Columns::parse("nope", Resource::Leads).unwrap_err();
    assert!(
        err.contains("known: id, vendor,") && err.contains("fields.NAME"),
        "{err}"
    );
}

#[test]
fn columns_pick_order_and_flatten_custom_fields() {
    let mut l = lead("a");
    l.fields.insert("company", json!("Acme, Inc."));
    l.fields.insert("size", json!(12));
    l.fields.insert("tags", json!(["x", "y"]));
    let o = FormatOptions {
        columns: Columns::parse(
            "email,fields.size,id,fields.company,fields.tags,fields.missing",
            Resource::Leads,
        )
        .unwrap(),
        ..opts(Format::Csv, true, false)
    };
    assert_eq!(
        render(&o, &[l, lead("b")]),
        "email,fields.size,id,fields.company,fields.tags,fields.missing\n\
         jose@example.com,12,a,\"Acme, Inc.\",\"[\"\"x\"\",\"\"y\"\"]\",\n\
         jose@example.com,,b,,,\n"
    );
}

#[test]
fn all_fields_adds_the_keys_of_the_first_records_in_order() {
    let mut records = Vec::new();
    for i in 0..table::ALL_FIELDS_SAMPLE + 5 {
        let mut l = lead(&i.to_string());
        if i == 1 {
            l.fields.insert("b", json!("1b"));
        }
        if i == 3 {
            l.fields.insert("a", json!("3a"));
            l.fields.insert("b", json!("3b"));
        }
        // Past the sample: its key is no column (it stays in `fields`).
        if i == table::ALL_FIELDS_SAMPLE + 1 {
            l.fields.insert("late", json!("x"));
        }
        records.push(l);
    }
    let o = FormatOptions {
        columns: Columns::parse("id,all-fields", Resource::Leads).unwrap(),
        ..opts(Format::Csv, true, false)
    };
    let out = render(&o, &records);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id,fields.b,fields.a");
    assert_eq!(lines[1], "0,,");
    assert_eq!(lines[2], "1,1b,");
    assert_eq!(lines[4], "3,3b,3a");
    assert_eq!(lines.len(), records.len() + 1);
    // Fewer records than the sample: written at finish.
    let out = render(&o, &records[..2]);
    assert_eq!(out, "id,fields.b\n0,\n1,1b\n");
    // An explicitly chosen key is not repeated.
    let o = FormatOptions {
        columns: Columns::parse("fields.a,all-fields", Resource::Leads).unwrap(),
        ..o
    };
    assert_eq!(
        render(&o, &records[..4]).lines().next(),
        Some("fields.a,fields.b")
    );
}

#[test]
fn conversations_columns_flatten_conversation_fields_on_every_row() {
    let mut c = conversation("c1", 2);
    c.fields.insert("plan", json!("pro"));
    let o = FormatOptions {
        columns: Columns::parse(
            "conversation_id,message_index,fields.plan",
            Resource::Conversations,
        )
        .unwrap(),
        ..FormatOptions::new(Format::Csv, Resource::Conversations)
    };
    assert_eq!(
        render(&o, &[c]),
        "conversation_id,message_index,fields.plan\nc1,0,pro\nc1,1,pro\n"
    );
}

#[test]
fn a_spooled_unit_writes_the_same_bytes() {
    let mut with_fields = lead("x");
    with_fields.fields.insert("company", json!("=Acme"));
    let records = [lead("a"), with_fields, lead("c")];
    for (format, columns) in [
        (Format::Json, None),
        (Format::Ndjson, None),
        (Format::Csv, None),
        (Format::Csv, Some("id,fields.company")),
        (Format::Csv, Some("all-fields")),
    ] {
        let mut o = opts(format, true, false);
        if let Some(text) = columns {
            o.columns = Columns::parse(text, Resource::Leads).unwrap();
        }
        let mut spool = spool::SpoolWriter::new(Vec::new(), spool::Layout::Framed, &o);
        for r in &records {
            spool.write(r).unwrap();
        }
        let (bytes, _, _) = spool.into_parts();
        let mut input = &bytes[..];
        let mut w = RecordWriter::<Lead, _>::new(Vec::new(), &o);
        while let Some(spooled) = spool::decode(&mut input).unwrap() {
            w.write_unit(spooled.unit).unwrap();
        }
        assert_eq!(w.records_written(), 3);
        let replayed = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(replayed, render(&o, &records), "{format} {columns:?}");
    }
}

/// A text spool (JSON, NDJSON) is the output's own bytes: written after a
/// record of another source, after none, split anywhere, or empty, the
/// output is what one writer of every record would write.
#[test]
fn a_spool_of_text_writes_the_same_bytes() {
    let first = [lead("a")];
    let spooled = [lead("b"), lead("c"), lead("d")];
    for format in [Format::Json, Format::Ndjson] {
        let o = opts(format, true, false);
        let layout = spool::Layout::for_format(format, false);
        assert_ne!(layout, spool::Layout::Framed);
        for (before, records) in [
            (&first[..], &spooled[..]),
            (&[][..], &spooled[..]),
            (&first[..], &[][..]),
            (&[][..], &[][..]),
        ] {
            let mut spool = spool::SpoolWriter::new(Vec::new(), layout, &o);
            for r in records {
                spool.write(r).unwrap();
            }
            let (text, _, count) = spool.into_parts();
            assert_eq!(count, records.len() as u64);
            let mut w = RecordWriter::<Lead, _>::new(Vec::new(), &o);
            for r in before {
                w.write(r).unwrap();
            }
            w.start_spooled_text(count).unwrap();
            // Pieces of any length, as a spool file is read back.
            for piece in text.chunks(7) {
                w.write_spooled_text(piece).unwrap();
            }
            assert_eq!(w.records_written(), (before.len() + records.len()) as u64);
            let all: Vec<Lead> = before.iter().chain(records).cloned().collect();
            let replayed = String::from_utf8(w.finish().unwrap()).unwrap();
            assert_eq!(
                replayed,
                render(&o, &all),
                "{format} {} + {}",
                before.len(),
                records.len()
            );
        }
    }
    // Looked-up records keep their keys: framed, whatever the format.
    assert_eq!(
        spool::Layout::for_format(Format::Ndjson, true),
        spool::Layout::Framed
    );
    assert_eq!(
        spool::Layout::for_format(Format::Csv, false),
        spool::Layout::Framed
    );
}

#[test]
fn gzip_reads_back() {
    let mut w = RecordWriter::<Lead, _>::new(
        Encoder::new(Vec::new(), Compression::Gzip),
        &opts(Format::Ndjson, true, false),
    );
    w.write(&lead("a")).unwrap();
    let bytes = w.finish().unwrap().finish().unwrap();
    assert_eq!(&bytes[..2], b"\x1f\x8b");
    let mut text = String::new();
    io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
    assert_eq!(text, format!("{LEAD_A}\n"));
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
    for format in [Format::Json, Format::Ndjson, Format::Csv, Format::Xlsx] {
        let mut w = RecordWriter::<Lead, _>::new(
            Failing {
                ok: 50,
                kind: io::ErrorKind::BrokenPipe,
            },
            &opts(format, true, false),
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
            // csv and xlsx buffer; the error then comes from finish.
            None => w.finish().err().expect("an error"),
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{format}");
    }
}

#[test]
fn output_writes_a_gzip_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv.gz");
    let settings = OutputSettings {
        destination: Destination::File(path.clone()),
        compression: Compression::Gzip,
        options: opts(Format::Csv, true, false),
    };
    let mut output = Output::<Lead>::open(&settings).unwrap();
    output.write(&lead("a")).unwrap();
    let finished = output.finish().unwrap();
    assert!(!path.exists(), "in place only at commit");
    finished.commit().unwrap();
    let mut text = String::new();
    io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, format!("{}{LEAD_A_CSV}", lead_csv_header()));
}
