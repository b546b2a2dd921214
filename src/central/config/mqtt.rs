//! `[mqtt]`: the broker the gateways publish to, and the topics central subscribes under.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::SecretString;
use crate::diag::{Check, Problem};

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
pub struct RawMqtt {
    host: Option<String>,
    port: Option<u16>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    tls: Option<crate::tls::RawMqttTls>,
    keep_alive_s: Option<u64>,
    prefix: Option<Spanned<String>>,
    share_group: Option<Spanned<String>>,
}

impl Check {
    /// The broker of `instance`, whose client id derives from the instance name by default.
    pub(crate) fn central_mqtt(&mut self, m: RawMqtt, instance: &str) -> CentralMqtt {
        let password = self.secret("password", &m.password, &m.password_env, &m.password_file);
        let tls = m.tls.as_ref().and_then(|t| {
            crate::tls::validate_mqtt_tls(t, &self.config_dir)
                .map_err(|mut found| self.problems.append(&mut found))
                .ok()
        });
        let prefix = m.prefix.map_or_else(
            || "seguard/v1".to_owned(),
            |p| {
                if p.get_ref().contains(['+', '#']) || p.get_ref().ends_with('/') {
                    self.push(Problem::new(
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
                    self.push(Problem::new(
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
}
