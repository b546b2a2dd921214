//! Time series to InfluxDB. `api = "v1"` posts to `/write` (InfluxDB 1.x); `api = "v2"` goes
//! through the influxdb2 crate's `write_line_protocol` (InfluxDB 2.x/3.x, VictoriaMetrics).
//! Both send the bodies of one encoder (`line.rs`).
//!
//! **Invariant:** a batch leaves the outbox lane only after a 2xx, or after the server refused
//! it as invalid (HTTP 400/422: retrying cannot help), which is counted and logged.
//!
//! Up to [`WRITES_IN_FLIGHT`] writes of `batch_max_lines` go at once: the uplink peeks that
//! many batches' worth, encodes each, lets the decoded points go, and sends the bodies
//! together, so the server works on one while it answers the other. The lane is confirmed in
//! order: only what every earlier body's answer covers.

pub mod config;
pub mod line;
mod point;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::outbox::Lane;
use crate::shutdown::Stop;
use config::{InfluxEndpoint, InfluxUplink};
use flate2::write::GzEncoder;
use secrecy::ExposeSecret;

pub use line::Encoder;
pub use point::{points_json, Point};

/// Writes of one uplink in flight at once.
pub const WRITES_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("write failed, will retry: {0}")]
    Transient(String),
    #[error("server refused the batch as invalid: {0}")]
    Rejected(String),
}

enum Client {
    V1 {
        http: reqwest::Client,
        write_url: url::Url,
        username: Option<String>,
        password: Option<secrecy::SecretString>,
        gzip: bool,
    },
    V2 {
        client: influxdb2::Client,
        org: String,
        bucket: String,
    },
}

/// One InfluxDB uplink: its settings and client, the lane it drains, and what it reports to.
pub struct InfluxWriter {
    uplink: InfluxUplink,
    client: Client,
    lane: Arc<Lane<Point>>,
    encoder: Arc<Encoder>,
    metrics: Arc<Metrics>,
    /// False while writes fail; `/health` shows it.
    healthy: Arc<AtomicBool>,
}

fn status_error(status: u16, text: String) -> WriteError {
    let detail = format!("HTTP {status}: {}", text.trim());
    if status == 400 || status == 422 {
        WriteError::Rejected(detail)
    } else {
        WriteError::Transient(detail)
    }
}

impl InfluxWriter {
    pub fn new(
        uplink: InfluxUplink,
        lane: Arc<Lane<Point>>,
        encoder: Arc<Encoder>,
        metrics: Arc<Metrics>,
        healthy: Arc<AtomicBool>,
    ) -> Self {
        let client = match &uplink.endpoint {
            InfluxEndpoint::V1 {
                url,
                database,
                retention_policy,
                username,
                password,
            } => {
                let mut write_url = url
                    .join("write")
                    .expect("a validated base URL joins a relative path");
                {
                    let mut query = write_url.query_pairs_mut();
                    query
                        .append_pair("db", database)
                        .append_pair("precision", "ns");
                    if let Some(rp) = retention_policy {
                        query.append_pair("rp", rp);
                    }
                }
                Client::V1 {
                    http: reqwest::Client::builder()
                        .timeout(uplink.timeout)
                        .build()
                        .expect("a plain HTTP client builds"),
                    write_url,
                    username: username.clone(),
                    password: password.clone(),
                    gzip: uplink.gzip,
                }
            }
            InfluxEndpoint::V2 {
                url,
                org,
                bucket,
                token,
            } => Client::V2 {
                // The config check guarantees a valid URL without a path, so `new` cannot panic.
                client: influxdb2::Client::new(
                    url.as_str().trim_end_matches('/'),
                    org,
                    token.expose_secret(),
                ),
                org: org.clone(),
                bucket: bucket.clone(),
            },
        };
        InfluxWriter {
            uplink,
            client,
            lane,
            encoder,
            metrics,
            healthy,
        }
    }

