//! Upward exchange (GB/T 38656 style): central sends equipment records, incidents, dispatch
//! records and daily indicators to a higher-level platform over HTTP/JSON, each record keyed
//! by the district's GB/T 2260 area code.
//!
//! The path: each new version of an equipment record is queued in the transaction that writes
//! it, and a scan of the store queues what else the queue lacks (`store/exchange.rs`: a table,
//! deterministic keys: `equipment:{gateway}:{id}:{version time}`, `incident:{gateway}:{id}`,
//! `dispatch:{id}:{status}`, `indicators:{area}:{date}`); the sender posts records in queue
//! order in batches (`{"area_code", "records": [{"key", "type", "area_code", "data"}]}`, header
//! `Idempotency-Key`, a hash of the batch's keys), and marks them sent only on a 2xx answer.
//!
//! A failed batch is one of two things. *Passing*: the receiver is unreachable, or answers 5xx,
//! 408 or 429, or 401, 403, 404, 405 or 407 (credentials or address wrong: the link, not the
//! records, is at fault, and setting the whole queue aside for it would only make work): the
//! whole batch is retried with exponential backoff, and what was queued after waits. *Refused*:
//! any other 4xx (400, 409, 413, 422...) judges the batch's content. A refused batch of more
//! than one record is split in two and each half sent in order, the first half first, down to
//! single records, so the good records of the batch go at once; a single record refused is set
//! aside (`refused_ms`, with the status and the first [`ANSWER_EXCERPT`] characters of the
//! answer), counted in `seguard_central_exchange_refused_total{kind}`, logged at WARN once, and
//! never retried by itself; what follows it in the queue goes on. A passing failure while
//! splitting stops there: what is not yet confirmed waits for its retry, whole, in order. The
//! regulator sees the refused records at `/exchange` and re-queues one once the receiver was
//! fixed (`POST /api/v1/exchange/requeue`, audited `exchange.requeue`); it goes back to its old
//! place (its queue time), so it is sent next, and if refused again is set aside again.
//!
//! **Invariant:** every version of an equipment record, and every other record committed to the
//! store by the next scan, reaches the queue and leaves it only when the receiver confirmed it
//! or refused it alone (then it stays in the store, set aside), across receiver outages and
//! central restarts; the versions of one record arrive in the order they were written, less the
//! refused ones; a resend carries the same key, so a receiver that deduplicates by key holds
//! each record once. The later versions of an equipment record whose earlier version was
//! refused are not held back: each version is the whole record, so the receiver still ends with
//! the newest; a refused version re-queued after them arrives after them, its key naming its
//! version time. The splitting is not stored: after a crash the unconfirmed rest of the batch is
//! sent again as one batch (same keys, so the same Idempotency-Key as before for the same set),
//! refused again and split again; what was confirmed is marked sent and not sent again.
//!
//! Where the rules come from, and what is ours: GB/T 38656-2020 is the special-equipment IoT
//! exchange specification (records keyed by the GB/T 2260 area code, synced up to the
//! higher-level platform, `domain.md`); its field names differ between platforms, so
//! `[exchange.field_map]` renames our fields. Ours: the envelope, the keys, batches of 100, the
//! retry schedule (1 s doubling to 5 min), one indicators record per day, which answers refuse
//! content, and setting a refused record aside.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use toml::Spanned;

use super::config::CentralConfig;
use super::now_ms;
use super::store::exchange::Queued;
use super::store::{Store, StoreError};
use super::CentralMetrics;
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

/// The most characters of a refusal's answer kept with the refused record.
pub const ANSWER_EXCERPT: usize = 500;

/// Whether an HTTP status refuses the content of the batch (so the batch is split and a record
/// refused alone is set aside), rather than failing for a while.
pub fn refuses_content(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 404 | 405 | 407 | 408 | 429)
}

/// What came of posting one batch.
enum Answer {
    Confirmed,
    /// The receiver refused the content: its status and an excerpt of its answer.
    Refused(u16, String),
    /// A passing failure, as the status page says it.
    Failed(String),
}

