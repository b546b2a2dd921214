//! Headers on every response of central: a Content-Security-Policy without inline script (the
//! pages load their scripts from `/assets/`), no framing (`frame-ancestors 'none'` and
//! `X-Frame-Options: DENY`), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//! and `Cache-Control: no-store` unless a response set its own (the assets do).

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::central::config::CentralConfig;

/// The policy: everything from central itself, map tiles from the configured tile server.
pub fn content_security_policy(config: &CentralConfig) -> String {
    let tiles = tile_source(&config.map.tile_url)
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The CSP source of a tile URL template: its scheme, host and port, with a leading `{s}.`
/// subdomain as a wildcard; the scheme alone when the host holds another placeholder.
fn tile_source(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix("{s}.") {
        Some(parent) => format!("*.{parent}"),
        None => host.to_owned(),
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b);
    let parts = host.strip_prefix("*.").unwrap_or(&host);
    if parts.is_empty() || !parts.bytes().all(plain) {
        return Some(format!("{scheme}:"));
    }
    Some(format!("{scheme}://{host}"))
}

pub fn apply(router: Router, config: &CentralConfig) -> Router {
    let csp = HeaderValue::from_str(&content_security_policy(config))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_sources_allow_the_tile_server_only() {
        let cases = [
            (
                "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
                Some("https://*.tile.openstreetmap.org"),
            ),
            (
                "http://127.0.0.1:1/{z}/{x}/{y}.png",
                Some("http://127.0.0.1:1"),
            ),
            (
                "https://webrd0{s}.is.autonavi.com/appmaptile?x={x}",
                Some("https:"),
            ),
            ("https://t{n}.example.org/{z}", Some("https:")),
            ("", None),
        ];
        for (url, expected) in cases {
            assert_eq!(tile_source(url).as_deref(), expected, "{url}");
        }
    }
}
