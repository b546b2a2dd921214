//! A small fleet whose November 2026 history the regulator tests write into a real store,
//! through the store's own intake and dispatch steps (`tests/regulator.rs`,
//! `tests/regulator_browser.rs`). Times are UTC.
//!
//! Two maintenance units: Quick Lifts answers fast, Slow Lifts slowly (one dispatch answered
//! in 170 s and reached in 1,700 s, one never answered and escalated to City Rescue).
//!
//! | equipment | kind | unit | history |
//! |---|---|---|---|
//! | s1 | elevator | Slow Lifts | door-close fault 3 times (Nov 3, 10, 20), trapped Nov 21 (escalated); inspection due 2026-10-15 (overdue) |
//! | s2 | elevator | Slow Lifts | trapped Nov 8; not insured; inspection due 2026-12-20; in service since 2006-05-01 |
//! | q1 | elevator | Quick Lifts | trapped Nov 5 (answered in 60 s, on site in 600 s) |
//! | q2 | elevator | Quick Lifts | trapped Nov 12 (answered in 120 s, on site in 900 s) |
//! | a1 | autoclave | none | one high-pressure alarm Nov 15 |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use seguard::central::clean::Notes;
use seguard::central::config::CentralConfig;
use seguard::central::dispatch::Status;
use seguard::central::store::{RescueStep, Store};
use seguard::model::{GatewayRegistry, Incident};
use serde_json::{json, Value};

pub const QUICK: &str = "Quick Lifts";
pub const SLOW: &str = "Slow Lifts";
pub const BACKUP: &str = "City Rescue";

/// The config tables the fleet's central needs: its rescue units, the dispatch limits, and
/// grade thresholds that a fleet of four lifts can meet (two trapped per two lifts is 100 per
/// 100 elevators).
pub fn central_tables() -> String {
    format!(
        r#"
[dispatch]
respond_within_s = 180
arrive_within_s = 1800
backup_unit = "{BACKUP}"
[scorecard.grade.A]
max_trapped_per_100 = 100
[scorecard.grade.B]
max_trapped_per_100 = 100
[scorecard.grade.C]
max_trapped_per_100 = 150
[[rescue_unit]]
name = "{QUICK}"
phone = "+86-21-5555-0101"
[[rescue_unit]]
name = "{SLOW}"
phone = "+86-21-5555-0202"
[[rescue_unit]]
name = "{BACKUP}"
phone = "+86-21-5555-0303"
"#
    )
}

pub fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
        .timestamp_millis()
}

/// The registry record of one of the fleet's equipment.
pub fn equipment(id: &str) -> Value {
    let (kind, unit, address, next, insured, in_service) = match id {
        "s1" => (
            "elevator",
            Some(SLOW),
            "5 West Road, Jing'an",
            "2026-10-15",
            true,
            None,
        ),
        "s2" => (
            "elevator",
            Some(SLOW),
            "6 West Road, Jing'an",
            "2026-12-20",
            false,
            Some("2006-05-01"),
        ),
        "q1" => (
            "elevator",
            Some(QUICK),
            "1 East Road, Pudong",
            "2027-06-30",
            true,
            None,
        ),
        "q2" => (
            "elevator",
            Some(QUICK),
            "2 East Road, Pudong",
            "2027-06-30",
            true,
            None,
        ),
        "a1" => (
            "autoclave",
            None,
            "9 Mill Road, Pudong",
            "2027-03-01",
            true,
            None,
        ),
        other => panic!("no equipment {other}"),
    };
    let mut e = json!({
        "id": id, "kind": kind, "name": format!("{} {id}", if kind == "elevator" { "Lift" } else { "Autoclave" }),
        "registration_code": format!("3110310100201601{:04}", id.bytes().map(u32::from).sum::<u32>()),
        "using_unit": if id.starts_with('s') { "West Mall Co." } else { "East Tower Co." },
        "address": address,
        "location": { "lat": 31.23, "lon": 121.47, "crs": "WGS-84" },
        "nameplate": {}, "next_inspection": next, "insured": insured,
    });
    if let Some(u) = unit {
        e["maintenance_unit"] = json!({ "name": u, "phone": "+86-21-0000-0000" });
    }
    if let Some(d) = in_service {
        e["in_service"] = json!(d);
    }
    e
}

fn incident(n: u32, equipment_id: &str, rule: &str, transition: &str, time: &str) -> Incident {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    serde_json::from_value(json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": "gw1",
        "site": { "id": "s1", "name": "District", "address": "District" },
        "equipment": equipment(equipment_id),
        "event": { "id": id, "equipment": equipment_id, "rule": format!("{equipment_id}.{rule}"),
                   "severity": "high", "transition": transition, "time": time,
                   "message": format!("{rule} on {equipment_id}") }
    }))
    .unwrap()
}

