//! The settings of an MQTT broker connection, shared by the ingest (the site broker, `[mqtt]`)
//! and the central uplink (`[uplink.central.broker]`), and central's intake (`[mqtt]` of
//! `seguard central`): the raw table, the typed `Broker`, its validation and the client options
//! built from it.

use std::time::Duration;

use rumqttc::MqttOptions;
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};
use crate::tls::same_secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub client_id: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub tls: Option<crate::tls::RawMqttTls>,
    pub keep_alive_s: Option<u64>,
    pub max_payload_bytes: Option<Spanned<usize>>,
    pub reconnect_min_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// Fixed so that the broker keeps our session (and its in-flight messages) across reconnects.
    pub client_id: String,
    pub username: Option<String>,
    /// Redacted in Debug output, like every secret of the config.
    pub password: Option<SecretString>,
    /// TLS towards the broker; plain TCP when absent.
    pub tls: Option<crate::tls::MqttTls>,
    pub keep_alive: Duration,
    /// Larger payloads are rejected and counted as `oversized`.
    pub max_payload_bytes: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl PartialEq for Broker {
    /// By value, the password included (its `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        // Destructured whole, so that a new field cannot be left out of the comparison.
        let Broker {
            host,
            port,
            client_id,
            username,
            password,
            tls,
            keep_alive,
            max_payload_bytes,
            reconnect_min,
            reconnect_max,
        } = self;
        *host == other.host
            && *port == other.port
            && *client_id == other.client_id
            && *username == other.username
            && same_secret(password, &other.password)
            && *tls == other.tls
            && *keep_alive == other.keep_alive
            && *max_payload_bytes == other.max_payload_bytes
            && *reconnect_min == other.reconnect_min
            && *reconnect_max == other.reconnect_max
    }
}

impl Check {
    pub fn broker_defaults(&self, client_id: &str) -> Broker {
        Broker {
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: client_id.to_owned(),
            username: None,
            password: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            max_payload_bytes: 64 * 1024,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
        }
    }

    pub fn broker(&mut self, b: &RawBroker, default_client_id: &str) -> Broker {
        let mut broker = self.broker_defaults(default_client_id);
        if let Some(host) = &b.host {
            broker.host = host.clone();
        }
        if let Some(port) = b.port {
            broker.port = port;
        }
        if let Some(id) = &b.client_id {
            if id.get_ref().is_empty() || id.get_ref().len() > 64 {
                self.push(
                    Problem::new(id.span(), "client_id must have 1 to 64 characters")
                        .hint("a fixed, unique id lets the broker keep this gateway's session"),
                );
            }
            broker.client_id = id.get_ref().clone();
        }
        broker.username = b.username.clone();
        broker.password = self.secret("password", &b.password, &b.password_env, &b.password_file);
        if let Some(tls) = &b.tls {
            match crate::tls::validate_mqtt_tls(tls, &self.config_dir) {
                Ok(tls) => broker.tls = Some(tls),
                Err(problems) => self.problems.extend(problems),
            }
        }
        if let Some(s) = b.keep_alive_s {
            broker.keep_alive = Duration::from_secs(s.max(5));
        }
        if let Some(max) = &b.max_payload_bytes {
            broker.max_payload_bytes = *max.get_ref();
            if *max.get_ref() == 0 {
                self.push(Problem::new(
                    max.span(),
                    "max_payload_bytes must be above 0",
                ));
            }
        }
        if let Some(ms) = b.reconnect_min_ms {
            broker.reconnect_min = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = b.reconnect_max_ms {
            broker.reconnect_max = Duration::from_millis(ms).max(broker.reconnect_min);
        }
        broker
    }
}

/// The largest packet MQTT allows. rumqttc drops the connection on a bigger incoming packet than
/// its limit, and with a persistent session the broker sends the same message again on
/// reconnect: a poison loop. So the client takes any packet, and the payload limit of the
/// config rejects big messages one by one, counted. (Brokers can refuse them earlier with their
/// own limit, mosquitto's `message_size_limit`.)
const MQTT_MAX_PACKET_BYTES: usize = 268_435_455;

/// The client options of every MQTT connection to a configured broker: the fixed client id
/// with a persistent session, keep-alive, no packet limit, and credentials and TLS.
pub fn mqtt_options(broker: &Broker) -> MqttOptions {
    let mut options = MqttOptions::new(&broker.client_id, &broker.host, broker.port);
    options
        .set_clean_session(false)
        .set_keep_alive(broker.keep_alive)
        .set_max_packet_size(MQTT_MAX_PACKET_BYTES, MQTT_MAX_PACKET_BYTES);
    crate::tls::secure_mqtt(
        &mut options,
        broker.username.as_deref(),
        broker.password.as_ref(),
        broker.tls.as_ref(),
    );
    options
}
