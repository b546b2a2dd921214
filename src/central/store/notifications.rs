//! Pending notifications of rescue dispatches: queued in the dispatch's transaction, claimed
//! under a lease by whichever instance delivers them (`notify.rs`), then marked sent (with the
//! link token blanked in the kept copy) or failed (with the next attempt's time).

use sqlx::Row;

use super::dispatches::{insert_step, NewStep};
use super::{random_id, Backend, Store, StoreError};
use crate::central::config::CentralConfig;
use crate::central::dispatch::{self, Dispatch};

#[derive(Debug, Clone, sqlx::FromRow)]
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

impl Store {
    pub(super) async fn queue_messages(
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
                &NewStep {
                    at: now,
                    step: "unreachable",
                    level: dispatch.level,
                    unit: &dispatch.unit.name,
                    actor: "central",
                    note: &note,
                },
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
            Some(_) => crate::central::flood::batch_due(&config.flood, now),
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
