//! Incidents and fill records as they arrive: an incident is stored whole, once per (gateway,
//! event id), with its event, the equipment upsert, the alarm transition and what it means for
//! rescue dispatch (decided by `dispatch.rs`, written by `dispatches.rs`) in one transaction.
//! A fill record is stored once by its id.

use sqlx::Row;

use super::{ms, upsert_equipment, Store, StoreError};
use crate::central::clean::{Note, Notes};
use crate::central::config::CentralConfig;
use crate::central::dispatch;
use crate::model::{FillRecord, FillRejection, Incident, Transition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// False for a duplicate event id: nothing changed.
    pub stored: bool,
    /// The dispatch this incident created, if any.
    pub dispatch: Option<String>,
}

impl Store {
    /// Stores a fill record, idempotently by its id. Returns whether it was new. A cylinder
    /// counts as labelled when its code was found in the registry (not `unregistered`). A code
    /// the cylinder register lacks gets a row there, marked as seen in fills only, in the same
    /// transaction (`cylinders.rs`).
    pub async fn ingest_fill(&self, fill: &FillRecord, now: i64) -> Result<bool, StoreError> {
        let labelled = !fill.rejections.contains(&FillRejection::Unregistered);
        let record = serde_json::to_string(fill).expect("a fill record serializes");
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO fill_records (id, gateway, cylinder_code, labelled, station, time_ms, record, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fill.id.to_string())
        .bind(&fill.gateway)
        .bind(&fill.cylinder_code)
        .bind(i64::from(labelled))
        .bind(&fill.station)
        .bind(ms(fill.time))
        .bind(record)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            super::cylinders::register_seen_in_fill(&mut tx, fill, now).await?;
        }
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// The fill records of one cylinder, newest first (traceability).
    pub async fn fills_of_cylinder(
        &self,
        cylinder_code: &str,
        limit: i64,
    ) -> Result<Vec<FillRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM fill_records WHERE cylinder_code = $1 ORDER BY time_ms DESC LIMIT $2",
        )
        .bind(cylinder_code)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("record")?;
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Stores an incident whole, idempotently by event id; a trapped raise creates a dispatch
    /// with its first step and notifications in the same transaction.
    /// `notes` are the repairs intake made; an event whose time lies outside the accepted
    /// window raises or clears its alarm at the receive time `now`, so it is listed where it
    /// arrived, not at its claimed time.
    pub async fn ingest_incident(
        &self,
        config: &CentralConfig,
        incident: &Incident,
        notes: &Notes,
        source: &str,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        register_gateways(&mut tx, [incident], now).await?;
        let outcome = self
            .ingest_in(&mut tx, config, incident, notes, source, now)
            .await?;
        if outcome.stored {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(outcome)
    }

    /// Stores a batch of incidents in one transaction (one commit, one sync, instead of one
    /// per incident), each as [`Store::ingest_incident`] would, in order: a clear after its
    /// raise in the same batch finds the raise. All or nothing: when it fails, none is stored.
    pub async fn ingest_incidents(
        &self,
        config: &CentralConfig,
        batch: &[(&Incident, &Notes)],
        source: &str,
        now: i64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        register_gateways(&mut tx, batch.iter().map(|(incident, _)| *incident), now).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (incident, notes) in batch {
            outcomes.push(
                self.ingest_in(&mut tx, config, incident, notes, source, now)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// One incident inside the caller's transaction; a duplicate writes nothing.
    async fn ingest_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        config: &CentralConfig,
        incident: &Incident,
        notes: &Notes,
        source: &str,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let ev = &incident.event;
        let eq = &incident.equipment;
        let alarm_ms = if notes.has(Note::TimeOutsideWindow) {
            now
        } else {
            ms(ev.time)
        };
        let inserted = sqlx::query(
            "INSERT INTO events (id, gateway, equipment, rule, severity, transition, time_ms, value, limit_value,
                message, source, received_ms, payload, intake_notes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (gateway, id) DO NOTHING",
        )
        .bind(incident.id.to_string())
        .bind(&incident.gateway)
        .bind(&eq.id)
        .bind(&ev.rule)
        .bind(ev.severity.as_str())
        .bind(transition_name(ev.transition))
        .bind(ms(ev.time))
        .bind(ev.value)
        .bind(ev.limit)
        .bind(&ev.message)
        .bind(source)
        .bind(now)
        .bind(serde_json::to_string(incident).expect("incident serializes"))
        .bind(notes.stored())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(IngestOutcome {
                stored: false,
                dispatch: None,
            });
        }
        upsert_equipment(
            tx,
            &incident.gateway,
            &incident.site.id,
            eq,
            now,
            self.exchange,
        )
        .await?;

        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM alarms WHERE gateway = $1 AND equipment = $2 AND rule = $3 AND severity = $4
             AND cleared_ms IS NULL ORDER BY raised_ms DESC LIMIT 1",
        )
        .bind(&incident.gateway)
        .bind(&eq.id)
        .bind(&ev.rule)
        .bind(ev.severity.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let trapped = dispatch::is_trapped(config, &ev.rule);
        let mut created_dispatch = None;
        #[allow(unreachable_patterns)]
        let alarm_id = match (ev.transition, open) {
            (Transition::Raise, Some(id)) => Some(id),
            (Transition::Raise, None) => {
                // The alarm takes its raise's event id; when another gateway's alarm already
                // has it, an id derived from both gateway and event id.
                let mut id = incident.id.to_string();
                for attempt in 0..2 {
                    if attempt == 1 {
                        let key = format!("{}/{}", incident.gateway, incident.id);
                        id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes())
                            .to_string();
                    }
                    let n = sqlx::query(
                        "INSERT INTO alarms (id, gateway, equipment, rule, severity, kind, using_unit, address, trapped,
                            message, raised_ms, area) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&id)
                    .bind(&incident.gateway)
                    .bind(&eq.id)
                    .bind(&ev.rule)
                    .bind(ev.severity.as_str())
                    .bind(eq.kind.as_str())
                    .bind(&eq.using_unit)
                    .bind(&eq.address)
                    .bind(i64::from(trapped))
                    .bind(&ev.message)
                    .bind(alarm_ms)
                    .bind(super::alarms::area_key(&eq.address))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        break;
                    }
                }
                if let Some(at) = &eq.location {
                    self.join_situation(tx, &config.flood, &id, (at.lat, at.lon), now)
                        .await?;
                }
                if trapped {
                    created_dispatch =
                        Some(self.create_dispatch(tx, config, incident, &id, now).await?);
                }
                Some(id)
            }
            (Transition::Clear, Some(id)) => {
                sqlx::query("UPDATE alarms SET cleared_ms = $1 WHERE id = $2")
                    .bind(alarm_ms)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                if trapped {
                    self.note_alarm_cleared(tx, &id, &incident.gateway, &ev.message, now)
                        .await?;
                }
                Some(id)
            }
            (Transition::Clear, None) => None,
            // Acknowledge, shelve, suppress and service changes made at the gateway join the
            // open alarm's history.
            (_, open) => open,
        };
        if let Some(alarm_id) = alarm_id {
            sqlx::query("UPDATE events SET alarm_id = $1 WHERE id = $2 AND gateway = $3")
                .bind(alarm_id)
                .bind(incident.id.to_string())
                .bind(&incident.gateway)
                .execute(&mut **tx)
                .await?;
        }
        Ok(IngestOutcome {
            stored: true,
            dispatch: created_dispatch,
        })
    }
}

/// Makes sure each gateway the incidents come from has a row (its state unknown until it
/// reports one), once per gateway and in the order of their ids, whichever of the incidents
/// turn out to be new. A duplicate's gateway has its row from the first time.
async fn register_gateways<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incidents: impl IntoIterator<Item = &'a Incident>,
    now: i64,
) -> Result<(), StoreError> {
    let mut sites = std::collections::BTreeMap::new();
    for incident in incidents {
        sites
            .entry(incident.gateway.as_str())
            .or_insert(incident.site.id.as_str());
    }
    for (gateway, site) in sites {
        sqlx::query(
            "INSERT INTO gateways (id, site, state, since_ms, updated_ms) VALUES ($1, $2, 'unknown', NULL, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(gateway)
        .bind(site)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The transition as the wire spells it (`raise`, `clear`, `acknowledge`...).
fn transition_name(t: Transition) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
