//! Bearer tokens, shared by the gateway's and central's HTTP APIs. A config keeps only the
//! SHA-256 of a token (`seguard hash-token` makes one), so a leaked config leaks no token.

use axum::http::{header, HeaderMap};

/// SHA-256 of a token, in lower-case hex: what configs and the store keep.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Whether `s` looks like a [`token_hash`] (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Central's sign-in cookie: a role token, set when a `?token=` link is opened
/// (`central/web/session.rs`); HttpOnly and SameSite=Strict, so page scripts never hold it.
pub const SESSION_COOKIE: &str = "seguard_token";

/// The token of the [`SESSION_COOKIE`] in a `Cookie` header (percent-encoded there).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// A rescue-page link's token, kept in a cookie scoped to its dispatch's API path
/// (`central/web/session.rs`) once the `?t=` link was opened.
pub const LINK_COOKIE: &str = "seguard_link";

/// The value of cookie `name` in a `Cookie` header, percent-decoded; `None` when absent or empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, value)| {
            let decoded = url::form_urlencoded::parse(format!("t={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())?;
            (!decoded.is_empty()).then_some(decoded)
        })
}

/// The caller's token: an `Authorization: Bearer …` header, else the session cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    bearer(headers)
        .map(str::to_owned)
        .or_else(|| session_cookie(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex_and_bearer_reads_the_header() {
        let hash = token_hash("test");
        assert_eq!(
            hash,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(is_sha256_hex(&hash));
        assert!(!is_sha256_hex("test"));
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn the_session_cookie_is_read_and_the_bearer_header_comes_first() {
        let cases = [
            ("seguard_token=abc", Some("abc")),
            ("a=1; seguard_token=x%2By%2F%3D%3B; b=2", Some("x+y/=;")),
            ("xseguard_token=abc", None),
            ("seguard_token=", None),
            ("other=1", None),
        ];
        for (cookie, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, cookie.parse().unwrap());
            assert_eq!(session_cookie(&headers).as_deref(), expected, "{cookie}");
            assert_eq!(request_token(&headers).as_deref(), expected, "{cookie}");
            headers.insert(header::AUTHORIZATION, "Bearer header".parse().unwrap());
            assert_eq!(request_token(&headers).as_deref(), Some("header"));
        }
    }
}
