//! Maintenance-unit scorecards: the star rating of the district plan, from the rescue and
//! registry data central already holds. Pure functions over the facts the store counts
//! (`store/history.rs`).
//!
//! Where the rules come from, and what is ours:
//! - The measures are the ones cities grade maintenance units by from 96333 rescue data (first-
//!   and second-level rescues, response, trapped faults, insurance coverage: `domain.md`,
//!   "Supervision beyond alarms"); the 3-minute response and 30-minute arrival limits are
//!   `[dispatch] respond_within_s` and `arrive_within_s` (the KPIs in force in Chinese cities).
//! - Ours: which dispatch counts (like `/api/v1/indicators`: an open one counts once its limit has
//!   passed; a false alarm is left out of arrival), that times are those of the unit called
//!   first (level 0), that "elevators" are elevators and escalators (both are 电梯 in the
//!   special-equipment catalogue), percentiles interpolated between ranks (as a spreadsheet's
//!   PERCENTILE.INC), the grade thresholds (`[scorecard.grade.A|B|C]`, D is the rest) and that a
//!   measure without data (no dispatch, no elevator) does not lower a grade.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::config::CentralConfig;
use super::store::history::{DispatchFact, UnitFacts, Window, ELEVATOR_KINDS};
use super::store::{Store, StoreError};
use super::zone::{day_start_ms, local_date};
use crate::config::Problem;

/// `[scorecard]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScorecard {
    recurrence_days: Option<Spanned<i64>>,
    /// Removed: months follow `[central] time_zone`. Read only to say so.
    utc_offset_minutes: Option<Spanned<toml::Value>>,
    #[serde(default)]
    grade: BTreeMap<String, Spanned<RawGrade>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrade {
    min_response_rate: Option<f64>,
    min_arrival_rate: Option<f64>,
    max_trapped_per_100: Option<f64>,
    max_second_level_rate: Option<f64>,
    min_insurance_rate: Option<f64>,
}

/// What a unit must reach for one grade.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GradeThreshold {
    pub min_response_rate: f64,
    pub min_arrival_rate: f64,
    pub max_trapped_per_100: f64,
    pub max_second_level_rate: f64,
    pub min_insurance_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScorecardSettings {
    /// A fault raised again on the same equipment within this time is a recurrence.
    #[serde(serialize_with = "as_days")]
    pub recurrence: Duration,
    /// Thresholds of grades A, B and C, strictest first; a unit that meets none is D.
    pub grades: [GradeThreshold; 3],
}

fn as_days<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs() / 86_400)
}

pub const GRADE_NAMES: [&str; 4] = ["A", "B", "C", "D"];

impl Default for ScorecardSettings {
    fn default() -> Self {
        let g = |response, trapped, second, insurance| GradeThreshold {
            min_response_rate: response,
            min_arrival_rate: response,
            max_trapped_per_100: trapped,
            max_second_level_rate: second,
            min_insurance_rate: insurance,
        };
        ScorecardSettings {
            recurrence: Duration::from_secs(30 * 86_400),
            grades: [
                g(0.95, 10.0, 0.02, 0.95),
                g(0.85, 20.0, 0.05, 0.85),
                g(0.70, 40.0, 0.10, 0.70),
            ],
        }
    }
}

