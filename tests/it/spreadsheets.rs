//! Issue 13, "Spreadsheets and files": XLSX read back with calamine, gzip
//! read back, `--columns`, unknown `-o` extensions, six-digit timestamps for
//! every vendor, and the flag combinations that would do nothing. Column
//! names come from the library's own field tables, never copied here.

use std::io::Read;
use std::path::Path;
use std::process::Output;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{DateTime, Utc};
use leads::model::{Conversation, Lead, Vendor};
use leads::output::Formatted;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{CHATZURI_KEY, assert_exit, assert_no_key, leads, ndjson, run, stderr, stdout};

const AGENT: &str = "agent-7";

/// A sandbox export of one vendor, with extra arguments.
fn sandbox(vendor: Vendor, command: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.args([
        command,
        "--vendor",
        vendor.as_str(),
        "--agent",
        "demo",
        "--sandbox",
    ]);
    if vendor == Vendor::Robofy && command == "pull" {
        cmd.args(["--project", "1"]);
    }
    cmd.args(args);
    cmd
}

/// One Chatzuri page of leads on a wiremock server.
async fn chatzuri_serving(leads: Vec<Value>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-leads"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": leads })))
        .mount(&server)
        .await;
    server
}

fn chatzuri(server: &MockServer, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("CHATZURI_API_KEY", CHATZURI_KEY);
    cmd.args(["pull", "--vendor", "chatzuri", "--agent", AGENT]);
    cmd.args(["--base-url", &format!("{}/api/v1", server.uri())]);
    cmd.args(args);
    cmd
}

fn workbook(file: &Path) -> Xlsx<std::io::Cursor<Vec<u8>>> {
    let bytes = std::fs::read(file).unwrap();
    open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("a readable XLSX file")
}

/// One part of the XLSX zip, as text.
fn xlsx_part(file: &Path, part: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(part)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn header_of(range: &calamine::Range<Data>) -> Vec<String> {
    range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn ok(output: &Output) {
    assert_exit(output, 0);
    assert_no_key(output);
}

#[tokio::test]
async fn xlsx_has_typed_cells_a_frozen_bold_header_and_no_formulas() {
    let formulas = [
        "=SUM(A1:A9)",
        "@cmd",
        "+HYPERLINK(\"http://x\",\"y\")",
        "-2+3",
    ];
    let server = chatzuri_serving(
        formulas
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "id": i + 1,
                    "created_at": format!("2025-01-15T10:30:0{i}.5Z"),
                    "chatbot_id": AGENT,
                    "name": name,
                    "email": format!("{i}@example.com"),
                    "phone": "+1 415 555 0100",
                })
            })
            .collect(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.xlsx");
    let output = run(chatzuri(&server, &["-o", file.to_str().unwrap()])).await;
    ok(&output);
    assert_eq!(stdout(&output), "");

    let mut book = workbook(&file);
    assert_eq!(book.sheet_names(), ["leads"]);
    let range = book.worksheet_range("leads").unwrap();
    let names = Lead::column_names();
    assert_eq!(header_of(&range), names);
    assert_eq!(range.height(), formulas.len() + 1);
    let col = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for (i, row) in range.rows().skip(1).enumerate() {
        // created_at: a date-time cell holding the instant in UTC.
        let Data::DateTime(t) = &row[col("created_at")] else {
            panic!(
                "created_at is not a date-time cell: {:?}",
                row[col("created_at")]
            );
        };
        let expected: DateTime<Utc> = format!("2025-01-15T10:30:0{i}.5Z").parse().unwrap();
        let got = t.as_datetime().unwrap();
        assert!(
            (got - expected.naive_utc()).num_milliseconds().abs() < 1,
            "{got} vs {expected}"
        );
        // The formula-looking name is stored as the string it is, unguarded.
        assert_eq!(row[col("name")], Data::String(formulas[i].to_owned()));
        assert_eq!(row[col("id")], Data::String((i + 1).to_string()));
        assert_eq!(row[col("phone")], Data::String("+1 415 555 0100".into()));
        assert_eq!(
            row[col("fields")],
            Data::String(json!({ "chatbot_id": AGENT }).to_string())
        );
        for (c, cell) in row.iter().enumerate() {
            if c != col("created_at") {
                assert!(
                    matches!(cell, Data::String(_) | Data::Empty),
                    "column {c}: {cell:?}"
                );
            }
        }
    }
    assert!(
        book.worksheet_formula("leads")
            .unwrap()
            .used_cells()
            .next()
            .is_none()
    );

    let sheet = xlsx_part(&file, "xl/worksheets/sheet1.xml");
    assert!(
        sheet.contains(r#"state="frozen""#) && sheet.contains(r#"ySplit="1""#),
        "{sheet}"
    );
    assert!(sheet.contains("<autoFilter ref=\"A1:N5\""), "{sheet}");
    assert!(!sheet.contains("<f>"), "no formula cell");
    assert!(sheet.contains("<cols>"), "column widths");
    let styles = xlsx_part(&file, "xl/styles.xml");
    assert!(styles.contains("<b/>"), "a bold font for the header");
}

#[tokio::test]
async fn xlsx_starts_a_new_sheet_past_the_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.xlsx");
    let reference = run(sandbox(Vendor::Chatzuri, "pull", &["--format", "ndjson"])).await;
    ok(&reference);
    let ids: Vec<String> = ndjson(&reference)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() > 200, "{}", ids.len());

    let mut cmd = sandbox(Vendor::Chatzuri, "pull", &["-o", file.to_str().unwrap()]);
    cmd.env("LEADS_XLSX_ROWS_PER_SHEET", "100");
    ok(&run(cmd).await);
    let mut book = workbook(&file);
    let sheets = book.sheet_names();
    let expected: Vec<String> = (0..ids.len().div_ceil(100))
        .map(|i| {
            if i == 0 {
                "leads".to_owned()
            } else {
                format!("leads {}", i + 1)
            }
        })
        .collect();
    assert_eq!(sheets, expected);
    let mut written = Vec::new();
    for name in &sheets {
        let range = book.worksheet_range(name).unwrap();
        assert_eq!(header_of(&range), Lead::column_names(), "{name}");
        assert!(range.height() <= 101, "{name}: {}", range.height());
        written.extend(range.rows().skip(1).map(|row| row[0].to_string()));
    }
    assert_eq!(written, ids, "every lead once, in order, across the sheets");
}

