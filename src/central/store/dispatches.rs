//! Rescue dispatches in the store: creating one as `dispatch.rs` plans it (inside the
//! incident's transaction), the due escalation checks and the escalation itself (a
//! compare-and-set), the steps a unit takes, the rescue-page links, and the listings.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::page::{Bind, Paging};
use super::{insert_audit, ms, random_id, rfc3339, Backend, Store, StoreError};
use crate::central::config::CentralConfig;
use crate::central::dispatch::{self, Dispatch, Level, Record, Status, Step, StepRefused};
use crate::model::Incident;

/// What the timer loop needs to decide on a due dispatch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDispatch {
    pub id: String,
    pub level: i64,
    pub status: String,
    pub next_check_ms: i64,
}

/// One step to book on a dispatch: when, what, at which level and unit, by whom, and why.
pub(super) struct NewStep<'a> {
    pub at: i64,
    pub step: &'a str,
    pub level: i64,
    pub unit: &'a str,
    pub actor: &'a str,
    pub note: &'a str,
}

/// A step a rescue team takes on a dispatch (responded, on site, completed, false alarm): for
/// which unit, by whom (the token's name and role), with what note, and when.
pub struct RescueStep<'a> {
    pub status: Status,
    pub unit: &'a str,
    pub actor: &'a str,
    pub role: &'a str,
    pub note: &'a str,
    pub now: i64,
}

/// A row of `dispatch_steps` as stored.
#[derive(sqlx::FromRow)]
struct StepRow {
    at_ms: i64,
    step: String,
    level: i64,
    unit: String,
    actor: String,
    note: String,
}

/// Dispatches per board page when the request does not say.
pub const DEFAULT_BOARD_PAGE: i64 = 100;
/// The most dispatches one board page holds.
pub const MAX_BOARD_PAGE: i64 = 500;

const BOARD_PAGING: Paging = Paging {
    time_column: "created_ms",
    default: DEFAULT_BOARD_PAGE,
    max: MAX_BOARD_PAGE,
};

/// The query string of `GET /api/v1/dispatches`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DispatchFilter {
    /// `open` (not closed) or `closed`; absent for both.
    pub state: Option<String>,
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

/// One page of the dispatch board, and the cursor of the next when more match.
#[derive(Debug, Clone)]
pub struct DispatchPage {
    pub dispatches: Vec<Dispatch>,
    pub next: Option<String>,
}

pub(super) const DISPATCH_COLUMNS: &str = "id, order_no, alarm_id, event_id, gateway, equipment, incident_ms, created_ms, status,
    level, unit, unit_phone, chain, level_started_ms, next_check_ms, responded_ms, on_site_ms, closed_ms, record";