impl RawScorecard {
    pub fn validate(self, problems: &mut Vec<Problem>) -> ScorecardSettings {
        let mut settings = ScorecardSettings::default();
        if let Some(days) = &self.recurrence_days {
            if *days.get_ref() < 1 {
                problems.push(Problem::new(
                    days.span(),
                    "recurrence_days must be at least 1",
                ));
            } else {
                settings.recurrence = Duration::from_secs(*days.get_ref() as u64 * 86_400);
            }
        }
        if let Some(offset) = &self.utc_offset_minutes {
            problems.push(
                Problem::new(
                    offset.span(),
                    "utc_offset_minutes is no longer read: months and days begin at local midnight in [central] time_zone",
                )
                .hint("remove it, and set [central] time_zone = \"Asia/Shanghai\" (an IANA zone; that is the default)"),
            );
        }
        for (name, raw) in &self.grade {
            let Some(i) = GRADE_NAMES[..3].iter().position(|g| g == name) else {
                problems.push(
                    Problem::new(raw.span(), format!("no grade `{name}` to set"))
                        .hint("set [scorecard.grade.A], B or C; a unit that meets none is D"),
                );
                continue;
            };
            let r = raw.get_ref();
            let t = &mut settings.grades[i];
            let rates = [
                (r.min_response_rate, &mut t.min_response_rate),
                (r.min_arrival_rate, &mut t.min_arrival_rate),
                (r.max_second_level_rate, &mut t.max_second_level_rate),
                (r.min_insurance_rate, &mut t.min_insurance_rate),
            ];
            for (value, slot) in rates {
                if let Some(v) = value {
                    if (0.0..=1.0).contains(&v) {
                        *slot = v;
                    } else {
                        problems.push(Problem::new(
                            raw.span(),
                            format!("grade {name}: rates are between 0 and 1, not {v}"),
                        ));
                    }
                }
            }
            if let Some(v) = r.max_trapped_per_100 {
                if v.is_finite() && v >= 0.0 {
                    t.max_trapped_per_100 = v;
                } else {
                    problems.push(Problem::new(
                        raw.span(),
                        format!("grade {name}: max_trapped_per_100 must be 0 or more, not {v}"),
                    ));
                }
            }
        }
        // A better grade must ask at least as much as a worse one.
        for i in 0..2 {
            let (better, worse) = (settings.grades[i], settings.grades[i + 1]);
            let ordered = better.min_response_rate >= worse.min_response_rate
                && better.min_arrival_rate >= worse.min_arrival_rate
                && better.max_trapped_per_100 <= worse.max_trapped_per_100
                && better.max_second_level_rate <= worse.max_second_level_rate
                && better.min_insurance_rate >= worse.min_insurance_rate;
            if !ordered {
                let span = self
                    .grade
                    .get(GRADE_NAMES[i])
                    .or(self.grade.get(GRADE_NAMES[i + 1]))
                    .map(Spanned::span);
                problems.push(
                    Problem::new(
                        span,
                        format!(
                            "grade {} asks less than grade {} of some measure",
                            GRADE_NAMES[i],
                            GRADE_NAMES[i + 1]
                        ),
                    )
                    .hint("each minimum of A ≥ B ≥ C, each maximum of A ≤ B ≤ C"),
                );
            }
        }
        settings
    }
}

/// The dispatch limits a scorecard measures against (`[dispatch]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub respond_within_ms: i64,
    pub arrive_within_ms: i64,
}

/// A measure that fell short of the next better grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    pub grade: &'static str,
    pub measure: &'static str,
    pub value: f64,
    pub limit: f64,
}

/// One maintenance unit over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub unit: String,
    /// Elevators and escalators it maintains (the registry now).
    pub elevators: i64,
    pub insured: i64,
    pub insurance_rate: Option<f64>,
    /// Trapped-passenger incidents raised in the period on the elevators it maintains.
    pub trapped: i64,
    pub trapped_per_100: Option<f64>,
    /// Dispatches that called it first, created in the period.
    pub dispatches: i64,
    pub responses_counted: i64,
    pub responded_in_time: i64,
    pub response_rate: Option<f64>,
    pub arrivals_counted: i64,
    pub arrived_in_time: i64,
    pub arrival_rate: Option<f64>,
    pub response_median_s: Option<f64>,
    pub response_p90_s: Option<f64>,
    pub arrival_median_s: Option<f64>,
    pub arrival_p90_s: Option<f64>,
    /// Dispatches escalated beyond it to a second-level rescuer.
    pub second_level: i64,
    pub second_level_rate: Option<f64>,
    /// Faults raised in the period on its equipment that were raised on the same equipment
    /// within `recurrence` before.
    pub recurring_faults: i64,
    pub grade: &'static str,
    /// What kept it from the next better grade.
    pub shortfalls: Vec<Shortfall>,
}

