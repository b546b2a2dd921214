//! `[central]`: the instance's name, its HTTP listener (address, HTTPS, limits), the public URL
//! of its links and the time zone of its pages.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};
use crate::http_limits::{HttpLimits, RawHttpLimits};

/// The `[central]` table validated; [`super::CentralConfig`] holds its fields.
#[derive(Debug)]
pub(crate) struct Service {
    pub instance: String,
    pub http_listen: SocketAddr,
    pub https: Option<crate::tls::Https>,
    pub http_limits: HttpLimits,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub time_zone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    instance: Spanned<String>,
    /// An environment variable that, when set, names the instance instead (the container's
    /// `HOSTNAME`), so several instances share one config file.
    instance_env: Option<Spanned<String>>,
    http_listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    max_body_bytes: Option<usize>,
    https: Option<crate::tls::RawHttps>,
    http_limits: Option<RawHttpLimits>,
    time_zone: Option<Spanned<String>>,
}

const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
const ZONEINFO: &str = "/usr/share/zoneinfo";

impl Check {
    pub(crate) fn central_service(&mut self, raw: RawService) -> Service {
        let instance = raw
            .instance_env
            .as_ref()
            .and_then(|v| std::env::var(v.get_ref()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| raw.instance.get_ref().clone());
        if instance.is_empty()
            || !instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.push(
                Problem::new(
                    raw.instance.span(),
                    format!("instance `{instance}` is not an id"),
                )
                .hint("use letters, digits, `-` and `_`; each instance needs its own"),
            );
        }
        let default_listen: SocketAddr = "127.0.0.1:9280".parse().expect("default address");
        let http_listen = match &raw.http_listen {
            None => default_listen,
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                self.push(
                    Problem::new(
                        s.span(),
                        format!("http_listen `{}` is not an address", s.get_ref()),
                    )
                    .hint("write host:port, for example \"127.0.0.1:9280\""),
                );
                default_listen
            }),
        };
        let https = raw.https.as_ref().and_then(|h| {
            crate::tls::validate_https(h, &self.config_dir)
                .map_err(|problem| self.push(problem))
                .ok()
        });
        let max_body_bytes = raw.max_body_bytes.unwrap_or(64 * 1024);
        let http_limits = raw
            .http_limits
            .unwrap_or_default()
            .validate(max_body_bytes)
            .unwrap_or_else(|mut found| {
                self.problems.append(&mut found);
                HttpLimits::with_max_body(max_body_bytes)
            });
        let scheme = if raw.https.is_some() { "https" } else { "http" };
        let public_url = match &raw.public_url {
            None => format!("{scheme}://{http_listen}"),
            Some(s) => {
                if url::Url::parse(s.get_ref()).is_err() {
                    self.push(Problem::new(
                        s.span(),
                        format!("public_url `{}` is not a URL", s.get_ref()),
                    ));
                }
                s.get_ref().trim_end_matches('/').to_owned()
            }
        };
        let time_zone = raw
            .time_zone
            .as_ref()
            .map_or_else(|| DEFAULT_TIME_ZONE.to_owned(), |z| z.get_ref().clone());
        if let Some(z) = &raw.time_zone {
            if !is_time_zone(z.get_ref(), Path::new(ZONEINFO)) {
                self.push(
                    Problem::new(
                        z.span(),
                        format!("time_zone `{}` is not an IANA time zone", z.get_ref()),
                    )
                    .hint("write a zone of the tz database, for example \"Asia/Shanghai\""),
                );
            }
        }
        Service {
            instance,
            http_listen,
            https,
            http_limits,
            public_url,
            max_body_bytes,
            time_zone,
        }
    }
}

/// Whether `zone` is shaped like an IANA zone name (`UTC`, `Asia/Shanghai`) and, where the
/// machine has a tz database under `zoneinfo`, is one of its zones. The pages format times
/// with it in the browser, which knows the same names.
fn is_time_zone(zone: &str, zoneinfo: &Path) -> bool {
    let shaped = !zone.is_empty()
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        });
    shaped && (!zoneinfo.is_dir() || zoneinfo.join(zone).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_names_of_the_tz_database() {
        let none = Path::new("/nonexistent-zoneinfo");
        for (zone, shaped) in [
            ("Asia/Shanghai", true),
            ("UTC", true),
            ("America/Argentina/Buenos_Aires", true),
            ("Etc/GMT+8", true),
            ("", false),
            ("Asia/", false),
            ("../etc/passwd", false),
            ("Asia/Shang hai", false),
        ] {
            assert_eq!(is_time_zone(zone, none), shaped, "{zone}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Asia")).unwrap();
        std::fs::write(dir.path().join("Asia/Shanghai"), b"TZif").unwrap();
        assert!(is_time_zone("Asia/Shanghai", dir.path()));
        assert!(!is_time_zone("Asia/Atlantis", dir.path()));
        assert!(!is_time_zone("Asia", dir.path()), "a directory is no zone");
    }
}
