//! The central store: one schema (`schema.rs`) on SQLite (embedded default, WAL) or
//! PostgreSQL (when several instances share the load). All state lives here, dispatch timers
//! and pending notifications included, so any instance can take over from one that died.
//! This file holds the pool, the migrations, the errors and the helpers the parts share; each
//! part of the schema has its file (`incidents`, `dispatches`, `notifications`, `gateways`,
//! `dashboard`, `alarms`, `rejected`, `rescue`).
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
mod board;
pub mod cylinders;
mod dashboard;
mod dispatches;
mod equipment;
mod equipment_list;
pub mod exchange;
mod gateways;
pub mod hazards;
pub mod history;
mod incidents;
mod map;
mod notifications;
mod page;
mod rejected;
mod rescue;
mod schema;
mod situations;
mod trends;

pub use alarms::{AlarmFilter, AlarmPage, AlarmRow, Bind};
pub use board::{DispatchFilter, DispatchPage};
pub use dashboard::{AuditRow, EquipmentState, EventRow};
pub use dispatches::{DueDispatch, RescueStep};
pub use equipment::{EquipmentDetail, EquipmentMatch};
pub use equipment_list::{
    counts_sql, EquipmentCounts, EquipmentFilter, EquipmentPage, StateCounts,
    DEFAULT_EQUIPMENT_PAGE, MAX_EQUIPMENT_PAGE, WORST_FIRST,
};
pub use incidents::IngestOutcome;
pub use map::{MapPoint, MapView};
pub use notifications::{redact_link_tokens, Notification};
pub use page::bound;
pub use rejected::{Refused, RejectedRow};
pub use rescue::RescueFacts;
pub use situations::Situation;
pub use trends::Trends;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::model::Equipment;

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
    /// Connections to the database: one for SQLite (its writes are serial anyway), eight for
    /// PostgreSQL. Cloning a `Store` clones this handle, not the connections.
    pool: AnyPool,
    /// Which engine the URL named: migrations take PostgreSQL's advisory lock, and SQLite is
    /// set to WAL with full sync.
    pub backend: Backend,
    /// The map's registry index (`map.rs`), shared by the clones of this store.
    map_index: std::sync::Arc<tokio::sync::Mutex<map::MapIndex>>,
    /// The upward exchange is on: each new version of an equipment record is queued for it in
    /// the transaction that writes it (`exchange.rs`).
    exchange: bool,
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
        let store = Store {
            pool,
            backend,
            map_index: Default::default(),
            exchange: false,
        };
        store.migrate(i64::MAX).await?;
        store.backfill_alarm_areas().await?;
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
        let store = Store {
            pool,
            backend,
            map_index: Default::default(),
            exchange: false,
        };
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
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
                .fetch_all(&mut *conn)
                .await?;
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

    /// This store queues every new version of an equipment record for the upward exchange.
    pub fn with_exchange(mut self, on: bool) -> Store {
        self.exchange = on;
        self
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
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

/// Inserts or refreshes one registry record, inside the caller's transaction. A new or changed
/// record (or site) is a new version: `updated_ms` moves to `now`, or just past the previous
/// version's when the clock is behind it, so each version has its own time; with `exchange`
/// the version is queued for the upward exchange in the same transaction. An unchanged record
/// is left as it is.
async fn upsert_equipment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &str,
    site: &str,
    eq: &Equipment,
    now: i64,
    exchange: bool,
) -> Result<(), sqlx::Error> {
    let record = serde_json::to_string(eq).expect("equipment serializes");
    let version: Option<i64> = sqlx::query_scalar(
        "INSERT INTO equipment (gateway, id, kind, name, registration_code, using_unit, maintenance_unit, address,
            lat, lon, next_inspection, insured, site, record, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (gateway, id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
            registration_code = excluded.registration_code, using_unit = excluded.using_unit,
            maintenance_unit = excluded.maintenance_unit, address = excluded.address, lat = excluded.lat,
            lon = excluded.lon, next_inspection = excluded.next_inspection, insured = excluded.insured,
            site = excluded.site, record = excluded.record,
            updated_ms = CASE WHEN excluded.updated_ms > equipment.updated_ms THEN excluded.updated_ms
                ELSE equipment.updated_ms + 1 END
         WHERE equipment.record <> excluded.record OR equipment.site <> excluded.site
         RETURNING updated_ms",
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
    .bind(&record)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let (Some(version), true) = (version, exchange) {
        exchange::queue_equipment_version(tx, gateway, &eq.id, version, &record).await?;
    }
    Ok(())
}