/// The percentile `p` (0..=1) of sorted `values` (seconds), interpolated between ranks and
/// rounded to the millisecond the times were stored in.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let value = sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64);
    Some((value * 1000.0).round() / 1000.0)
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Whether equipment of `kind` counts as an elevator here.
pub fn is_elevator(kind: &str) -> bool {
    ELEVATOR_KINDS.contains(&kind)
}

/// The scorecards of every maintenance unit at `now_ms`, best grade first and then by name:
/// `units` counted over the period, `dispatches` those created in it. A unit that maintains
/// nothing but was called first by a dispatch has a card too.
pub fn scorecards(
    units: &[UnitFacts],
    dispatches: &[DispatchFact],
    settings: &ScorecardSettings,
    limits: Limits,
    now_ms: i64,
) -> Vec<Scorecard> {
    let mut by_unit: BTreeMap<&str, (Option<&UnitFacts>, Vec<&DispatchFact>)> = units
        .iter()
        .map(|u| (u.unit.as_str(), (Some(u), Vec::new())))
        .collect();
    for d in dispatches {
        if let Some(unit) = d.first_unit.as_deref() {
            by_unit.entry(unit).or_default().1.push(d);
        }
    }
    let mut cards: Vec<Scorecard> = by_unit
        .into_iter()
        .map(|(unit, (facts, dispatches))| card(unit, facts, &dispatches, limits, now_ms))
        .map(|mut card| {
            (card.grade, card.shortfalls) = grade(&card, &settings.grades);
            card
        })
        .collect();
    cards.sort_by(|a, b| a.grade.cmp(b.grade).then_with(|| a.unit.cmp(&b.unit)));
    cards
}

/// One unit's measures, not yet graded.
fn card(
    unit: &str,
    facts: Option<&UnitFacts>,
    dispatches: &[&DispatchFact],
    limits: Limits,
    now_ms: i64,
) -> Scorecard {
    let (n_elevators, insured, trapped, recurring_faults) = facts
        .map(|f| (f.elevators, f.insured, f.trapped, f.recurring_faults))
        .unwrap_or_default();
    let (mut responses_counted, mut responded_in_time) = (0, 0);
    let (mut arrivals_counted, mut arrived_in_time) = (0, 0);
    let (mut response_s, mut arrival_s) = (Vec::new(), Vec::new());
    for d in dispatches {
        let response = d.first_response_ms.map(|t| t - d.created_ms);
        if response.is_some() || now_ms - d.created_ms > limits.respond_within_ms {
            responses_counted += 1;
            responded_in_time += i64::from(response.is_some_and(|r| r <= limits.respond_within_ms));
        }
        let arrival = d.first_arrival_ms.map(|t| t - d.created_ms);
        if d.status != "false_alarm"
            && (arrival.is_some() || now_ms - d.created_ms > limits.arrive_within_ms)
        {
            arrivals_counted += 1;
            arrived_in_time += i64::from(arrival.is_some_and(|a| a <= limits.arrive_within_ms));
        }
        response_s.extend(response.map(|ms| ms as f64 / 1000.0));
        arrival_s.extend(arrival.map(|ms| ms as f64 / 1000.0));
    }
    response_s.sort_by(f64::total_cmp);
    arrival_s.sort_by(f64::total_cmp);
    let second_level = dispatches.iter().filter(|d| d.level >= 1).count() as i64;
    let n_dispatches = dispatches.len() as i64;
    Scorecard {
        unit: unit.to_owned(),
        elevators: n_elevators,
        insured,
        insurance_rate: ratio(insured, n_elevators),
        trapped,
        trapped_per_100: (n_elevators > 0).then(|| trapped as f64 * 100.0 / n_elevators as f64),
        dispatches: n_dispatches,
        responses_counted,
        responded_in_time,
        response_rate: ratio(responded_in_time, responses_counted),
        arrivals_counted,
        arrived_in_time,
        arrival_rate: ratio(arrived_in_time, arrivals_counted),
        response_median_s: percentile(&response_s, 0.5),
        response_p90_s: percentile(&response_s, 0.9),
        arrival_median_s: percentile(&arrival_s, 0.5),
        arrival_p90_s: percentile(&arrival_s, 0.9),
        second_level,
        second_level_rate: ratio(second_level, n_dispatches),
        recurring_faults,
        grade: "D",
        shortfalls: Vec::new(),
    }
}

