//! Pending notifications of rescue dispatches: queued in the dispatch's transaction, claimed
//! under a lease by whichever instance delivers them (`notify.rs`), then marked sent (with the
//! link token blanked in the kept copy) or failed (with the next attempt's time).

use sqlx::Row;

use super::dispatches::insert_step;
use super::{random_id, Store, StoreError};
use crate::central::config::CentralConfig;
use crate::central::dispatch::{self, Dispatch};

#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub dispatch_id: String,
    pub channel: String,
    pub target: String,
    pub subject: String,
    pub payload: String,
    pub attempts: i64,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
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
                now,
                "unreachable",
                dispatch.level,
                &dispatch.unit.name,
                "central",
                &note,
            )
            .await?;
        }
        for m in messages {
            sqlx::query(
                "INSERT INTO notifications (id, dispatch_id, channel, target, subject, payload, created_ms, next_attempt_ms, attempts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0)",
            )
            .bind(random_id())
            .bind(&dispatch.id)
            .bind(m.channel)
            .bind(m.target)
            .bind(m.subject)
            .bind(m.payload)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Claims up to `limit` due notifications for `owner` until `now + lease`.
    pub async fn claim_notifications(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let candidates: Vec<String> = sqlx::query(
            "SELECT id FROM notifications WHERE sent_ms IS NULL AND next_attempt_ms <= $1
             AND (owner IS NULL OR lease_until_ms < $1) ORDER BY next_attempt_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in candidates {
            let n = sqlx::query(
                "UPDATE notifications SET owner = $1, lease_until_ms = $2 WHERE id = $3 AND sent_ms IS NULL
                 AND (owner IS NULL OR lease_until_ms < $4)",
            )
            .bind(owner)
            .bind(now + lease_ms)
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 1 {
                let r = sqlx::query(
                    "SELECT id, dispatch_id, channel, target, subject, payload, attempts FROM notifications WHERE id = $1",
                )
                .bind(&id)
                .fetch_one(&self.pool)
                .await?;
                claimed.push(Notification {
                    id: r.try_get(0)?,
                    dispatch_id: r.try_get(1)?,
                    channel: r.try_get(2)?,
                    target: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    payload: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                });
            }
        }
        Ok(claimed)
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
