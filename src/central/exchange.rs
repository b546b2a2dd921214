//! Upward exchange (GB/T 38656 style): central sends equipment records, incidents, dispatch
//! records and daily indicators to a higher-level platform over HTTP/JSON, each record keyed
//! by the district's GB/T 2260 area code.
//!
//! The path: each new version of an equipment record is queued in the transaction that writes
//! it, and a scan of the store queues what else the queue lacks (`store/exchange.rs`: a table,
//! deterministic keys: `equipment:{gateway}:{id}:{version time}`, `incident:{gateway}:{id}`,
//! `dispatch:{id}:{status}`, `indicators:{area}:{date}`); the sender posts records in queue
//! order in batches (`{"area_code", "records": [{"key", "type", "area_code", "data"}]}`, header
//! `Idempotency-Key`), and marks them sent only on a 2xx answer; otherwise it retries with
//! exponential backoff, and what was queued after waits. **Invariant:** every version of an
//! equipment record, and every other record committed to the store by the next scan, reaches
//! the queue and leaves it only when the receiver confirmed it, across receiver outages and
//! central restarts; the versions of one record arrive in the order they were written; a resend
//! carries the same key, so a receiver that deduplicates by key holds each record once.
//!
//! Where the rules come from, and what is ours: GB/T 38656-2020 is the special-equipment IoT
//! exchange specification (records keyed by the GB/T 2260 area code, synced up to the
//! higher-level platform, `domain.md`); its field names differ between platforms, so
//! `[exchange.field_map]` renames our fields. Ours: the envelope, the keys, batches of 100, the
//! retry schedule (1 s doubling to 5 min), and one indicators record per day.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use toml::Spanned;

use super::config::CentralConfig;
use super::now_ms;
use super::store::Store;
use crate::config::Problem;

/// `[exchange]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    endpoint: Spanned<String>,
    area_code: Spanned<String>,
    batch: Option<u32>,
    poll_interval_ms: Option<u64>,
    retry_max_s: Option<u64>,
    #[serde(default)]
    field_map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExchangeSettings {
    pub endpoint: String,
    /// The district's six-digit GB/T 2260 administrative division code.
    pub area_code: String,
    pub batch: i64,
    #[serde(skip)]
    pub poll_interval: Duration,
    #[serde(skip)]
    pub retry_max: Duration,
    /// Our field name → the receiver's, applied to each record's top-level fields.
    pub field_map: BTreeMap<String, String>,
}

impl RawExchange {
    pub fn validate(self, problems: &mut Vec<Problem>) -> ExchangeSettings {
        let endpoint = self.endpoint.get_ref();
        if !url::Url::parse(endpoint).is_ok_and(|u| u.scheme() == "http" || u.scheme() == "https") {
            problems.push(Problem::new(
                self.endpoint.span(),
                format!("endpoint `{endpoint}` is not an http(s) URL"),
            ));
        }
        let area = self.area_code.get_ref();
        if area.len() != 6 || !area.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(
                Problem::new(
                    self.area_code.span(),
                    format!("area_code `{area}` is not a GB/T 2260 code"),
                )
                .hint("six digits, for example \"310115\""),
            );
        }
        ExchangeSettings {
            endpoint: endpoint.clone(),
            area_code: area.clone(),
            batch: i64::from(self.batch.unwrap_or(100).clamp(1, 1000)),
            poll_interval: Duration::from_millis(self.poll_interval_ms.unwrap_or(1000).max(10)),
            retry_max: Duration::from_secs(self.retry_max_s.unwrap_or(300).max(1)),
            field_map: self.field_map,
        }
    }
}

/// The record as the receiver gets it: our fields renamed by the map.
pub fn map_fields(record: &str, map: &BTreeMap<String, String>) -> Value {
    let mut value: Value = serde_json::from_str(record).unwrap_or(Value::String(record.to_owned()));
    if let Value::Object(fields) = &mut value {
        let renamed = std::mem::take(fields)
            .into_iter()
            .map(|(k, v)| (map.get(&k).cloned().unwrap_or(k), v))
            .collect();
        *fields = renamed;
    }
    value
}

/// The delay before attempt `attempts + 1`: 1 s doubling, at most `max`.
pub fn retry_after(attempts: i64, max: Duration) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 20)).min(max)
}

/// Scans, queues and sends until `stop`.
pub async fn run(config: Arc<CentralConfig>, store: Store, stop: CancellationToken) {
    let Some(settings) = config.exchange.clone() else {
        return;
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    loop {
        if let Err(e) = step(&config, &settings, &store, &http).await {
            tracing::error!(error = %e, "upward exchange: store error; will retry");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

async fn step(
    config: &CentralConfig,
    s: &ExchangeSettings,
    store: &Store,
    http: &reqwest::Client,
) -> Result<(), super::store::StoreError> {
    let now = now_ms();
    store.exchange_scan(now).await?;
    let day = super::hazards::local_today(now, config.scorecard.utc_offset_minutes);
    let key = format!("indicators:{}:{day}", s.area_code);
    if !store.exchange_has(&key).await? {
        let indicators = store.indicators(config, now).await?;
        store
            .exchange_enqueue(
                &key,
                "indicators",
                &json!({ "date": day.to_string(), "indicators": indicators }).to_string(),
                now,
            )
            .await?;
    }
    loop {
        let due = store.exchange_due(now_ms(), s.batch).await?;
        if due.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = due.iter().map(|q| q.key.clone()).collect();
        let records: Vec<Value> = due
            .iter()
            .map(|q| json!({ "key": q.key, "type": q.kind, "area_code": s.area_code, "data": map_fields(&q.record, &s.field_map) }))
            .collect();
        let idempotency = crate::auth::token_hash(&keys.join("\n"));
        let sent = http
            .post(&s.endpoint)
            .header("Idempotency-Key", idempotency)
            .json(&json!({ "area_code": s.area_code, "records": records }))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => store.exchange_sent(&keys, now_ms()).await?,
            failed => {
                let error = match failed {
                    Ok(r) => format!("receiver answered {}", r.status()),
                    Err(e) => format!("receiver unreachable: {e}"),
                };
                let attempts = due.iter().map(|q| q.attempts).max().unwrap_or(0);
                let next = now_ms() + retry_after(attempts, s.retry_max).as_millis() as i64;
                tracing::warn!(records = keys.len(), %error, "upward exchange failed; will retry");
                store.exchange_failed(&keys, &error, next).await?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_renamed_and_retries_back_off() {
        let map = BTreeMap::from([("registration_code".to_owned(), "equip_code".to_owned())]);
        assert_eq!(
            map_fields(r#"{"registration_code":"3110","kind":"elevator"}"#, &map),
            json!({ "equip_code": "3110", "kind": "elevator" })
        );
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = [0, 1, 2, 8, 9, 40]
            .iter()
            .map(|a| retry_after(*a, max).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 256, 300, 300]);
    }
}