/// The best grade whose thresholds the card meets, and what it missed of the grade above.
fn grade(card: &Scorecard, grades: &[GradeThreshold; 3]) -> (&'static str, Vec<Shortfall>) {
    let missed = |i: usize| {
        let t = grades[i];
        let name = GRADE_NAMES[i];
        let mut out = Vec::new();
        let mut at_least = |measure, value: Option<f64>, limit: f64| {
            if let Some(v) = value.filter(|v| *v < limit) {
                out.push(Shortfall {
                    grade: name,
                    measure,
                    value: v,
                    limit,
                });
            }
        };
        at_least("response_rate", card.response_rate, t.min_response_rate);
        at_least("arrival_rate", card.arrival_rate, t.min_arrival_rate);
        at_least("insurance_rate", card.insurance_rate, t.min_insurance_rate);
        let mut at_most = |measure, value: Option<f64>, limit: f64| {
            if let Some(v) = value.filter(|v| *v > limit) {
                out.push(Shortfall {
                    grade: name,
                    measure,
                    value: v,
                    limit,
                });
            }
        };
        at_most(
            "trapped_per_100",
            card.trapped_per_100,
            t.max_trapped_per_100,
        );
        at_most(
            "second_level_rate",
            card.second_level_rate,
            t.max_second_level_rate,
        );
        out
    };
    let mut above = Vec::new();
    for (i, name) in GRADE_NAMES.iter().take(3).enumerate() {
        let short = missed(i);
        if short.is_empty() {
            return (name, above);
        }
        above = short;
    }
    ("D", above)
}

/// A period scorecards are computed over: `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// `2026-11` for a month, `2026-11-01..2026-11-15` for days.
    pub label: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Period {
    /// The calendar month `text` (`YYYY-MM`) in `zone`: from local midnight on its first day
    /// to local midnight on the next month's.
    pub fn month(text: &str, zone: Tz) -> Option<Period> {
        let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
        let next = first.checked_add_months(chrono::Months::new(1))?;
        Some(Period {
            label: first.format("%Y-%m").to_string(),
            from_ms: day_start_ms(first, zone),
            to_ms: day_start_ms(next, zone),
        })
    }

    /// The month that holds `now_ms` in `zone`.
    pub fn month_of(now_ms: i64, zone: Tz) -> Period {
        let local = local_date(now_ms, zone);
        Period::month(&local.format("%Y-%m").to_string(), zone).expect("a month that exists")
    }
}

/// The scorecards of `period`, read from the store at `now_ms`.
pub async fn for_period(
    store: &Store,
    config: &CentralConfig,
    period: &Period,
    now_ms: i64,
) -> Result<Vec<Scorecard>, StoreError> {
    over(store, config, period.from_ms, period.to_ms, now_ms).await
}

