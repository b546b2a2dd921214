//! Risk ranking: where to inspect first. A score per piece of equipment, the sum of explained
//! factors, each a measure times a weight from `[risk]`. [`score`] is pure over one piece of
//! equipment's counted facts (`store/history.rs`) and its maintenance unit's grade; the API
//! ranks the fleet from the store on every request, so it always reflects the data that has
//! arrived. The fleet streams through the ranking: only the page asked for is kept.
//!
//! Where the rules come from, and what is ours:
//! - Risk-based supervision itself (inspect first where accidents, hazard reports, complaints
//!   and key periods point; special checks of high-risk users such as autoclaves and filling
//!   units) is the district plan's and public practice (`domain.md`, "Supervision beyond
//!   alarms"); overdue inspection and elevator liability insurance are the regulator's
//!   indicators; open inspection hazards are the report's findings not yet verified closed
//!   (`hazards.rs`); maintenance-unit grades are the plan's star rating (`scorecard.rs`).
//! - Ours, all configurable: the factors' weights and caps, the window of history (365 days),
//!   what counts as a recurrence (the same rule raised again on the same equipment within 30
//!   days), "due soon" (30 days), the age from which years count (15), and the weight per kind.

use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::config::CentralConfig;
use super::scorecard;
use super::store::history::{EquipmentFacts, FleetFilter, Window};
use super::store::{Store, StoreError};
use super::zone::local_date;
use crate::config::Problem;
use crate::model::EquipmentKind;

/// `[risk]` as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRisk {
    window_days: Option<Spanned<i64>>,
    recurrence_days: Option<Spanned<i64>>,
    due_soon_days: Option<Spanned<i64>>,
    age_from_years: Option<Spanned<i64>>,
    alarm_cap: Option<Spanned<i64>>,
    #[serde(default)]
    weight: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    kind: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    grade: BTreeMap<String, Spanned<f64>>,
}

/// The factors a score is made of, each with its weight's key in `[risk.weight]`.
pub const FACTORS: [&str; 9] = [
    "alarms",
    "recurring_faults",
    "trapped",
    "inspection_overdue",
    "inspection_due_soon",
    "uninsured",
    "age",
    "open_hazards",
    "overdue_hazards",
];

#[derive(Debug, Clone, Serialize)]
pub struct RiskSettings {
    /// How far back alarms and dispatches count.
    #[serde(serialize_with = "as_days")]
    pub window: Duration,
    #[serde(serialize_with = "as_days")]
    pub recurrence: Duration,
    #[serde(serialize_with = "as_days")]
    pub due_soon: Duration,
    /// Years in service from which each further year adds the `age` weight.
    pub age_from_years: i64,
    /// At most this many alarms count.
    pub alarm_cap: i64,
    /// Points per unit of each factor (`FACTORS`).
    pub weight: BTreeMap<String, f64>,
    /// Points for the kind of equipment.
    pub kind: BTreeMap<String, f64>,
    /// Points for the maintenance unit's grade (A to D).
    pub grade: BTreeMap<String, f64>,
}

fn as_days<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs() / 86_400)
}

const DAY_MS: i64 = 86_400_000;

impl Default for RiskSettings {
    fn default() -> Self {
        let weight = [
            ("alarms", 1.0),
            ("recurring_faults", 5.0),
            ("trapped", 4.0),
            ("inspection_overdue", 25.0),
            ("inspection_due_soon", 10.0),
            ("uninsured", 8.0),
            ("age", 1.0),
            ("open_hazards", 10.0),
            ("overdue_hazards", 20.0),
        ];
        let kind = [
            ("elevator", 5.0),
            ("escalator", 5.0),
            ("pressure_vessel", 6.0),
            ("autoclave", 10.0),
            ("gas_cylinder", 2.0),
            ("filling_station", 8.0),
        ];
        let grade = [("A", 0.0), ("B", 3.0), ("C", 8.0), ("D", 15.0)];
        let map = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        RiskSettings {
            window: Duration::from_secs(365 * 86_400),
            recurrence: Duration::from_secs(30 * 86_400),
            due_soon: Duration::from_secs(30 * 86_400),
            age_from_years: 15,
            alarm_cap: 20,
            weight: map(&weight),
            kind: map(&kind),
            grade: map(&grade),
        }
    }
}

