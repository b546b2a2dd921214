//! What central refused, at the gateway: the notices read from `{prefix}/{gateway}/rejections`
//! (verified when sealed with the gateway's key), each counted, kept whole with central's reason
//! (`refused.rs`) and raising the `gateway.central_rejected` alarm until an operator
//! acknowledges it.

use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;
use secrecy::ExposeSecret;

use super::config::CentralUplink;
use crate::metrics::Metrics;
use crate::model::{CentralRejection, ToCentral, Value, REJECTION_SCHEMA};
use crate::rules::{ActiveAlarm, AlarmState};
use crate::uplink::refused::{Kept, Recent, Refused};

/// The alarm raised when central refused a message the broker had confirmed.
pub const CENTRAL_REJECTED_RULE: &str = "gateway.central_rejected";

/// Where the gateway lists what central refused.
pub const REJECTED_ROUTE: &str = "/api/v1/central/rejected";

/// What central refused, shared with the HTTP API: the `gateway.central_rejected` alarm, the
/// messages published recently, and the refused ones kept with their reasons.
#[derive(Default)]
pub struct CentralRejections {
    alarm: Mutex<Option<ActiveAlarm>>,
    recent: Mutex<Recent>,
    kept: Mutex<Kept>,
}

impl CentralRejections {
    /// Keeps refusals in the outbox directory `dir` from now on, with those kept there before.
    pub fn keep_in(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.kept.lock().expect("kept lock").open(dir)
    }

    /// The refused messages kept, oldest first.
    pub fn kept(&self) -> Vec<Refused> {
        self.kept.lock().expect("kept lock").list()
    }

    /// Remembers a message as published (its JSON before sealing), for a refusal to name.
    pub(super) fn remember(&self, message: &ToCentral, json: &[u8]) {
        let id = match message {
            ToCentral::Incident(i) => i.id,
            ToCentral::Fill(f) => f.id,
        };
        let mut recent = self.recent.lock().expect("recent lock");
        recent.remember(id.to_string(), json, Instant::now());
    }

    /// The open alarm, when central refused anything since the gateway started.
    pub fn alarm(&self) -> Option<ActiveAlarm> {
        self.alarm.lock().expect("rejections lock").clone()
    }

    /// An operator has seen the refusals: the alarm ends until the next one (the counts stay in
    /// `/metrics`, the refused messages at [`REJECTED_ROUTE`] and at central). False when there is no such alarm.
    pub fn acknowledge(&self, equipment: &str, user: &str) -> bool {
        let mut alarm = self.alarm.lock().expect("rejections lock");
        match alarm.as_ref() {
            Some(a) if a.equipment == equipment => {
                tracing::info!(user, message = %a.message, "central's refusals acknowledged");
                *alarm = None;
                true
            }
            _ => false,
        }
    }

