//! The rows of a catalogue, with their line numbers: CSV (a header line naming the columns) or
//! JSON Lines (one object a line; numbers and booleans read as text, `null` as absent). A line
//! that cannot be read is a row error, never the end of the input.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::mapping::{RowError, Value};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The format a file's extension names (`.csv`; `.jsonl`, `.ndjson`, `.json`).
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// One row: its line number (1-based; a CSV record's first line) and its columns or why it
/// cannot be read.
pub type Row = (u64, Result<BTreeMap<String, Value>, RowError>);

/// The rows of `path`, in order.
pub fn rows(path: &Path, format: Format) -> Result<Box<dyn Iterator<Item = Row>>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(match format {
        Format::Csv => Box::new(csv_rows(file).map_err(|e| format!("{}: {e}", path.display()))?),
        Format::Jsonl => Box::new(jsonl_rows(BufReader::new(file))),
    })
}

fn csv_rows(file: File) -> Result<impl Iterator<Item = Row>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(BufReader::new(file));
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    Ok(reader.into_records().map(move |record| match record {
        Ok(record) => {
            let line = record.position().map_or(0, csv::Position::line);
            let row = headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.clone(), Value::Text(v.to_string())))
                .collect();
            (line, Ok(row))
        }
        Err(e) => {
            let line = e.position().map_or(0, csv::Position::line);
            (line, Err(RowError::Malformed(csv_reason(&e))))
        }
    }))
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".into(),
        _ => e.to_string(),
    }
}

fn jsonl_rows(reader: impl BufRead + 'static) -> impl Iterator<Item = Row> {
    reader.lines().enumerate().filter_map(|(n, line)| {
        let line_no = n as u64 + 1;
        match line {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some((line_no, json_row(&text))),
            Err(e) => Some((line_no, Err(RowError::Malformed(e.to_string())))),
        }
    })
}

fn json_row(text: &str) -> Result<BTreeMap<String, Value>, RowError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RowError::Malformed(format!("not JSON: {e}")))?;
    let serde_json::Value::Object(object) = value else {
        return Err(RowError::Malformed("not a JSON object".into()));
    };
    Ok(object
        .into_iter()
        .filter_map(|(key, value)| {
            let value = match value {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => Value::Text(s),
                serde_json::Value::Number(n) => Value::Text(n.to_string()),
                serde_json::Value::Bool(b) => Value::Text(b.to_string()),
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => Value::Nested,
            };
            Some((key, value))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str, format: Format) -> Vec<Row> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        rows(&path, format).unwrap().collect()
    }

    #[test]
    fn csv_rows_carry_their_line_numbers_and_bad_ones_do_not_stop_the_input() {
        let rows = read(
            "c.csv",
            "title,artist\nWave,Hokusai\n\"Two\nlines\",X\nshort\nLast,Y\n",
            Format::Csv,
        );
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 5, 6]);
        assert!(matches!(&rows[2].1, Err(RowError::Malformed(m)) if m.contains("1 fields")));
        let last = rows[3].1.as_ref().unwrap();
        assert_eq!(last.get("title"), Some(&Value::Text("Last".into())));
    }

    #[test]
    fn json_lines_read_values_as_text_and_report_bad_lines() {
        let rows = read(
            "c.jsonl",
            "{\"title\":\"Wave\",\"year\":1831,\"x\":null}\n\nnot json\n[1]\n{\"title\":{\"a\":1}}\n",
            Format::Jsonl,
        );
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
        let first = rows[0].1.as_ref().unwrap();
        assert_eq!(first.get("year"), Some(&Value::Text("1831".into())));
        assert!(!first.contains_key("x"));
        assert!(rows[1].1.is_err() && rows[2].1.is_err());
        assert_eq!(
            rows[3].1.as_ref().unwrap().get("title"),
            Some(&Value::Nested)
        );
        assert_eq!(Format::of(Path::new("a.NDJSON")), Some(Format::Jsonl));
    }
}
