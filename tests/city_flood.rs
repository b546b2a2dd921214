//! A district power cut on the city set-up (not timed): PostgreSQL, one mosquitto with the
//! shared subscription, two `seguard central` processes. 2,000 elevators of 20 gateways in one
//! area lose mains power within seconds, 300 of them with people inside; one central process is
//! killed with SIGKILL in the middle of the flood and started again (as a supervisor would).
//!
//! Counted exactly, in the store and at the rescue units' webhook receiver: every incident
//! stored once, every dispatch created once and escalated once, one notification row per
//! dispatch and step, each delivered (at least once: a repeat after the kill carries the same
//! `notification_id`, which the receiver drops), the flood grouped into one situation, and each
//! unit told in messages listing many lifts rather than one message per lift. No escalation
//! comes later than its timer plus the takeover time (the notification lease).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::TestClient;
use common::postgres::Postgres;
use common::{eventually, free_port, Mosquitto};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Row;

const GATEWAYS: usize = 20;
const LIFTS_PER_GATEWAY: usize = 100;
const UNITS: [&str; 5] = ["unit-a", "unit-b", "unit-c", "unit-d", "unit-e"];
const RESPOND_WITHIN_S: f64 = 20.0;
const LEASE_S: u64 = 3;
const POLL_MS: u64 = 200;

fn gateway_id(g: usize) -> String {
    format!("gw{g:02}")
}

fn key(g: usize) -> String {
    format!("city-signing-key-{g:02}-0123456789abcdef0123")
}

fn central_toml(instance: &str, http_port: u16, store: &str, mqtt_port: u16, hook: u16) -> String {
    let mqtt = match mqtt_port {
        0 => String::new(),
        port => format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    };
    let mut text = format!(
        r#"
[central]
instance = "{instance}"
http_listen = "127.0.0.1:{http_port}"

[store]
url = "{store}"

{mqtt}

[[token]]
role = "regulator"
name = "inspector"
sha256 = "{regulator}"

[dispatch]
respond_within_s = {RESPOND_WITHIN_S}
arrive_within_s = 3600
backup_unit = "City Elevator Rescue"
fire_service = "Fire and Rescue Service"
poll_interval_ms = {POLL_MS}
lease_s = {LEASE_S}

[flood]
count = 10
window_s = 600
radius_km = 3
batch_s = 1

[[rescue_unit]]
name = "City Elevator Rescue"
phone = "+86-755-5555-0200"
webhook = "http://127.0.0.1:{hook}/backup"

[[rescue_unit]]
name = "Fire and Rescue Service"
phone = "119"
webhook = "http://127.0.0.1:{hook}/fire"
"#,
        regulator = seguard::auth::token_hash("regulator-token"),
    );
    for u in UNITS {
        text.push_str(&format!(
            "\n[[rescue_unit]]\nname = \"{u}\"\nphone = \"+86-755-5555-0101\"\nwebhook = \"http://127.0.0.1:{hook}/{u}\"\n"
        ));
    }
    for g in 0..GATEWAYS {
        text.push_str(&format!(
            "\n[[gateway]]\nid = \"{}\"\ntoken_sha256 = \"{}\"\nsigning_key = \"{}\"\n",
            gateway_id(g),
            seguard::auth::token_hash(&format!("token-{g}")),
            key(g)
        ));
    }
    text
}

/// One `seguard central` process, killed with SIGKILL when dropped.
struct CentralProcess(Child);

