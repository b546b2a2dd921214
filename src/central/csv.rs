//! CSV exports of the regulator's lists, for spreadsheets: UTF-8 with a byte-order mark (so
//! Excel on a Chinese Windows reads the Chinese names right), CRLF line ends and RFC 4180
//! quoting. A text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` before
//! a non-number) is prefixed with `'`, so an exported name cannot become a command.
//!
//! And CSV uploads (the cylinder register, batches of inspection reports): [`Table`] reads a
//! file with a header line, finds columns by name in any order, and reads typed cells; every
//! problem is a [`LineProblem`] at its line, in Chinese and English.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;

/// The CSV text of `header` and `rows`, with its byte-order mark.
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("{BOM}{}", line(header));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

const BOM: char = '\u{feff}';

/// One CSV line of `cells`, CRLF-terminated.
pub fn line<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| cell(c.as_ref())).collect();
    format!("{}\r\n", cells.join(","))
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

/// A download of `header` and `lines` (each from [`line`]), sent in parts as they are
/// taken, so that a long list is never held twice.
pub fn streamed(
    filename: &str,
    header: &[&str],
    lines: impl Iterator<Item = String> + Send + 'static,
) -> Response {
    let head = std::iter::once(format!("{BOM}{}", line(header)));
    let mut lines = head.chain(lines).peekable();
    let parts = std::iter::from_fn(move || {
        lines.peek()?;
        let mut part = String::new();
        while part.len() < 64 * 1024 {
            match lines.next() {
                Some(l) => part.push_str(&l),
                None => break,
            }
        }
        Some(Ok::<_, std::convert::Infallible>(part))
    });
    response(
        filename,
        axum::body::Body::from_stream(futures_util::stream::iter(parts)),
    )
}

/// A download of `body` named `filename`.
pub fn response(filename: &str, body: impl Into<axum::body::Body>) -> Response {
    let body: axum::body::Body = body.into();
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

/// A problem of an uploaded CSV at its line (1 is the header), in Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineProblem {
    pub line: usize,
    pub zh: String,
    pub en: String,
}

impl std::fmt::Display for LineProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} / 第 {} 行：{}",
            self.line, self.en, self.line, self.zh
        )
    }
}

/// The answer to an upload with problems: 422, every problem with its line, nothing stored.
pub fn refused(reason: &str, problems: &[LineProblem]) -> Response {
    let error: Vec<String> = problems
        .iter()
        .map(|p| format!("line {}: {}", p.line, p.en))
        .collect();
    (
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(serde_json::json!({ "error": error.join("; "), "reason": reason, "problems": problems })),
    )
        .into_response()
}

/// An uploaded CSV: UTF-8, an optional byte-order mark, a header line naming the columns
/// (trimmed, any case, in any order; more are ignored).
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads `text`; the problem when it is empty or lacks one of `required`.
    pub fn read(text: &str, required: &[&str]) -> Result<Table, Vec<LineProblem>> {
        let mut records = parse(text.trim_start_matches('\u{feff}')).into_iter();
        let Some(header) = records.next() else {
            return Err(vec![LineProblem {
                line: 1,
                zh: "文件为空".into(),
                en: "the file is empty".into(),
            }]);
        };
        let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let missing: Vec<&str> = required
            .iter()
            .filter(|c| !header.iter().any(|h| h == *c))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(vec![LineProblem {
                line: 1,
                zh: format!("缺少列 {}", missing.join(", ")),
                en: format!("missing columns {}", missing.join(", ")),
            }]);
        }
        Ok(Table {
            header,
            rows: records.collect(),
        })
    }

    /// The rows that are not blank, each with its line number.
    pub fn rows(&self) -> impl Iterator<Item = TableRow<'_>> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
            .map(|(n, cells)| TableRow {
                line: n + 2,
                header: &self.header,
                cells,
            })
    }
}

/// One row of a [`Table`].
pub struct TableRow<'a> {
    pub line: usize,
    header: &'a [String],
    cells: &'a [String],
}

impl TableRow<'_> {
    /// The trimmed cell of `column`; empty when the row is short or the column absent.
    pub fn get(&self, column: &str) -> String {
        self.header
            .iter()
            .position(|h| h == column)
            .and_then(|i| self.cells.get(i))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    }

    /// A problem at this row.
    pub fn problem(&self, zh: String, en: String) -> LineProblem {
        LineProblem {
            line: self.line,
            zh,
            en,
        }
    }

    /// The date (YYYY-MM-DD) in `column`: None when empty, and a problem when it is no date.
    pub fn date(&self, column: &str, problems: &mut Vec<LineProblem>) -> Option<NaiveDate> {
        let v = self.get(column);
        if v.is_empty() {
            return None;
        }
        let date = v.parse::<NaiveDate>().ok();
        if date.is_none() {
            problems.push(self.problem(
                format!("{column} `{v}` 不是日期（YYYY-MM-DD）"),
                format!("{column} `{v}` is not a date (YYYY-MM-DD)"),
            ));
        }
        date
    }

    /// Yes or no in `column` (1/0, yes/no, true/false, 是/否): None when empty, and a problem
    /// when it is neither.
    pub fn flag(&self, column: &str, problems: &mut Vec<LineProblem>) -> Option<bool> {
        match self.get(column).to_lowercase().as_str() {
            "" => None,
            "1" | "yes" | "true" | "是" => Some(true),
            "0" | "no" | "false" | "否" => Some(false),
            other => {
                problems.push(self.problem(
                    format!("{column} `{other}` 不是“是”或“否”"),
                    format!("{column} `{other}` is not yes or no"),
                ));
                None
            }
        }
    }
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
