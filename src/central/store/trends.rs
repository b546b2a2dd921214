//! The regulator's indicators over time and by group (`GET /api/v1/indicators/trends`): weekly
//! series of alarms, trapped incidents, response and arrival rates, overdue inspections,
//! insurance and labelling rates, and the same figures broken down by area, using unit and
//! maintenance unit. Read-only; the counting is pure ([`Trends::compute`]) and tested here.
//!
//! Weeks start on Monday 00:00 in the zone the page gives as a UTC offset. What central keeps
//! no history of is said so, not invented: overdue inspections per week are counted from the
//! registry's current dates (equipment due before the week's end), and the insurance rate is
//! known for the current week only (earlier weeks are null).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{rfc3339, Store, StoreError};

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One piece of equipment as the breakdowns group it.
#[derive(Debug, Clone, Default)]
pub struct TrendEquipment {
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub using_unit: String,
    pub maintenance_unit: Option<String>,
    pub address: String,
    pub next_inspection: Option<String>,
    pub insured: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct TrendAlarm {
    pub gateway: String,
    pub equipment: String,
    pub raised_ms: i64,
    pub trapped: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TrendDispatch {
    pub gateway: String,
    pub equipment: String,
    pub created_ms: i64,
    pub responded_ms: Option<i64>,
    pub on_site_ms: Option<i64>,
    pub false_alarm: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TrendFill {
    pub cylinder_code: String,
    pub labelled: bool,
    pub time_ms: i64,
}

/// What the counting reads.
#[derive(Debug, Clone, Default)]
pub struct TrendInput {
    pub equipment: Vec<TrendEquipment>,
    pub alarms: Vec<TrendAlarm>,
    pub dispatches: Vec<TrendDispatch>,
    pub fills: Vec<TrendFill>,
}

/// A rate with what it is made of; `rate` is null when nothing counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rate {
    pub part: i64,
    pub total: i64,
    pub rate: Option<f64>,
}

impl Rate {
    fn add(&mut self, counted: bool, hit: bool) {
        if counted {
            self.total += 1;
            self.part += i64::from(hit);
        }
    }
    fn done(mut self) -> Self {
        self.rate = (self.total > 0).then(|| self.part as f64 / self.total as f64);
        self
    }
}

/// The weekly series, one value per week (oldest first).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub alarms: Vec<i64>,
    pub trapped: Vec<i64>,
    pub response_rate: Vec<Rate>,
    pub arrival_rate: Vec<Rate>,
    pub overdue_rate: Vec<Rate>,
    pub insurance_rate: Vec<Option<Rate>>,
    pub labelling_rate: Vec<Rate>,
}

/// One group of a breakdown, over the whole period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupRow {
    pub group: String,
    pub equipment: i64,
    pub alarms: i64,
    pub trapped: i64,
    pub response_rate: Rate,
    pub arrival_rate: Rate,
    pub overdue: Rate,
    pub insured: Rate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trends {
    /// Each week's start, RFC 3339 (UTC).
    pub weeks: Vec<String>,
    pub series: Series,
    /// `area`, `using_unit` and `maintenance_unit`, each a list of groups by name.
    pub breakdowns: BTreeMap<&'static str, Vec<GroupRow>>,
}

/// The area an address lies in: its first part before a comma, or up to the first street,
/// town or road name in a Chinese address (`…街道`, `…镇`, `…乡`, `…路`); the whole address
/// otherwise.
pub fn area_of(address: &str) -> String {
    let address = address.trim();
    if let Some(i) = address.find([',', '，']) {
        return address[..i].trim().to_owned();
    }
    for marker in ["街道", "镇", "乡", "路"] {
        if let Some(i) = address.find(marker) {
            return address[..i + marker.len()].to_owned();
        }
    }
    address.to_owned()
}

/// The date (YYYY-MM-DD) of `ms` at `offset_ms` from UTC.
fn date_at(ms: i64, offset_ms: i64) -> String {
    rfc3339(ms + offset_ms)[..10].to_owned()
}

impl Trends {
    /// The last `weeks` weeks up to `now` (the current week last), with weeks starting Monday
    /// 00:00 at `offset_ms` from UTC; `respond_ms` and `arrive_ms` are the dispatch deadlines.
    pub fn compute(
        input: &TrendInput,
        now: i64,
        weeks: usize,
        offset_ms: i64,
        respond_ms: i64,
        arrive_ms: i64,
    ) -> Trends {
        // 1970-01-01 was a Thursday: Monday 00:00 local is 4 days after a week boundary.
        let local = now + offset_ms;
        let this_week = (local - 4 * DAY_MS).div_euclid(WEEK_MS) * WEEK_MS + 4 * DAY_MS - offset_ms;
        let starts: Vec<i64> = (0..weeks as i64)
            .rev()
            .map(|k| this_week - k * WEEK_MS)
            .collect();
        let from = starts[0];
        let week_of = |t: i64| (t >= from && t <= now).then(|| ((t - from) / WEEK_MS) as usize);
        let mut s = Series {
            alarms: vec![0; weeks],
            trapped: vec![0; weeks],
            response_rate: vec![Rate::default(); weeks],
            arrival_rate: vec![Rate::default(); weeks],
            overdue_rate: vec![Rate::default(); weeks],
            insurance_rate: vec![None; weeks],
            labelling_rate: vec![Rate::default(); weeks],
        };
        for a in &input.alarms {
            if let Some(w) = week_of(a.raised_ms) {
                s.alarms[w] += 1;
                s.trapped[w] += i64::from(a.trapped);
            }
        }
        // A dispatch counts once its deadline passed or the step was taken (as the cards do).
        let responded = |d: &TrendDispatch| {
            let counted = d.responded_ms.is_some() || now - d.created_ms > respond_ms;
            let hit = d
                .responded_ms
                .is_some_and(|t| t - d.created_ms <= respond_ms);
            (counted, hit)
        };
        let arrived = |d: &TrendDispatch| {
            let counted =
                !d.false_alarm && (d.on_site_ms.is_some() || now - d.created_ms > arrive_ms);
            let hit = d.on_site_ms.is_some_and(|t| t - d.created_ms <= arrive_ms);
            (counted, hit)
        };
        for d in &input.dispatches {
            if let Some(w) = week_of(d.created_ms) {
                let (c, h) = responded(d);
                s.response_rate[w].add(c, h);
                let (c, h) = arrived(d);
                s.arrival_rate[w].add(c, h);
            }
        }
        for (w, start) in starts.iter().enumerate() {
            let end = date_at((start + WEEK_MS).min(now), offset_ms);
            for e in &input.equipment {
                if let Some(due) = &e.next_inspection {
                    s.overdue_rate[w].add(true, due.as_str() < end.as_str());
                }
            }
        }
        let mut insured = Rate::default();
        for e in input.equipment.iter().filter(|e| e.kind == "elevator") {
            insured.add(true, e.insured == Some(true));
        }
        s.insurance_rate[weeks - 1] = Some(insured.done());
        let mut seen: Vec<BTreeMap<&str, bool>> = vec![BTreeMap::new(); weeks];
        for f in &input.fills {
            if let Some(w) = week_of(f.time_ms) {
                *seen[w].entry(f.cylinder_code.as_str()).or_default() |= f.labelled;
            }
        }
        for (w, codes) in seen.iter().enumerate() {
            for labelled in codes.values() {
                s.labelling_rate[w].add(true, *labelled);
            }
        }
        for rates in [
            &mut s.response_rate,
            &mut s.arrival_rate,
            &mut s.overdue_rate,
            &mut s.labelling_rate,
        ] {
            for r in rates.iter_mut() {
                *r = r.done();
            }
        }

        // Breakdowns over the whole period.
        let today = date_at(now, offset_ms);
        let key = |e: &TrendEquipment, by: &str| match by {
            "area" => area_of(&e.address),
            "using_unit" => e.using_unit.clone(),
            _ => e.maintenance_unit.clone().unwrap_or_default(),
        };
        let mut breakdowns = BTreeMap::new();
        for by in ["area", "using_unit", "maintenance_unit"] {
            let mut groups: BTreeMap<String, GroupRow> = BTreeMap::new();
            let mut group_of: BTreeMap<(&str, &str), String> = BTreeMap::new();
            for e in &input.equipment {
                let name = key(e, by);
                group_of.insert((e.gateway.as_str(), e.id.as_str()), name.clone());
                let g = groups.entry(name.clone()).or_default();
                g.group = name;
                g.equipment += 1;
                if let Some(due) = &e.next_inspection {
                    g.overdue.add(true, due.as_str() < today.as_str());
                }
                g.insured.add(e.kind == "elevator", e.insured == Some(true));
            }
            for a in input
                .alarms
                .iter()
                .filter(|a| week_of(a.raised_ms).is_some())
            {
                let Some(name) = group_of.get(&(a.gateway.as_str(), a.equipment.as_str())) else {
                    continue;
                };
                let g = groups.get_mut(name).expect("grouped above");
                g.alarms += 1;
                g.trapped += i64::from(a.trapped);
            }
            for d in input
                .dispatches
                .iter()
                .filter(|d| week_of(d.created_ms).is_some())
            {
                let Some(name) = group_of.get(&(d.gateway.as_str(), d.equipment.as_str())) else {
                    continue;
                };
                let g = groups.get_mut(name).expect("grouped above");
                let (c, h) = responded(d);
                g.response_rate.add(c, h);
                let (c, h) = arrived(d);
                g.arrival_rate.add(c, h);
            }
            let mut rows: Vec<GroupRow> = groups
                .into_values()
                .map(|mut g| {
                    g.response_rate = g.response_rate.done();
                    g.arrival_rate = g.arrival_rate.done();
                    g.overdue = g.overdue.done();
                    g.insured = g.insured.done();
                    g
                })
                .collect();
            // The busiest groups first.
            rows.sort_by(|a, b| b.alarms.cmp(&a.alarms).then(a.group.cmp(&b.group)));
            breakdowns.insert(by, rows);
        }
        Trends {
            weeks: starts.iter().map(|t| rfc3339(*t)).collect(),
            series: s,
            breakdowns,
        }
    }
}

impl Store {
    /// What [`Trends::compute`] reads: the registry, and the alarms, dispatches and fills since
    /// `from` (ms).
    pub async fn trend_input(&self, from: i64) -> Result<TrendInput, StoreError> {
        let equipment = sqlx::query(
            "SELECT gateway, id, kind, using_unit, maintenance_unit, address, next_inspection, insured FROM equipment",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TrendEquipment {
                gateway: r.try_get(0)?,
                id: r.try_get(1)?,
                kind: r.try_get(2)?,
                using_unit: r.try_get(3)?,
                maintenance_unit: r.try_get(4)?,
                address: r.try_get(5)?,
                next_inspection: r.try_get(6)?,
                insured: r.try_get::<Option<i64>, _>(7)?.map(|v| v != 0),
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let alarms = sqlx::query(
            "SELECT gateway, equipment, raised_ms, trapped FROM alarms WHERE raised_ms >= $1",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TrendAlarm {
                gateway: r.try_get(0)?,
                equipment: r.try_get(1)?,
                raised_ms: r.try_get(2)?,
                trapped: r.try_get::<i64, _>(3)? != 0,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let dispatches = sqlx::query(
            "SELECT gateway, equipment, created_ms, responded_ms, on_site_ms, status FROM dispatches WHERE created_ms >= $1",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TrendDispatch {
                gateway: r.try_get(0)?,
                equipment: r.try_get(1)?,
                created_ms: r.try_get(2)?,
                responded_ms: r.try_get(3)?,
                on_site_ms: r.try_get(4)?,
                false_alarm: r.try_get::<String, _>(5)? == "false_alarm",
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let fills = sqlx::query(
            "SELECT cylinder_code, labelled, time_ms FROM fill_records WHERE time_ms >= $1",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TrendFill {
                cylinder_code: r.try_get(0)?,
                labelled: r.try_get::<i64, _>(1)? != 0,
                time_ms: r.try_get(2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        Ok(TrendInput {
            equipment,
            alarms,
            dispatches,
            fills,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 12:00 China time (a Wednesday), in UTC ms.
    const NOW: i64 = 1_796_184_000_000;
    const CST: i64 = 8 * 3600 * 1000;

    fn lift(id: &str, address: &str, due: &str, insured: bool) -> TrendEquipment {
        TrendEquipment {
            gateway: "gw".into(),
            id: id.into(),
            kind: "elevator".into(),
            using_unit: format!("unit of {id}"),
            maintenance_unit: Some("Shenlong".into()),
            address: address.into(),
            next_inspection: Some(due.into()),
            insured: Some(insured),
        }
    }

    #[test]
    fn weeks_start_on_monday_in_the_zone() {
        let t = Trends::compute(&TrendInput::default(), NOW, 3, CST, 180_000, 1_800_000);
        // Monday 2026-11-30 00:00 China time is 2026-11-29 16:00 UTC.
        assert_eq!(
            t.weeks,
            [
                "2026-11-15T16:00:00.000Z",
                "2026-11-22T16:00:00.000Z",
                "2026-11-29T16:00:00.000Z"
            ]
        );
        assert_eq!(rfc3339(NOW), "2026-12-02T04:00:00.000Z");
    }

    #[test]
    fn counts_land_in_their_week_and_group() {
        let monday = NOW - 2 * DAY_MS - 12 * 3600 * 1000;
        let input = TrendInput {
            equipment: vec![
                lift("a", "长江路街道幸福小区3号楼", "2026-11-30", true),
                lift("b", "长江路街道幸福小区5号楼", "2027-06-30", false),
                lift("c", "Demo district, tower 2", "2026-12-20", true),
            ],
            alarms: vec![
                TrendAlarm {
                    gateway: "gw".into(),
                    equipment: "a".into(),
                    raised_ms: monday + 1000,
                    trapped: true,
                },
                TrendAlarm {
                    gateway: "gw".into(),
                    equipment: "b".into(),
                    raised_ms: monday - 1000,
                    trapped: false,
                },
                TrendAlarm {
                    gateway: "gw".into(),
                    equipment: "c".into(),
                    raised_ms: monday - 20 * DAY_MS,
                    trapped: false,
                },
            ],
            dispatches: vec![
                // Responded in 2 min, on site in 40 min: in time, then late.
                TrendDispatch {
                    gateway: "gw".into(),
                    equipment: "a".into(),
                    created_ms: monday + 1000,
                    responded_ms: Some(monday + 121_000),
                    on_site_ms: Some(monday + 2_401_000),
                    false_alarm: false,
                },
                // Created a minute ago: neither deadline passed, nothing counted yet.
                TrendDispatch {
                    gateway: "gw".into(),
                    equipment: "b".into(),
                    created_ms: NOW - 60_000,
                    responded_ms: None,
                    on_site_ms: None,
                    false_alarm: false,
                },
            ],
            fills: vec![
                TrendFill {
                    cylinder_code: "X1".into(),
                    labelled: true,
                    time_ms: monday + 5,
                },
                TrendFill {
                    cylinder_code: "X1".into(),
                    labelled: true,
                    time_ms: monday + 6,
                },
                TrendFill {
                    cylinder_code: "X2".into(),
                    labelled: false,
                    time_ms: monday + 7,
                },
            ],
        };
        let t = Trends::compute(&input, NOW, 2, CST, 180_000, 1_800_000);
        assert_eq!(t.series.alarms, [1, 1]);
        assert_eq!(t.series.trapped, [0, 1]);
        assert_eq!(
            t.series.response_rate[1],
            Rate {
                part: 1,
                total: 1,
                rate: Some(1.0)
            }
        );
        assert_eq!(
            t.series.arrival_rate[1],
            Rate {
                part: 0,
                total: 1,
                rate: Some(0.0)
            }
        );
        assert_eq!(t.series.response_rate[0].rate, None);
        // Last week: nothing due before 2026-11-30; this week (to today, 12-02): lift a.
        assert_eq!(
            (t.series.overdue_rate[0].part, t.series.overdue_rate[1].part),
            (0, 1)
        );
        assert_eq!(t.series.insurance_rate[0], None);
        assert_eq!(t.series.insurance_rate[1].unwrap().part, 2);
        assert_eq!(
            t.series.labelling_rate[1],
            Rate {
                part: 1,
                total: 2,
                rate: Some(0.5)
            }
        );
        let areas = &t.breakdowns["area"];
        assert_eq!(areas[0].group, "长江路街道");
        assert_eq!(
            (areas[0].equipment, areas[0].alarms, areas[0].trapped),
            (2, 2, 1)
        );
        assert_eq!(areas[1].group, "Demo district");
        // Lift c's alarm is older than the two weeks asked for.
        assert_eq!(areas[1].alarms, 0);
        assert_eq!(t.breakdowns["maintenance_unit"][0].insured.part, 2);
        assert_eq!(t.breakdowns["using_unit"].len(), 3);
    }

    #[test]
    fn areas_are_read_from_addresses() {
        assert_eq!(area_of("Demo district, tower 3"), "Demo district");
        assert_eq!(area_of("浦东新区花木街道锦绣路1001号"), "浦东新区花木街道");
        assert_eq!(area_of("朱家角镇新风路"), "朱家角镇");
        assert_eq!(area_of("世纪大道88号"), "世纪大道88号");
    }
}
