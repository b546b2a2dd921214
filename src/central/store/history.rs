//! What the regulator's tools read from the store, counted where the data lives: each piece of
//! equipment with its alarms, trapped incidents, recurring faults and open inspection hazards
//! of a window (streamed, one row at a time), each maintenance unit's fleet and faults, and the
//! rescue dispatches of a period as their first unit's times. The risk ranking
//! (`central/risk.rs`) and the maintenance-unit scorecards (`central/scorecard.rs`) are pure
//! functions over these facts, so the same numbers come from SQLite and PostgreSQL.
//!
//! **Why counted in SQL:** at city scale (128,000 elevators, a million alarms a year) reading
//! the history into memory took central to about 1 GB; the counts per equipment and per unit
//! are a few numbers each, and the equipment rows stream through the ranking without being
//! held.

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use serde::Deserialize;
use sqlx::Row;

use super::page::Bind;
use super::{Store, StoreError};

/// The kinds that count as elevators in the regulator's measures (both are 电梯 in the
/// special-equipment catalogue).
pub const ELEVATOR_KINDS: [&str; 2] = ["elevator", "escalator"];

/// Alarms counted over `[from_ms, to_ms)`; a raise is a recurrence when the same rule was
/// raised on the same equipment no more than `recurrence_ms` before it (that earlier raise may
/// lie before `from_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
    pub recurrence_ms: i64,
}

/// One piece of equipment as its gateway registered it, with what happened to it in a window.
#[derive(Debug, Clone)]
pub struct EquipmentFacts {
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub name: String,
    pub using_unit: String,
    pub maintenance_unit: Option<String>,
    pub address: String,
    pub next_inspection: Option<NaiveDate>,
    pub insured: Option<bool>,
    /// When it was put into use (`in_service` in the registry record), for its age.
    pub in_service: Option<NaiveDate>,
    /// Alarms raised in the window, and of those the trapped-passenger ones.
    pub alarms: i64,
    pub trapped: i64,
    /// Raises in the window that recurred (see [`Window`]).
    pub recurring: i64,
    /// Inspection hazards not verified, and of those the ones past their deadline.
    pub open_hazards: i64,
    pub overdue_hazards: i64,
}

/// Which equipment [`Store::each_equipment`] reads: everything when both are `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetFilter<'a> {
    pub kind: Option<&'a str>,
    pub using_unit: Option<&'a str>,
}

/// One maintenance unit's fleet (the registry now) and its equipment's faults in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitFacts {
    pub unit: String,
    pub elevators: i64,
    pub insured: i64,
    /// Trapped-passenger incidents raised in the window on equipment it maintains.
    pub trapped: i64,
    pub recurring_faults: i64,
}

/// One rescue dispatch, as the unit called first (level 0) saw it.
#[derive(Debug, Clone)]
pub struct DispatchFact {
    /// The unit its first level-0 step called: the elevator's maintenance unit when it has one.
    pub first_unit: Option<String>,
    pub created_ms: i64,
    pub status: String,
    /// The level it ended at (or is at): 0 is the maintenance unit, 1 and on are the
    /// second-level rescuers.
    pub level: i64,
    /// When the first-called unit answered (its first `responded` or, skipping that,
    /// `on_site` step at level 0).
    pub first_response_ms: Option<i64>,
    /// When the first-called unit reported itself on site.
    pub first_arrival_ms: Option<i64>,
}

/// Per (gateway, equipment): raises in `[$1, $2)` that follow a raise of the same rule on the
/// same equipment no more than `$3` ms before.
const RECURRING: &str = "SELECT gateway, equipment, COUNT(*) AS n FROM (
        SELECT gateway, equipment, raised_ms,
               LAG(raised_ms) OVER (PARTITION BY gateway, equipment, rule ORDER BY raised_ms) AS before_ms
        FROM alarms WHERE raised_ms >= $1 - $3 AND raised_ms < $2) raises
    WHERE raised_ms >= $1 AND raised_ms - before_ms <= $3
    GROUP BY gateway, equipment";

/// `kind IN ('elevator', 'escalator')` for the column `column`.
fn is_elevator_sql(column: &str) -> String {
    let kinds: Vec<String> = ELEVATOR_KINDS.iter().map(|k| format!("'{k}'")).collect();
    format!("{column} IN ({})", kinds.join(", "))
}

/// The registry record's fields read here (the rest of the record is skipped unparsed).
#[derive(Deserialize)]
struct RecordDates<'a> {
    #[serde(borrow)]
    in_service: Option<std::borrow::Cow<'a, str>>,
}

fn date(text: Option<&str>) -> Option<NaiveDate> {
    text.and_then(|d| d.parse::<NaiveDate>().ok())
}

