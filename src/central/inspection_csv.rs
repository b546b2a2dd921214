//! Inspection reports in a batch: an inspection agency uploads one CSV file of several reports
//! (`POST /api/v1/inspections/batch`), one line per hazard found, the report's own columns
//! repeated on each of its lines; a report without hazards is one line with the hazard columns
//! empty. Lines with the same `report_no` are one report, and must agree on its columns.
//!
//! **A batch is all or nothing:** any problem in any line refuses the whole file (422, every
//! problem with its line number, in Chinese and English) and stores nothing; otherwise every
//! report is stored in one transaction. Why: a report spans lines, so "per line" would store
//! half-reports; and a report number is stored once per agency, so the corrected file is
//! simply uploaded again (the reports already stored count as duplicates). Ours, like the
//! register import's: the columns, the accepted spellings (our names, or 合格, 整改后合格,
//! 不合格, 重大, 一般, 是, 否).

use std::collections::BTreeMap;

use super::csv::{LineProblem, Table, TableRow};
use super::hazards::{Conclusion, HazardIn, HazardSeverity, ReportIn};

/// The columns a batch must have, in any order (`manufacturer` and `product_defect` may be
/// left out; more are ignored).
pub const COLUMNS: [&str; 9] = [
    "report_no",
    "gateway",
    "equipment",
    "inspected_on",
    "conclusion",
    "description",
    "severity",
    "legal_basis",
    "deadline",
];

/// One report of a batch: the line it starts on, and the line of each of its hazards.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub line: usize,
    pub hazard_lines: Vec<usize>,
    pub report: ReportIn,
}

/// The report's own columns on one line, to compare the lines of one report.
type Head = (
    String,
    String,
    chrono::NaiveDate,
    Conclusion,
    Option<String>,
);

fn conclusion(v: &str) -> Option<Conclusion> {
    match v.to_lowercase().as_str() {
        "pass" | "合格" => Some(Conclusion::Pass),
        "pass_after_correction" | "整改后合格" => Some(Conclusion::PassAfterCorrection),
        "fail" | "不合格" => Some(Conclusion::Fail),
        _ => None,
    }
}

fn severity(v: &str) -> Option<HazardSeverity> {
    match v.to_lowercase().as_str() {
        "major" | "重大" => Some(HazardSeverity::Major),
        "general" | "一般" => Some(HazardSeverity::General),
        _ => None,
    }
}

/// The report's columns of `row`, or None with its problems.
fn head(row: &TableRow, problems: &mut Vec<LineProblem>) -> Option<Head> {
    let before = problems.len();
    let (gateway, equipment) = (row.get("gateway"), row.get("equipment"));
    for (column, value) in [("gateway", &gateway), ("equipment", &equipment)] {
        if value.is_empty() {
            problems.push(row.problem(format!("{column} 为空"), format!("{column} is empty")));
        }
    }
    let inspected_on = row.date("inspected_on", problems);
    if inspected_on.is_none() && row.get("inspected_on").is_empty() {
        problems.push(row.problem(
            "inspected_on（检验日期）为空".into(),
            "inspected_on is empty".into(),
        ));
    }
    let v = row.get("conclusion");
    let conclusion = conclusion(&v);
    if conclusion.is_none() {
        problems.push(row.problem(
            format!("conclusion `{v}` 不是 合格、整改后合格 或 不合格"),
            format!("conclusion `{v}` is not pass, pass_after_correction or fail"),
        ));
    }
    let manufacturer = Some(row.get("manufacturer")).filter(|m| !m.is_empty());
    (problems.len() == before).then(|| {
        (
            gateway,
            equipment,
            inspected_on.expect("checked"),
            conclusion.expect("checked"),
            manufacturer,
        )
    })
}

/// The hazard of `row`: None when its hazard columns are all empty, or with its problems.
fn hazard(row: &TableRow, problems: &mut Vec<LineProblem>) -> Option<Option<HazardIn>> {
    let columns = ["description", "severity", "legal_basis", "deadline"];
    if columns.iter().all(|c| row.get(c).is_empty()) {
        return Some(None);
    }
    let before = problems.len();
    let v = row.get("severity");
    let severity = severity(&v);
    if severity.is_none() {
        problems.push(row.problem(
            format!("severity `{v}` 不是 重大 或 一般"),
            format!("severity `{v}` is not major or general"),
        ));
    }
    let deadline = row.date("deadline", problems);
    if deadline.is_none() && row.get("deadline").is_empty() {
        problems.push(row.problem(
            "deadline（整改期限）为空".into(),
            "deadline is empty".into(),
        ));
    }
    let product_defect = row.flag("product_defect", problems).unwrap_or(false);
    (problems.len() == before).then(|| {
        Some(HazardIn {
            description: row.get("description"),
            severity: severity.expect("checked"),
            legal_basis: row.get("legal_basis"),
            deadline: deadline.expect("checked"),
            product_defect,
        })
    })
}

