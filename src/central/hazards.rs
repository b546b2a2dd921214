//! Inspection reports followed to the end: "one report, two ledgers, three no-lets-go"
//! (一报告、二台账、三不放过, `domain.md`). An inspection agency posts a report per piece of
//! equipment; each hazard it found becomes an item on the using unit's ledger, and on the
//! manufacturer's when the cause is the product. An item closes only when its cause, the
//! responsibility and the corrective action are recorded (by the using unit) and a regulator
//! or the reporting agency verifies them; a verifier may send it back. An item still open
//! after its deadline raises one `hazard_overdue` alarm on its equipment (cleared at
//! verification) and adds to the equipment's risk score.
//!
//! Where the rules come from, and what is ours: the report, the two ledgers and the three
//! conditions for closing are the district plan's (`domain.md`, "Supervision beyond alarms");
//! TSG T7001-2023 is the elevator inspection rule a report's legal basis often cites. Ours: the
//! severities (`major`, `general`, after the 重大/一般 隐患 grading in common use), the
//! conclusions (`pass`, `pass_after_correction`, `fail`), that a deadline is a date ending at
//! local midnight (in `[central] time_zone`), and the overdue check's interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::config::CentralConfig;
use super::now_ms;
use super::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Pass,
    PassAfterCorrection,
    Fail,
}

impl Conclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Pass => "pass",
            Conclusion::PassAfterCorrection => "pass_after_correction",
            Conclusion::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardSeverity {
    Major,
    General,
}

impl HazardSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            HazardSeverity::Major => "major",
            HazardSeverity::General => "general",
        }
    }
}

/// A report as the agency posts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportIn {
    /// The agency's own number: a report is stored once per agency and number.
    pub report_no: String,
    /// The equipment as central knows it: its gateway and id.
    pub gateway: String,
    pub equipment: String,
    pub inspected_on: NaiveDate,
    pub conclusion: Conclusion,
    /// Who made the equipment; needed when a hazard is a product defect.
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub hazards: Vec<HazardIn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardIn {
    pub description: String,
    pub severity: HazardSeverity,
    /// The clause the finding rests on (for example a TSG T7001-2023 item).
    pub legal_basis: String,
    /// The date by which it must be corrected.
    pub deadline: NaiveDate,
    /// The cause is the product: the item also goes on the manufacturer's ledger.
    #[serde(default)]
    pub product_defect: bool,
}

const MAX_TEXT: usize = 2000;

/// A problem of a report: of the report itself, or of its hazard `hazard` (0-based), in
/// Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportProblem {
    pub hazard: Option<usize>,
    pub zh: String,
    pub en: String,
}

impl std::fmt::Display for ReportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hazard {
            Some(i) => write!(f, "hazard {}: {}", i + 1, self.en),
            None => f.write_str(&self.en),
        }
    }
}

impl ReportIn {
    /// Every problem of the report at once; empty when it may be stored.
    pub fn problems(&self) -> Vec<ReportProblem> {
        let mut out = Vec::new();
        let mut push = |hazard: Option<usize>, (zh, en): (String, String)| {
            out.push(ReportProblem { hazard, zh, en })
        };
        if let Some(p) = text_problem("report_no", &self.report_no) {
            push(None, p);
        }
        if self.report_no.len() > 64 {
            push(
                None,
                (
                    "report_no 超过 64 字节".into(),
                    "report_no is longer than 64 bytes".into(),
                ),
            );
        }
        let has_maker = self
            .manufacturer
            .as_deref()
            .is_some_and(|m| !m.trim().is_empty());
        for (i, h) in self.hazards.iter().enumerate() {
            for (what, value) in [
                ("description", &h.description),
                ("legal_basis", &h.legal_basis),
            ] {
                if let Some(p) = text_problem(what, value) {
                    push(Some(i), p);
                }
            }
            if h.deadline < self.inspected_on {
                push(
                    Some(i),
                    (
                        format!("整改期限 {} 早于检验日 {}", h.deadline, self.inspected_on),
                        format!(
                            "deadline {} is before the inspection on {}",
                            h.deadline, self.inspected_on
                        ),
                    ),
                );
            }
            if h.product_defect && !has_maker {
                push(
                    Some(i),
                    (
                        "产品缺陷须写明报告的制造单位（记入其台账）".into(),
                        "a product defect needs the report's manufacturer, whose ledger it goes on"
                            .into(),
                    ),
                );
            }
        }
        if self.conclusion == Conclusion::Pass && !self.hazards.is_empty() {
            push(
                None,
                (
                    "结论为合格的报告不应列隐患；请用 pass_after_correction（整改后合格）".into(),
                    "a report that passes lists no hazard; use pass_after_correction".into(),
                ),
            );
        }
        out
    }
}