#[tokio::test]
async fn xlsx_conversations_are_message_rows_with_two_date_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conversations.XLSX");
    let reference = run(sandbox(
        Vendor::Chatzuri,
        "conversations",
        &["--format", "csv"],
    ))
    .await;
    ok(&reference);
    let csv_rows = stdout(&reference).lines().count() - 1;
    ok(&run(sandbox(
        Vendor::Chatzuri,
        "conversations",
        &["-o", file.to_str().unwrap()],
    ))
    .await);
    let mut book = workbook(&file);
    assert_eq!(book.sheet_names(), ["conversations"]);
    let range = book.worksheet_range("conversations").unwrap();
    let names = Conversation::column_names();
    assert_eq!(header_of(&range), names);
    assert!(range.height() > 1);
    let col = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for row in range.rows().skip(1) {
        assert!(
            matches!(row[col("conversation_created_at")], Data::DateTime(_)),
            "{row:?}"
        );
        assert!(
            matches!(
                row[col("message_created_at")],
                Data::DateTime(_) | Data::Empty
            ),
            "{row:?}"
        );
        assert!(matches!(
            row[col("message_index")],
            Data::String(_) | Data::Empty
        ));
    }
    // CSV rows can hold line breaks; XLSX rows cannot be fewer than records.
    assert!(range.height() - 1 <= csv_rows);
}

fn gunzip(file: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap())
        .read_to_string(&mut text)
        .expect("a whole gzip stream");
    text
}