/// Raises `rule` on `equipment` at `raised` and clears it at `cleared`; returns the dispatch
/// the raise created, if any. Each incident arrives when it happened.
async fn episode(
    store: &Store,
    config: &CentralConfig,
    n: u32,
    equipment: &str,
    rule: &str,
    raised: &str,
    cleared: &str,
) -> Option<String> {
    let raise = incident(n, equipment, rule, "raise", raised);
    let outcome = store
        .ingest_incident(config, &raise, &Notes::default(), "test", ms(raised))
        .await
        .unwrap();
    assert!(outcome.stored);
    let clear = incident(n + 1, equipment, rule, "clear", cleared);
    store
        .ingest_incident(config, &clear, &Notes::default(), "test", ms(cleared))
        .await
        .unwrap();
    outcome.dispatch
}

async fn step(
    store: &Store,
    config: &CentralConfig,
    id: &str,
    status: Status,
    unit: &str,
    at: &str,
) {
    store
        .set_dispatch_status(
            config,
            id,
            &RescueStep {
                status,
                unit,
                actor: "duty",
                role: "rescue_team",
                note: "",
                now: ms(at),
            },
        )
        .await
        .unwrap()
        .unwrap_or_else(|refused| panic!("{status:?} by {unit} refused: {refused}"));
}

/// One trapped-passenger rescue of the fleet: the lift, the unit that answers, and when (UTC)
/// it was raised, answered, reached and cleared. `escalated`: the maintenance unit never
/// answered, and the dispatch went to City Rescue 181 s after the raise.
pub struct Rescue {
    pub n: u32,
    pub lift: &'static str,
    pub unit: &'static str,
    pub escalated: bool,
    pub raised: &'static str,
    pub responded: &'static str,
    pub on_site: &'static str,
    pub cleared: &'static str,
    pub completed: &'static str,
}

/// Quick Lifts answers in 60 s and 120 s and is on site in 600 s and 900 s; Slow Lifts answers
/// s2 in 170 s and arrives in 1,700 s, and never answers s1, which City Rescue reaches.
pub const RESCUES: [Rescue; 4] = [
    Rescue {
        n: 30,
        lift: "q1",
        unit: QUICK,
        escalated: false,
        raised: "2026-11-05T10:00:00Z",
        responded: "2026-11-05T10:01:00Z",
        on_site: "2026-11-05T10:10:00Z",
        cleared: "2026-11-05T10:20:00Z",
        completed: "2026-11-05T10:30:00Z",
    },
    Rescue {
        n: 32,
        lift: "q2",
        unit: QUICK,
        escalated: false,
        raised: "2026-11-12T10:00:00Z",
        responded: "2026-11-12T10:02:00Z",
        on_site: "2026-11-12T10:15:00Z",
        cleared: "2026-11-12T10:20:00Z",
        completed: "2026-11-12T10:30:00Z",
    },
    Rescue {
        n: 40,
        lift: "s2",
        unit: SLOW,
        escalated: false,
        raised: "2026-11-08T10:00:00Z",
        responded: "2026-11-08T10:02:50Z",
        on_site: "2026-11-08T10:28:20Z",
        cleared: "2026-11-08T10:40:00Z",
        completed: "2026-11-08T10:45:00Z",
    },
    Rescue {
        n: 42,
        lift: "s1",
        unit: BACKUP,
        escalated: true,
        raised: "2026-11-21T10:00:00Z",
        responded: "2026-11-21T10:04:00Z",
        on_site: "2026-11-21T10:20:00Z",
        cleared: "2026-11-21T10:30:00Z",
        completed: "2026-11-21T10:35:00Z",
    },
];

/// The other alarms: (n, equipment, rule, raised, cleared). s1's door fault recurs three times
/// within 30 days; a1 has one pressure alarm.
pub const ALARMS: [(u32, &str, &str, &str, &str); 4] = [
    (
        10,
        "s1",
        "door_close_fault",
        "2026-11-03T02:00:00Z",
        "2026-11-03T02:30:00Z",
    ),
    (
        12,
        "s1",
        "door_close_fault",
        "2026-11-10T02:00:00Z",
        "2026-11-10T02:30:00Z",
    ),
    (
        14,
        "s1",
        "door_close_fault",
        "2026-11-20T02:00:00Z",
        "2026-11-20T02:30:00Z",
    ),
    (
        20,
        "a1",
        "pressure_high",
        "2026-11-15T06:00:00Z",
        "2026-11-15T06:10:00Z",
    ),
];

/// The fleet's equipment ids.
pub const EQUIPMENT: [&str; 5] = ["s1", "s2", "q1", "q2", "a1"];

/// The registry message of the fleet's gateway, with `changed`'s equipment at a new address.
pub fn registry(changed: Option<(&str, &str)>) -> GatewayRegistry {
    let all = EQUIPMENT.map(|id| {
        let mut e = equipment(id);
        if let Some((_, address)) = changed.filter(|(c, _)| *c == id) {
            e["address"] = json!(address);
        }
        e
    });
    serde_json::from_value(json!({
        "schema": "seguard.registry.v1", "gateway": "gw1",
        "site": { "id": "s1", "name": "District", "address": "District" },
        "equipment": all,
    }))
    .unwrap()
}

