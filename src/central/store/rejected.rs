//! Messages intake refused, kept so an operator can see what was refused and why
//! (`GET /api/v1/intake/rejected`). Only the newest `[intake] rejected_keep` are kept: whoever
//! reaches the broker can make central refuse messages, so the table must not grow without end.

use serde::Serialize;

use super::{random_id, rfc3339, Store, StoreError};

/// How much of a refused payload is kept.
const KEEP_PAYLOAD_BYTES: usize = 8 * 1024;

/// A message intake refused, as it is kept.
pub struct Refused<'a> {
    pub topic: &'a str,
    /// The message's own id, when it could be read.
    pub message_id: Option<&'a str>,
    /// The refusal's reason word (`bad_signature`…) and what it says.
    pub reason: &'a str,
    pub detail: &'a str,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    pub received: String,
    pub topic: String,
    /// The message's own id, when it could be read.
    pub message_id: Option<String>,
    pub reason: String,
    pub detail: String,
    /// The payload as text (invalid UTF-8 and NUL replaced by U+FFFD), cut at 8 KiB.
    pub payload: String,
    pub payload_bytes: i64,
}

/// A row of `rejected_messages` as the list reads it.
#[derive(sqlx::FromRow)]
struct StoredRejection {
    received_ms: i64,
    topic: String,
    message_id: Option<String>,
    reason: String,
    detail: String,
    payload: String,
    payload_bytes: i64,
}

impl Store {
    /// Keeps one refused message, then forgets all but the newest `keep`.
    pub async fn record_rejected(
        &self,
        refused: &Refused<'_>,
        now: i64,
        keep: i64,
    ) -> Result<(), StoreError> {
        let Refused {
            topic,
            message_id,
            reason,
            detail,
            payload,
        } = *refused;
        let mut end = payload.len().min(KEEP_PAYLOAD_BYTES);
        while end > 0 && end < payload.len() && (payload[end] & 0xC0) == 0x80 {
            end -= 1;
        }
        let text = String::from_utf8_lossy(&payload[..end]).replace('\0', "\u{FFFD}");
        let clean = |s: &str| s.replace('\0', "\u{FFFD}");
        sqlx::query(
            "INSERT INTO rejected_messages (id, received_ms, topic, message_id, reason, detail, payload, payload_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(random_id())
        .bind(now)
        .bind(clean(topic))
        .bind(message_id.map(clean))
        .bind(reason)
        .bind(clean(detail))
        .bind(text)
        .bind(payload.len() as i64)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM rejected_messages WHERE received_ms <
             (SELECT received_ms FROM rejected_messages ORDER BY received_ms DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep.max(1) - 1)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The refused messages, newest first.
    pub async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, StoreError> {
        let rows: Vec<StoredRejection> = sqlx::query_as(
            "SELECT received_ms, topic, message_id, reason, detail, payload, payload_bytes
             FROM rejected_messages ORDER BY received_ms DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RejectedRow {
                received: rfc3339(r.received_ms),
                topic: r.topic,
                message_id: r.message_id,
                reason: r.reason,
                detail: r.detail,
                payload: r.payload,
                payload_bytes: r.payload_bytes,
            })
            .collect())
    }
}
