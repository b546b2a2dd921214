//! The InfluxDB uplinks' settings: `[[uplink.influx]]` as written, the typed endpoint (v1
//! `/write` or the v2 API) and uplink, and their validation. The batch and queue defaults are
//! shared with the line-file uplink, which writes the same points.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};
use crate::tls::same_secret;

/// Lines (InfluxDB points) a write carries at most: what InfluxDB's docs advise (5,000); it
/// suits InfluxDB 1.x, 2.x and VictoriaMetrics alike (BENCHMARKS.md, "Batch size").
pub(crate) const DEFAULT_BATCH_MAX_LINES: usize = 5000;
/// Points an in-memory lane holds (about 2 KB each with ten fields): a burst beyond it waits at
/// the broker. The disk outbox is bounded by its quota instead.
pub(crate) const DEFAULT_QUEUE_MAX_POINTS: usize = 20_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInflux {
    pub name: Option<Spanned<String>>,
    pub api: InfluxApi,
    pub url: Spanned<String>,
    pub database: Option<String>,
    pub retention_policy: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub org: Option<String>,
    pub bucket: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    /// Renamed `batch_max_lines`; refused with a hint.
    pub batch_max_points: Option<Spanned<usize>>,
    pub batch_max_lines: Option<Spanned<usize>>,
    pub flush_interval_ms: Option<u64>,
    pub gzip: Option<bool>,
    pub queue_max_points: Option<Spanned<usize>>,
    pub timeout_ms: Option<u64>,
    pub retry_min_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfluxApi {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub enum InfluxEndpoint {
    /// InfluxDB 1.x `/write`.
    V1 {
        url: url::Url,
        database: String,
        retention_policy: Option<String>,
        username: Option<String>,
        password: Option<SecretString>,
    },
    /// InfluxDB 2.x/3.x (or compatible) `/api/v2/write`, through the influxdb2 crate.
    V2 {
        url: url::Url,
        org: String,
        bucket: String,
        token: SecretString,
    },
}

impl PartialEq for InfluxEndpoint {
    /// By value, the password or token included (their `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (
                InfluxEndpoint::V1 {
                    url,
                    database,
                    retention_policy,
                    username,
                    password,
                },
                InfluxEndpoint::V1 {
                    url: url2,
                    database: database2,
                    retention_policy: retention_policy2,
                    username: username2,
                    password: password2,
                },
            ) => {
                url == url2
                    && database == database2
                    && retention_policy == retention_policy2
                    && username == username2
                    && same_secret(password, password2)
            }
            (
                InfluxEndpoint::V2 {
                    url,
                    org,
                    bucket,
                    token,
                },
                InfluxEndpoint::V2 {
                    url: url2,
                    org: org2,
                    bucket: bucket2,
                    token: token2,
                },
            ) => {
                url == url2
                    && org == org2
                    && bucket == bucket2
                    && token.expose_secret() == token2.expose_secret()
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InfluxUplink {
    pub name: String,
    pub endpoint: InfluxEndpoint,
    /// Lines (InfluxDB points: one equipment at one time) a write carries at most.
    pub batch_max_lines: usize,
    pub flush_interval: Duration,
    /// Compress v1 bodies; the influxdb2 crate's line-protocol call cannot compress.
    pub gzip: bool,
    /// Points an in-memory lane holds (`[outbox] kind = "memory"`); beyond it intake waits.
    pub queue_max_points: usize,
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Check {
    pub(crate) fn influx(
        &mut self,
        raw: &Spanned<RawInflux>,
        index: usize,
    ) -> Option<InfluxUplink> {
        let u = raw.get_ref();
        let name = u
            .name
            .as_ref()
            .map_or_else(|| format!("influx{index}"), |n| n.get_ref().clone());
        let url = match url::Url::parse(u.url.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                self.push(
                    Problem::new(
                        u.url.span(),
                        format!("`{}` is not an http(s) URL", u.url.get_ref()),
                    )
                    .hint("for example \"http://127.0.0.1:8086\""),
                );
                return None;
            }
        };
        let missing = |this: &mut Self, what: &str| {
            this.push(
                Problem::new(
                    raw.span(),
                    format!(
                        "influx uplink `{name}` with api = \"{}\" needs `{what}`",
                        match u.api {
                            InfluxApi::V1 => "v1",
                            InfluxApi::V2 => "v2",
                        }
                    ),
                )
                .hint("see firmware-configs/site-example.toml"),
            );
        };
        let endpoint = match u.api {
            InfluxApi::V1 => {
                let Some(database) = u.database.clone() else {
                    missing(self, "database");
                    return None;
                };
                InfluxEndpoint::V1 {
                    url,
                    database,
                    retention_policy: u.retention_policy.clone(),
                    username: u.username.clone(),
                    password: self.secret(
                        "password",
                        &u.password,
                        &u.password_env,
                        &u.password_file,
                    ),
                }
            }
            InfluxApi::V2 => {
                if url.path() != "/" {
                    self.push(
                        Problem::new(u.url.span(), format!("the v2 URL `{url}` has a path"))
                            .hint("the influxdb2 client drops path prefixes: give scheme, host and port only"),
                    );
                }
                let (Some(org), Some(bucket)) = (u.org.clone(), u.bucket.clone()) else {
                    missing(self, "org and bucket");
                    return None;
                };
                InfluxEndpoint::V2 {
                    url,
                    org,
                    bucket,
                    token: self
                        .secret("token", &u.token, &u.token_env, &u.token_file)
                        .unwrap_or_else(|| SecretString::from(String::new())),
                }
            }
        };
        self.renamed_batch_max_points(&u.batch_max_points);
        let batch_max_lines = u
            .batch_max_lines
            .as_ref()
            .map_or(DEFAULT_BATCH_MAX_LINES, |b| {
                if *b.get_ref() == 0 {
                    self.push(Problem::new(b.span(), "batch_max_lines must be above 0"));
                }
                *b.get_ref()
            });
        let queue_max_points = u.queue_max_points.as_ref().map_or(
            DEFAULT_QUEUE_MAX_POINTS.max(batch_max_lines),
            |q| {
                if *q.get_ref() < batch_max_lines {
                    self.push(
                        Problem::new(q.span(), "queue_max_points is below batch_max_lines")
                            .hint("the queue must hold at least one batch"),
                    );
                }
                *q.get_ref()
            },
        );
        let retry_min = Duration::from_millis(u.retry_min_ms.unwrap_or(200).max(1));
        Some(InfluxUplink {
            name,
            endpoint,
            batch_max_lines,
            flush_interval: Duration::from_millis(u.flush_interval_ms.unwrap_or(1000).max(1)),
            gzip: u.gzip.unwrap_or(true),
            queue_max_points,
            timeout: Duration::from_millis(u.timeout_ms.unwrap_or(10_000)),
            retry_min,
            retry_max: Duration::from_millis(u.retry_max_ms.unwrap_or(30_000)).max(retry_min),
        })
    }

    /// `batch_max_points` counted readings; batches are counted in InfluxDB's points (lines)
    /// now, under a new name, so an old value is refused rather than read 10x too large.
    pub(crate) fn renamed_batch_max_points(&mut self, old: &Option<Spanned<usize>>) {
        if let Some(old) = old {
            self.push(
                Problem::new(old.span(), "batch_max_points is now batch_max_lines, counted in InfluxDB points (lines), not readings")
                    .hint("a message with ten fields is one line: divide the old value by the fields per message, or remove it for the default of 5000 lines"),
            );
        }
    }
}