impl RawRisk {
    pub fn validate(self, problems: &mut Vec<Problem>) -> RiskSettings {
        let mut s = RiskSettings::default();
        let mut days = |value: &Option<Spanned<i64>>, key: &str, slot: &mut Duration| {
            if let Some(v) = value {
                if *v.get_ref() < 1 {
                    problems.push(Problem::new(v.span(), format!("{key} must be at least 1")));
                } else {
                    *slot = Duration::from_secs(*v.get_ref() as u64 * 86_400);
                }
            }
        };
        days(&self.window_days, "window_days", &mut s.window);
        days(&self.recurrence_days, "recurrence_days", &mut s.recurrence);
        days(&self.due_soon_days, "due_soon_days", &mut s.due_soon);
        for (value, key, slot) in [
            (
                &self.age_from_years,
                "age_from_years",
                &mut s.age_from_years,
            ),
            (&self.alarm_cap, "alarm_cap", &mut s.alarm_cap),
        ] {
            if let Some(v) = value {
                if *v.get_ref() < 0 {
                    problems.push(Problem::new(v.span(), format!("{key} must be 0 or more")));
                } else {
                    *slot = *v.get_ref();
                }
            }
        }
        let kinds: Vec<&str> = EquipmentKind::ALL.iter().map(|k| k.as_str()).collect();
        let tables = [
            ("weight", &self.weight, FACTORS.to_vec(), &mut s.weight),
            ("kind", &self.kind, kinds, &mut s.kind),
            (
                "grade",
                &self.grade,
                scorecard::GRADE_NAMES.to_vec(),
                &mut s.grade,
            ),
        ];
        for (table, given, known, slot) in tables {
            for (key, value) in given {
                let v = *value.get_ref();
                if !known.contains(&key.as_str()) {
                    problems.push(
                        Problem::new(value.span(), format!("[risk.{table}] has no `{key}`"))
                            .hint(format!("known: {}", known.join(", "))),
                    );
                } else if !v.is_finite() || v < 0.0 {
                    problems.push(
                        Problem::new(
                            value.span(),
                            format!("[risk.{table}] {key} = {v} is not a weight"),
                        )
                        .hint("weights are points, 0 or more"),
                    );
                } else {
                    slot.insert(key.clone(), v);
                }
            }
        }
        s
    }
}

/// One factor of a score: its measure, the weight applied, and the points it adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    pub factor: &'static str,
    /// The measure: a count, days overdue or left, years in service, a kind or a grade.
    pub value: serde_json::Value,
    pub weight: f64,
    pub points: f64,
}

/// One piece of equipment's place in the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub rank: usize,
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub name: String,
    pub using_unit: String,
    pub maintenance_unit: Option<String>,
    pub address: String,
    pub score: f64,
    /// The factors that add points, most points first: the reasons.
    pub factors: Vec<Factor>,
}

/// One piece of equipment scored at `today`: its factors that add points, most first. `grade`
/// is its maintenance unit's grade over the window.
pub fn score(
    e: EquipmentFacts,
    grade: Option<&str>,
    settings: &RiskSettings,
    today: NaiveDate,
) -> Ranked {
    let mut factors = factors(&e, grade, settings, today);
    factors.retain(|f| f.points > 0.0);
    factors.sort_by(|a, b| b.points.total_cmp(&a.points));
    Ranked {
        rank: 0,
        score: factors.iter().map(|f| f.points).sum(),
        factors,
        gateway: e.gateway,
        id: e.id,
        kind: e.kind,
        name: e.name,
        using_unit: e.using_unit,
        maintenance_unit: e.maintenance_unit,
        address: e.address,
    }
}

/// What part of the ranked fleet to read: equipment whose address holds `area` (ignoring
/// case, as the alarm list's), of `kind`, of `using_unit`; ranks `offset + 1` to
/// `offset + limit` of those.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub area: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub using_unit: Option<&'a str>,
    pub offset: usize,
    pub limit: usize,
}

impl Default for Selection<'_> {
    /// The whole fleet.
    fn default() -> Self {
        Selection {
            area: None,
            kind: None,
            using_unit: None,
            offset: 0,
            limit: usize::MAX,
        }
    }
}

/// A page of the ranking: how many pieces of equipment the selection holds, and the rows of
/// the page with their ranks (1 is where to inspect first).
#[derive(Debug)]
pub struct Ranking<T> {
    pub total: usize,
    pub rows: Vec<(usize, T)>,
}

/// The ranked selection at `now_ms`: highest score first, ties by gateway and id. The fleet
/// streams from the store; only the rows up to the page's end are kept, each as `keep` makes
/// it. Ranks count within the selection.
pub async fn ranking<T>(
    store: &Store,
    config: &CentralConfig,
    now_ms: i64,
    selection: &Selection<'_>,
    mut keep: impl FnMut(Ranked) -> T,
) -> Result<Ranking<T>, StoreError> {
    let s = &config.risk;
    let window = Window {
        from_ms: now_ms - s.window.as_millis() as i64,
        to_ms: now_ms,
        recurrence_ms: s.recurrence.as_millis() as i64,
    };
    let cards = scorecard::for_grades(store, config, window.from_ms, now_ms, now_ms).await?;
    let grades: BTreeMap<&str, &str> = cards.iter().map(|c| (c.unit.as_str(), c.grade)).collect();
    let today = local_date(now_ms, config.zone());
    let area = selection.area.map(str::to_lowercase);
    let filter = FleetFilter {
        kind: selection.kind,
        using_unit: selection.using_unit,
    };
    let mut top = Top::new(selection.offset.saturating_add(selection.limit));
    let mut total = 0;
    store
        .each_equipment(window, today, filter, |e| {
            if area
                .as_deref()
                .is_some_and(|a| !e.address.to_lowercase().contains(a))
            {
                return;
            }
            total += 1;
            let grade = e
                .maintenance_unit
                .as_deref()
                .and_then(|u| grades.get(u).copied());
            let ranked = score(e, grade, s, today);
            let place = Place {
                score: ranked.score,
                gateway: ranked.gateway.clone(),
                id: ranked.id.clone(),
            };
            top.offer(place, || keep(ranked));
        })
        .await?;
    let rows = top
        .into_sorted()
        .into_iter()
        .enumerate()
        .skip(selection.offset)
        .map(|(i, row)| (i + 1, row))
        .collect();
    Ok(Ranking { total, rows })
}

