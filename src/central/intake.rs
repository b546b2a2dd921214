//! Intake of incidents, fill records, gateway status and registry: the MQTT subscriptions
//! and the checks both MQTT and HTTP apply.
//!
//! Every MQTT message must be sealed with its gateway's key (`src/signing.rs`) and name the
//! gateway of its topic, which central must know (`[[gateway]]`): a broker, even one with an
//! ACL, proves no origin by itself. Over HTTP the gateway's token does.
//!
//! **Invariant:** an MQTT incident is acknowledged (PUBACK, manual acks) only after the store
//! committed it, or after it was refused. A refusal is counted, kept in the store
//! (`/api/v1/intake/rejected`) and told to the gateway on `{prefix}/{gateway}/rejections`,
//! because the broker's PUBACK already told the gateway "delivered". An incident central can
//! attribute is never refused for its content: text a store cannot keep, a location off the
//! globe, a time far from now are repaired and noted (`clean.rs`).

mod mqtt;

pub use mqtt::{mqtt_client, run_mqtt, store_incident, store_incidents};

use axum::http::StatusCode;
use secrecy::ExposeSecret;

use super::clean::{self, Note, Notes};
use super::config::CentralConfig;
use crate::model::{
    FillRecord, GatewayRegistry, GatewayStatus, Incident, FILL_SCHEMA, INCIDENT_SCHEMA,
    REGISTRY_SCHEMA,
};

/// Why a message was refused; each has its HTTP status and its counter label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing or unknown gateway token")]
    Unauthorized,
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unknown schema `{found}`; expected `{expected}`")]
    UnknownSchema {
        found: String,
        expected: &'static str,
    },
    #[error("unknown gateway `{0}`; register it in the central config as [[gateway]]")]
    UnknownGateway(String),
    #[error("message of gateway `{claimed}` sent with the credentials of `{sender}`")]
    GatewayMismatch { claimed: String, sender: String },
    #[error("message on the topic of gateway `{0}` is not signed; set signing_key in the gateway's [uplink.central]")]
    Unsigned(String),
    #[error("signature of gateway `{0}` does not verify (wrong key, or central has none for it)")]
    BadSignature(String),
    #[error("registry lists {count} equipment; the limit per gateway is {limit}")]
    TooManyEquipment { count: usize, limit: usize },
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::Oversized { .. } => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownSchema { .. } => "unknown_schema",
            Rejection::UnknownGateway(_) => "unknown_gateway",
            Rejection::GatewayMismatch { .. } => "gateway_mismatch",
            Rejection::Unsigned(_) => "unsigned",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::TooManyEquipment { .. } => "too_many_equipment",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::Oversized { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Malformed(_) | Rejection::TooManyEquipment { .. } => StatusCode::BAD_REQUEST,
            Rejection::UnknownSchema { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::UnknownGateway(_)
            | Rejection::GatewayMismatch { .. }
            | Rejection::Unsigned(_)
            | Rejection::BadSignature(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// A message intake accepted, with the repairs it needed.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<T> {
    pub message: T,
    pub notes: Notes,
}

/// The message bytes of an MQTT payload on the topic of gateway `sender`, kind `kind`, when it
/// is sealed with that gateway's key.
pub fn verify_origin<'a>(
    config: &CentralConfig,
    sender: &str,
    kind: &str,
    payload: &'a [u8],
) -> Result<&'a [u8], Rejection> {
    let Some(gateway) = config.gateways.iter().find(|g| g.id == sender) else {
        return Err(Rejection::UnknownGateway(sender.to_owned()));
    };
    let opened = crate::signing::open(payload).map_err(|_| Rejection::Unsigned(sender.into()))?;
    let key = gateway
        .signing_key
        .as_ref()
        .ok_or_else(|| Rejection::BadSignature(sender.to_owned()))?;
    opened
        .verify(key.expose_secret().as_bytes(), kind)
        .map_err(|_| Rejection::BadSignature(sender.to_owned()))?;
    Ok(opened.message)
}

/// Parses a message of `schema` from a known gateway, replacing NUL characters. `sender` is the
/// gateway the transport vouches for: the topic's gateway, whose signature was verified, for
/// MQTT; the token's gateway for HTTP.
fn parse<T: serde::de::DeserializeOwned>(
    config: &CentralConfig,
    payload: &[u8],
    limit: usize,
    schema: &'static str,
    sender: &str,
    gateway_of: impl Fn(&T) -> &str,
) -> Result<Accepted<T>, Rejection> {
    if payload.len() > limit {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit,
        });
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(s) if s == schema => {}
        Some(other) => {
            return Err(Rejection::UnknownSchema {
                found: other.to_owned(),
                expected: schema,
            })
        }
        None => return Err(Rejection::Malformed("missing field `schema`".into())),
    }
    // PostgreSQL text cannot hold NUL: replaced, and the replacement noted on the event.
    let mut notes = Notes::default();
    if clean::replace_nul(&mut value) {
        notes.add(Note::TextReplaced);
    }
    let message: T =
        serde_json::from_value(value).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let gateway = gateway_of(&message);
    if !config.gateways.iter().any(|g| g.id == gateway) {
        return Err(Rejection::UnknownGateway(gateway.to_owned()));
    }
    if gateway != sender {
        return Err(Rejection::GatewayMismatch {
            claimed: gateway.to_owned(),
            sender: sender.to_owned(),
        });
    }
    Ok(Accepted { message, notes })
}

