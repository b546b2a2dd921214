//! Central incident intake: the checks that MQTT and HTTP incidents pass before the store.
//!
//! Input: the sender (the gateway the topic or the token names), a newline, then the payload.
//! Properties: never panics; a refused incident has its reason and HTTP status; an accepted one
//! came from the gateway it names, which is registered, has the incident schema and one
//! equipment, and can be stored whole: it serializes (the store keeps the JSON), reads back
//! equal, and holds no text that PostgreSQL refuses (NUL: intake replaces it and notes that it
//! did), so the store cannot fail half-way through it or retry it forever; a location it keeps
//! is on the globe. The same payload as an MQTT message: `verify_origin` never panics and never
//! accepts it unless it is sealed with the sender's key.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use seguard::central::config::{parse, CentralConfig};
use seguard::central::clean::Note;
use seguard::central::intake::{decode, verify_origin};
use seguard::model::INCIDENT_SCHEMA;

const CONFIG: &str = r#"
[central]
instance = "fuzz"
max_body_bytes = 8192
[store]
url = "sqlite::memory:"
[[gateway]]
id = "gw1"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
signing_key = "fuzz-signing-key-0123456789abcdef0123"
[[gateway]]
id = "gw2"
token_sha256 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
"#;

fn config() -> &'static CentralConfig {
    static CONFIG_ONCE: OnceLock<CentralConfig> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| parse(CONFIG, Path::new("central-fuzz.toml")).expect("valid config"))
}

/// Whether any text or key in the JSON holds a NUL character.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(sender) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let payload = data.get(split + 1..).unwrap_or_default();
    let config = config();
    // A fixed receive time, so the time-window note does not depend on the clock.
    let now = 1_780_000_000_000;
    if let Ok(message) = verify_origin(config, sender, "incidents", payload) {
        let key = b"fuzz-signing-key-0123456789abcdef0123";
        assert_eq!(sender, "gw1", "only gw1 has a key");
        assert_eq!(
            seguard::signing::verified(key, "incidents", payload),
            Ok(message),
            "accepted only what gw1's key sealed"
        );
    }
    match decode(config, payload, sender, now) {
        Ok(accepted) => {
            let incident = accepted.message;
            assert_eq!(incident.schema, INCIDENT_SCHEMA);
            assert_eq!(incident.gateway, sender);
            assert!(config.gateways.iter().any(|g| g.id == incident.gateway));
            assert_eq!(incident.event.equipment, incident.equipment.id);
            let stored = serde_json::to_string(&incident).expect("an accepted incident serializes");
            assert!(
                !has_nul(&serde_json::from_str(&stored).expect("JSON")),
                "accepted an incident with a NUL character, which PostgreSQL cannot store: {stored}"
            );
            if let Some(l) = incident.equipment.location {
                assert!(seguard::central::clean::on_the_globe(l.lat, l.lon), "{l:?}");
            }
            let again = decode(config, stored.as_bytes(), sender, now)
                .expect("the stored incident reads back");
            assert_eq!(again.message, incident, "the stored incident reads back equal");
            assert!(!again.notes.has(Note::TextReplaced));
        }
        Err(rejection) => {
            assert!(!rejection.reason().is_empty());
            assert!(rejection.status().is_client_error());
            assert!(!rejection.to_string().is_empty());
        }
    }
});