impl CentralProcess {
    fn start(config: &std::path::Path, log: &std::path::Path) -> CentralProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("central log");
        let child = Command::new(env!("CARGO_BIN_EXE_seguard"))
            .args(["central", "-c"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start seguard central");
        CentralProcess(child)
    }

    fn kill9(&mut self) {
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }
}

impl Drop for CentralProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An incident as a gateway sends it, sealed with its key.
fn incident(g: usize, lift: usize, n: u32, rule: &str, severity: &str, at: (f64, f64)) -> Vec<u8> {
    let message = incident_json(g, lift, n, rule, severity, at, chrono::Utc::now());
    seguard::signing::seal(
        key(g).as_bytes(),
        "incidents",
        &serde_json::to_vec(&message).expect("json"),
    )
}

fn incident_json(
    g: usize,
    lift: usize,
    n: u32,
    rule: &str,
    severity: &str,
    at: (f64, f64),
    time: chrono::DateTime<chrono::Utc>,
) -> Value {
    let gateway = gateway_id(g);
    let id = format!("00000000-0000-4000-8000-{:04}{:08}", g, n);
    let equipment = format!("{gateway}-lift-{lift:03}");
    let unit = UNITS[(g + lift) % UNITS.len()];
    json!({
        "schema": "seguard.incident.v1",
        "id": id,
        "gateway": gateway,
        "site": { "id": format!("site-{g}"), "name": format!("Estate {g}"), "address": "Futian" },
        "equipment": {
            "id": equipment,
            "kind": "elevator",
            "name": format!("Lift {lift} of estate {g}"),
            "registration_code": format!("3110{g:04}{lift:012}"),
            "rescue_code": format!("{:05}", g * 1000 + lift),
            "using_unit": format!("Estate {g} Property Co."),
            "maintenance_unit": { "name": unit, "phone": "+86-755-0000" },
            "address": format!("Building {lift}, estate {g}, Futian"),
            "location": { "lat": at.0, "lon": at.1, "crs": "WGS-84" },
            "nameplate": {}
        },
        "event": {
            "id": id,
            "equipment": equipment,
            "rule": rule,
            "severity": severity,
            "transition": "raise",
            "time": time.to_rfc3339(),
            "message": format!("{rule} on {equipment}")
        }
    })
}

/// The flood: every lift's power cut, and a trapped passenger in 300 of them (half between
/// floors), in an area about 2 km across.
fn flood() -> (Vec<(String, Vec<u8>)>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let mut messages = Vec::new();
    let mut trapped = 0;
    for g in 0..GATEWAYS {
        for lift in 0..LIFTS_PER_GATEWAY {
            let at = (
                22.540 + rng.random_range(0.0..0.018),
                114.050 + rng.random_range(0.0..0.019),
            );
            let topic = format!("seguard/v1/{}/incidents", gateway_id(g));
            let n = (lift * 2) as u32;
            messages.push((
                topic.clone(),
                incident(g, lift, n, "lift.power_cut", "high", at),
            ));
            if (g * LIFTS_PER_GATEWAY + lift) % 20 < 3 {
                let severity = if lift % 2 == 0 { "critical" } else { "high" };
                messages.push((
                    topic,
                    incident(g, lift, n + 1, "lift.trapped", severity, at),
                ));
                trapped += 1;
            }
        }
    }
    (messages, trapped)
}

/// What the rescue units' webhook receiver got: (path, body, idempotency key).
type Hooks = Arc<Mutex<Vec<(String, Value, String)>>>;

async fn webhook_receiver() -> (u16, Hooks) {
    let hooks: Hooks = Arc::default();
    let sink = hooks.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(
            move |axum::extract::Path(path): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    sink.lock().unwrap().push((path, body, key));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("webhook receiver") });
    (port, hooks)
}

