//! The upward exchange's durable queue (`central/exchange.rs` has the rules). Every new version
//! of an equipment record is queued in the transaction that writes it (`queue_equipment_version`,
//! keyed by the version's time), so a record changed twice between two scans is sent twice, in
//! order. The rest is queued by a scan of the store with deterministic keys (`INSERT … ON
//! CONFLICT DO NOTHING`), so a scan repeated after a crash queues nothing twice and misses
//! nothing committed; the scan also queues the current version of equipment written before the
//! exchange was on. A row is marked sent only after the receiver confirmed it; a row the
//! receiver refused is set aside (`refused_ms`, with its status and answer), kept, left out of
//! what is due, and put back in its place only by a regulator's re-queue (audited).

use serde::Serialize;
use sqlx::Row;

use super::{insert_audit, rfc3339, Store, StoreError};

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
    /// Records the receiver refused, set aside until a regulator re-queues them.
    pub refused: i64,
    pub oldest_pending: Option<String>,
    pub last_error: Option<String>,
    /// Per kind: (pending, sent, refused).
    pub by_kind: std::collections::BTreeMap<String, (i64, i64, i64)>,
    /// The refused records, newest refusal first, at most [`REFUSED_LISTED`].
    pub refused_records: Vec<Refused>,
}

/// A record the receiver refused, as the regulator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    pub key: String,
    pub kind: String,
    pub refused: String,
    pub status: i64,
    pub answer: String,
}

/// How many refused records the status lists (the count covers them all).
pub const REFUSED_LISTED: i64 = 200;

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
    /// version before the one it replaces. Refused records are not due.
    pub async fn exchange_due(&self, now: i64, limit: i64) -> Result<Vec<Queued>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, kind, record, attempts, next_attempt_ms FROM exchange_queue
             WHERE sent_ms IS NULL AND refused_ms IS NULL ORDER BY created_ms, key LIMIT $1",
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

    /// Sets a record the receiver refused aside, with the receiver's status and an excerpt of
    /// its answer; false when it was not waiting (sent, or set aside already).
    pub async fn exchange_refused(
        &self,
        key: &str,
        status: u16,
        answer: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE exchange_queue SET refused_ms = $1, refused_status = $2, refused_answer = $3,
             attempts = attempts + 1, last_error = $4
             WHERE key = $5 AND sent_ms IS NULL AND refused_ms IS NULL",
        )
        .bind(now)
        .bind(i64::from(status))
        .bind(answer)
        .bind(format!("receiver refused the record ({status})"))
        .bind(key)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Puts a refused record back in its place in the queue, due now, with an audit entry
    /// naming the refusal it clears. None when `key` is not a refused record.
    pub async fn exchange_requeue(
        &self,
        key: &str,
        actor: &str,
        role: &str,
        now: i64,
    ) -> Result<Option<Refused>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT key, kind, refused_ms, refused_status, refused_answer FROM exchange_queue
             WHERE key = $1 AND sent_ms IS NULL AND refused_ms IS NOT NULL",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let refused = refused_of(&row)?;
        sqlx::query(
            "UPDATE exchange_queue SET refused_ms = NULL, refused_status = NULL, refused_answer = NULL,
             attempts = 0, next_attempt_ms = $1, last_error = NULL WHERE key = $2",
        )
        .bind(now)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "refused {} at {}: {}",
            refused.status, refused.refused, refused.answer
        );
        insert_audit(&mut tx, now, actor, role, "exchange.requeue", key, &detail).await?;
        tx.commit().await?;
        Ok(Some(refused))
    }

    pub async fn exchange_status(&self) -> Result<QueueStatus, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, SUM(CASE WHEN sent_ms IS NULL AND refused_ms IS NULL THEN 1 ELSE 0 END),
             SUM(CASE WHEN sent_ms IS NULL THEN 0 ELSE 1 END),
             SUM(CASE WHEN sent_ms IS NULL AND refused_ms IS NULL AND attempts > 0 THEN 1 ELSE 0 END),
             MIN(CASE WHEN sent_ms IS NULL AND refused_ms IS NULL THEN created_ms END),
             SUM(CASE WHEN sent_ms IS NULL AND refused_ms IS NOT NULL THEN 1 ELSE 0 END)
             FROM exchange_queue GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut status = QueueStatus::default();
        let mut oldest: Option<i64> = None;
        for r in &rows {
            let (pending, sent, failing, refused): (i64, i64, i64, i64) =
                (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(5)?);
            status.pending += pending;
            status.sent += sent;
            status.failing += failing;
            status.refused += refused;
            if let Some(t) = r.try_get::<Option<i64>, _>(4)? {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
            status
                .by_kind
                .insert(r.try_get(0)?, (pending, sent, refused));
        }
        status.oldest_pending = oldest.map(super::rfc3339);
        status.last_error = sqlx::query("SELECT last_error FROM exchange_queue WHERE sent_ms IS NULL AND refused_ms IS NULL AND last_error IS NOT NULL ORDER BY next_attempt_ms DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let refused = sqlx::query(
            "SELECT key, kind, refused_ms, refused_status, refused_answer FROM exchange_queue
             WHERE refused_ms IS NOT NULL AND sent_ms IS NULL ORDER BY refused_ms DESC, key LIMIT $1",
        )
        .bind(REFUSED_LISTED)
        .fetch_all(&self.pool)
        .await?;
        status.refused_records = refused.iter().map(refused_of).collect::<Result<_, _>>()?;
        Ok(status)
    }
}

fn refused_of(r: &sqlx::any::AnyRow) -> Result<Refused, sqlx::Error> {
    Ok(Refused {
        key: r.try_get(0)?,
        kind: r.try_get(1)?,
        refused: rfc3339(r.try_get(2)?),
        status: r.try_get(3)?,
        answer: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
    })
}