/// The problem of a required text field, in Chinese and English: empty or too long.
fn text_problem(what: &str, value: &str) -> Option<(String, String)> {
    if value.trim().is_empty() {
        Some((format!("{what} 为空"), format!("{what} is empty")))
    } else if value.len() > MAX_TEXT {
        Some((
            format!("{what} 超过 {MAX_TEXT} 字节"),
            format!("{what} is longer than {MAX_TEXT} bytes"),
        ))
    } else {
        None
    }
}

/// What the using unit records before an item can close: the three no-lets-go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub cause: String,
    pub responsibility: String,
    pub corrective_action: String,
}

impl Correction {
    /// The parts left empty; a correction with any is refused.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("cause", &self.cause),
            ("responsibility", &self.responsibility),
            ("corrective_action", &self.corrective_action),
        ]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty() || v.len() > MAX_TEXT)
        .map(|(k, _)| k)
        .collect()
    }
}

/// A verifier's decision on a recorded correction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// True closes the item; false sends it back to the using unit.
    pub accepted: bool,
    #[serde(default)]
    pub note: String,
}

/// Why a step on a hazard was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HazardRefused {
    #[error("no hazard {0}")]
    NotFound(String),
    #[error("the hazard is {0}: {1}")]
    WrongState(String, &'static str),
    #[error("not closable while these are unclear: {}", .0.join(", "))]
    Unclear(Vec<&'static str>),
}

/// How often each instance looks for hazards past their deadline.
pub const OVERDUE_CHECK: Duration = Duration::from_secs(30);

/// Raises the overdue alarms of hazards past their deadline, every [`OVERDUE_CHECK`], until
/// `stop`. Any instance may run it: each alarm is raised once, by a compare-and-set.
pub async fn run_overdue(config: Arc<CentralConfig>, store: Store, stop: CancellationToken) {
    loop {
        match store.raise_overdue_hazards(now_ms(), config.zone()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(hazards = n, "inspection hazards overdue: alarms raised"),
            Err(e) => tracing::error!(error = %e, "overdue hazard check failed; will retry"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(OVERDUE_CHECK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_problem() {
        let report: ReportIn = serde_json::from_value(serde_json::json!({
            "report_no": " ", "gateway": "gw1", "equipment": "s1", "inspected_on": "2026-11-02",
            "conclusion": "pass",
            "hazards": [
                { "description": "brake wear", "severity": "major", "legal_basis": "",
                  "deadline": "2026-11-01", "product_defect": true }
            ]
        }))
        .unwrap();
        let problems: Vec<String> = report.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "report_no is empty",
                "hazard 1: legal_basis is empty",
                "hazard 1: deadline 2026-11-01 is before the inspection on 2026-11-02",
                "hazard 1: a product defect needs the report's manufacturer, whose ledger it goes on",
                "a report that passes lists no hazard; use pass_after_correction",
            ]
        );
        let c = Correction {
            cause: "worn brake lining".into(),
            responsibility: " ".into(),
            corrective_action: String::new(),
        };
        assert_eq!(c.missing(), ["responsibility", "corrective_action"]);
    }
}