/// (notification id, dispatch id, level) of every dispatch a webhook message carried.
fn delivered(hooks: &Hooks) -> Vec<(String, String, i64)> {
    let hooks = hooks.lock().unwrap();
    let mut out = Vec::new();
    for (_, body, _) in hooks.iter() {
        let items: Vec<&Value> = match body["dispatches"].as_array() {
            Some(list) => list.iter().collect(),
            None => vec![body],
        };
        for d in items {
            out.push((
                d["notification_id"].as_str().unwrap_or_default().to_owned(),
                d["id"].as_str().unwrap_or_default().to_owned(),
                d["level"].as_i64().unwrap_or(-1),
            ));
        }
    }
    out
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get::<i64, _>(0)
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_power_cut_on_two_instances_with_one_killed_loses_and_repeats_nothing() {
    let pg = Postgres::start();
    let broker = Mosquitto::start();
    let (hook_port, hooks) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut configs = Vec::new();
    let mut ports = Vec::new();
    for name in ["a", "b"] {
        let port = free_port();
        let path = dir.path().join(format!("central-{name}.toml"));
        std::fs::write(
            &path,
            central_toml(name, port, &pg.url(), broker.port, hook_port),
        )
        .expect("write config");
        configs.push(path);
        ports.push(port);
    }
    let log = |name: &str| dir.path().join(format!("central-{name}.log"));
    let mut a = CentralProcess::start(&configs[0], &log("a"));
    let _b = CentralProcess::start(&configs[1], &log("b"));
    for port in &ports {
        common::wait_http_ok("central", &format!("http://127.0.0.1:{port}/readyz")).await;
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pg.url()).await.expect("pg");

    let (messages, trapped) = flood();
    let total = messages.len() as i64;
    assert_eq!(trapped, 300);
    let mut gw = TestClient::connect(broker.port, "city-gateways").await;
    let half = messages.len() / 2;
    let mut messages = messages.into_iter();
    let started = Instant::now();
    gw.publish_all(messages.by_ref().take(half)).await;
    eventually(
        "a third of the flood stored",
        Duration::from_secs(60),
        || async { (count(&pool, "SELECT COUNT(*) FROM events").await >= total / 3).then_some(()) },
    )
    .await;
    // SIGKILL in the middle: no shutdown, claims and MQTT messages in flight.
    a.kill9();
    let killed_at = count(&pool, "SELECT COUNT(*) FROM events").await;
    eprintln!(
        "instance a killed with {killed_at} of {total} incidents stored, {:.1} s into the flood",
        started.elapsed().as_secs_f64()
    );
    gw.publish_all(messages).await;
    // The supervisor starts it again: its persistent session gets what the broker held for it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _a = CentralProcess::start(&configs[0], &log("a"));

    eventually(
        "every incident stored",
        Duration::from_secs(120),
        || async { (count(&pool, "SELECT COUNT(*) FROM events").await == total).then_some(()) },
    )
    .await;
    eventually(
        "every dispatch escalated once",
        Duration::from_secs(120),
        || async {
            (count(
                &pool,
                "SELECT COUNT(*) FROM dispatch_steps WHERE step = 'escalated'",
            )
            .await
                >= trapped as i64)
                .then_some(())
        },
    )
    .await;
    // Let every level-1 notification go out and any late duplicate show.
    eventually(
        "every notification sent",
        Duration::from_secs(60),
        || async {
            (count(
                &pool,
                "SELECT COUNT(*) FROM notifications WHERE sent_ms IS NULL",
            )
            .await
                == 0)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(LEASE_S + 1)).await;

    // Stored once.
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM events").await, total);
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM alarms").await,
        total,
        "one alarm per raise"
    );
    // Created once, escalated once (the fire service is 20 s further off).
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM dispatches").await,
        trapped as i64
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(DISTINCT alarm_id) FROM dispatches").await,
        trapped as i64
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM dispatch_steps WHERE step = 'escalated'"
        )
        .await,
        trapped as i64
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM dispatches WHERE level = 1").await,
        trapped as i64
    );
    // One notification row per dispatch and step (each unit has one webhook).
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM notifications").await,
        2 * trapped as i64
    );
    // One situation holds the whole flood.
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM situations").await, 1);
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM alarms WHERE situation_id IS NULL"
        )
        .await,
        0,
        "every alarm of the flood is in the situation"
    );

    // No escalation later than its timer plus the takeover time (and a poll).
    let late: Vec<(String, i64)> = sqlx::query(
        "SELECT d.id, s.at_ms - d.created_ms FROM dispatches d JOIN dispatch_steps s ON s.dispatch_id = d.id
         WHERE s.step = 'escalated'",
    )
    .fetch_all(&pool)
    .await
    .expect("escalations")
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
    .filter(|(_, after)| {
        *after < (RESPOND_WITHIN_S * 1000.0) as i64
            || *after > (RESPOND_WITHIN_S * 1000.0) as i64 + LEASE_S as i64 * 1000 + 2 * POLL_MS as i64
    })
    .collect();
    assert!(late.is_empty(), "escalations off their timer: {late:?}");

    // Delivery: every row reached its unit; a repeat carries the same notification id.
    let rows: BTreeSet<String> = sqlx::query("SELECT id FROM notifications")
        .fetch_all(&pool)
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let got = delivered(&hooks);
    let ids: BTreeSet<String> = got.iter().map(|(n, _, _)| n.clone()).collect();
    assert_eq!(ids, rows, "each notification row delivered");
    let mut per_step: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for (n, d, level) in &got {
        per_step
            .entry((d.clone(), *level))
            .or_default()
            .insert(n.clone());
    }
    assert_eq!(
        per_step.len(),
        2 * trapped,
        "every dispatch told at levels 0 and 1"
    );
    assert!(
        per_step.values().all(|ids| ids.len() == 1),
        "one notification per dispatch and step"
    );
    let messages = hooks.lock().unwrap().len();
    let repeats = got.len() - ids.len();
    eprintln!(
        "{} notification rows reached the units in {messages} webhook messages ({repeats} repeated after the kill, each with its notification id)",
        rows.len()
    );
    // Grouped: far fewer messages than dispatches.
    assert!(
        messages * 3 < rows.len(),
        "{messages} messages for {} notifications",
        rows.len()
    );
    // Each message's key is what its content says it is.
    for (_, body, key) in hooks.lock().unwrap().iter() {
        match body["dispatches"].as_array() {
            Some(list) => {
                let ids: Vec<&str> = list
                    .iter()
                    .map(|d| d["notification_id"].as_str().unwrap_or_default())
                    .collect();
                assert_eq!(key, &seguard::central::flood::idempotency_key(&ids));
                assert_eq!(body["idempotency_key"].as_str(), Some(key.as_str()));
            }
            None => assert_eq!(body["notification_id"].as_str(), Some(key.as_str())),
        }
    }
}