/// The scorecards of `[from_ms, to_ms)`, read from the store at `now_ms`: the store counts
/// each unit's fleet and faults, and reads the period's dispatches as a few numbers each.
pub async fn over(
    store: &Store,
    config: &CentralConfig,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<Vec<Scorecard>, StoreError> {
    read(store, config, (from_ms, to_ms), now_ms, true).await
}

/// The scorecards of `[from_ms, to_ms)` for their grades alone: their recurring faults, which
/// no grade reads, are left at 0 and not counted.
pub async fn for_grades(
    store: &Store,
    config: &CentralConfig,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<Vec<Scorecard>, StoreError> {
    read(store, config, (from_ms, to_ms), now_ms, false).await
}

async fn read(
    store: &Store,
    config: &CentralConfig,
    (from_ms, to_ms): (i64, i64),
    now_ms: i64,
    recurrences: bool,
) -> Result<Vec<Scorecard>, StoreError> {
    let settings = &config.scorecard;
    let window = Window {
        from_ms,
        to_ms,
        recurrence_ms: settings.recurrence.as_millis() as i64,
    };
    let units = store.unit_facts(window, recurrences).await?;
    let dispatches = store.dispatch_facts(from_ms, to_ms).await?;
    Ok(scorecards(
        &units,
        &dispatches,
        settings,
        Limits::of(config),
        now_ms,
    ))
}

impl Limits {
    pub fn of(config: &CentralConfig) -> Limits {
        Limits {
            respond_within_ms: config.dispatch.respond_within.as_millis() as i64,
            arrive_within_ms: config.dispatch.arrive_within.as_millis() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_removed_offset_key_points_to_the_time_zone() {
        let text = "[central]\ninstance = \"a\"\n[store]\nurl = \"sqlite://c.db\"\n[scorecard]\nutc_offset_minutes = 480\n";
        let e = crate::central::config::parse(text, std::path::Path::new("c.toml")).unwrap_err();
        let p = &e.problems()[0];
        assert_eq!(
            (p.line, p.message.as_str()),
            (
                6,
                "utc_offset_minutes is no longer read: months and days begin at local midnight in [central] time_zone"
            )
        );
        assert!(
            p.hint
                .as_deref()
                .is_some_and(|h| h.contains("[central] time_zone")),
            "{:?}",
            p.hint
        );
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [60.0, 120.0, 240.0, 600.0];
        assert_eq!(percentile(&v, 0.5), Some(180.0));
        assert_eq!(percentile(&v, 0.9), Some(492.0));
        assert_eq!(percentile(&[42.0], 0.9), Some(42.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_month_begins_at_local_midnight() {
        let shanghai = chrono_tz::Asia::Shanghai;
        let p = Period::month("2026-11", shanghai).unwrap();
        assert_eq!(p.label, "2026-11");
        assert_eq!(
            crate::central::store::rfc3339(p.from_ms),
            "2026-10-31T16:00:00.000Z"
        );
        assert_eq!(
            crate::central::store::rfc3339(p.to_ms),
            "2026-11-30T16:00:00.000Z"
        );
        assert_eq!(Period::month_of(p.to_ms - 1, shanghai), p);
        assert_eq!(Period::month("2026-13", shanghai), None);
    }

    #[test]
    fn grades_take_the_best_met_and_name_what_the_next_missed() {
        let settings = ScorecardSettings::default();
        let mut card = Scorecard {
            unit: "u".into(),
            elevators: 10,
            insured: 10,
            insurance_rate: Some(1.0),
            trapped: 1,
            trapped_per_100: Some(10.0),
            dispatches: 10,
            responses_counted: 10,
            responded_in_time: 10,
            response_rate: Some(1.0),
            arrivals_counted: 10,
            arrived_in_time: 10,
            arrival_rate: Some(1.0),
            response_median_s: None,
            response_p90_s: None,
            arrival_median_s: None,
            arrival_p90_s: None,
            second_level: 0,
            second_level_rate: Some(0.0),
            recurring_faults: 0,
            grade: "D",
            shortfalls: vec![],
        };
        assert_eq!(grade(&card, &settings.grades), ("A", vec![]));
        card.response_rate = Some(0.8);
        let (g, short) = grade(&card, &settings.grades);
        assert_eq!(g, "C");
        assert_eq!(
            short,
            vec![Shortfall {
                grade: "B",
                measure: "response_rate",
                value: 0.8,
                limit: 0.85
            }]
        );
        card.response_rate = None;
        assert_eq!(
            grade(&card, &settings.grades).0,
            "A",
            "no data lowers no grade"
        );
        card.second_level_rate = Some(0.5);
        assert_eq!(grade(&card, &settings.grades).0, "D");
    }
}
