//! The upward exchange's durable queue (`central/exchange.rs` has the rules). Every new version
//! of an equipment record is queued in the transaction that writes it (`queue_equipment_version`,
//! keyed by the version's time), so a record changed twice between two scans is sent twice, in
//! order. The rest is queued by a scan of the store with deterministic keys (`INSERT … ON
//! CONFLICT DO NOTHING`), so a scan repeated after a crash queues nothing twice and misses
//! nothing committed; the scan also queues the current version of equipment written before the
//! exchange was on. A row is marked sent only after the receiver confirmed it.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// One record waiting for (or given to) the higher-level platform.
#[derive(Debug, Clone)]
pub struct Queued {
    pub key: String,
    pub kind: String,
    pub record: String,
    pub attempts: i64,
}

/// The queue's state for the status page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStatus {
    pub pending: i64,
    pub sent: i64,
    pub failing: i64,
    pub oldest_pending: Option<String>,
    pub last_error: Option<String>,
    pub by_kind: std::collections::BTreeMap<String, (i64, i64)>,
}

const ENQUEUE: &str =
    "INSERT INTO exchange_queue (key, kind, record, created_ms, attempts, next_attempt_ms)
     VALUES ($1, $2, $3, $4, 0, $4) ON CONFLICT (key) DO NOTHING";

/// Queues version `version` (its `updated_ms`) of an equipment record, in the transaction that
/// wrote it. The version's time is its queue time too, so the versions of one record leave the
/// queue in the order they were written.
pub(super) async fn queue_equipment_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &str,
    id: &str,
    version: i64,
    record: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(ENQUEUE)
        .bind(format!("equipment:{gateway}:{id}:{version}"))
        .bind("equipment")
        .bind(record)
        .bind(version)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What each kind of record is scanned from: key, kind and the JSON of the record, for rows
/// not yet queued.
const SCANS: [&str; 3] = [
    "SELECT 'equipment:' || e.gateway || ':' || e.id || ':' || CAST(e.updated_ms AS TEXT), 'equipment', e.record
     FROM equipment e WHERE NOT EXISTS (SELECT 1 FROM exchange_queue q
     WHERE q.key = 'equipment:' || e.gateway || ':' || e.id || ':' || CAST(e.updated_ms AS TEXT)) LIMIT 500",
    "SELECT 'incident:' || v.gateway || ':' || v.id, 'incident', v.payload
     FROM events v WHERE NOT EXISTS (SELECT 1 FROM exchange_queue q
     WHERE q.key = 'incident:' || v.gateway || ':' || v.id) LIMIT 500",
    "SELECT 'dispatch:' || d.id || ':' || d.status, 'dispatch', d.record
     FROM dispatches d WHERE NOT EXISTS (SELECT 1 FROM exchange_queue q
     WHERE q.key = 'dispatch:' || d.id || ':' || d.status) LIMIT 500",
];

impl Store {
    /// Queues what the store holds and the queue does not: equipment versions, incidents,
    /// dispatch states. Returns how many rows it queued.
    pub async fn exchange_scan(&self, now: i64) -> Result<usize, StoreError> {
        let mut queued = 0;
        for scan in SCANS {
            let rows = sqlx::query(scan).fetch_all(&self.pool).await?;
            for r in &rows {
                queued += self
                    .exchange_enqueue(
                        &r.try_get::<String, _>(0)?,
                        &r.try_get::<String, _>(1)?,
                        &r.try_get::<String, _>(2)?,
                        now,
                    )
                    .await? as usize;
            }
        }
        Ok(queued)
    }

    /// Queues one record under `key`; false when the key was queued before.
    pub async fn exchange_enqueue(
        &self,
        key: &str,
        kind: &str,
        record: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(ENQUEUE)
            .bind(key)
            .bind(kind)
            .bind(record)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn exchange_has(&self, key: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM exchange_queue WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Up to `limit` records due at `now`, in queue order (oldest first): the pending records
    /// from the head of the queue up to the first one still waiting for its retry. A failed
    /// batch so holds back what was queued after it, and a receiver never gets a record's
    /// version before the one it replaces.
    pub async fn exchange_due(&self, now: i64, limit: i64) -> Result<Vec<Queued>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, kind, record, attempts, next_attempt_ms FROM exchange_queue WHERE sent_ms IS NULL
             ORDER BY created_ms, key LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for r in &rows {
            if r.try_get::<i64, _>(4)? > now {
                break;
            }
            due.push(Queued {
                key: r.try_get(0)?,
                kind: r.try_get(1)?,
                record: r.try_get(2)?,
                attempts: r.try_get(3)?,
            });
        }
        Ok(due)
    }

    /// Marks records confirmed by the receiver.
    pub async fn exchange_sent(&self, keys: &[String], now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query("UPDATE exchange_queue SET sent_ms = $1, last_error = NULL WHERE key = $2 AND sent_ms IS NULL")
                .bind(now)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt; the next is due at `next_ms`.
    pub async fn exchange_failed(
        &self,
        keys: &[String],
        error: &str,
        next_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query(
                "UPDATE exchange_queue SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2
                 WHERE key = $3 AND sent_ms IS NULL",
            )
            .bind(next_ms)
            .bind(error)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn exchange_status(&self) -> Result<QueueStatus, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, SUM(CASE WHEN sent_ms IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN sent_ms IS NULL THEN 0 ELSE 1 END),
             SUM(CASE WHEN sent_ms IS NULL AND attempts > 0 THEN 1 ELSE 0 END), MIN(CASE WHEN sent_ms IS NULL THEN created_ms END)
             FROM exchange_queue GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut status = QueueStatus::default();
        let mut oldest: Option<i64> = None;
        for r in &rows {
            let (pending, sent, failing): (i64, i64, i64) =
                (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            status.pending += pending;
            status.sent += sent;
            status.failing += failing;
            if let Some(t) = r.try_get::<Option<i64>, _>(4)? {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
            status.by_kind.insert(r.try_get(0)?, (pending, sent));
        }
        status.oldest_pending = oldest.map(super::rfc3339);
        status.last_error = sqlx::query("SELECT last_error FROM exchange_queue WHERE sent_ms IS NULL AND last_error IS NOT NULL ORDER BY next_attempt_ms DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(status)
    }
}
