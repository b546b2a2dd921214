//! The central uplink's settings: `[uplink.central]` as written, the typed [`CentralUplink`]
//! and its validation (its broker, or the site broker shared; the signing key).

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::broker::{Broker, RawBroker};
use crate::diag::{Check, Problem};
use crate::tls::same_secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCentral {
    pub broker: Option<Spanned<RawBroker>>,
    pub topic_prefix: Option<String>,
    pub queue_max_events: Option<usize>,
    pub confirm_timeout_ms: Option<u64>,
    pub signing_key: Option<Spanned<String>>,
    pub signing_key_env: Option<Spanned<String>>,
    pub signing_key_file: Option<Spanned<String>>,
}
#[derive(Debug, Clone)]
pub struct CentralUplink {
    pub broker: Broker,
    pub topic_prefix: String,
    pub queue_max_events: usize,
    /// An incident not confirmed by a PUBACK within this time is published again.
    pub confirm_timeout: Duration,
    /// The key every message to central is signed with (`src/signing.rs`); central refuses
    /// unsigned messages.
    pub signing_key: Option<SecretString>,
}

impl PartialEq for CentralUplink {
    /// By value, the signing key included (its `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        // Destructured whole, so that a new field cannot be left out of the comparison.
        let CentralUplink {
            broker,
            topic_prefix,
            queue_max_events,
            confirm_timeout,
            signing_key,
        } = self;
        *broker == other.broker
            && *topic_prefix == other.topic_prefix
            && *queue_max_events == other.queue_max_events
            && *confirm_timeout == other.confirm_timeout
            && same_secret(signing_key, &other.signing_key)
    }
}

impl CentralUplink {
    pub fn incidents_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/incidents", self.topic_prefix)
    }

    pub fn fills_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/fills", self.topic_prefix)
    }

    pub fn registry_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/registry", self.topic_prefix)
    }

    pub fn status_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/status", self.topic_prefix)
    }

    /// Where central says which of this gateway's messages it refused.
    pub fn rejections_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/rejections", self.topic_prefix)
    }
}
impl Check {
    /// The central uplink; without a broker of its own it shares `site_broker` under
    /// `client_id`.
    pub(crate) fn central_uplink(
        &mut self,
        raw: &Spanned<RawCentral>,
        client_id: &str,
        site_broker: Option<&Broker>,
    ) -> CentralUplink {
        let client_id = client_id.to_owned();
        let raw_central = raw.get_ref();
        // Sharing the site broker takes its validated settings (and their problems) once.
        let broker = match (&raw_central.broker, site_broker) {
            (Some(b), _) => self.broker(b.get_ref(), &client_id),
            (None, Some(site_broker)) => Broker {
                client_id,
                ..site_broker.clone()
            },
            (None, None) => {
                self.push(
                Problem::new(raw.span(), "the central uplink has no broker")
                    .hint("add [uplink.central.broker] with host and port, or a [mqtt] table to share"),
            );
                self.broker_defaults(&client_id)
            }
        };
        CentralUplink {
            broker,
            topic_prefix: raw_central
                .topic_prefix
                .clone()
                .unwrap_or_else(|| "seguard/v1".to_owned()),
            queue_max_events: raw_central.queue_max_events.unwrap_or(100_000),
            confirm_timeout: Duration::from_millis(
                raw_central.confirm_timeout_ms.unwrap_or(10_000),
            ),
            signing_key: self.signing_key(raw_central),
        }
    }

    /// The central uplink's signing key, at least [`crate::signing::MIN_KEY_BYTES`] long.
    fn signing_key(&mut self, c: &RawCentral) -> Option<SecretString> {
        let inline = c.signing_key.as_ref().map(|k| k.get_ref().clone());
        let key = self.secret(
            "signing_key",
            &inline,
            &c.signing_key_env,
            &c.signing_key_file,
        )?;
        if secrecy::ExposeSecret::expose_secret(&key).len() < crate::signing::MIN_KEY_BYTES {
            let span = (c.signing_key.as_ref())
                .or(c.signing_key_env.as_ref())
                .or(c.signing_key_file.as_ref());
            self.push(
                Problem::new(
                    span.map(Spanned::span),
                    format!(
                        "signing_key is shorter than {} bytes",
                        crate::signing::MIN_KEY_BYTES
                    ),
                )
                .hint("make one with: openssl rand -hex 32, and give central the same"),
            );
        }
        Some(key)
    }
}
