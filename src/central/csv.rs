//! CSV exports of the regulator's lists, for spreadsheets: UTF-8 with a byte-order mark (so
//! Excel on a Chinese Windows reads the Chinese names right), CRLF line ends and RFC 4180
//! quoting. A text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` before
//! a non-number) is prefixed with `'`, so an exported name cannot become a command.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The CSV text of `header` and `rows`, with its byte-order mark.
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("\u{feff}");
    let lines = std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for line in lines {
        let cells: Vec<String> = line.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell(text: &str) -> String {
    let risky = text.starts_with(['=', '+', '@', '\t', '\r'])
        || (text.starts_with('-') && text.parse::<f64>().is_err());
    let text = if risky {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A download of `body` named `filename`.
pub fn response(filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The records of CSV `text` (RFC 4180: quoted fields may hold commas, quotes doubled, line
/// breaks; CRLF or LF line ends).
pub fn parse(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// A number as a cell: empty when there is none.
pub fn number(value: Option<f64>) -> String {
    value
        .map(|v| format!("{}", (v * 10_000.0).round() / 10_000.0))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let rows = vec![vec![
            "电梯 1号".to_owned(),
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            "=cmd()".to_owned(),
            "-3.5".to_owned(),
            "-x".to_owned(),
        ]];
        assert_eq!(
            to_csv(&["name", "n"], &rows),
            "\u{feff}name,n\r\n电梯 1号,\"a,b\",\"say \"\"hi\"\"\",'=cmd(),-3.5,'-x\r\n"
        );
        assert_eq!(number(Some(2.0 / 3.0)), "0.6667");
        assert_eq!(number(None), "");
    }

    #[test]
    fn what_is_written_parses_back() {
        let rows = vec![vec![
            "a,b".to_owned(),
            "say \"hi\"\nthere".to_owned(),
            String::new(),
        ]];
        let text = to_csv(&["x", "y", "z"], &rows);
        let parsed = parse(text.trim_start_matches('\u{feff}'));
        assert_eq!(
            parsed,
            [vec!["x", "y", "z"], vec!["a,b", "say \"hi\"\nthere", ""]]
        );
    }
}