#[tokio::test]
async fn gzip_by_extension_reads_back_as_the_plain_output() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format, extra) in [
        ("leads.ndjson.gz", "ndjson", None),
        ("leads.csv.gz", "csv", None),
        ("LEADS.JSON.GZ", "json", None),
        ("leads.gz", "csv", Some("csv")),
        ("leads.jsonl.gz", "ndjson", None),
    ] {
        let plain = run(sandbox(Vendor::Neoagent, "pull", &["--format", format])).await;
        ok(&plain);
        let file = dir.path().join(name);
        let mut args = vec!["-o", file.to_str().unwrap()];
        if let Some(forced) = extra {
            args.extend(["--format", forced]);
        }
        ok(&run(sandbox(Vendor::Neoagent, "pull", &args)).await);
        assert_eq!(&std::fs::read(&file).unwrap()[..2], b"\x1f\x8b", "{name}");
        assert_eq!(gunzip(&file), stdout(&plain), "{name}");
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "no temporary file left: {names:?}"
    );
}

#[tokio::test]
async fn columns_pick_order_and_flatten_custom_fields() {
    let records = run(sandbox(Vendor::Robofy, "pull", &["--format", "ndjson"])).await;
    ok(&records);
    let records = ndjson(&records);
    assert!(records.iter().any(|r| r["fields"].get("company").is_some()));
    let output = run(sandbox(
        Vendor::Robofy,
        "pull",
        &[
            "--format",
            "csv",
            "--no-formula-guard",
            "--columns",
            "email,fields.company,id,created_at",
        ],
    ))
    .await;
    ok(&output);
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["email", "fields.company", "id", "created_at"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), records.len());
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(&row[0], record["email"].as_str().unwrap_or(""));
        assert_eq!(&row[1], record["fields"]["company"].as_str().unwrap_or(""));
        assert_eq!(&row[2], record["id"].as_str().unwrap());
        assert_eq!(&row[3], record["created_at"].as_str().unwrap_or(""));
    }
}

#[tokio::test]
async fn all_fields_adds_a_column_per_custom_key() {
    let records = run(sandbox(Vendor::Robofy, "pull", &["--format", "ndjson"])).await;
    let records = ndjson(&records);
    let mut keys: Vec<String> = Vec::new();
    for record in records.iter().take(leads::output::table::ALL_FIELDS_SAMPLE) {
        for key in record["fields"].as_object().unwrap().keys() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    assert!(!keys.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.xlsx");
    ok(&run(sandbox(
        Vendor::Robofy,
        "pull",
        &["-o", file.to_str().unwrap(), "--columns", "all-fields"],
    ))
    .await);
    let range = workbook(&file).worksheet_range("leads").unwrap();
    let mut expected: Vec<String> = Lead::column_names().iter().map(|n| n.to_string()).collect();
    expected.extend(keys.iter().map(|k| format!("fields.{k}")));
    assert_eq!(header_of(&range), expected);
    let first_key = Lead::column_names().len();
    for (row, record) in range.rows().skip(1).zip(&records) {
        for (i, key) in keys.iter().enumerate() {
            let cell = row[first_key + i].to_string();
            match &record["fields"][key] {
                Value::Null => assert_eq!(cell, ""),
                Value::String(text) => assert_eq!(&cell, text),
                other => assert_eq!(cell, other.to_string()),
            }
        }
    }
}

#[tokio::test]
async fn unknown_output_extensions_are_refused_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "leads.tsv",
        "leads.txt",
        "leads.csv.zip",
        "leads.xlsx.gz",
        "leads.gz",
    ] {
        let file = dir.path().join(name);
        let output = run(sandbox(
            Vendor::Chatzuri,
            "pull",
            &["-o", file.to_str().unwrap()],
        ))
        .await;
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(err.starts_with("leads: error: "), "{err}");
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("leads: error:"))
                .count(),
            1,
            "{err}"
        );
        if !name.ends_with("xlsx.gz") {
            for known in [".json", ".ndjson", ".jsonl", ".csv", ".xlsx", ".gz"] {
                assert!(err.contains(known), "{name}: {err}");
            }
        }
        assert!(!file.exists(), "{name}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // --format decides whatever the name says.
    let file = dir.path().join("leads.tsv");
    ok(&run(sandbox(
        Vendor::Chatzuri,
        "pull",
        &["-o", file.to_str().unwrap(), "--format", "csv"],
    ))
    .await);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&Lead::column_names().join(",")));
}

