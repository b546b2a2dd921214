//! What the regulator's tools read from the store: every piece of equipment as registered, the
//! alarms raised in a period, and the rescue dispatches created in it with their steps. The
//! risk ranking (`central/risk.rs`) and the maintenance-unit scorecards
//! (`central/scorecard.rs`) are pure functions over this [`History`], so the same numbers come
//! from SQLite and PostgreSQL, and a test can pin them.

use chrono::NaiveDate;
use sqlx::Row;

use super::{Store, StoreError};

/// One piece of equipment as its gateway registered it.
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
}

/// One alarm occurrence (raise to clear).
#[derive(Debug, Clone)]
pub struct AlarmFact {
    pub gateway: String,
    pub equipment: String,
    pub rule: String,
    pub trapped: bool,
    pub raised_ms: i64,
}

/// One step of a dispatch, at the escalation level it was taken on.
#[derive(Debug, Clone)]
pub struct StepFact {
    pub at_ms: i64,
    pub step: String,
    pub level: i64,
    pub unit: String,
}

/// One rescue dispatch and its steps, oldest step first.
#[derive(Debug, Clone)]
pub struct DispatchFact {
    pub gateway: String,
    pub equipment: String,
    pub created_ms: i64,
    pub status: String,
    /// The level it ended at (or is at): 0 is the maintenance unit, 1 and on are the
    /// second-level rescuers.
    pub level: i64,
    pub steps: Vec<StepFact>,
}

impl DispatchFact {
    /// The unit called first (level 0): the elevator's maintenance unit when it has one.
    pub fn first_unit(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| s.level == 0)
            .map(|s| s.unit.as_str())
    }

    /// When the first-called unit answered (its first `responded` or, skipping that,
    /// `on_site` step at level 0).
    pub fn first_response_ms(&self) -> Option<i64> {
        self.steps
            .iter()
            .find(|s| s.level == 0 && (s.step == "responded" || s.step == "on_site"))
            .map(|s| s.at_ms)
    }

    /// When the first-called unit reported itself on site.
    pub fn first_arrival_ms(&self) -> Option<i64> {
        self.steps
            .iter()
            .find(|s| s.level == 0 && s.step == "on_site")
            .map(|s| s.at_ms)
    }
}

/// The store's history from `from_ms` (alarms) and of dispatches created from `dispatches_from_ms`,
/// both up to `to_ms` (exclusive).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub equipment: Vec<EquipmentFacts>,
    /// Ordered by gateway, equipment, rule, raise time.
    pub alarms: Vec<AlarmFact>,
    pub dispatches: Vec<DispatchFact>,
}

impl History {
    /// Per (gateway, equipment): the alarms raised in `[from_ms, to_ms)` that were raised on
    /// the same equipment by the same rule no more than `within_ms` before (a recurring fault).
    pub fn recurrences(
        &self,
        from_ms: i64,
        to_ms: i64,
        within_ms: i64,
    ) -> std::collections::BTreeMap<(&str, &str), i64> {
        let mut out = std::collections::BTreeMap::new();
        for pair in self.alarms.windows(2) {
            let (before, this) = (&pair[0], &pair[1]);
            let same = before.gateway == this.gateway
                && before.equipment == this.equipment
                && before.rule == this.rule;
            if same
                && this.raised_ms >= from_ms
                && this.raised_ms < to_ms
                && this.raised_ms - before.raised_ms <= within_ms
            {
                *out.entry((this.gateway.as_str(), this.equipment.as_str()))
                    .or_insert(0) += 1;
            }
        }
        out
    }
}

impl Store {
    /// Every piece of equipment, the alarms raised in `[alarms_from_ms, to_ms)` and the
    /// dispatches created in `[dispatches_from_ms, to_ms)`.
    pub async fn history(
        &self,
        alarms_from_ms: i64,
        dispatches_from_ms: i64,
        to_ms: i64,
    ) -> Result<History, StoreError> {
        let equipment = sqlx::query(
            "SELECT gateway, id, kind, name, using_unit, maintenance_unit, address, next_inspection, insured, record
             FROM equipment ORDER BY gateway, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let record: String = r.try_get("record")?;
            let record: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
            let date = |text: Option<&str>| text.and_then(|d| d.parse::<NaiveDate>().ok());
            Ok(EquipmentFacts {
                gateway: r.try_get("gateway")?,
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                name: r.try_get("name")?,
                using_unit: r.try_get("using_unit")?,
                maintenance_unit: r.try_get("maintenance_unit")?,
                address: r.try_get("address")?,
                next_inspection: date(r.try_get::<Option<String>, _>("next_inspection")?.as_deref()),
                insured: r.try_get::<Option<i64>, _>("insured")?.map(|v| v != 0),
                in_service: date(record["in_service"].as_str()),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let alarms = sqlx::query(
            "SELECT gateway, equipment, rule, trapped, raised_ms FROM alarms
             WHERE raised_ms >= $1 AND raised_ms < $2 ORDER BY gateway, equipment, rule, raised_ms",
        )
        .bind(alarms_from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AlarmFact {
                gateway: r.try_get(0)?,
                equipment: r.try_get(1)?,
                rule: r.try_get(2)?,
                trapped: r.try_get::<i64, _>(3)? != 0,
                raised_ms: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let mut dispatches: Vec<(String, DispatchFact)> = sqlx::query(
            "SELECT id, gateway, equipment, created_ms, status, level FROM dispatches
             WHERE created_ms >= $1 AND created_ms < $2 ORDER BY created_ms, id",
        )
        .bind(dispatches_from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                DispatchFact {
                    gateway: r.try_get(1)?,
                    equipment: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                    status: r.try_get(4)?,
                    level: r.try_get(5)?,
                    steps: Vec::new(),
                },
            ))
        })
        .collect::<Result<_, StoreError>>()?;
        let steps = sqlx::query(
            "SELECT s.dispatch_id, s.at_ms, s.step, s.level, s.unit FROM dispatch_steps s
             JOIN dispatches d ON d.id = s.dispatch_id
             WHERE d.created_ms >= $1 AND d.created_ms < $2 ORDER BY s.dispatch_id, s.seq",
        )
        .bind(dispatches_from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let index: std::collections::HashMap<String, usize> = dispatches
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
        for r in &steps {
            let id: String = r.try_get(0)?;
            if let Some(i) = index.get(&id) {
                dispatches[*i].1.steps.push(StepFact {
                    at_ms: r.try_get(1)?,
                    step: r.try_get(2)?,
                    level: r.try_get(3)?,
                    unit: r.try_get(4)?,
                });
            }
        }
        Ok(History {
            equipment,
            alarms,
            dispatches: dispatches.into_iter().map(|(_, d)| d).collect(),
        })
    }
}
