//! `[[gateway]]` and `[[token]]`: who may send and who may read or act. Only hashes of tokens
//! are kept; a gateway's signing key proves the origin of its MQTT messages.

use std::collections::HashSet;
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problem, SecretString};

/// Who a token belongs to; decides what its holder may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything, acknowledges alarms.
    Regulator,
    /// Sees and updates only the dispatches sent to its unit.
    RescueTeam,
    /// Sees only the equipment of its using unit.
    EquipmentUnit,
    /// Posts incidents for one gateway.
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Regulator => "regulator",
            Role::RescueTeam => "rescue_team",
            Role::EquipmentUnit => "equipment_unit",
            Role::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayEntry {
    pub id: String,
    /// SHA-256 (hex) of the gateway's intake token.
    pub token_sha256: String,
    /// The key the gateway signs its MQTT messages with (`src/signing.rs`). Without it, every
    /// MQTT message naming this gateway is refused: a broker alone proves no origin.
    pub signing_key: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub role: Role,
    /// Who the token is: recorded with every acknowledgement and dispatch step.
    pub name: String,
    /// The rescue unit (rescue_team) or using unit (equipment_unit) the token is scoped to.
    pub unit: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGatewayEntry {
    pub(super) id: Spanned<String>,
    pub(super) token_sha256: Spanned<String>,
    pub(super) signing_key: Option<Spanned<String>>,
    pub(super) signing_key_env: Option<Spanned<String>>,
    pub(super) signing_key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) role: Role,
    pub(super) name: String,
    pub(super) unit: Option<String>,
    pub(super) sha256: Spanned<String>,
}

/// The `[[gateway]]` entries; each id once, each key read and long enough.
pub(super) fn validate_gateways(
    gateways: Vec<RawGatewayEntry>,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<GatewayEntry> {
    let mut seen = HashSet::new();
    gateways
        .into_iter()
        .map(|g| {
            if !seen.insert(g.id.get_ref().clone()) {
                problems.push(Problem::new(
                    g.id.span(),
                    format!("gateway `{}` is listed twice", g.id.get_ref()),
                ));
            }
            if !crate::auth::is_sha256_hex(g.token_sha256.get_ref()) {
                problems.push(
                    Problem::new(g.token_sha256.span(), "token_sha256 must be 64 hex digits")
                        .hint("store only the hash: printf %s TOKEN | sha256sum"),
                );
            }
            let inline_key = g.signing_key.as_ref().map(|k| k.get_ref().clone());
            let key_span = [&g.signing_key, &g.signing_key_env, &g.signing_key_file]
                .into_iter()
                .find_map(|key| key.as_ref().map(Spanned::span));
            let signing_key = crate::tls::secret(
                "signing_key",
                &inline_key,
                &g.signing_key_env,
                &g.signing_key_file,
                base,
            )
            .unwrap_or_else(|problem| {
                problems.push(problem);
                None
            });
            if let Some(key) = &signing_key {
                if key.expose_secret().len() < crate::signing::MIN_KEY_BYTES {
                    problems.push(
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
        })
        .collect()
}

/// The `[[token]]` entries; a rescue team's or equipment unit's token names its unit.
pub(super) fn validate_tokens(
    tokens: Vec<Spanned<RawToken>>,
    problems: &mut Vec<Problem>,
) -> Vec<TokenEntry> {
    tokens
        .into_iter()
        .map(|t| {
            let span = t.span();
            let t = t.into_inner();
            if !crate::auth::is_sha256_hex(t.sha256.get_ref()) {
                problems.push(
                    Problem::new(t.sha256.span(), "sha256 must be 64 hex digits")
                        .hint("store only the hash: printf %s TOKEN | sha256sum"),
                );
            }
            let needs_unit = matches!(t.role, Role::RescueTeam | Role::EquipmentUnit);
            if needs_unit && t.unit.is_none() {
                problems.push(
                    Problem::new(
                        span.clone(),
                        format!("a {} token needs `unit`", t.role.as_str()),
                    )
                    .hint("name the rescue unit or using unit the token is scoped to"),
                );
            }
            if t.role == Role::Gateway {
                problems.push(
                    Problem::new(span, "gateway tokens belong in [[gateway]] entries")
                        .hint("write [[gateway]] id = \"gw1\" token_sha256 = \"...\""),
                );
            }
            TokenEntry {
                role: t.role,
                name: t.name,
                unit: t.unit,
                sha256: t.sha256.into_inner().to_ascii_lowercase(),
            }
        })
        .collect()
}