/// Decodes and checks a fill record (see [`parse`] for `sender`).
pub fn decode_fill(
    config: &CentralConfig,
    payload: &[u8],
    sender: &str,
) -> Result<FillRecord, Rejection> {
    let fill = parse(
        config,
        payload,
        config.max_body_bytes,
        FILL_SCHEMA,
        sender,
        |f: &FillRecord| &f.gateway,
    )?
    .message;
    if fill.cylinder_code.trim().is_empty() {
        return Err(Rejection::Malformed("empty `cylinder_code`".into()));
    }
    Ok(fill)
}

/// Decodes and checks an incident received at `now` (see [`parse`] for `sender`). Text a store
/// cannot keep, a location off the globe and a time outside the window are repaired and noted.
pub fn decode(
    config: &CentralConfig,
    payload: &[u8],
    sender: &str,
    now: i64,
) -> Result<Accepted<Incident>, Rejection> {
    let mut accepted = parse(
        config,
        payload,
        config.max_body_bytes,
        INCIDENT_SCHEMA,
        sender,
        |i: &Incident| &i.gateway,
    )?;
    let incident = &mut accepted.message;
    if incident.event.equipment != incident.equipment.id {
        return Err(Rejection::Malformed(format!(
            "event equipment `{}` differs from equipment `{}`",
            incident.event.equipment, incident.equipment.id
        )));
    }
    if clean::drop_bad_location(&mut incident.equipment) {
        accepted.notes.add(Note::LocationDropped);
    }
    let limits = &config.intake;
    if !clean::time_in_window(
        incident.event.time,
        now,
        limits.event_time_past,
        limits.event_time_future,
    ) {
        accepted.notes.add(Note::TimeOutsideWindow);
    }
    Ok(accepted)
}

/// Decodes and checks a registry (see [`parse`] for `sender`): within the size and equipment
/// limits; locations off the globe are dropped and counted in `notes`.
pub fn decode_registry(
    config: &CentralConfig,
    payload: &[u8],
    sender: &str,
) -> Result<Accepted<GatewayRegistry>, Rejection> {
    let limits = &config.intake;
    let mut accepted = parse(
        config,
        payload,
        limits.registry_max_bytes,
        REGISTRY_SCHEMA,
        sender,
        |r: &GatewayRegistry| &r.gateway,
    )?;
    let count = accepted.message.equipment.len();
    if count > limits.registry_max_equipment {
        return Err(Rejection::TooManyEquipment {
            count,
            limit: limits.registry_max_equipment,
        });
    }
    for equipment in &mut accepted.message.equipment {
        if clean::drop_bad_location(equipment) {
            accepted.notes.add(Note::LocationDropped);
        }
    }
    Ok(accepted)
}