impl Store {
    /// Notes on the dispatch of a trapped alarm that the gateway cleared the alarm: the
    /// rescue goes on until a unit closes it.
    pub(super) async fn note_alarm_cleared(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        alarm_id: &str,
        gateway: &str,
        message: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let dispatch_id: Option<String> =
            sqlx::query_scalar("SELECT id FROM dispatches WHERE alarm_id = $1")
                .bind(alarm_id)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(d) = dispatch_id {
            let (level, unit) = self.dispatch_level(tx, &d).await?;
            insert_step(
                tx,
                &d,
                &NewStep {
                    at: now,
                    step: "alarm_cleared",
                    level,
                    unit: &unit,
                    actor: gateway,
                    note: message,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn dispatch_level(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<(i64, String), StoreError> {
        Ok(
            sqlx::query_as("SELECT level, unit FROM dispatches WHERE id = $1")
                .bind(id)
                .fetch_one(&mut **tx)
                .await?,
        )
    }

    /// Writes the dispatch `dispatch.rs` plans for a trapped raise, with its first step, its
    /// rescue-page link and its notifications, inside the incident's transaction.
    pub(super) async fn create_dispatch(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        config: &CentralConfig,
        incident: &Incident,
        alarm_id: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let dispatch::NewDispatch {
            id,
            order_no,
            levels,
            first,
            record,
            next_check: next,
        } = dispatch::plan(config, incident, random_id(), now);
        let eq = &incident.equipment;
        sqlx::query(&format!(
            "INSERT INTO dispatches ({DISPATCH_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, NULL, NULL, $16)"
        ))
        .bind(&id)
        .bind(&order_no)
        .bind(alarm_id)
        .bind(incident.id.to_string())
        .bind(&incident.gateway)
        .bind(&eq.id)
        .bind(ms(incident.event.time))
        .bind(now)
        .bind(Status::Occurred.as_str())
        .bind(0i64)
        .bind(&first.name)
        .bind(&first.phone)
        .bind(serde_json::to_string(&levels).expect("chain serializes"))
        .bind(now)
        .bind(next)
        .bind(serde_json::to_string(&record).expect("record serializes"))
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE dispatches SET situation_id = (SELECT situation_id FROM alarms WHERE id = $1) WHERE id = $2",
        )
        .bind(alarm_id)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        insert_step(
            tx,
            &id,
            &NewStep {
                at: now,
                step: "occurred",
                level: 0,
                unit: &first.name,
                actor: "central",
                note: &incident.event.message,
            },
        )
        .await?;
        let dispatch = self.dispatch_in(tx, &id).await?;
        let link_token = insert_link(tx, &id, &first.name, now).await?;
        let url = format!("{}/rescue/{}?t={}", config.public_url, id, link_token);
        self.queue_messages(tx, config, &dispatch, dispatch::REASON_TRAPPED, &url, now)
            .await?;
        insert_step(
            tx,
            &id,
            &NewStep {
                at: now,
                step: "notified",
                level: 0,
                unit: &first.name,
                actor: "central",
                note: &format!("called {}", first.name),
            },
        )
        .await?;
        Ok(id)
    }

    pub(super) async fn dispatch_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<Dispatch, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
        dispatch_from_row(&row)
    }

    /// Dispatches whose escalation check is due at `now`.
    pub async fn due_dispatches(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DueDispatch>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, level, status, next_check_ms FROM dispatches WHERE next_check_ms IS NOT NULL
             AND next_check_ms <= $1 ORDER BY next_check_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Escalates one due dispatch to its next level, or marks the chain exhausted. The update
    /// is a compare-and-set on the row as it was read, so when several instances see the same
    /// due check exactly one acts. Returns the new level when this call escalated.
    pub async fn escalate(
        &self,
        config: &CentralConfig,
        due: &DueDispatch,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Another instance escalating this row now: leave it to that one.
            let free = sqlx::query(
                "SELECT id FROM dispatches WHERE id = $1 AND next_check_ms = $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(&due.id)
            .bind(due.next_check_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if free.is_none() {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        let current = self.dispatch_in(&mut tx, &due.id).await?;
        let chain_text: String = sqlx::query_scalar("SELECT chain FROM dispatches WHERE id = $1")
            .bind(&due.id)
            .fetch_one(&mut *tx)
            .await?;
        let levels: Vec<Level> =
            serde_json::from_str(&chain_text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let reason = dispatch::escalation_reason(config, current.status);
        let next_level = due.level + 1;
        let (level, unit, next_check, step) = match levels.get(next_level as usize) {
            Some(l) => (
                next_level,
                l.clone(),
                dispatch::next_check(config, Status::Occurred, now),
                "escalated",
            ),
            None => (due.level, current.unit.clone(), None, "overdue"),
        };
        let changed = if step == "escalated" {
            sqlx::query(
                "UPDATE dispatches SET level = $1, unit = $2, unit_phone = $3, status = $4, level_started_ms = $5,
                    next_check_ms = $6
                 WHERE id = $7 AND level = $8 AND status = $9 AND next_check_ms = $10",
            )
            .bind(level)
            .bind(&unit.name)
            .bind(&unit.phone)
            .bind(Status::Occurred.as_str())
            .bind(now)
            .bind(next_check)
            .bind(&due.id)
            .bind(due.level)
            .bind(&due.status)
            .bind(due.next_check_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE dispatches SET next_check_ms = NULL WHERE id = $1 AND level = $2 AND status = $3 AND next_check_ms = $4",
            )
            .bind(&due.id)
            .bind(due.level)
            .bind(&due.status)
            .bind(due.next_check_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        if changed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        if step == "escalated" {
            let note = format!("{reason} by {}; called {}", current.unit.name, unit.name);
            insert_step(
                &mut tx,
                &due.id,
                &NewStep {
                    at: now,
                    step: "escalated",
                    level,
                    unit: &unit.name,
                    actor: "central",
                    note: &note,
                },
            )
            .await?;
            let dispatch = self.dispatch_in(&mut tx, &due.id).await?;
            let link_token = insert_link(&mut tx, &due.id, &unit.name, now).await?;
            let url = format!("{}/rescue/{}?t={}", config.public_url, due.id, link_token);
            let why = format!("escalated: {note}");
            self.queue_messages(&mut tx, config, &dispatch, &why, &url, now)
                .await?;
            tracing::warn!(dispatch = %due.id, level, unit = %unit.name, %reason, "rescue dispatch escalated");
        } else {
            insert_step(
                &mut tx,
                &due.id,
                &NewStep {
                    at: now,
                    step: "overdue",
                    level,
                    unit: &unit.name,
                    actor: "central",
                    note: &format!("{reason}; no further level"),
                },
            )
            .await?;
            tracing::error!(dispatch = %due.id, %reason, "rescue dispatch overdue at the last level");
        }
        tx.commit().await?;
        Ok((step == "escalated").then_some(level))
    }

    /// Records a rescue step (responded, on site, completed, false alarm) taken by `unit`, with
    /// who and when. Only the unit called now may take it, and it is booked under that unit
    /// and level; the update is a compare-and-set on the row as it was checked, so a step
    /// racing an escalation is refused instead of landing on the next unit's level.
    pub async fn set_dispatch_status(
        &self,
        config: &CentralConfig,
        id: &str,
        taken: &RescueStep<'_>,
    ) -> Result<Result<Dispatch, StepRefused>, StoreError> {
        let RescueStep {
            status,
            unit,
            actor,
            role,
            note,
            now,
        } = *taken;
        let mut tx = self.pool.begin().await?;
        let current = self.dispatch_in(&mut tx, id).await?;
        if let Err(refused) = dispatch::check_step(current.status, &current.unit.name, unit, status)
        {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
        let level_started: i64 =
            sqlx::query_scalar("SELECT level_started_ms FROM dispatches WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let next = dispatch::next_check(config, status, level_started);
        // A later step implies the earlier ones: on site without pressing responded first
        // counts as responded then. (PostgreSQL refuses a column assigned twice.)
        let times = match status {
            Status::Responded => "responded_ms = COALESCE(responded_ms, $3)",
            Status::OnSite => {
                "on_site_ms = COALESCE(on_site_ms, $3), responded_ms = COALESCE(responded_ms, $3)"
            }
            _ => "closed_ms = COALESCE(closed_ms, $3), responded_ms = COALESCE(responded_ms, $3)",
        };
        let changed = sqlx::query(&format!(
            "UPDATE dispatches SET status = $1, next_check_ms = $2, {times}
             WHERE id = $4 AND level = $5 AND unit = $6 AND status = $7"
        ))
        .bind(status.as_str())
        .bind(next)
        .bind(now)
        .bind(id)
        .bind(current.level)
        .bind(unit)
        .bind(current.status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(Err(StepRefused::Changed));
        }
        insert_step(
            &mut tx,
            id,
            &NewStep {
                at: now,
                step: status.as_str(),
                level: current.level,
                unit: &current.unit.name,
                actor,
                note,
            },
        )
        .await?;
        insert_audit(
            &mut tx,
            now,
            actor,
            role,
            &format!("dispatch.{}", status.as_str()),
            id,
            note,
        )
        .await?;
        let updated = self.dispatch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Ok(updated))
    }

    /// A dispatch with its steps, or `None`.
    pub async fn dispatch(&self, id: &str) -> Result<Option<Dispatch>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut d = dispatch_from_row(&row)?;
        d.steps = self.steps(id).await?;
        Ok(Some(d))
    }

    pub async fn steps(&self, id: &str) -> Result<Vec<Step>, StoreError> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT at_ms, step, level, unit, actor, note FROM dispatch_steps WHERE dispatch_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Step {
                at: rfc3339(r.at_ms),
                step: r.step,
                level: r.level,
                unit: r.unit,
                actor: r.actor,
                note: r.note,
            })
            .collect())
    }

    /// The unit a rescue-page link was sent to, when `token` is a link of dispatch `id`.
    pub async fn dispatch_link_unit(
        &self,
        id: &str,
        token: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT unit FROM dispatch_links WHERE token_sha256 = $1 AND dispatch_id = $2",
        )
        .bind(crate::auth::token_hash(token))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Whether `unit` was ever called for this dispatch.
    pub async fn dispatch_called(&self, id: &str, unit: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dispatch_steps WHERE dispatch_id = $1 AND unit = $2",
        )
        .bind(id)
        .bind(unit)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The first page of dispatches, newest first; only those that called `unit` when given.
    pub async fn dispatches(&self, unit: Option<&str>) -> Result<Vec<Dispatch>, StoreError> {
        Ok(self
            .dispatch_page(&DispatchFilter::default(), unit)
            .await?
            .dispatches)
    }

    /// One page of the dispatch board, newest first by `(created_ms, id)` (keyset paging, like
    /// the alarm list): open or closed ones alone when asked; only those that called `unit`
    /// when given. The indexes `dispatches_list` and `dispatches_open_list` serve the order.
    pub async fn dispatch_page(
        &self,
        filter: &DispatchFilter,
        unit: Option<&str>,
    ) -> Result<DispatchPage, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        match filter.state.as_deref().filter(|s| !s.is_empty()) {
            None => {}
            Some("open") => conditions.push("closed_ms IS NULL".into()),
            Some("closed") => conditions.push("closed_ms IS NOT NULL".into()),
            Some(other) => {
                return Err(StoreError::BadQuery(format!(
                    "unknown state `{other}`: use open or closed"
                )))
            }
        }
        if let Some(u) = unit {
            binds.push(Bind::Text(u.to_owned()));
            conditions.push(format!(
                "id IN (SELECT dispatch_id FROM dispatch_steps WHERE unit = ${})",
                binds.len()
            ));
        }
        let (tail, limit) = BOARD_PAGING.tail(
            conditions,
            &mut binds,
            filter.before.as_deref(),
            filter.limit,
        )?;
        let sql = format!("SELECT {DISPATCH_COLUMNS} FROM dispatches {tail}");
        let (rows, next) = BOARD_PAGING.fetch(&self.pool, &sql, binds, limit).await?;
        let dispatches = rows
            .iter()
            .map(dispatch_from_row)
            .collect::<Result<_, _>>()?;
        Ok(DispatchPage { dispatches, next })
    }
}

/// Makes a rescue-page link token for `unit` and stores only its hash.
pub(super) async fn insert_link(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dispatch_id: &str,
    unit: &str,
    now: i64,
) -> Result<String, StoreError> {
    let token = random_id();
    sqlx::query("INSERT INTO dispatch_links (token_sha256, dispatch_id, unit, created_ms) VALUES ($1, $2, $3, $4)")
        .bind(crate::auth::token_hash(&token))
        .bind(dispatch_id)
        .bind(unit)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(token)
}

pub(super) async fn insert_step(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dispatch_id: &str,
    s: &NewStep<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dispatch_steps (id, dispatch_id, seq, at_ms, step, level, unit, actor, note)
         VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM dispatch_steps WHERE dispatch_id = $2),
                 $3, $4, $5, $6, $7, $8)",
    )
    .bind(random_id())
    .bind(dispatch_id)
    .bind(s.at)
    .bind(s.step)
    .bind(s.level)
    .bind(s.unit)
    .bind(s.actor)
    .bind(s.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn dispatch_from_row(r: &AnyRow) -> Result<Dispatch, StoreError> {
    let record: String = r.try_get("record")?;
    let record: Record =
        serde_json::from_str(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let status: String = r.try_get("status")?;
    Ok(Dispatch {
        id: r.try_get("id")?,
        order_no: r.try_get("order_no")?,
        incident_id: r.try_get("event_id")?,
        alarm_id: r.try_get("alarm_id")?,
        gateway: r.try_get("gateway")?,
        fault_type: record.fault_type,
        fault_name: record.fault_name,
        rule: record.rule,
        message: record.message,
        time: rfc3339(r.try_get("incident_ms")?),
        created: rfc3339(r.try_get("created_ms")?),
        elevator: record.elevator,
        address: record.address,
        using_unit: record.using_unit,
        maintenance_unit: record.maintenance_unit,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status}")))?,
        level: r.try_get("level")?,
        unit: Level {
            name: r.try_get("unit")?,
            phone: r.try_get("unit_phone")?,
        },
        responded_at: r.try_get::<Option<i64>, _>("responded_ms")?.map(rfc3339),
        on_site_at: r.try_get::<Option<i64>, _>("on_site_ms")?.map(rfc3339),
        closed_at: r.try_get::<Option<i64>, _>("closed_ms")?.map(rfc3339),
        next_check: r.try_get::<Option<i64>, _>("next_check_ms")?.map(rfc3339),
        steps: Vec::new(),
    })
}
