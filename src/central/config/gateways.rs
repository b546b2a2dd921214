//! `[[gateway]]`: every gateway that may send incidents, with its intake token's hash and the
//! key its MQTT messages are signed with.

use std::collections::HashSet;

use secrecy::ExposeSecret;
use serde::Deserialize;
use toml::Spanned;

use crate::config::SecretString;
use crate::diag::{Check, Problem};

#[derive(Debug, Clone)]
pub struct GatewayEntry {
    pub id: String,
    /// SHA-256 (hex) of the gateway's intake token.
    pub token_sha256: String,
    /// The key the gateway signs its MQTT messages with (`src/signing.rs`). Without it, every
    /// MQTT message naming this gateway is refused: a broker alone proves no origin.
    pub signing_key: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayEntry {
    id: Spanned<String>,
    token_sha256: Spanned<String>,
    signing_key: Option<Spanned<String>>,
    signing_key_env: Option<Spanned<String>>,
    signing_key_file: Option<Spanned<String>>,
}

impl Check {
    /// Every `[[gateway]]`, each id once.
    pub(crate) fn gateway_entries(&mut self, raw: Vec<RawGatewayEntry>) -> Vec<GatewayEntry> {
        let mut seen = HashSet::new();
        raw.into_iter()
            .map(|g| {
                if !seen.insert(g.id.get_ref().clone()) {
                    self.push(Problem::new(
                        g.id.span(),
                        format!("gateway `{}` is listed twice", g.id.get_ref()),
                    ));
                }
                self.gateway_entry(g)
            })
            .collect()
    }

    fn gateway_entry(&mut self, g: RawGatewayEntry) -> GatewayEntry {
        if !crate::auth::is_sha256_hex(g.token_sha256.get_ref()) {
            self.push(
                Problem::new(g.token_sha256.span(), "token_sha256 must be 64 hex digits")
                    .hint("store only the hash: printf %s TOKEN | sha256sum"),
            );
        }
        let inline_key = g.signing_key.as_ref().map(|k| k.get_ref().clone());
        let key_span = [&g.signing_key, &g.signing_key_env, &g.signing_key_file]
            .into_iter()
            .find_map(|key| key.as_ref().map(Spanned::span));
        let signing_key = self.secret(
            "signing_key",
            &inline_key,
            &g.signing_key_env,
            &g.signing_key_file,
        );
        if let Some(key) = &signing_key {
            if key.expose_secret().len() < crate::signing::MIN_KEY_BYTES {
                self.push(
                    Problem::new(
                        key_span,
                        format!(
                            "signing_key of gateway `{}` is shorter than {} bytes",
                            g.id.get_ref(),
                            crate::signing::MIN_KEY_BYTES
                        ),
                    )
                    .hint("make one with: openssl rand -hex 32"),
                );
            }
        }
        GatewayEntry {
            id: g.id.into_inner(),
            token_sha256: g.token_sha256.into_inner().to_ascii_lowercase(),
            signing_key,
        }
    }
}