/// Decodes and checks a gateway status (see [`parse`] for `sender`). A status has no schema
/// field; it must name the topic's gateway, which central must know.
pub fn decode_status(
    config: &CentralConfig,
    payload: &[u8],
    sender: &str,
) -> Result<GatewayStatus, Rejection> {
    let limit = config.intake.status_max_bytes;
    if payload.len() > limit {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit,
        });
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    clean::replace_nul(&mut value);
    let status: GatewayStatus =
        serde_json::from_value(value).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !config.gateways.iter().any(|g| g.id == status.gateway) {
        return Err(Rejection::UnknownGateway(status.gateway));
    }
    if status.gateway != sender {
        return Err(Rejection::GatewayMismatch {
            claimed: status.gateway,
            sender: sender.to_owned(),
        });
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::now_ms;
    use std::path::Path;

    fn config() -> CentralConfig {
        let text = r#"
[central]
instance = "test"
[store]
url = "sqlite::memory:"
[[gateway]]
id = "gw1"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
signing_key = "fuzz-signing-key-0123456789abcdef0123"
[[gateway]]
id = "gw2"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;
        super::super::config::parse(text, Path::new("central.toml")).expect("valid config")
    }

    /// The seed the fuzz target starts its signature path from is a message gw1 sealed; each
    /// way a message can fail to be gw1's is refused with its reason.
    #[test]
    fn only_a_message_sealed_with_its_gateways_key_passes() {
        let config = config();
        let seed = include_bytes!("../../fuzz/corpus/central_intake/sealed-incident-gw1");
        let payload = &seed[4..];
        assert!(verify_origin(&config, "gw1", "incidents", payload).is_ok());
        let message = incident("s1");
        let key = b"fuzz-signing-key-0123456789abcdef0123";
        let sealed = crate::signing::seal(key, "incidents", message.as_bytes());
        let cases = [
            ("gw1", "incidents", message.as_bytes(), "unsigned"),
            ("gw1", "fills", &sealed[..], "bad_signature"),
            ("gw2", "incidents", &sealed[..], "bad_signature"),
            ("gw9", "incidents", &sealed[..], "unknown_gateway"),
        ];
        for (sender, kind, payload, reason) in cases {
            let refused = verify_origin(&config, sender, kind, payload).unwrap_err();
            assert_eq!(refused.reason(), reason, "{sender} {kind}");
        }
        assert_eq!(
            verify_origin(&config, "gw1", "incidents", &sealed),
            Ok(message.as_bytes())
        );
    }

    fn incident(site_id: &str) -> String {
        serde_json::json!({
            "schema": INCIDENT_SCHEMA,
            "id": "00000000-0000-4000-8000-000000000001",
            "gateway": "gw1",
            "site": { "id": site_id, "name": "Tower site", "address": "1 Test Road" },
            "equipment": {
                "id": "lift-1", "kind": "elevator", "name": "Lift 1",
                "registration_code": "31103101002016010001", "using_unit": "Tower Property Co.",
                "address": "1 Test Road", "nameplate": {}
            },
            "event": {
                "id": "00000000-0000-4000-8000-000000000001", "equipment": "lift-1",
                "rule": "elevator.trapped", "severity": "critical", "transition": "raise",
                "time": "2026-05-01T08:00:00Z", "message": "trapped",
                "details": { "floor\u{0}": "B2" }
            }
        })
        .to_string()
    }

    /// Issue 13: a NUL in a trapped incident's text lost the incident end to end (central
    /// refused it and the gateway's lane confirmed it). PostgreSQL cannot store NUL, so it is
    /// replaced by U+FFFD and the replacement noted on the event, in keys and values alike.
    #[test]
    fn text_with_a_nul_character_is_replaced_and_noted() {
        let config = config();
        let with_nul_in_a_key = incident("s1");
        let with_nul_in_a_value = incident("s\u{0}1").replace("floor\\u0000", "floor");
        for payload in [with_nul_in_a_key, with_nul_in_a_value] {
            let accepted = decode(&config, payload.as_bytes(), "gw1", now_ms()).unwrap();
            assert!(accepted.notes.has(Note::TextReplaced), "{payload}");
            let stored = serde_json::to_string(&accepted.message).unwrap();
            assert!(
                !stored.contains("\\u0000") && stored.contains('\u{FFFD}'),
                "{stored}"
            );
        }
        let clean = incident("s1").replace("floor\\u0000", "floor");
        let accepted = decode(&config, clean.as_bytes(), "gw1", now_ms()).unwrap();
        assert_eq!(accepted.notes.stored(), Some("time_outside_window".into()));
    }

    /// Issue 13: a location off the globe blanked the map; a time in year 9999 sat on top of
    /// the alarm list. The incident is still stored: the location dropped, the time flagged.
    #[test]
    fn a_location_off_the_globe_is_dropped_and_a_far_time_flagged() {
        let config = config();
        let now = chrono::Utc::now();
        let clean = incident("s1")
            .replace("floor\\u0000", "floor")
            .replace("2026-05-01T08:00:00Z", &now.to_rfc3339());
        let accepted = decode(&config, clean.as_bytes(), "gw1", now.timestamp_millis()).unwrap();
        assert_eq!(accepted.notes.stored(), None);
        let far = clean
            .replace(&now.to_rfc3339(), "9999-12-31T00:00:00Z")
            .replace(
                "\"nameplate\":{}",
                "\"nameplate\":{},\"location\":{\"lat\":1000.0,\"lon\":-1000.0,\"crs\":\"WGS-84\"}",
            );
        let accepted = decode(&config, far.as_bytes(), "gw1", now.timestamp_millis()).unwrap();
        assert_eq!(
            accepted.notes.stored(),
            Some("location_dropped,time_outside_window".into())
        );
        assert_eq!(accepted.message.equipment.location, None);
    }

    /// Fuzz finding (fuzz/README.md): a number with many digits was parsed one unit in the last
    /// place off, so the stored JSON read back as a different number than the one accepted.
    #[test]
    fn an_accepted_incident_reads_back_equal_from_its_stored_json() {
        let config = config();
        let digits =
            "6222222222222222222222222222222222222222222222222222222222222222222222222222221";
        let payload = incident("s1").replace(
            "\"floor\\u0000\":\"B2\"",
            &format!("\"stopped_s\": {digits}"),
        );
        assert!(payload.contains(digits), "{payload}");
        let accepted =
            decode(&config, payload.as_bytes(), "gw1", now_ms()).expect("valid incident");
        let stored = serde_json::to_string(&accepted.message).expect("serializes");
        assert_eq!(
            decode(&config, stored.as_bytes(), "gw1", now_ms()),
            Ok(accepted)
        );
    }
}
