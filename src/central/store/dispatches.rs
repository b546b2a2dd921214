//! Rescue dispatches in the store: creating one as `dispatch.rs` plans it (inside the
//! incident's transaction), the due escalation checks and the escalation itself (a
//! compare-and-set), the steps a unit takes and the rescue-page links. Reading them is
//! `board.rs`.

use super::board::{dispatch_from_row, DISPATCH_COLUMNS};
use super::{insert_audit, ms, random_id, Backend, Store, StoreError};
use crate::central::config::CentralConfig;
use crate::central::dispatch::{self, Dispatch, Level, Status, StepRefused};
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