/// Scans, queues and sends until `stop`.
pub async fn run(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    stop: CancellationToken,
) {
    let Some(settings) = config.exchange.clone() else {
        return;
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    loop {
        if let Err(e) = step(&config, &settings, &store, &metrics, &http).await {
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
    metrics: &CentralMetrics,
    http: &reqwest::Client,
) -> Result<(), StoreError> {
    let now = now_ms();
    store.exchange_scan(now).await?;
    let day = super::zone::local_date(now, config.zone());
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
        if due.is_empty() || !deliver(s, store, metrics, http, &due).await? {
            return Ok(());
        }
    }
}

/// Delivers `due` in order, splitting refused batches down to the records refused, which it
/// sets aside. False when a passing failure stopped it: what was not confirmed waits for its
/// retry.
async fn deliver(
    s: &ExchangeSettings,
    store: &Store,
    metrics: &CentralMetrics,
    http: &reqwest::Client,
    due: &[Queued],
) -> Result<bool, StoreError> {
    // The parts still to send, the next one last.
    let mut parts = vec![due];
    while let Some(part) = parts.pop() {
        match post(s, http, part).await {
            Answer::Confirmed => store.exchange_sent(&keys_of(part), now_ms()).await?,
            Answer::Refused(..) if part.len() > 1 => {
                let (first, rest) = part.split_at(part.len() / 2);
                parts.extend([rest, first]);
            }
            Answer::Refused(status, answer) => {
                let q = &part[0];
                if store
                    .exchange_refused(&q.key, status, &answer, now_ms())
                    .await?
                {
                    metrics.exchange_refused(&q.kind, &q.key, status, &answer);
                }
            }
            Answer::Failed(error) => {
                let waiting: Vec<&Queued> = part
                    .iter()
                    .chain(parts.iter().rev().flat_map(|p| p.iter()))
                    .collect();
                let keys: Vec<String> = waiting.iter().map(|q| q.key.clone()).collect();
                let attempts = waiting.iter().map(|q| q.attempts).max().unwrap_or(0);
                let next = now_ms() + retry_after(attempts, s.retry_max).as_millis() as i64;
                tracing::warn!(records = keys.len(), %error, "upward exchange failed; will retry");
                store.exchange_failed(&keys, &error, next).await?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn keys_of(part: &[Queued]) -> Vec<String> {
    part.iter().map(|q| q.key.clone()).collect()
}

/// Posts one batch and reads what the receiver made of it.
async fn post(s: &ExchangeSettings, http: &reqwest::Client, part: &[Queued]) -> Answer {
    let records: Vec<Value> = part
        .iter()
        .map(|q| json!({ "key": q.key, "type": q.kind, "area_code": s.area_code, "data": map_fields(&q.record, &s.field_map) }))
        .collect();
    let idempotency = crate::auth::token_hash(&keys_of(part).join("\n"));
    let sent = http
        .post(&s.endpoint)
        .header("Idempotency-Key", idempotency)
        .json(&json!({ "area_code": s.area_code, "records": records }))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Answer::Confirmed,
        Ok(r) if refuses_content(r.status().as_u16()) => {
            Answer::Refused(r.status().as_u16(), excerpt(r).await)
        }
        Ok(r) => Answer::Failed(format!("receiver answered {}", r.status())),
        Err(e) => Answer::Failed(format!("receiver unreachable: {e}")),
    }
}

/// The first [`ANSWER_EXCERPT`] characters of an answer, read no further than they need; `…`
/// marks a cut.
async fn excerpt(mut r: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut whole = true;
    loop {
        if body.len() >= ANSWER_EXCERPT * 4 {
            whole = false;
            break;
        }
        match r.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                whole = false;
                break;
            }
        }
    }
    cut(&String::from_utf8_lossy(&body), whole)
}

/// `text` cut to [`ANSWER_EXCERPT`] characters, `…` marking a cut (or a body not read whole).
fn cut(text: &str, whole: bool) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(ANSWER_EXCERPT).collect();
    if !whole || out.len() < text.len() {
        out.push('…');
    }
    out
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

    #[test]
    fn content_refusals_are_told_from_passing_failures() {
        let refusing: Vec<u16> = (100..600).filter(|s| refuses_content(*s)).collect();
        assert!(refusing.iter().all(|s| (400..500).contains(s)));
        for s in [400, 409, 413, 415, 422] {
            assert!(refusing.contains(&s), "{s}");
        }
        for s in [200, 401, 403, 404, 405, 407, 408, 429, 500, 502, 503] {
            assert!(!refusing.contains(&s), "{s}");
        }
        let long = "字".repeat(ANSWER_EXCERPT + 1);
        assert_eq!(cut(&long, true).chars().count(), ANSWER_EXCERPT + 1);
        assert!(cut(&long, true).ends_with('…'));
        assert_eq!(cut(" bad field `lat` \n", true), "bad field `lat`");
        assert_eq!(cut("bad", false), "bad…");
    }
}
