//! The central store: one schema (`schema.rs`) on SQLite (embedded default, WAL) or
//! PostgreSQL (when several instances share the load). All state lives here, dispatch timers
//! and pending notifications included, so any instance can take over from one that died.
//!
//! **Why sqlx:** its `Any` driver runs the same SQL text on SQLite and PostgreSQL through one
//! async API (`$1` placeholders work on both), so every query exists once and is tested on
//! both engines; rusqlite + tokio-postgres would mean two copies of every query and a blocking
//! pool for SQLite. Compile-time checked macros are not used (they would need a database at
//! build time); queries are plain strings covered by the integration tests on both engines.
//!
//! **Invariant:** an incident is stored whole or not at all: its event, the equipment upsert,
//! the alarm transition, and any dispatch with its steps and notifications commit in one
//! transaction, and the MQTT message is acknowledged only after that commit.
//! **Invariant:** an event id is stored at most once per gateway (`events` is keyed by
//! gateway and id), so a redelivered incident changes nothing, and one gateway's ids never
//! hide another's.

mod alarms;
mod rejected;
mod rescue;
mod schema;
mod situations;

pub use alarms::{AlarmFilter, AlarmPage, AlarmRow, Bind};
pub use rejected::RejectedRow;
pub use rescue::RescueFacts;
pub use situations::Situation;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::config::CentralConfig;
use super::dispatch::{self, Dispatch, ElevatorCodes, Level, Record, Status, Step, StepRefused};
use crate::model::{
    Equipment, EquipmentKind, FillRecord, FillRejection, GatewayRegistry, GatewayStatus, Incident,
    Transition,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("store: {0}")]
    Corrupt(String),
    /// A query the caller asked for that cannot be run as asked (a bad filter or cursor).
    #[error("{0}")]
    BadQuery(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
}

/// A random 128-bit id in hex.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// False for a duplicate event id: nothing changed.
    pub stored: bool,
    /// The dispatch this incident created, if any.
    pub dispatch: Option<String>,
}

/// What the timer loop needs to decide on a due dispatch.
#[derive(Debug, Clone)]
pub struct DueDispatch {
    pub id: String,
    pub level: i64,
    pub status: String,
    pub next_check_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub dispatch_id: String,
    pub channel: String,
    pub target: String,
    pub subject: String,
    pub payload: String,
    pub attempts: i64,
    /// The regional situation of its dispatch: rows of one situation go out grouped.
    pub situation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EquipmentState {
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub name: String,
    pub registration_code: String,
    pub using_unit: String,
    pub maintenance_unit: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub next_inspection: Option<String>,
    pub insured: Option<bool>,
    /// normal, alarm, trapped, offline or overdue (inspection).
    pub state: String,
    pub gateway_state: String,
    pub open_alarms: i64,
    pub latest_alarm: Option<String>,
    /// The full registry record as the gateway sent it.
    pub record: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: String,
    pub transition: String,
    pub time: String,
    pub received: String,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
    pub source: String,
    /// What intake repaired (`text_replaced`, `location_dropped`, `time_outside_window`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intake_notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

const EQUIPMENT_STATE_SQL: &str = "SELECT e.gateway, e.id, e.kind, e.name, e.registration_code, e.using_unit,
    e.maintenance_unit, e.address, e.lat, e.lon, e.next_inspection, e.insured, e.record,
    COALESCE(g.state, 'unknown') AS gateway_state,
    (SELECT COUNT(*) FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL) AS open_alarms,
    (SELECT COUNT(*) FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL AND a.trapped = 1) AS open_trapped,
    (SELECT a.message FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id ORDER BY a.raised_ms DESC LIMIT 1) AS latest_alarm
    FROM equipment e LEFT JOIN gateways g ON g.id = e.gateway";

const DISPATCH_COLUMNS: &str = "id, order_no, alarm_id, event_id, gateway, equipment, incident_ms, created_ms, status,
    level, unit, unit_phone, chain, level_started_ms, next_check_ms, responded_ms, on_site_ms, closed_ms, record";

impl Store {
    /// Connects, applies pending migrations, and for SQLite turns on WAL with full sync.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            // Create the file when it is missing.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_owned(),
        };
        let options = AnyPoolOptions::new()
            // SQLite writes are serialised anyway; one connection avoids SQLITE_BUSY on
            // upgrading read transactions.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        let store = Store { pool, backend };
        store.migrate(i64::MAX).await?;
        Ok(store)
    }