/// The single-instance case on SQLite: the flood becomes one situation whose dispatches the
/// board lists by who is inside and how long, each unit gets its lifts in one message, and a
/// trapped passenger far from the flood is told on its own at once.
#[tokio::test]
async fn on_sqlite_a_flood_is_one_situation_in_rescue_order_told_per_unit() {
    let (hook_port, hooks) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let text = central_toml(
        "solo",
        0,
        &format!("sqlite://{}/central.db", dir.path().display()),
        0,
        hook_port,
    )
    .replace("batch_s = 1", "batch_s = 5");
    let config = seguard::central::config::parse(&text, std::path::Path::new("central.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let central = seguard::central::Central::start(config)
        .await
        .expect("central");
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let request = http
            .post(format!("http://{}/api/v1/intake/incidents", central.addr))
            .bearer_auth("token-0")
            .json(&body);
        async move {
            let status = request.send().await.expect("intake answers").status();
            assert!(status.is_success(), "{status}");
        }
    };
    let area = |lift: usize| (22.540 + lift as f64 * 0.0005, 114.050);
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(30);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    for lift in 0..12 {
        post(incident_json(
            0,
            lift,
            lift as u32 * 2,
            "lift.power_cut",
            "high",
            area(lift),
            at(0),
        ))
        .await;
    }
    // Lifts 0, 5 and 10 of gateway 0 are all maintained by unit-a.
    post(incident_json(
        0,
        0,
        1,
        "lift.trapped",
        "high",
        area(0),
        at(1),
    ))
    .await;
    post(incident_json(
        0,
        5,
        11,
        "lift.trapped",
        "critical",
        area(5),
        at(3),
    ))
    .await;
    post(incident_json(
        0,
        10,
        21,
        "lift.trapped",
        "high",
        area(10),
        at(2),
    ))
    .await;
    // 100 km away: no flood there.
    post(incident_json(
        0,
        50,
        101,
        "lift.trapped",
        "high",
        (23.5, 114.05),
        at(4),
    ))
    .await;

    let situations: Value = eventually("the situation listed", Duration::from_secs(10), || async {
        let v: Value = http
            .get(format!("http://{}/api/v1/situations", central.addr))
            .bearer_auth("regulator-token")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    })
    .await;
    let s = &situations[0];
    assert_eq!(s["alarms"], 15, "twelve power cuts and three trapped");
    assert!(s["ended"].is_null());
    let order: Vec<&str> = s["dispatches"]
        .as_array()
        .expect("dispatches")
        .iter()
        .map(|d| d["elevator"]["equipment_id"].as_str().unwrap_or_default())
        .collect();
    // Outside the door zone (critical) first, then the longest trapped.
    assert_eq!(order, ["gw00-lift-005", "gw00-lift-000", "gw00-lift-010"]);
    assert_eq!(s["dispatches"][0]["tier"], "1");
    // A rescue team may not read the situations.
    let status = http
        .get(format!("http://{}/api/v1/situations", central.addr))
        .bearer_auth("token-0")
        .send()
        .await
        .expect("answer")
        .status();
    assert!(status == 401 || status == 403, "{status}");

    eventually("four dispatches told", Duration::from_secs(15), || async {
        (delivered(&hooks).len() == 4).then_some(())
    })
    .await;
    let hooks = hooks.lock().unwrap().clone();
    let to_a: Vec<&(String, Value, String)> =
        hooks.iter().filter(|(p, _, _)| p == "unit-a").collect();
    let batched: Vec<&Value> = to_a
        .iter()
        .filter_map(|(_, b, _)| b["dispatches"].as_array())
        .flatten()
        .collect();
    assert_eq!(
        batched.len(),
        3,
        "the flood's dispatches came batched: {to_a:?}"
    );
    assert!(
        to_a.len() <= 3
            && to_a
                .iter()
                .any(|(_, b, _)| b["count"] == 3 || b["count"] == 2)
    );
    let far: Vec<&(String, Value, String)> = hooks
        .iter()
        .filter(|(_, b, _)| b["elevator"]["equipment_id"] == "gw00-lift-050")
        .collect();
    assert_eq!(far.len(), 1, "outside the flood, one message per dispatch");
    assert_eq!(
        far[0].1["notification_id"].as_str(),
        Some(far[0].2.as_str())
    );
    central.stop().await;
}

/// Found by the city bench: the whole power cut published at once to one instance (2,300
/// incidents, more than the intake's queues held) stopped intake for good at 1,216 stored, the
/// MQTT event loop and the worker each waiting for the other. Every incident must be stored and
/// every trapped passenger dispatched once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_takes_the_whole_power_cut_at_once() {
    let broker = Mosquitto::start();
    let (hook_port, _hooks) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/central.db", dir.path().display());
    let port = free_port();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        central_toml("one", port, &url, broker.port, hook_port),
    )
    .expect("write config");
    let _central = CentralProcess::start(&config, &dir.path().join("central.log"));
    common::wait_http_ok("central", &format!("http://127.0.0.1:{port}/readyz")).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("store");
    let (messages, trapped) = flood();
    let total = messages.len() as i64;
    let mut gw = TestClient::connect(broker.port, "city-gateways").await;
    gw.publish_all(messages).await;
    eventually(
        "every incident stored",
        Duration::from_secs(120),
        || async { (count(&pool, "SELECT COUNT(*) FROM events").await == total).then_some(()) },
    )
    .await;
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM dispatches").await,
        trapped as i64
    );
}