impl Store {
    /// Every piece of equipment that passes `filter`, with its counts over `window` and the
    /// inspection hazards open on `today` (local date), handed to `each` one at a time in no
    /// particular order: the fleet is never held in memory here.
    pub async fn each_equipment(
        &self,
        window: Window,
        today: NaiveDate,
        filter: FleetFilter<'_>,
        mut each: impl FnMut(EquipmentFacts),
    ) -> Result<(), StoreError> {
        let mut binds = vec![
            Bind::Int(window.from_ms),
            Bind::Int(window.to_ms),
            Bind::Int(window.recurrence_ms),
            Bind::Text(today.to_string()),
        ];
        let mut conditions = Vec::new();
        for (column, value) in [("e.kind", filter.kind), ("e.using_unit", filter.using_unit)] {
            if let Some(value) = value {
                binds.push(Bind::Text(value.to_owned()));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "WITH counted AS (
                SELECT gateway, equipment, COUNT(*) AS n,
                       SUM(CASE WHEN trapped <> 0 THEN 1 ELSE 0 END) AS trapped
                FROM alarms WHERE raised_ms >= $1 AND raised_ms < $2 GROUP BY gateway, equipment),
             recurring AS ({RECURRING}),
             hazard AS (
                SELECT gateway, equipment, COUNT(*) AS n,
                       SUM(CASE WHEN deadline < $4 THEN 1 ELSE 0 END) AS overdue
                FROM hazards WHERE status <> 'verified' GROUP BY gateway, equipment)
             SELECT e.gateway, e.id, e.kind, e.name, e.using_unit, e.maintenance_unit, e.address,
                    e.next_inspection, e.insured, e.record,
                    COALESCE(c.n, 0), COALESCE(c.trapped, 0), COALESCE(r.n, 0),
                    COALESCE(h.n, 0), COALESCE(h.overdue, 0)
             FROM equipment e
             LEFT JOIN counted c ON c.gateway = e.gateway AND c.equipment = e.id
             LEFT JOIN recurring r ON r.gateway = e.gateway AND r.equipment = e.id
             LEFT JOIN hazard h ON h.gateway = e.gateway AND h.equipment = e.id
             {condition}"
        );
        let mut rows = super::page::bound(&sql, binds).fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let record: &str = r.try_get(9)?;
            let in_service = serde_json::from_str::<RecordDates>(record)
                .ok()
                .and_then(|d| date(d.in_service.as_deref()));
            each(EquipmentFacts {
                gateway: r.try_get(0)?,
                id: r.try_get(1)?,
                kind: r.try_get(2)?,
                name: r.try_get(3)?,
                using_unit: r.try_get(4)?,
                maintenance_unit: r.try_get(5)?,
                address: r.try_get(6)?,
                next_inspection: date(r.try_get::<Option<&str>, _>(7)?),
                insured: r.try_get::<Option<i64>, _>(8)?.map(|v| v != 0),
                in_service,
                alarms: r.try_get(10)?,
                trapped: r.try_get(11)?,
                recurring: r.try_get(12)?,
                open_hazards: r.try_get(13)?,
                overdue_hazards: r.try_get(14)?,
            });
        }
        Ok(())
    }

    /// Every maintenance unit named in the registry, with its elevators and their insurance now
    /// and its equipment's trapped incidents and, when `recurrences`, recurring faults over
    /// `window` (0 otherwise: a grade does not read them, and they are the dearest count), by
    /// name.
    pub async fn unit_facts(
        &self,
        window: Window,
        recurrences: bool,
    ) -> Result<Vec<UnitFacts>, StoreError> {
        let elevator = is_elevator_sql("e.kind");
        let (recurring, recurring_join, recurring_sum) = if recurrences {
            (
                format!("recurring AS ({RECURRING}),"),
                "LEFT JOIN recurring r ON r.gateway = e.gateway AND r.equipment = e.id",
                "CAST(COALESCE(SUM(r.n), 0) AS BIGINT)",
            )
        } else {
            (String::new(), "", "CAST(0 AS BIGINT)")
        };
        let sql = format!(
            "WITH {recurring}
             trapped AS (
                SELECT gateway, equipment, COUNT(*) AS n FROM alarms
                WHERE trapped <> 0 AND raised_ms >= $1 AND raised_ms < $2
                GROUP BY gateway, equipment)
             SELECT e.maintenance_unit,
                    SUM(CASE WHEN {elevator} THEN 1 ELSE 0 END),
                    SUM(CASE WHEN {elevator} AND e.insured <> 0 THEN 1 ELSE 0 END),
                    CAST(COALESCE(SUM(t.n), 0) AS BIGINT),
                    {recurring_sum}
             FROM equipment e
             LEFT JOIN trapped t ON t.gateway = e.gateway AND t.equipment = e.id
             {recurring_join}
             WHERE e.maintenance_unit IS NOT NULL
             GROUP BY e.maintenance_unit ORDER BY e.maintenance_unit"
        );
        let mut query = sqlx::query(&sql).bind(window.from_ms).bind(window.to_ms);
        if recurrences {
            query = query.bind(window.recurrence_ms);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(UnitFacts {
                    unit: r.try_get(0)?,
                    elevators: r.try_get(1)?,
                    insured: r.try_get(2)?,
                    trapped: r.try_get(3)?,
                    recurring_faults: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The dispatches created in `[from_ms, to_ms)`, each with its first-called unit's times.
    pub async fn dispatch_facts(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DispatchFact>, StoreError> {
        let first = |column: &str, steps: &str| {
            format!(
                "(SELECT s.{column} FROM dispatch_steps s
                  WHERE s.dispatch_id = d.id AND s.level = 0 {steps} ORDER BY s.seq LIMIT 1)"
            )
        };
        let sql = format!(
            "SELECT d.created_ms, d.status, d.level, {}, {}, {}
             FROM dispatches d WHERE d.created_ms >= $1 AND d.created_ms < $2",
            first("unit", ""),
            first("at_ms", "AND s.step IN ('responded', 'on_site')"),
            first("at_ms", "AND s.step = 'on_site'"),
        );
        sqlx::query(&sql)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(DispatchFact {
                    created_ms: r.try_get(0)?,
                    status: r.try_get(1)?,
                    level: r.try_get(2)?,
                    first_unit: r.try_get(3)?,
                    first_response_ms: r.try_get(4)?,
                    first_arrival_ms: r.try_get(5)?,
                })
            })
            .collect()
    }
}