/// Where a row stands: a higher score first, then gateway and id; `Less` is nearer the top.
#[derive(Debug, PartialEq)]
struct Place {
    score: f64,
    gateway: String,
    id: String,
}

impl Eq for Place {}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.gateway.cmp(&other.gateway))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The `n` best-placed rows offered, each kept as made only while it is among them.
struct Top<T> {
    n: usize,
    /// Its greatest is the worst-placed row kept.
    heap: BinaryHeap<(Place, Kept<T>)>,
}

/// A kept row: compared by its place alone.
struct Kept<T>(T);

impl<T> PartialEq for Kept<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Kept<T> {}
impl<T> PartialOrd for Kept<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Kept<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Top<T> {
    fn new(n: usize) -> Self {
        Top {
            n,
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, place: Place, make: impl FnOnce() -> T) {
        if self.heap.len() < self.n {
            self.heap.push((place, Kept(make())));
        } else if self.heap.peek().is_some_and(|(worst, _)| place < *worst) {
            self.heap.pop();
            self.heap.push((place, Kept(make())));
        }
    }

    /// The kept rows, best first.
    fn into_sorted(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|(_, kept)| kept.0)
            .collect()
    }
}

fn factors(
    e: &EquipmentFacts,
    grade: Option<&str>,
    s: &RiskSettings,
    today: NaiveDate,
) -> Vec<Factor> {
    let w = |key: &str| s.weight.get(key).copied().unwrap_or(0.0);
    let per = |factor: &'static str, n: i64| Factor {
        factor,
        value: n.into(),
        weight: w(factor),
        points: n as f64 * w(factor),
    };
    let mut out = vec![
        Factor {
            factor: "alarms",
            value: e.alarms.into(),
            weight: w("alarms"),
            points: e.alarms.min(s.alarm_cap) as f64 * w("alarms"),
        },
        per("recurring_faults", e.recurring),
        per("trapped", e.trapped),
        per("open_hazards", e.open_hazards),
        per("overdue_hazards", e.overdue_hazards),
    ];
    if let Some(next) = e.next_inspection {
        let days_left = (next - today).num_days();
        if days_left < 0 {
            out.push(Factor {
                factor: "inspection_overdue",
                value: (-days_left).into(),
                weight: w("inspection_overdue"),
                points: w("inspection_overdue"),
            });
        } else if days_left * DAY_MS <= s.due_soon.as_millis() as i64 {
            out.push(Factor {
                factor: "inspection_due_soon",
                value: days_left.into(),
                weight: w("inspection_due_soon"),
                points: w("inspection_due_soon"),
            });
        }
    }
    if scorecard::is_elevator(&e.kind) && e.insured != Some(true) {
        out.push(Factor {
            factor: "uninsured",
            value: 1.into(),
            weight: w("uninsured"),
            points: w("uninsured"),
        });
    }
    if let Some(since) = e.in_service {
        let years = i64::from(today.years_since(since).unwrap_or(0));
        out.push(Factor {
            factor: "age",
            value: years.into(),
            weight: w("age"),
            points: (years - s.age_from_years).max(0) as f64 * w("age"),
        });
    }
    let kind_weight = s.kind.get(&e.kind).copied().unwrap_or(0.0);
    out.push(Factor {
        factor: "kind",
        value: e.kind.clone().into(),
        weight: kind_weight,
        points: kind_weight,
    });
    if let Some(grade) = grade {
        let g = s.grade.get(grade).copied().unwrap_or(0.0);
        out.push(Factor {
            factor: "maintenance_grade",
            value: grade.into(),
            weight: g,
            points: g,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let raw: RawRisk = toml::from_str(text).unwrap();
        let mut found = Vec::new();
        raw.validate(&mut found);
        found.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn each_mistake_in_risk_weights_is_named() {
        assert_eq!(problems(""), Vec::<String>::new());
        assert_eq!(
            problems("window_days = 0\n[weight]\nalarm = 1.0\ntrapped = -2.0\n[kind]\nlift = 3.0\n[grade]\nE = 1.0\n"),
            vec![
                "window_days must be at least 1",
                "[risk.weight] has no `alarm`",
                "[risk.weight] trapped = -2 is not a weight",
                "[risk.kind] has no `lift`",
                "[risk.grade] has no `E`",
            ]
        );
    }
}