/// Writes the fleet's registry and its November history.
/// Central started on a store that already holds the fleet: written before central's dispatch
/// timers run, so that none of them escalates a rescue between the steps `write` takes.
pub async fn central_with_fleet(config: CentralConfig) -> seguard::central::Central {
    let store = Store::open(secrecy::ExposeSecret::expose_secret(&config.store_url))
        .await
        .unwrap();
    write(&store, &config).await;
    store.close().await;
    seguard::central::Central::start(config).await.unwrap()
}

pub async fn write(store: &Store, config: &CentralConfig) {
    store
        .merge_registry(&registry(None), ms("2026-11-01T00:00:00Z"))
        .await
        .unwrap();
    for (n, id, rule, raised, cleared) in ALARMS {
        episode(store, config, n, id, rule, raised, cleared).await;
    }
    for r in &RESCUES {
        rescue(store, config, r).await;
    }
}

/// Writes one trapped-passenger rescue: its raise and clear, the dispatch's escalation when
/// `escalated`, and the answering unit's steps.
pub async fn rescue(store: &Store, config: &CentralConfig, r: &Rescue) {
    let d = episode(store, config, r.n, r.lift, "trapped", r.raised, r.cleared)
        .await
        .expect("a dispatch");
    if r.escalated {
        let at = ms(r.raised) + 181_000;
        let due = store.due_dispatches(at, 10).await.unwrap();
        assert_eq!(due.len(), 1, "the unanswered dispatch is due");
        assert_eq!(store.escalate(config, &due[0], at).await.unwrap(), Some(1));
    }
    step(store, config, &d, Status::Responded, r.unit, r.responded).await;
    step(store, config, &d, Status::OnSite, r.unit, r.on_site).await;
    step(store, config, &d, Status::Completed, r.unit, r.completed).await;
}

/// A receiving platform for the upward exchange: answers every batch with `down` while it is
/// not 0 (503 at first); else answers 422 with [`REFUSAL`] (and a long tail) for a batch that
/// holds a key in `refuse`, storing none of it; else records each delivered key (with how often
/// it was delivered, and the first data) and the order keys first arrived in, and answers 200.
/// `requests` holds each batch's keys and the status it got.
// The browser test reads only some of it.
#[allow(dead_code)]
pub struct Receiver {
    pub port: u16,
    pub down: Arc<AtomicU16>,
    pub refuse: Arc<Mutex<BTreeSet<String>>>,
    pub requests: Arc<Mutex<Vec<Answered>>>,
    pub delivered: Arc<Mutex<BTreeMap<String, (u32, Value)>>>,
    pub order: Arc<Mutex<Vec<String>>>,
}

/// One batch the receiver got: the status it answered and the batch's keys.
pub type Answered = (u16, Vec<String>);

/// How the receiver starts its answer to a record it cannot take.
pub const REFUSAL: &str = "record refused: field `address` cannot be parsed";

pub async fn receiver() -> Receiver {
    let down = Arc::new(AtomicU16::new(503));
    let refuse: Arc<Mutex<BTreeSet<String>>> = Default::default();
    let requests: Arc<Mutex<Vec<Answered>>> = Default::default();
    let delivered: Arc<Mutex<BTreeMap<String, (u32, Value)>>> = Default::default();
    let order: Arc<Mutex<Vec<String>>> = Default::default();
    let (u, f, q, d, o) = (
        down.clone(),
        refuse.clone(),
        requests.clone(),
        delivered.clone(),
        order.clone(),
    );
    let app = axum::Router::new().route(
        "/records",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (u, f, q, d, o) = (u.clone(), f.clone(), q.clone(), d.clone(), o.clone());
            async move {
                let keys: Vec<String> = body["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["key"].as_str().unwrap().to_owned())
                    .collect();
                let down = u.load(Ordering::SeqCst);
                let refused = keys.iter().any(|k| f.lock().unwrap().contains(k));
                let status = match (down, refused) {
                    (0, false) => StatusCode::OK,
                    (0, true) => StatusCode::UNPROCESSABLE_ENTITY,
                    (s, _) => StatusCode::from_u16(s).unwrap(),
                };
                q.lock().unwrap().push((status.as_u16(), keys));
                if status == StatusCode::UNPROCESSABLE_ENTITY {
                    return (status, format!("{REFUSAL}; {}", "x".repeat(2000)));
                }
                if status != StatusCode::OK {
                    return (status, String::new());
                }
                let mut d = d.lock().unwrap();
                for r in body["records"].as_array().unwrap() {
                    assert_eq!(r["area_code"], "310115");
                    let key = r["key"].as_str().unwrap().to_owned();
                    let entry = d.entry(key.clone()).or_insert_with(|| {
                        o.lock().unwrap().push(key);
                        (0, r["data"].clone())
                    });
                    entry.0 += 1;
                }
                (StatusCode::OK, String::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        port,
        down,
        refuse,
        requests,
        delivered,
        order,
    }
}
