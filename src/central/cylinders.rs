//! A cylinder's whole life by its code. The register (owner, medium, type, made, last and next
//! inspection, scrapped, insured) comes from the filling units' registers as CSV
//! (`POST /api/v1/cylinders/import`); every change of owner, inspection or scrapping becomes an
//! event of the cylinder's history. The fills the gateways report (`fill_records`) give the
//! rest: every fill with its checks, every refusal, and the stations it was filled at.
//! `GET /api/v1/cylinders/{code}` and the phone page `/c/{code}` (the URL a QR code or the
//! electronic mark carries) show it all; `GET /api/v1/cylinders/indicators` gives the labelling
//! and insurance rates per filling station and the refused fills by reason.
//!
//! Where the rules come from, and what is ours: the permanent, phone-readable mark, its
//! binding to one filling unit and the record kept at least 2 years are TSG 23 (as amended for
//! 2025) and local standards (`domain.md`); the labelling rate (cylinders with a valid code /
//! all seen) and the insurance rate are the regulator's indicators. Ours: a cylinder counts as
//! labelled at a station when a fill there found its code registered (not `unregistered`),
//! insured when the register says so; the CSV columns; an equipment unit sees only the
//! cylinders it owns. Also ours: a code seen in a fill that no register declares gets a row of
//! its own (`origin = fills`, medium from the fill, owner unknown, a `seen_in_fill` event), so
//! the regulator sees cylinders no filling unit declared; it counts among a station's
//! cylinders as undeclared, and a fill that found it unregistered stays unlabelled after an
//! import declares it (the rate measures what was filled, not what was registered later).

use chrono::NaiveDate;
use serde::Serialize;

use super::csv::{LineProblem, Table};

/// One row of a filling unit's register.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterRow {
    pub code: String,
    pub owner: String,
    pub medium: String,
    pub cylinder_type: String,
    pub made: Option<NaiveDate>,
    pub last_inspection: Option<NaiveDate>,
    pub next_inspection: Option<NaiveDate>,
    pub scrapped: bool,
    pub insured: Option<bool>,
}

/// The columns an import must have, in any order (more are ignored).
pub const COLUMNS: [&str; 9] = [
    "code",
    "owner",
    "medium",
    "type",
    "made",
    "last_inspection",
    "next_inspection",
    "scrapped",
    "insured",
];

/// Parses a register CSV (UTF-8, an optional byte-order mark, a header line): the rows, or
/// every problem with its line number.
pub fn parse_register(text: &str) -> Result<Vec<RegisterRow>, Vec<LineProblem>> {
    let table = Table::read(text, &COLUMNS)?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for row in table.rows() {
        let code = row.get("code");
        if code.is_empty() || code.len() > 64 || code.chars().any(char::is_control) {
            problems.push(row.problem(
                format!("编号 `{code}` 不是气瓶编号"),
                format!("code `{code}` is not a cylinder code"),
            ));
            continue;
        }
        let record = RegisterRow {
            owner: row.get("owner"),
            medium: row.get("medium"),
            cylinder_type: row.get("type"),
            made: row.date("made", &mut problems),
            last_inspection: row.date("last_inspection", &mut problems),
            next_inspection: row.date("next_inspection", &mut problems),
            scrapped: row.flag("scrapped", &mut problems).unwrap_or(false),
            insured: row.flag("insured", &mut problems),
            code,
        };
        if record.owner.is_empty() {
            problems.push(row.problem("owner（产权单位）为空".into(), "owner is empty".into()));
        }
        out.push(record);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_parses_or_names_each_bad_line() {
        let text = "\u{feff}code,owner,medium,type,made,last_inspection,next_inspection,scrapped,insured\r\n\
                    LPG-0001,\"Station A, Jing'an\",LPG,YSP-15,2019-05-01,2024-05-01,2028-05-01,no,yes\r\n\
                    LPG-0002,Station A,LPG,YSP-15,,,,1,\r\n";
        let rows = parse_register(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].owner, "Station A, Jing'an");
        assert_eq!(
            rows[0].next_inspection,
            Some(NaiveDate::from_ymd_opt(2028, 5, 1).unwrap())
        );
        assert!(rows[1].scrapped);
        assert_eq!(rows[1].insured, None);
        let bad = "code,owner,medium,type,made,last_inspection,next_inspection,scrapped,insured\n\
                   ,A,LPG,t,,,,no,\nX-1,,LPG,t,2019-13-01,,,maybe,\n";
        let en = |text: &str| -> Vec<String> {
            parse_register(text)
                .unwrap_err()
                .iter()
                .map(|p| format!("line {}: {}", p.line, p.en))
                .collect()
        };
        assert_eq!(
            en(bad),
            [
                "line 2: code `` is not a cylinder code",
                "line 3: made `2019-13-01` is not a date (YYYY-MM-DD)",
                "line 3: scrapped `maybe` is not yes or no",
                "line 3: owner is empty",
            ]
        );
        assert_eq!(
            parse_register(bad).unwrap_err()[2].zh,
            "scrapped `maybe` 不是“是”或“否”"
        );
        assert_eq!(en("code,owner\n"), ["line 1: missing columns medium, type, made, last_inspection, next_inspection, scrapped, insured"]);
    }
}