/// Parses a batch: its reports in the order they first appear, or every problem with its
/// line, including each report's own problems (`ReportIn::problems`) at the line they are on.
pub fn parse_batch(text: &str) -> Result<Vec<BatchReport>, Vec<LineProblem>> {
    let table = Table::read(text, &COLUMNS)?;
    let mut problems = Vec::new();
    let mut reports: Vec<(Head, BatchReport)> = Vec::new();
    let mut by_no: BTreeMap<String, usize> = BTreeMap::new();
    let mut broken: Vec<String> = Vec::new();
    for row in table.rows() {
        let report_no = row.get("report_no");
        if report_no.is_empty() {
            problems.push(row.problem(
                "report_no（报告编号）为空".into(),
                "report_no is empty".into(),
            ));
            continue;
        }
        let (head, hazard) = (head(&row, &mut problems), hazard(&row, &mut problems));
        let (Some(head), Some(hazard)) = (head, hazard) else {
            broken.push(report_no);
            continue;
        };
        let (_, report) = match by_no.get(&report_no) {
            Some(&i) => {
                let (first, report) = &mut reports[i];
                if *first != head {
                    problems.push(row.problem(
                        format!("报告 {report_no} 的报告列与第 {} 行不一致", report.line),
                        format!(
                            "report {report_no}: its report columns differ from line {}",
                            report.line
                        ),
                    ));
                    continue;
                }
                &mut reports[i]
            }
            None => {
                by_no.insert(report_no.clone(), reports.len());
                let (gateway, equipment, inspected_on, conclusion, manufacturer) = head.clone();
                reports.push((
                    head,
                    BatchReport {
                        line: row.line,
                        hazard_lines: Vec::new(),
                        report: ReportIn {
                            report_no,
                            gateway,
                            equipment,
                            inspected_on,
                            conclusion,
                            manufacturer,
                            hazards: Vec::new(),
                        },
                    },
                ));
                reports.last_mut().expect("pushed")
            }
        };
        if let Some(h) = hazard {
            report.hazard_lines.push(row.line);
            report.report.hazards.push(h);
        }
    }
    for (_, b) in &reports {
        if broken.contains(&b.report.report_no) {
            continue;
        }
        for p in b.report.problems() {
            let line = p.hazard.map_or(b.line, |i| b.hazard_lines[i]);
            let no = &b.report.report_no;
            problems.push(LineProblem {
                line,
                zh: format!("报告 {no}：{}", p.zh),
                en: format!("report {no}: {}", p.en),
            });
        }
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(reports.into_iter().map(|(_, b)| b).collect())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "report_no,gateway,equipment,inspected_on,conclusion,manufacturer,description,severity,legal_basis,deadline,product_defect\n";

    #[test]
    fn lines_of_one_report_make_one_report() {
        let text = format!(
            "\u{feff}{HEADER}R-1,gw1,s1,2026-11-02,整改后合格,Orient,brake worn,重大,\"TSG T7001-2023, 2.8\",2026-11-20,是\n\
             R-1,gw1,s1,2026-11-02,pass_after_correction,Orient,light dim,general,TSG T7001-2023 8.6,2026-12-31,\n\
             R-2,gw1,q1,2026-11-03,pass,,,,,,\n"
        );
        let reports = parse_batch(&text).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(
            (reports[0].line, &reports[0].hazard_lines[..]),
            (2, &[2, 3][..])
        );
        let r = &reports[0].report;
        assert_eq!(r.hazards[0].legal_basis, "TSG T7001-2023, 2.8");
        assert!(r.hazards[0].product_defect && !r.hazards[1].product_defect);
        assert_eq!(r.hazards[0].severity, HazardSeverity::Major);
        assert!(reports[1].report.hazards.is_empty());
    }

    #[test]
    fn every_bad_line_is_named_in_both_languages() {
        let text = format!(
            "{HEADER}R-1,gw1,s1,2026-11-02,pass_after_correction,,brake worn,major,,2026-11-20,yes\n\
             R-1,gw1,s1,2026-11-03,pass_after_correction,,light dim,general,x,2026-12-31,\n\
             R-2,gw1,q1,2026-11-31,maybe,,cable,urgent,x,soon,\n\
             ,gw1,q2,2026-11-03,pass,,,,,,\n"
        );
        let problems = parse_batch(&text).unwrap_err();
        let en: Vec<String> = problems
            .iter()
            .map(|p| format!("line {}: {}", p.line, p.en))
            .collect();
        assert_eq!(
            en,
            [
                "line 2: report R-1: legal_basis is empty",
                "line 2: report R-1: a product defect needs the report's manufacturer, whose ledger it goes on",
                "line 3: report R-1: its report columns differ from line 2",
                "line 4: inspected_on `2026-11-31` is not a date (YYYY-MM-DD)",
                "line 4: conclusion `maybe` is not pass, pass_after_correction or fail",
                "line 4: severity `urgent` is not major or general",
                "line 4: deadline `soon` is not a date (YYYY-MM-DD)",
                "line 5: report_no is empty",
            ]
        );
        assert_eq!(problems[0].zh, "报告 R-1：legal_basis 为空");
        assert_eq!(
            parse_batch("report_no,gateway\n").unwrap_err()[0].en,
            "missing columns equipment, inspected_on, conclusion, description, severity, legal_basis, deadline"
        );
    }
}