    /// Opens a store with the migrations up to `version` only: for tests of a later migration
    /// on a store as an older release left it.
    #[doc(hidden)]
    pub async fn open_at_version(url: &str, version: i64) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let store = Store { pool, backend };
        store.migrate(version).await?;
        Ok(store)
    }

    async fn migrate(&self, up_to: i64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            // Two instances starting together must not both create the tables.
            sqlx::query("SELECT pg_advisory_lock(7370617065)")
                .execute(&mut *conn)
                .await?;
        }
        let result = async {
            sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await?;
            let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?;
            for (version, statements) in schema::MIGRATIONS {
                if applied.contains(version) || *version > up_to {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                for statement in *statements {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| StoreError::Migration { version: *version, source })?;
                }
                sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(ms(Utc::now()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(version, "store migration applied");
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(7370617065)")
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Merges a gateway's registry (its retained `registry` message) into the equipment table,
    /// so the map shows equipment that never raised an alarm.
    pub async fn merge_registry(
        &self,
        registry: &GatewayRegistry,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for eq in &registry.equipment {
            upsert_equipment(&mut tx, &registry.gateway, &registry.site.id, eq, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a fill record, idempotently by its id. Returns whether it was new. A cylinder
    /// counts as labelled when its code was found in the registry (not `unregistered`).
    pub async fn ingest_fill(&self, fill: &FillRecord, now: i64) -> Result<bool, StoreError> {
        let labelled = !fill.rejections.contains(&FillRejection::Unregistered);
        let record = serde_json::to_string(fill).expect("a fill record serializes");
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
        .execute(&self.pool)
        .await?
        .rows_affected();
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
        notes: &super::clean::Notes,
        source: &str,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let ev = &incident.event;
        let eq = &incident.equipment;
        let alarm_ms = if notes.has(super::clean::Note::TimeOutsideWindow) {
            now
        } else {
            ms(ev.time)
        };
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(IngestOutcome {
                stored: false,
                dispatch: None,
            });
        }
        upsert_equipment(&mut tx, &incident.gateway, &incident.site.id, eq, now).await?;
        sqlx::query(
            "INSERT INTO gateways (id, site, state, since_ms, updated_ms) VALUES ($1, $2, 'unknown', NULL, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&incident.gateway)
        .bind(&incident.site.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let open: Option<String> = sqlx::query(
            "SELECT id FROM alarms WHERE gateway = $1 AND equipment = $2 AND rule = $3 AND severity = $4
             AND cleared_ms IS NULL ORDER BY raised_ms DESC LIMIT 1",
        )
        .bind(&incident.gateway)
        .bind(&eq.id)
        .bind(&ev.rule)
        .bind(ev.severity.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        let trapped = ev
            .rule
            .contains(config.dispatch.trapped_rule_contains.as_str());
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
                            message, raised_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        break;
                    }
                }
                if let Some(at) = &eq.location {
                    self.join_situation(&mut tx, &config.flood, &id, (at.lat, at.lon), now)
                        .await?;
                }
                if trapped {
                    created_dispatch = Some(
                        self.create_dispatch(&mut tx, config, incident, &id, now)
                            .await?,
                    );
                }
                Some(id)
            }
            (Transition::Clear, Some(id)) => {
                sqlx::query("UPDATE alarms SET cleared_ms = $1 WHERE id = $2")
                    .bind(alarm_ms)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                if trapped {
                    let dispatch_id: Option<String> =
                        sqlx::query("SELECT id FROM dispatches WHERE alarm_id = $1")
                            .bind(&id)
                            .fetch_optional(&mut *tx)
                            .await?
                            .map(|r| r.try_get(0))
                            .transpose()?;
                    if let Some(d) = dispatch_id {
                        let (level, unit) = self.dispatch_level(&mut tx, &d).await?;
                        insert_step(
                            &mut tx,
                            &d,
                            now,
                            "alarm_cleared",
                            level,
                            &unit,
                            &incident.gateway,
                            &ev.message,
                        )
                        .await?;
                    }
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
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(IngestOutcome {
            stored: true,
            dispatch: created_dispatch,
        })
    }

    async fn dispatch_level(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT level, unit FROM dispatches WHERE id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn create_dispatch(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        config: &CentralConfig,
        incident: &Incident,
        alarm_id: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let eq = &incident.equipment;
        let levels = dispatch::chain(config, eq.maintenance_unit.as_ref());
        let first = levels.first().cloned().unwrap_or(Level {
            name: "(no rescue unit configured)".into(),
            phone: String::new(),
        });
        let id = random_id();
        let created = Utc.timestamp_millis_opt(now).single().unwrap_or_default();
        let order_no = format!(
            "R{}-{}",
            created.format("%Y%m%d"),
            &id[..8].to_ascii_uppercase()
        );
        let record = Record {
            fault_type: dispatch::FAULT_TYPE_TRAPPED.into(),
            fault_name: "trapped passenger".into(),
            rule: incident.event.rule.clone(),
            message: incident.event.message.clone(),
            elevator: ElevatorCodes {
                equipment_id: eq.id.clone(),
                name: eq.name.clone(),
                registration_code: eq.registration_code.clone(),
                use_certificate: eq.use_certificate.clone(),
                rescue_code: eq.rescue_code.clone(),
            },
            address: eq.address.clone(),
            using_unit: eq.using_unit.clone(),
            maintenance_unit: eq.maintenance_unit.clone(),
            site: incident.site.name.clone(),
        };
        let next = dispatch::next_check(config, Status::Occurred, now);
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
            now,
            "occurred",
            0,
            &first.name,
            "central",
            &incident.event.message,
        )
        .await?;
        let dispatch = self.dispatch_in(tx, &id).await?;
        let link_token = insert_link(tx, &id, &first.name, now).await?;
        let url = format!("{}/rescue/{}?t={}", config.public_url, id, link_token);
        self.queue_messages(
            tx,
            config,
            &dispatch,
            "trapped passenger reported",
            &url,
            now,
        )
        .await?;
        insert_step(
            tx,
            &id,
            now,
            "notified",
            0,
            &first.name,
            "central",
            &format!("called {}", first.name),
        )
        .await?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn queue_messages(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        config: &CentralConfig,
        dispatch: &Dispatch,
        reason: &str,
        url: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let messages = dispatch::messages_for(config, dispatch, reason, url);
        if messages.is_empty() {
            // Nobody can be told: say so in the record, loudly; the timer still escalates.
            tracing::error!(dispatch = %dispatch.id, unit = %dispatch.unit.name, "no webhook, MQTT topic or e-mail configured for the called unit");
            let note = format!(
                "no webhook, MQTT topic or e-mail configured for {}",
                dispatch.unit.name
            );
            insert_step(
                tx,
                &dispatch.id,
                now,
                "unreachable",
                dispatch.level,
                &dispatch.unit.name,
                "central",
                &note,
            )
            .await?;
        }
        // In a regional situation, a unit's messages of one batch period go out together.
        let situation: Option<String> =
            sqlx::query("SELECT situation_id FROM dispatches WHERE id = $1")
                .bind(&dispatch.id)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        let due = match situation {
            Some(_) => super::flood::batch_due(&config.flood, now),
            None => now,
        };
        for m in messages {
            sqlx::query(
                "INSERT INTO notifications (id, dispatch_id, channel, target, subject, payload, created_ms, next_attempt_ms, attempts, situation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
            )
            .bind(random_id())
            .bind(&dispatch.id)
            .bind(m.channel)
            .bind(m.target)
            .bind(m.subject)
            .bind(m.payload)
            .bind(now)
            .bind(due)
            .bind(&situation)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn dispatch_in(
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
        let rows = sqlx::query(
            "SELECT id, level, status, next_check_ms FROM dispatches WHERE next_check_ms IS NOT NULL
             AND next_check_ms <= $1 ORDER BY next_check_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueDispatch {
                    id: r.try_get(0)?,
                    level: r.try_get(1)?,
                    status: r.try_get(2)?,
                    next_check_ms: r.try_get(3)?,
                })
            })
            .collect()
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
        let chain_text: String = sqlx::query("SELECT chain FROM dispatches WHERE id = $1")
            .bind(&due.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
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
                now,
                "escalated",
                level,
                &unit.name,
                "central",
                &note,
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
                now,
                "overdue",
                level,
                &unit.name,
                "central",
                &format!("{reason}; no further level"),
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
    #[allow(clippy::too_many_arguments)]
    pub async fn set_dispatch_status(
        &self,
        config: &CentralConfig,
        id: &str,
        status: Status,
        unit: &str,
        actor: &str,
        role: &str,
        note: &str,
        now: i64,
    ) -> Result<Result<Dispatch, StepRefused>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current = self.dispatch_in(&mut tx, id).await?;
        if let Err(refused) = dispatch::check_step(current.status, &current.unit.name, unit, status)
        {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
        let level_started: i64 =
            sqlx::query("SELECT level_started_ms FROM dispatches WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
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
            now,
            status.as_str(),
            current.level,
            &current.unit.name,
            actor,
            note,
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
        let rows = sqlx::query(
            "SELECT at_ms, step, level, unit, actor, note FROM dispatch_steps WHERE dispatch_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Step {
                    at: rfc3339(r.try_get(0)?),
                    step: r.try_get(1)?,
                    level: r.try_get(2)?,
                    unit: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    note: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The unit a rescue-page link was sent to, when `token` is a link of dispatch `id`.
    pub async fn dispatch_link_unit(
        &self,
        id: &str,
        token: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT unit FROM dispatch_links WHERE token_sha256 = $1 AND dispatch_id = $2",
        )
        .bind(super::config::token_hash(token))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
    }

    /// Whether `unit` was ever called for this dispatch.
    pub async fn dispatch_called(&self, id: &str, unit: &str) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM dispatch_steps WHERE dispatch_id = $1 AND unit = $2")
                .bind(id)
                .bind(unit)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(n > 0)
    }

    /// Dispatches, newest first; only those that called `unit` when given.
    pub async fn dispatches(&self, unit: Option<&str>) -> Result<Vec<Dispatch>, StoreError> {
        let rows = match unit {
            None => {
                sqlx::query(&format!("SELECT {DISPATCH_COLUMNS} FROM dispatches ORDER BY created_ms DESC LIMIT 500"))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(u) => {
                sqlx::query(&format!(
                    "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE id IN
                     (SELECT dispatch_id FROM dispatch_steps WHERE unit = $1) ORDER BY created_ms DESC LIMIT 500"
                ))
                .bind(u)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(dispatch_from_row).collect()
    }

    /// Claims up to `limit` due notifications for `owner` until `now + lease`, oldest due
    /// first, in one statement: on PostgreSQL the rows another instance is claiming at the
    /// same moment are skipped (`FOR UPDATE SKIP LOCKED`) instead of waited for; SQLite has
    /// one writer. The lease condition is checked again in the update, so a row is never
    /// claimed twice while its lease holds.
    pub async fn claim_notifications(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let skip_locked = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE notifications SET owner = $1, lease_until_ms = $2
             WHERE id IN (SELECT id FROM notifications WHERE sent_ms IS NULL AND next_attempt_ms <= $3
                 AND (owner IS NULL OR lease_until_ms < $3) ORDER BY next_attempt_ms, created_ms LIMIT $4 {skip_locked})
             AND sent_ms IS NULL AND (owner IS NULL OR lease_until_ms < $3)
             RETURNING id, dispatch_id, channel, target, subject, payload, attempts, situation_id, next_attempt_ms, created_ms"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok((
                    (r.try_get::<i64, _>(8)?, r.try_get::<i64, _>(9)?),
                    Notification {
                        id: r.try_get(0)?,
                        dispatch_id: r.try_get(1)?,
                        channel: r.try_get(2)?,
                        target: r.try_get(3)?,
                        subject: r.try_get(4)?,
                        payload: r.try_get(5)?,
                        attempts: r.try_get(6)?,
                        situation_id: r.try_get(7)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING gives no order.
        claimed.sort_by_key(|(due, _)| *due);
        Ok(claimed.into_iter().map(|(_, n)| n).collect())
    }

    /// Marks a notification delivered and blanks the link token in the kept copy: only the
    /// recipient holds it from now on.
    pub async fn notification_sent(
        &self,
        id: &str,
        payload: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE notifications SET payload = $1 WHERE id = $2")
            .bind(redact_link_tokens(payload))
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE notifications SET sent_ms = $1, attempts = attempts + 1, owner = NULL, last_error = NULL WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn notification_failed(
        &self,
        id: &str,
        next_attempt: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = $1, owner = NULL, last_error = $2 WHERE id = $3",
        )
        .bind(next_attempt)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_gateway_status(
        &self,
        status: &GatewayStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        let state = match status.state {
            crate::model::GatewayState::Online => "online",
            crate::model::GatewayState::Offline => "offline",
        };
        sqlx::query(
            "INSERT INTO gateways (id, site, state, since_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET site = excluded.site, state = excluded.state,
                since_ms = excluded.since_ms, updated_ms = excluded.updated_ms",
        )
        .bind(&status.gateway)
        .bind(&status.site)
        .bind(state)
        .bind(status.since.map(ms))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn gateway_state(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT state FROM gateways WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Every piece of equipment with its state for the map; only `using_unit`'s when given.
    pub async fn equipment_states(
        &self,
        using_unit: Option<&str>,
        today: chrono::NaiveDate,
    ) -> Result<Vec<EquipmentState>, StoreError> {
        let rows = match using_unit {
            None => {
                sqlx::query(&format!("{EQUIPMENT_STATE_SQL} ORDER BY e.gateway, e.id"))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(u) => {
                sqlx::query(&format!(
                    "{EQUIPMENT_STATE_SQL} WHERE e.using_unit = $1 ORDER BY e.gateway, e.id"
                ))
                .bind(u)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let today = today.to_string();
        rows.iter()
            .map(|r| {
                let open_alarms: i64 = r.try_get("open_alarms")?;
                let open_trapped: i64 = r.try_get("open_trapped")?;
                let gateway_state: String = r.try_get("gateway_state")?;
                let next_inspection: Option<String> = r.try_get("next_inspection")?;
                let overdue = next_inspection
                    .as_deref()
                    .is_some_and(|d| d < today.as_str());
                let state = if open_trapped > 0 {
                    "trapped"
                } else if open_alarms > 0 {
                    "alarm"
                } else if gateway_state == "offline" {
                    "offline"
                } else if overdue {
                    "overdue"
                } else {
                    "normal"
                };
                let record: String = r.try_get("record")?;
                Ok(EquipmentState {
                    gateway: r.try_get("gateway")?,
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    name: r.try_get("name")?,
                    registration_code: r.try_get("registration_code")?,
                    using_unit: r.try_get("using_unit")?,
                    maintenance_unit: r.try_get("maintenance_unit")?,
                    address: r.try_get("address")?,
                    lat: r.try_get("lat")?,
                    lon: r.try_get("lon")?,
                    next_inspection,
                    insured: r.try_get::<Option<i64>, _>("insured")?.map(|v| v != 0),
                    state: state.into(),
                    gateway_state,
                    open_alarms,
                    latest_alarm: r.try_get("latest_alarm")?,
                    record: serde_json::from_str(&record).unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn alarm_unit(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT using_unit FROM alarms WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Acknowledges an alarm with who, when and a comment; false when it was already acked.
    pub async fn ack_alarm(
        &self,
        id: &str,
        actor: &str,
        role: &str,
        comment: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE alarms SET acked_ms = $1, acked_by = $2, ack_comment = $3 WHERE id = $4 AND acked_ms IS NULL",
        )
        .bind(now)
        .bind(actor)
        .bind(comment)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            insert_audit(&mut tx, now, actor, role, "alarm.ack", id, comment).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn timeline(&self, alarm_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, transition, time_ms, received_ms, value, limit_value, message, source, intake_notes
             FROM events WHERE alarm_id = $1 ORDER BY time_ms",
        )
        .bind(alarm_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get(0)?,
                    transition: r.try_get(1)?,
                    time: rfc3339(r.try_get(2)?),
                    received: rfc3339(r.try_get(3)?),
                    value: r.try_get(4)?,
                    limit: r.try_get(5)?,
                    message: r.try_get(6)?,
                    source: r.try_get(7)?,
                    intake_notes: r
                        .try_get::<Option<String>, _>(8)?
                        .map(|n| n.split(',').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query("SELECT at_ms, actor, role, action, target, detail FROM audit_log ORDER BY at_ms DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    at: rfc3339(r.try_get(0)?),
                    actor: r.try_get(1)?,
                    role: r.try_get(2)?,
                    action: r.try_get(3)?,
                    target: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// How many events are stored: each event id once.
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM events")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// The regulator's indicators at `now`.
    pub async fn indicators(
        &self,
        config: &CentralConfig,
        now: i64,
    ) -> Result<serde_json::Value, StoreError> {
        let today = Utc
            .timestamp_millis_opt(now)
            .single()
            .unwrap_or_default()
            .date_naive();
        let states = self.equipment_states(None, today).await?;
        let with_date: Vec<_> = states
            .iter()
            .filter(|e| e.next_inspection.is_some())
            .collect();
        let overdue = with_date
            .iter()
            .filter(|e| e.next_inspection.as_deref() < Some(today.to_string().as_str()))
            .count();
        let elevators: Vec<_> = states
            .iter()
            .filter(|e| e.kind == EquipmentKind::Elevator.as_str())
            .collect();
        let insured = elevators.iter().filter(|e| e.insured == Some(true)).count();
        let cylinders: (i64, i64) = {
            let r = sqlx::query("SELECT COUNT(DISTINCT cylinder_code), COUNT(DISTINCT CASE WHEN labelled = 1 THEN cylinder_code END) FROM fill_records")
                .fetch_one(&self.pool)
                .await?;
            (r.try_get(0)?, r.try_get(1)?)
        };
        let respond_ms = config.dispatch.respond_within.as_millis() as i64;
        let arrive_ms = config.dispatch.arrive_within.as_millis() as i64;
        let rows =
            sqlx::query("SELECT created_ms, responded_ms, on_site_ms, status FROM dispatches")
                .fetch_all(&self.pool)
                .await?;
        let (mut n_dispatch, mut responded_in_time, mut n_arrive, mut arrived_in_time) =
            (0, 0, 0, 0);
        for r in &rows {
            let created: i64 = r.try_get(0)?;
            let responded: Option<i64> = r.try_get(1)?;
            let on_site: Option<i64> = r.try_get(2)?;
            let status: String = r.try_get(3)?;
            // Open dispatches count once their limit has passed.
            if responded.is_some() || now - created > respond_ms {
                n_dispatch += 1;
                responded_in_time +=
                    i32::from(responded.is_some_and(|t| t - created <= respond_ms));
            }
            if status != "false_alarm" && (on_site.is_some() || now - created > arrive_ms) {
                n_arrive += 1;
                arrived_in_time += i32::from(on_site.is_some_and(|t| t - created <= arrive_ms));
            }
        }
        let day_ago = now - 24 * 3600 * 1000;
        let raised: Vec<i64> =
            sqlx::query("SELECT raised_ms FROM alarms WHERE raised_ms >= $1 ORDER BY raised_ms")
                .bind(day_ago)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        // A flood: more than 10 alarms within 10 minutes (ISA-18.2); count the windows that
        // start at an alarm and hold more than 10.
        let window = 10 * 60 * 1000;
        let mut floods = 0;
        let mut in_flood_until = i64::MIN;
        for (i, t) in raised.iter().enumerate() {
            let n = raised[i..].iter().take_while(|u| **u < t + window).count();
            if n > 10 && *t >= in_flood_until {
                floods += 1;
                in_flood_until = t + window;
            }
        }
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                serde_json::Value::Null
            } else {
                (a as f64 / b as f64).into()
            }
        };
        Ok(serde_json::json!({
            "inspection_overdue": { "overdue": overdue, "with_date": with_date.len(), "rate": ratio(overdue, with_date.len()) },
            "elevator_insurance": { "insured": insured, "elevators": elevators.len(), "rate": ratio(insured, elevators.len()) },
            "cylinder_labelling": { "labelled": cylinders.1, "seen": cylinders.0, "rate": ratio(cylinders.1 as usize, cylinders.0 as usize) },
            "response_rate": { "within_s": config.dispatch.respond_within.as_secs_f64(), "in_time": responded_in_time, "dispatches": n_dispatch, "rate": ratio(responded_in_time as usize, n_dispatch) },
            "arrival_rate": { "within_s": config.dispatch.arrive_within.as_secs_f64(), "in_time": arrived_in_time, "dispatches": n_arrive, "rate": ratio(arrived_in_time as usize, n_arrive) },
            "alarms": { "last_24h": raised.len(), "per_hour": raised.len() as f64 / 24.0, "floods_last_24h": floods },
        }))
    }
}

/// Replaces the token of every `?t=…` link with `REDACTED`.
pub fn redact_link_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("?t=") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let n = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n > 0 {
            out.push_str("REDACTED");
        }
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

/// Makes a rescue-page link token for `unit` and stores only its hash.
async fn insert_link(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dispatch_id: &str,
    unit: &str,
    now: i64,
) -> Result<String, StoreError> {
    let token = random_id();
    sqlx::query("INSERT INTO dispatch_links (token_sha256, dispatch_id, unit, created_ms) VALUES ($1, $2, $3, $4)")
        .bind(super::config::token_hash(&token))
        .bind(dispatch_id)
        .bind(unit)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(token)
}

/// The transition as the wire spells it (`raise`, `clear`, `acknowledge`...).
fn transition_name(t: Transition) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn insert_step(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dispatch_id: &str,
    at: i64,
    step: &str,
    level: i64,
    unit: &str,
    actor: &str,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dispatch_steps (id, dispatch_id, seq, at_ms, step, level, unit, actor, note)
         VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM dispatch_steps WHERE dispatch_id = $2),
                 $3, $4, $5, $6, $7, $8)",
    )
    .bind(random_id())
    .bind(dispatch_id)
    .bind(at)
    .bind(step)
    .bind(level)
    .bind(unit)
    .bind(actor)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    at: i64,
    actor: &str,
    role: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (id, at_ms, actor, role, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(random_id())
        .bind(at)
        .bind(actor)
        .bind(role)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn dispatch_from_row(r: &AnyRow) -> Result<Dispatch, StoreError> {
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

/// Inserts or refreshes one registry record, inside the caller's transaction.
async fn upsert_equipment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &str,
    site: &str,
    eq: &Equipment,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO equipment (gateway, id, kind, name, registration_code, using_unit, maintenance_unit, address,
            lat, lon, next_inspection, insured, site, record, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (gateway, id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
            registration_code = excluded.registration_code, using_unit = excluded.using_unit,
            maintenance_unit = excluded.maintenance_unit, address = excluded.address, lat = excluded.lat,
            lon = excluded.lon, next_inspection = excluded.next_inspection, insured = excluded.insured,
            site = excluded.site, record = excluded.record, updated_ms = excluded.updated_ms",
    )
    .bind(gateway.to_owned())
    .bind(eq.id.clone())
    .bind(eq.kind.as_str())
    .bind(eq.name.clone())
    .bind(eq.registration_code.clone())
    .bind(eq.using_unit.clone())
    .bind(eq.maintenance_unit.as_ref().map(|m| m.name.clone()))
    .bind(eq.address.clone())
    .bind(eq.location.map(|l| l.lat))
    .bind(eq.location.map(|l| l.lon))
    .bind(eq.next_inspection.map(|d| d.to_string()))
    .bind(eq.insured.map(i64::from))
    .bind(site.to_owned())
    .bind(serde_json::to_string(eq).expect("equipment serializes"))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_redacted() {
        let cases = [
            (
                "see http://x/rescue/1?t=0123abcd now",
                "see http://x/rescue/1?t=REDACTED now",
            ),
            (
                "\"rescue_url\":\"http://x/r/2?t=ff\"",
                "\"rescue_url\":\"http://x/r/2?t=REDACTED\"",
            ),
            ("no link", "no link"),
            ("odd ?t=", "odd ?t="),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_link_tokens(input), expected);
        }
    }
}