#[tokio::test]
async fn format_values_take_any_case_and_jsonl() {
    let ndjson_out = run(sandbox(
        Vendor::Chatzuri,
        "pull",
        &["--format", "ndjson", "--limit", "3"],
    ))
    .await;
    ok(&ndjson_out);
    for value in ["jsonl", "JSONL", "NDJSON", "NdJson"] {
        let output = run(sandbox(
            Vendor::Chatzuri,
            "pull",
            &["--format", value, "--limit", "3"],
        ))
        .await;
        ok(&output);
        assert_eq!(output.stdout, ndjson_out.stdout, "{value}");
    }
    let output = run(sandbox(
        Vendor::Chatzuri,
        "pull",
        &["--format", "CSV", "--limit", "1"],
    ))
    .await;
    ok(&output);
    assert!(stdout(&output).starts_with(&Lead::column_names().join(",")));
    let output = run(sandbox(Vendor::Chatzuri, "pull", &["--format", "xml"])).await;
    assert_exit(&output, 2);
}

/// Six fraction digits, `Z`, and nothing else.
fn is_fixed_width(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 27
        && text.ends_with('Z')
        && bytes[19] == b'.'
        && bytes[20..26].iter().all(u8::is_ascii_digit)
        && DateTime::parse_from_rfc3339(text).is_ok()
}

#[tokio::test]
async fn every_timestamp_has_six_fraction_digits_for_every_vendor() {
    for &vendor in Vendor::all() {
        for command in ["pull", "conversations"] {
            let output = run(sandbox(vendor, command, &["--format", "ndjson"])).await;
            ok(&output);
            let records = ndjson(&output);
            assert!(!records.is_empty(), "{vendor} {command}");
            let mut times = 0;
            for record in &records {
                let mut stamps = vec![&record["created_at"]];
                if let Some(messages) = record["messages"].as_array() {
                    stamps.extend(messages.iter().map(|m| &m["created_at"]));
                }
                for stamp in stamps {
                    if let Some(text) = stamp.as_str() {
                        assert!(is_fixed_width(text), "{vendor} {command}: {text}");
                        times += 1;
                    }
                }
            }
            assert!(times > 0, "{vendor} {command}: no timestamps at all");
            // And the same spelling in CSV.
            let output = run(sandbox(
                vendor,
                command,
                &[
                    "--format",
                    "csv",
                    "--columns",
                    if command == "pull" {
                        "created_at"
                    } else {
                        "conversation_created_at"
                    },
                ],
            ))
            .await;
            ok(&output);
            for line in stdout(&output).lines().skip(1).filter(|l| !l.is_empty()) {
                assert!(is_fixed_width(line), "{vendor} {command} CSV: {line}");
            }
        }
    }
}

#[tokio::test]
async fn flags_that_would_do_nothing_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    for (args, named) in [
        (vec!["--format", "csv", "--raw"], vec!["--raw"]),
        (vec!["--format", "xlsx", "--raw"], vec!["--raw"]),
        (vec!["--format", "ndjson", "--bom"], vec!["--bom"]),
        (vec!["--bom"], vec!["--bom"]),
        (vec!["--format", "xlsx", "--bom"], vec!["--bom"]),
        (vec!["--columns", "id"], vec!["--columns"]),
        (
            vec!["--format", "ndjson", "--columns", "id"],
            vec!["--columns"],
        ),
        (
            vec!["--format", "json", "--no-formula-guard"],
            vec!["--no-formula-guard"],
        ),
        (
            vec!["--format", "xlsx", "--no-formula-guard"],
            vec!["--no-formula-guard"],
        ),
        (
            vec!["--format", "ndjson", "--bom", "--columns", "id"],
            vec!["--bom", "--columns"],
        ),
    ] {
        let mut all = args.clone();
        all.extend(["-o", file.to_str().unwrap()]);
        let output = run(sandbox(Vendor::Chatzuri, "pull", &all)).await;
        assert_exit(&output, 2);
        let err = stderr(&output);
        let first = err.lines().next().unwrap();
        assert!(first.starts_with("leads: error: "), "{err}");
        for flag in named {
            assert!(first.contains(flag), "{args:?}: {first}");
        }
        assert!(!file.exists(), "{args:?}");
    }
    let output = run(sandbox(
        Vendor::Chatzuri,
        "pull",
        &["--format", "csv", "--columns", "id,nope"],
    ))
    .await;
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("\"nope\""), "{}", stderr(&output));
}