    /// Counts a refusal and raises (or updates) the alarm. `verified` says whether the notice
    /// was sealed with our key (central had it); an unverified notice still raises the alarm,
    /// because a refusal must never go unseen.
    pub(super) fn record(&self, r: &CentralRejection, verified: bool, metrics: &Metrics) {
        let reason = KNOWN_REASONS
            .iter()
            .find(|k| **k == r.reason)
            .copied()
            .unwrap_or("other");
        let what = format!("{} {}", r.kind, r.id.as_deref().unwrap_or("(no id)"));
        metrics.central_rejected(reason, &what, &r.detail);
        let message = r.id.as_deref().and_then(|id| {
            let json = self
                .recent
                .lock()
                .expect("recent lock")
                .get(id, Instant::now())?;
            serde_json::from_slice(&json).ok()
        });
        self.kept.lock().expect("kept lock").add(Refused {
            time: Utc::now(),
            kind: r.kind.clone(),
            id: r.id.clone(),
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            verified,
            message,
        });
        let mut alarm = self.alarm.lock().expect("rejections lock");
        let count = alarm.as_ref().and_then(|a| a.value).unwrap_or(0.0) + 1.0;
        let details = [
            ("kind", Value::Text(r.kind.clone())),
            ("id", Value::Text(r.id.clone().unwrap_or_default())),
            ("reason", Value::Text(r.reason.clone())),
            ("detail", Value::Text(r.detail.clone())),
            ("verified", Value::Bool(verified)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        *alarm = Some(ActiveAlarm {
            equipment: r.gateway.clone(),
            rule: CENTRAL_REJECTED_RULE.to_owned(),
            severity: crate::model::Severity::High,
            since: alarm.as_ref().map_or(Utc::now(), |a| a.since),
            value: Some(count),
            limit: None,
            message: format!(
                "central refused {count} message(s); the last: {what}: {}; the messages and why: {REJECTED_ROUTE}",
                r.detail
            ),
            state: AlarmState::ActiveUnacknowledged,
            condition: true,
            acknowledged_by: None,
            acknowledged_at: None,
            shelved_until: None,
            chattering: false,
            details,
        });
    }
}

/// Central's refusal reasons (`central/intake.rs`); anything else is counted as `other`.
const KNOWN_REASONS: [&str; 9] = [
    "oversized",
    "malformed",
    "unknown_schema",
    "unknown_gateway",
    "gateway_mismatch",
    "unsigned",
    "bad_signature",
    "too_many_equipment",
    "unauthorized",
];

/// Reads a notice from central: sealed with our key (verified), or plain (central has no key
/// for us). A notice for another gateway, or that is neither, is ignored.
pub(super) fn read_rejection(
    config: &CentralUplink,
    gateway: &str,
    payload: &[u8],
) -> Option<(CentralRejection, bool)> {
    let key = config.signing_key.as_ref();
    let (message, verified) = match crate::signing::open(payload) {
        Ok(opened) => {
            let verified = key.is_some_and(|k| {
                opened
                    .verify(k.expose_secret().as_bytes(), "rejections")
                    .is_ok()
            });
            (opened.message, verified)
        }
        Err(_) => (payload, false),
    };
    let r: CentralRejection = serde_json::from_slice(message).ok()?;
    (r.schema == REJECTION_SCHEMA && r.gateway == gateway).then_some((r, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "gw1-signing-key-0123456789abcdef0123";

    fn uplink() -> CentralUplink {
        let text = format!(
            "[site]\nid = \"s1\"\nname = \"s\"\naddress = \"a\"\n[gateway]\nid = \"gw1\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\n[uplink.central]\nsigning_key = \"{KEY}\"\n"
        );
        crate::config::parse(&text, std::path::Path::new("site.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .central
            .expect("a central uplink")
    }

    /// A notice sealed with our key is verified; a plain one (central had no key for us) still
    /// counts, unverified; one for another gateway or of another schema is not ours.
    #[test]
    fn notices_from_central_are_read_and_verified() {
        let config = uplink();
        let notice = |gateway: &str, schema: &str| {
            serde_json::to_vec(&CentralRejection {
                schema: schema.into(),
                gateway: gateway.into(),
                kind: "incidents".into(),
                id: Some("x".into()),
                reason: "malformed".into(),
                detail: "d".into(),
                time: Utc::now(),
            })
            .unwrap()
        };
        let ours = notice("gw1", REJECTION_SCHEMA);
        let sealed = crate::signing::seal(KEY.as_bytes(), "rejections", &ours);
        let wrong_key = crate::signing::seal(&[7; 32], "rejections", &ours);
        let cases: [(&[u8], Option<bool>); 5] = [
            (&sealed, Some(true)),
            (&ours, Some(false)),
            (&wrong_key, Some(false)),
            (&notice("gw2", REJECTION_SCHEMA), None),
            (&notice("gw1", "seguard.other.v1"), None),
        ];
        for (payload, expected) in cases {
            let read = read_rejection(&config, "gw1", payload).map(|(_, verified)| verified);
            assert_eq!(read, expected);
        }
        let rejections = CentralRejections::default();
        let metrics = Metrics::new();
        let (r, verified) = read_rejection(&config, "gw1", &sealed).unwrap();
        rejections.record(&r, verified, &metrics);
        rejections.record(&r, verified, &metrics);
        let alarm = rejections.alarm().expect("the alarm is raised");
        assert_eq!(alarm.rule, CENTRAL_REJECTED_RULE);
        assert_eq!(alarm.value, Some(2.0));
        assert_eq!(metrics.central_rejected_count("malformed"), 2);
        assert!(!rejections.acknowledge("gw2", "op"));
        assert!(rejections.acknowledge("gw1", "op"));
        assert_eq!(rejections.alarm(), None);
    }
}