    pub async fn write(&self, body: &[u8]) -> Result<(), WriteError> {
        match &self.client {
            Client::V1 {
                http,
                write_url,
                username,
                password,
                gzip,
            } => {
                let mut request = http.post(write_url.clone());
                if let Some(user) = username {
                    request =
                        request.basic_auth(user, password.as_ref().map(|p| p.expose_secret()));
                }
                let request = if *gzip {
                    let mut encoder = GzEncoder::new(
                        Vec::with_capacity(body.len() / 4),
                        flate2::Compression::fast(),
                    );
                    encoder
                        .write_all(body)
                        .expect("writing to a Vec cannot fail");
                    let compressed = encoder.finish().expect("writing to a Vec cannot fail");
                    request.header("Content-Encoding", "gzip").body(compressed)
                } else {
                    request.body(body.to_vec())
                };
                let response = request
                    .send()
                    .await
                    .map_err(|e| WriteError::Transient(e.to_string()))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = response.text().await.unwrap_or_default();
                Err(status_error(status.as_u16(), text))
            }
            Client::V2 {
                client,
                org,
                bucket,
            } => {
                let write = client.write_line_protocol(org, bucket, body.to_vec());
                match tokio::time::timeout(self.uplink.timeout, write).await {
                    Err(_) => Err(WriteError::Transient(format!(
                        "no answer within {} ms",
                        self.uplink.timeout.as_millis()
                    ))),
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(influxdb2::RequestError::Http { status, text })) => {
                        Err(status_error(status.as_u16(), text))
                    }
                    Ok(Err(e)) => Err(WriteError::Transient(e.to_string())),
                }
            }
        }
    }

    /// After a backlog batch: while the lane catches up after an outage (its oldest point is
    /// older than the lane's `live_after`), the newest points are written too (once, best
    /// effort, counted; they stay queued), and dashboards show the present. A burst is not an
    /// outage: it costs no extra writes.
    async fn send_live(&self, lane: &Lane<Point>, encoder: &Encoder, metrics: &Metrics) {
        let behind = lane.is_behind();
        lane.set_catching_up(behind);
        if !behind {
            return;
        }
        let live = lane.take_live(self.uplink.batch_max_lines);
        if live.is_empty() {
            return;
        }
        match self.write(&encoder.encode(&live)).await {
            Ok(()) => metrics.uplink_live_written(&self.uplink.name, live.len()),
            Err(e) => {
                tracing::debug!(uplink = %self.uplink.name, error = ?e, "live points not written; they stay queued")
            }
        }
    }

    /// Drains `lane` into the server until `flush` fires and the lane is empty, or `hard_stop`
    /// fires. Retries transient failures with backoff, forever: the lane's quota bounds memory.
    pub async fn run(self, stop: Stop) {
        let (lane, encoder) = (self.lane.clone(), self.encoder.clone());
        let (metrics, healthy) = (self.metrics.clone(), self.healthy.clone());
        let Stop { flush, hard_stop } = stop;
        let name = self.uplink.name.clone();
        let max = self.uplink.batch_max_lines;
        let mut backoff = Backoff::new(self.uplink.retry_min, self.uplink.retry_max);
        loop {
            let batch = lane
                .peek_batch(
                    max.saturating_mul(WRITES_IN_FLIGHT),
                    self.uplink.flush_interval,
                    &flush,
                )
                .await;
            if batch.is_empty() {
                break;
            }
            // Only the bodies wait for the server's answers, not the decoded points.
            let mut bodies: Vec<Body> = batch
                .chunks(max)
                .map(|points| Body {
                    lines: points.len(),
                    text: encoder.encode(points),
                    done: false,
                })
                .collect();
            drop(batch);
            loop {
                let failure = self.write_pending(&mut bodies, &metrics).await;
                let Some(e) = failure else {
                    lane.confirm(bodies.iter().map(|b| b.lines).sum());
                    healthy.store(true, Ordering::Relaxed);
                    backoff.reset();
                    self.send_live(&lane, &encoder, &metrics).await;
                    break;
                };
                healthy.store(false, Ordering::Relaxed);
                lane.set_catching_up(lane.is_behind());
                let delay = backoff.next_delay();
                metrics.uplink_failed(&name, &e, delay);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard_stop.cancelled() => {
                        // What the first answers covered leaves the lane; the rest stays.
                        let written: usize =
                            bodies.iter().take_while(|b| b.done).map(|b| b.lines).sum();
                        if written > 0 {
                            lane.confirm(written);
                        } else {
                            lane.release();
                        }
                        tracing::warn!(uplink = %name, queued = lane.len(), "stopping with points not yet written");
                        return;
                    }
                }
            }
        }
    }

    /// Sends every body not yet done, at once; marks those the server took (or refused as
    /// invalid: counted), and returns a transient failure if any.
    async fn write_pending(&self, bodies: &mut [Body], metrics: &Metrics) -> Option<String> {
        let name = &self.uplink.name;
        let started = Instant::now();
        let mut pending: Vec<&mut Body> = bodies.iter_mut().filter(|b| !b.done).collect();
        let results = if let [one, two] = pending.as_slice() {
            let (a, b) = tokio::join!(self.write(&one.text), self.write(&two.text));
            vec![a, b]
        } else {
            let mut results = Vec::with_capacity(pending.len());
            for body in &pending {
                results.push(self.write(&body.text).await);
            }
            results
        };
        let mut failure = None;
        for (body, result) in pending.iter_mut().zip(results) {
            match result {
                Ok(()) => {
                    metrics.uplink_written(name, body.lines, started.elapsed().as_secs_f64());
                    body.done = true;
                }
                Err(WriteError::Rejected(e)) => {
                    metrics.uplink_rejected(name, body.lines, &e);
                    body.done = true;
                }
                Err(WriteError::Transient(e)) => failure = Some(e),
            }
        }
        failure
    }
}

/// One write's line protocol, and whether the server has answered it for good.
struct Body {
    lines: usize,
    text: Vec<u8>,
    done: bool,
}
