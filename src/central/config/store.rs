//! `[store]`: where central keeps its data, SQLite or PostgreSQL; the URL is a secret (it may
//! hold a password) and is given inline, from the environment or from a file.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
}

impl Check {
    /// The store URL, `sqlite://seguard-central.db` when none is given.
    pub(crate) fn store_url(&mut self, raw: RawStore) -> SecretString {
        // A PostgreSQL URL may hold a password: it is a secret like the others.
        let inline_url = raw.url.as_ref().map(|s| s.get_ref().clone());
        let url_span = [&raw.url, &raw.url_env, &raw.url_file]
            .into_iter()
            .find_map(|key| key.as_ref().map(Spanned::span));
        let store_url = self
            .secret("url", &inline_url, &raw.url_env, &raw.url_file)
            .unwrap_or_else(|| SecretString::from("sqlite://seguard-central.db".to_owned()));
        let url = store_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.push(
                Problem::new(
                    url_span,
                    format!(
                        "store url `{}` is neither SQLite nor PostgreSQL",
                        without_password(url)
                    ),
                )
                .hint("write sqlite://central.db or postgres://user@host:5432/db"),
            );
        }
        store_url
    }
}

/// The URL with its password, if any, replaced: for messages.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
