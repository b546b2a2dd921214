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
//! cylinders it owns.

use chrono::NaiveDate;
use serde::Serialize;

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
pub fn parse_register(text: &str) -> Result<Vec<RegisterRow>, Vec<String>> {
    let records = super::csv::parse(text.trim_start_matches('\u{feff}'));
    let Some((header, rows)) = records.split_first() else {
        return Err(vec!["the file is empty".into()]);
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let missing: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| !header.iter().any(|h| h == *c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(vec![format!(
            "line 1: missing columns {}",
            missing.join(", ")
        )]);
    }
    let at = |row: &Vec<String>, column: &str| -> String {
        let i = header.iter().position(|h| h == column).expect("checked");
        row.get(i).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let line = n + 2;
        if row.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let date = |column: &str, problems: &mut Vec<String>| {
            let v = at(row, column);
            if v.is_empty() {
                return None;
            }
            v.parse::<NaiveDate>()
                .map_err(|_| {
                    problems.push(format!(
                        "line {line}: {column} `{v}` is not a date (YYYY-MM-DD)"
                    ))
                })
                .ok()
        };
        let flag = |column: &str, problems: &mut Vec<String>| match at(row, column)
            .to_lowercase()
            .as_str()
        {
            "" => None,
            "1" | "yes" | "true" | "是" => Some(true),
            "0" | "no" | "false" | "否" => Some(false),
            other => {
                problems.push(format!("line {line}: {column} `{other}` is not yes or no"));
                None
            }
        };
        let code = at(row, "code");
        if code.is_empty() || code.len() > 64 || code.chars().any(char::is_control) {
            problems.push(format!("line {line}: code `{code}` is not a cylinder code"));
            continue;
        }
        let record = RegisterRow {
            owner: at(row, "owner"),
            medium: at(row, "medium"),
            cylinder_type: at(row, "type"),
            made: date("made", &mut problems),
            last_inspection: date("last_inspection", &mut problems),
            next_inspection: date("next_inspection", &mut problems),
            scrapped: flag("scrapped", &mut problems).unwrap_or(false),
            insured: flag("insured", &mut problems),
            code,
        };
        if record.owner.is_empty() {
            problems.push(format!("line {line}: owner is empty"));
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
        assert_eq!(
            parse_register(bad).unwrap_err(),
            [
                "line 2: code `` is not a cylinder code",
                "line 3: made `2019-13-01` is not a date (YYYY-MM-DD)",
                "line 3: scrapped `maybe` is not yes or no",
                "line 3: owner is empty",
            ]
        );
        assert_eq!(parse_register("code,owner\n").unwrap_err(), ["line 1: missing columns medium, type, made, last_inspection, next_inspection, scrapped, insured"]);
    }
}
