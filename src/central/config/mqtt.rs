//! `[mqtt]`: the broker central takes incidents, fills, status and registries from (through a
//! shared subscription, so several instances share the load).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problem, SecretString};

#[derive(Debug, Clone)]
pub struct CentralMqtt {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// Redacted in Debug output, like every secret of the config.
    pub password: Option<SecretString>,
    /// TLS towards the broker; plain TCP when absent.
    pub tls: Option<crate::tls::MqttTls>,
    pub keep_alive: Duration,
    /// Topic prefix the gateways publish under (`seguard/v1`).
    pub prefix: String,
    /// The shared-subscription group all central instances join.
    pub share_group: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) client_id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) tls: Option<crate::tls::RawMqttTls>,
    pub(super) keep_alive_s: Option<u64>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) share_group: Option<Spanned<String>>,
}

/// The `[mqtt]` table, with its password already read.
pub(super) fn validate(
    m: RawMqtt,
    password: Option<SecretString>,
    instance: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> CentralMqtt {
    let tls = m.tls.as_ref().and_then(|t| {
        crate::tls::validate_mqtt_tls(t, base)
            .map_err(|mut found| problems.append(&mut found))
            .ok()
    });
    let prefix = m.prefix.map_or_else(
        || "seguard/v1".to_owned(),
        |p| {
            if p.get_ref().contains(['+', '#']) || p.get_ref().ends_with('/') {
                problems.push(Problem::new(
                    p.span(),
                    "prefix must be a plain topic without wildcards or a trailing `/`",
                ));
            }
            p.into_inner()
        },
    );
    let share_group = m.share_group.map_or_else(
        || "seguard-central".to_owned(),
        |g| {
            if g.get_ref().is_empty() || g.get_ref().contains(['/', '+', '#']) {
                problems.push(Problem::new(
                    g.span(),
                    "share_group must be one topic level",
                ));
            }
            g.into_inner()
        },
    );
    CentralMqtt {
        host: m.host.unwrap_or_else(|| "127.0.0.1".into()),
        port: m.port.unwrap_or(1883),
        client_id: m
            .client_id
            .unwrap_or_else(|| format!("seguard-central-{instance}")),
        username: m.username,
        password,
        tls,
        keep_alive: Duration::from_secs(m.keep_alive_s.unwrap_or(30)),
        prefix,
        share_group,
    }
}
