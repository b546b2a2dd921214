//! Trust between gateways and central (issue 13), on real mosquitto, SQLite and PostgreSQL:
//! nothing lost (a NUL in a trapped lift's floor still reaches the dispatch; a refusal is told
//! to the gateway), nothing forged (unsigned, wrongly signed and misattributed messages are
//! refused and counted; the shipped broker ACL keeps strangers off), intake limits, and event
//! ids scoped per gateway, also in a store migrated from before.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mqtt::TestClient;
use common::postgres::Postgres;
use common::{eventually, metric, Mosquitto};
use seguard::auth::token_hash;
use seguard::central::Central;
use seguard::gateway::Gateway;
use serde_json::{json, Value};

const GW1_KEY: &str = "gw1-signing-key-0123456789abcdef0123";
const GW2_KEY: &str = "gw2-signing-key-0123456789abcdef0123";
const REGULATOR_TOKEN: &str = "regulator-token";

/// Central knowing gw1 and gw2 with their keys, on `store` and the broker on `port`; `extra`
/// is more TOML (`[intake]`, rescue units, the MQTT user).
async fn start_central(store: &str, port: u16, mqtt_extra: &str, extra: &str) -> Central {
    let text = format!(
        r#"
[central]
instance = "trust"
http_listen = "127.0.0.1:0"
[store]
url = "{store}"
[mqtt]
port = {port}
{mqtt_extra}
{extra}
[[gateway]]
id = "gw1"
token_sha256 = "{gw1}"
signing_key = "{GW1_KEY}"
[[gateway]]
id = "gw2"
token_sha256 = "{gw2}"
signing_key = "{GW2_KEY}"
[[token]]
role = "regulator"
name = "inspector"
sha256 = "{regulator}"
"#,
        gw1 = token_hash("gw1-token"),
        gw2 = token_hash("gw2-token"),
        regulator = token_hash(REGULATOR_TOKEN),
    );
    let central = Central::start(
        seguard::central::config::parse(&text, Path::new("central.toml"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    central
}

async fn get_json(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// `message` sealed with `key` for the topic kind `kind`.
fn sealed(key: &str, kind: &str, message: &Value) -> Vec<u8> {
    seguard::signing::seal(key.as_bytes(), kind, &serde_json::to_vec(message).unwrap())
}

fn equipment(id: &str, name: &str) -> Value {
    json!({
        "id": id, "kind": "elevator", "name": name,
        "registration_code": "31103101002016010001", "using_unit": "Tower Property Co.",
        "maintenance_unit": { "name": "Shenlong Elevator Service", "phone": "+86-21-5555-0101" },
        "address": "1 Test Road, core A",
        "location": { "lat": 31.2352, "lon": 121.5058, "crs": "WGS-84" },
        "nameplate": {}
    })
}

/// An incident of `gateway` with event id number `n`, at `time`.
fn incident(gateway: &str, n: u32, rule: &str, transition: &str, time: &str) -> Value {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": gateway,
        "site": { "id": "s1", "name": "Tower site", "address": "1 Test Road" },
        "equipment": equipment("lift-1", "Lift 1"),
        "event": {
            "id": id, "equipment": "lift-1", "rule": rule, "severity": "critical",
            "transition": transition, "time": time, "message": format!("{rule} {transition}")
        }
    })
}

fn registry(gateway: &str, equipment: Vec<Value>) -> Value {
    json!({
        "schema": "seguard.registry.v1", "gateway": gateway,
        "site": { "id": "s1", "name": "Tower site", "address": "1 Test Road" },
        "equipment": equipment
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The site of gw1: one lift whose terminal reports car status, door zone, doors, occupancy
/// and floor (as text), the elevator rule, and the central uplink signing with `key`.
fn site(port: u16, key: &str) -> String {
    format!(
        r#"
[site]
id = "s1"
name = "Tower site"
address = "1 Test Road"
[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_min_ms = 50
reconnect_max_ms = 500
[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31103101002016010001"
using_unit = "Tower Property Co."
maintenance_unit = {{ name = "Shenlong Elevator Service", phone = "+86-21-5555-0101" }}
address = "1 Test Road, core A"
location = {{ lat = 31.2352, lon = 121.5058 }}
[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/telemetry"
time_pointer = "/ts"
fields = [
  {{ pointer = "/car_status", metric = "car_status", type = "text" }},
  {{ pointer = "/door_zone", metric = "door_zone", type = "bool" }},
  {{ pointer = "/floor", metric = "floor", type = "text" }},
  {{ pointer = "/door_closed_locked", metric = "door_closed_locked", type = "bool" }},
  {{ pointer = "/occupied", metric = "occupied", type = "bool" }},
]
[[rules.elevator]]
id = "lift"
[uplink.central]
confirm_timeout_ms = 2000
signing_key = "{key}"
[outbox]
kind = "memory"
"#
    )
}

/// A stopped, occupied car with its doors closed at a landing, reported 120 s ago and now,
/// with a NUL in the floor: the elevator rule raises its trapped alarm.
async fn report_trapped(port: u16) {
    let mut terminal = TestClient::connect(port, "lift-1-terminal").await;
    let now = chrono::Utc::now().timestamp_millis();
    let state = |ts: i64| {
        json!({ "ts": ts, "car_status": "stopped", "door_zone": true, "door_closed_locked": true,
                "occupied": true, "floor": "7\u{0}x" })
        .to_string()
        .into_bytes()
    };
    let topic = "site/s1/lift-1/telemetry".to_owned();
    terminal
        .publish_all([(topic.clone(), state(now - 120_000)), (topic, state(now))])
        .await;
}

/// Issue 13, item 1: a terminal sends `"floor": "7\u0000x"` with a stopped, occupied car. The
/// gateway cleans the text at ingest (counted) and raises the trapped alarm; central on
/// PostgreSQL stores it and creates the dispatch. Central's own repair of a NUL that reaches it
/// is `central_e2e::an_incident_with_nul_in_its_text_is_stored_repaired_on_postgres`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_trapped_lifts_floor_reaches_the_dispatch_on_postgres() {
    let pg = Postgres::start();
    let broker = Mosquitto::start();
    let rescue = r#"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
webhook = "http://127.0.0.1:9/unused"
"#;
    let central = start_central(&pg.url(), broker.port, "", rescue).await;
    let config = seguard::config::parse(&site(broker.port, GW1_KEY), Path::new("site.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    report_trapped(broker.port).await;

    let dispatches = eventually(
        "the dispatch at central",
        Duration::from_secs(15),
        || async {
            let d = get_json(central.addr, "/api/v1/dispatches", Some(REGULATOR_TOKEN)).await;
            (d.as_array().is_some_and(|a| !a.is_empty())).then_some(d)
        },
    )
    .await;
    let dispatch = &dispatches[0];
    assert_eq!(dispatch["gateway"], json!("gw1"), "{dispatch}");
    assert_eq!(dispatch["elevator"]["equipment_id"], json!("lift-1"));
    let alarm_id = dispatch["alarm_id"].as_str().unwrap();
    let timeline = get_json(
        central.addr,
        &format!("/api/v1/alarms/{alarm_id}/timeline"),
        Some(REGULATOR_TOKEN),
    )
    .await;
    let message = timeline[0]["message"].as_str().unwrap();
    assert!(message.contains("floor 7\u{fffd}x"), "{timeline}");
    let cleaned = "seguard_readings_adjusted_total{reason=\"text_cleaned\"}";
    assert_eq!(metric(&gateway.http_addr.to_string(), cleaned).await, 2.0);
    assert_eq!(central.metrics.rejected("mqtt", "malformed"), 0);
    gateway.stop().await;
    central.stop().await;
}

/// Issue 13, item 1: a message central refuses is never silently "delivered". Here the
/// gateway signs with a key central does not hold: central counts and keeps the refused
/// incident, the gateway counts the refusal, lists `gateway.central_rejected`, and keeps the
/// refused incident whole with central's reason, across a restart (durable outbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_incident_raises_central_rejected_at_the_gateway() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/central.db", dir.path().display());
    let central = start_central(&store, broker.port, "", "").await;
    let wrong_key = "a-key-central-does-not-know-0123456789";
    let site_text = site(broker.port, wrong_key).replace(
        "[outbox]\nkind = \"memory\"",
        &format!(
            "[outbox]\ndir = \"{}\"",
            dir.path().join("outbox").display()
        ),
    );
    let parse = || {
        seguard::config::parse(&site_text, Path::new("site.toml")).unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(
        parse().outbox.is_some(),
        "the test runs on the durable outbox"
    );
    let gateway = Gateway::start(parse()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    report_trapped(broker.port).await;

    let alarm = eventually(
        "gateway.central_rejected at the gateway",
        Duration::from_secs(15),
        || async {
            let alarms = get_json(gateway.http_addr, "/api/v1/alarms", None).await;
            alarms
                .as_array()
                .unwrap()
                .iter()
                .find(|a| {
                    a["rule"] == "gateway.central_rejected" && a["details"]["kind"] == "incidents"
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(alarm["equipment"], json!("gw1"), "{alarm}");
    assert_eq!(
        alarm["details"]["reason"],
        json!("bad_signature"),
        "{alarm}"
    );
    assert_eq!(alarm["details"]["verified"], json!(false), "{alarm}");
    assert!(gateway.metrics.central_rejected_count("bad_signature") >= 1);
    assert!(central.metrics.rejected("mqtt", "bad_signature") >= 1);
    let refused = get_json(
        central.addr,
        "/api/v1/intake/rejected",
        Some(REGULATOR_TOKEN),
    )
    .await;
    let incident = refused
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"] == "seguard/v1/gw1/incidents")
        .expect("the refused incident is listed at central");
    assert_eq!(incident["reason"], json!("bad_signature"));
    assert!(incident["payload"].as_str().unwrap().contains("lift-1"));
    assert_eq!(central.store.event_count().await.unwrap(), 0);
    // The gateway keeps the refused incident itself, whole, with central's reason: the very
    // message central holds, and the alarm says where to look.
    let payload = incident["payload"].as_str().unwrap().as_bytes();
    let at_central: Value =
        serde_json::from_slice(seguard::signing::open(payload).unwrap().message).unwrap();
    let refused_id = at_central["id"].clone();
    let kept_at_gateway = |addr: std::net::SocketAddr| {
        let refused_id = refused_id.clone();
        async move {
            let kept = get_json(addr, "/api/v1/central/rejected", None).await;
            kept.as_array()
                .unwrap()
                .iter()
                .find(|r| r["kind"] == "incidents" && r["id"] == refused_id)
                .cloned()
                .unwrap_or_else(|| panic!("the refused incident is kept at the gateway: {kept}"))
        }
    };
    let kept = kept_at_gateway(gateway.http_addr).await;
    assert_eq!(kept["reason"], json!("bad_signature"), "{kept}");
    assert!(
        kept["detail"].as_str().unwrap().contains("signature"),
        "{kept}"
    );
    assert_eq!(kept["message"], at_central, "{kept}");
    assert!(
        kept["message"]["event"]["rule"]
            .as_str()
            .unwrap()
            .contains("trapped"),
        "{kept}"
    );
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/central/rejected"),
        "{alarm}"
    );
    // Only regulators read it.
    let anonymous = reqwest::get(format!("http://{}/api/v1/intake/rejected", central.addr))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // An operator acknowledges: the alarm ends until the next refusal.
    let ack = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/alarms/gw1/gateway.central_rejected/ack",
            gateway.http_addr
        ))
        .json(&json!({ "user": "site-operator" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200);
    let alarms = get_json(gateway.http_addr, "/api/v1/alarms", None).await;
    assert!(
        !alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "gateway.central_rejected"),
        "{alarms}"
    );
    // Acknowledged and restarted, the gateway still lists the refused incident.
    gateway.stop().await;
    let gateway = Gateway::start(parse()).await.unwrap();
    assert_eq!(kept_at_gateway(gateway.http_addr).await, kept);
    gateway.stop().await;
    central.stop().await;
}

/// Issue 13, item 2, on a broker that lets anyone publish anywhere (one you do not control):
/// forged raise, clear, registry and status from an anonymous client, and gw2 posing as gw1,
/// are all refused and counted; gw1's real trapped alarm stays open and its lift unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_on_an_open_broker_are_refused_and_counted() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/central.db", dir.path().display());
    let central = start_central(&store, broker.port, "", "").await;
    let t = now();
    let mut gw1 = TestClient::connect(broker.port, "gw1").await;
    gw1.publish_all([
        (
            "seguard/v1/gw1/registry".to_owned(),
            sealed(
                GW1_KEY,
                "registry",
                &registry("gw1", vec![equipment("lift-1", "Lift 1")]),
            ),
        ),
        (
            "seguard/v1/gw1/incidents".to_owned(),
            sealed(
                GW1_KEY,
                "incidents",
                &incident("gw1", 1, "lift.trapped", "raise", &t),
            ),
        ),
    ])
    .await;
    eventually("the real alarm", Duration::from_secs(10), || async {
        (central.store.event_count().await.unwrap() == 1).then_some(())
    })
    .await;

    let forged_clear = incident("gw1", 2, "lift.trapped", "clear", &t);
    let forged_raise = incident("gw1", 3, "lift.fault", "raise", &t);
    let mut renamed = equipment("lift-1", "Renamed by a stranger");
    renamed["using_unit"] = json!("Someone Else Co.");
    let forged_registry = registry("gw1", vec![renamed]);
    let ghost_status = json!({ "gateway": "ghost-gw", "site": "s9", "state": "online" });
    let gw1_status = json!({ "gateway": "gw1", "site": "s1", "state": "offline" });
    let plain = |v: &Value| serde_json::to_vec(v).unwrap();
    let mut stranger = TestClient::connect(broker.port, "stranger").await;
    stranger
        .publish_all([
            ("seguard/v1/gw1/incidents".to_owned(), plain(&forged_clear)),
            ("seguard/v1/gw1/incidents".to_owned(), plain(&forged_raise)),
            (
                "seguard/v1/gw1/registry".to_owned(),
                plain(&forged_registry),
            ),
            ("seguard/v1/gw1/status".to_owned(), plain(&gw1_status)),
            (
                "seguard/v1/ghost-gw/status".to_owned(),
                plain(&ghost_status),
            ),
        ])
        .await;
    // gw2 holds a key of its own, but not gw1's.
    let mut gw2 = TestClient::connect(broker.port, "gw2").await;
    let mut gw2_as_gw1_status = gw1_status.clone();
    gw2_as_gw1_status["gateway"] = json!("gw1");
    gw2.publish_all([
        (
            "seguard/v1/gw1/incidents".to_owned(),
            sealed(GW2_KEY, "incidents", &forged_clear),
        ),
        (
            "seguard/v1/gw2/incidents".to_owned(),
            sealed(GW2_KEY, "incidents", &forged_clear),
        ),
        (
            "seguard/v1/gw2/registry".to_owned(),
            sealed(GW2_KEY, "registry", &forged_registry),
        ),
        (
            "seguard/v1/gw2/status".to_owned(),
            sealed(GW2_KEY, "status", &gw2_as_gw1_status),
        ),
        // A registry signed for another kind is not a registry.
        (
            "seguard/v1/gw1/registry".to_owned(),
            sealed(GW1_KEY, "status", &forged_registry),
        ),
    ])
    .await;
    let expected = [
        ("mqtt", "unsigned", 2),
        ("mqtt_registry", "unsigned", 1),
        ("mqtt_status", "unsigned", 1),
        ("mqtt_status", "unknown_gateway", 1),
        ("mqtt", "bad_signature", 1),
        ("mqtt", "gateway_mismatch", 1),
        ("mqtt_registry", "gateway_mismatch", 1),
        ("mqtt_status", "gateway_mismatch", 1),
        ("mqtt_registry", "bad_signature", 1),
    ];
    eventually("every forgery counted", Duration::from_secs(10), || async {
        expected
            .iter()
            .all(|(source, reason, n)| central.metrics.rejected(source, reason) == *n)
            .then_some(())
    })
    .await;
    assert_eq!(central.store.event_count().await.unwrap(), 1);
    let alarms = get_json(central.addr, "/api/v1/alarms", Some(REGULATOR_TOKEN)).await;
    let alarms = alarms.as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(
        alarms[0]["state"],
        json!("active_unacked"),
        "the real alarm stays open"
    );
    let equipment = get_json(central.addr, "/api/v1/equipment", Some(REGULATOR_TOKEN)).await;
    assert_eq!(equipment[0]["name"], json!("Lift 1"), "{equipment}");
    assert_eq!(equipment[0]["using_unit"], json!("Tower Property Co."));
    assert_eq!(equipment[0]["state"], json!("trapped"));
    assert_eq!(central.store.gateway_state("ghost-gw").await.unwrap(), None);
    assert_ne!(
        central.store.gateway_state("gw1").await.unwrap().as_deref(),
        Some("offline")
    );
    let refused = get_json(
        central.addr,
        "/api/v1/intake/rejected",
        Some(REGULATOR_TOKEN),
    )
    .await;
    assert_eq!(refused.as_array().unwrap().len(), 10, "{refused}");
    central.stop().await;
}

/// Issue 13, item 2: the broker config `deploy/` ships, on mosquitto with a password per
/// client: an anonymous client is refused at CONNECT, gw2 cannot publish on gw1's topics (the
/// broker drops it), and central still takes gw1's own messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_acl_keeps_strangers_and_other_gateways_off_a_gateways_topics() {
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
    let secrets = tempfile::tempdir().unwrap();
    let passwords = secrets.path().join("seguard.passwd");
    for (i, user) in ["seguard-central", "gw1", "gw2"].iter().enumerate() {
        let mut args = vec!["-b"];
        if i == 0 {
            args.push("-c");
        }
        let file = passwords.to_str().unwrap();
        let password = format!("{user}-password");
        args.extend([file, user, password.as_str()]);
        let status = std::process::Command::new("mosquitto_passwd")
            .args(&args)
            .status()
            .expect("mosquitto_passwd runs");
        assert!(status.success());
    }
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/seguard.acl");
    let broker = Mosquitto::start_secured(&passwords, &acl);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/central.db", dir.path().display());
    let central = start_central(
        &store,
        broker.port,
        "username = \"seguard-central\"\npassword = \"seguard-central-password\"",
        "",
    )
    .await;

    // Anonymous: refused at CONNECT.
    let (_anon, mut anon_loop) =
        AsyncClient::new(MqttOptions::new("stranger", "127.0.0.1", broker.port), 10);
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match anon_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => break ack.code,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => break code,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
    })
    .await
    .expect("the broker answers");
    assert_ne!(refused, ConnectReturnCode::Success);

    let connect = |user: &'static str| {
        let mut options = MqttOptions::new(format!("{user}-uplink"), "127.0.0.1", broker.port);
        options.set_credentials(user, format!("{user}-password"));
        let (client, mut event_loop) = AsyncClient::new(options, 10);
        let (acks_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = acks_tx.send(a.pkid);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        (client, acks)
    };
    let t = now();
    let (gw2, mut gw2_acks) = connect("gw2");
    // gw2 holding gw1's key (a stolen key) still cannot publish under gw1's id.
    gw2.publish(
        "seguard/v1/gw1/incidents",
        QoS::AtLeastOnce,
        false,
        sealed(
            GW1_KEY,
            "incidents",
            &incident("gw1", 7, "lift.trapped", "clear", &t),
        ),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), gw2_acks.recv())
        .await
        .expect("mosquitto acknowledges (and drops) a publish the ACL denies");
    let (gw1, mut gw1_acks) = connect("gw1");
    gw1.publish(
        "seguard/v1/gw1/incidents",
        QoS::AtLeastOnce,
        false,
        sealed(
            GW1_KEY,
            "incidents",
            &incident("gw1", 8, "lift.trapped", "raise", &t),
        ),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), gw1_acks.recv())
        .await
        .expect("gw1's publish is acknowledged");
    eventually("gw1's incident stored", Duration::from_secs(10), || async {
        (central.store.event_count().await.unwrap() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alarms = get_json(central.addr, "/api/v1/alarms", Some(REGULATOR_TOKEN)).await;
    assert_eq!(alarms[0]["state"], json!("active_unacked"), "{alarms}");
    assert_eq!(
        central.store.event_count().await.unwrap(),
        1,
        "gw2's publish never arrived"
    );
    central.stop().await;
}

/// Issue 13, items 4 and 5: registry limits (the previous registry kept), coordinates off the
/// globe, event times far from now, on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_limits_keep_the_previous_registry_and_the_list_in_order() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/central.db", dir.path().display());
    let limits = "[intake]\nregistry_max_bytes = 20000\nregistry_max_equipment = 3\nstatus_max_bytes = 512\n";
    let central = start_central(&store, broker.port, "", limits).await;
    let mut gw1 = TestClient::connect(broker.port, "gw1").await;
    let publish = |topic: &str, kind: &str, v: &Value| (topic.to_owned(), sealed(GW1_KEY, kind, v));
    let mut off_globe = equipment("lift-2", "Lift 2");
    off_globe["location"] = json!({ "lat": 1000.0, "lon": -1000.0, "crs": "WGS-84" });
    let first = registry("gw1", vec![equipment("lift-1", "Lift 1"), off_globe]);
    let too_many = registry(
        "gw1",
        (1..=4)
            .map(|n| equipment(&format!("lift-{n}"), "Replaced"))
            .collect(),
    );
    let mut too_big = registry("gw1", vec![equipment("lift-1", "Replaced")]);
    too_big["equipment"][0]["address"] = json!("x".repeat(30_000));
    let mut big_status = json!({ "gateway": "gw1", "site": "s1", "state": "online" });
    big_status["site"] = json!("s".repeat(1000));
    gw1.publish_all([publish("seguard/v1/gw1/registry", "registry", &first)])
        .await;
    eventually("the first registry", Duration::from_secs(10), || async {
        let e = get_json(central.addr, "/api/v1/equipment", Some(REGULATOR_TOKEN)).await;
        (e.as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    gw1.publish_all([
        publish("seguard/v1/gw1/registry", "registry", &too_many),
        publish("seguard/v1/gw1/registry", "registry", &too_big),
        publish("seguard/v1/gw1/status", "status", &big_status),
    ])
    .await;
    eventually("the limits counted", Duration::from_secs(10), || async {
        (central
            .metrics
            .rejected("mqtt_registry", "too_many_equipment")
            == 1
            && central.metrics.rejected("mqtt_registry", "oversized") == 1
            && central.metrics.rejected("mqtt_status", "oversized") == 1)
            .then_some(())
    })
    .await;
    let e = get_json(central.addr, "/api/v1/equipment", Some(REGULATOR_TOKEN)).await;
    assert_eq!(e.as_array().unwrap().len(), 2, "{e}");
    assert_eq!(
        e[0]["name"],
        json!("Lift 1"),
        "the previous registry is kept"
    );
    assert_eq!(
        e[1]["lat"],
        Value::Null,
        "the location off the globe is dropped"
    );
    assert_eq!(
        central.metrics.noted("mqtt_registry", "location_dropped"),
        1
    );

    // A raise in year 9999 is stored, flagged, and listed by when it arrived.
    // (The other raise is dated a little ahead, within the window: listed above it.)
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    gw1.publish_all([
        publish(
            "seguard/v1/gw1/incidents",
            "incidents",
            &incident("gw1", 1, "lift.far_future", "raise", "9999-12-31T00:00:00Z"),
        ),
        publish(
            "seguard/v1/gw1/incidents",
            "incidents",
            &incident("gw1", 2, "lift.now", "raise", &soon),
        ),
    ])
    .await;
    eventually("both stored", Duration::from_secs(10), || async {
        (central.store.event_count().await.unwrap() == 2).then_some(())
    })
    .await;
    let alarms = get_json(central.addr, "/api/v1/alarms", Some(REGULATOR_TOKEN)).await;
    assert_eq!(alarms[0]["rule"], json!("lift.now"), "{alarms}");
    assert_eq!(alarms[1]["rule"], json!("lift.far_future"), "{alarms}");
    assert!(
        alarms[1]["raised"].as_str().unwrap().starts_with("20"),
        "{alarms}"
    );
    let timeline = get_json(
        central.addr,
        &format!(
            "/api/v1/alarms/{}/timeline",
            alarms[1]["id"].as_str().unwrap()
        ),
        Some(REGULATOR_TOKEN),
    )
    .await;
    assert_eq!(timeline[0]["intake_notes"], json!(["time_outside_window"]));
    assert!(timeline[0]["time"].as_str().unwrap().starts_with("9999"));
    central.stop().await;
}

/// Issue 13, item 7: event ids are unique per gateway. gw2 posts id X first; gw1's later
/// trapped raise with the same id is stored (and dispatched), in a store that was created by
/// a release with global ids and migrated, on SQLite and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_of_another_gateway_does_not_hide_a_raise_in_a_migrated_store() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/central.db?mode=rwc", dir.path().display());
    let broker = Mosquitto::start();
    for url in [sqlite, pg.url()] {
        // A store as the release before left it (schema version 2), with one event of gw2.
        let old = seguard::central::store::Store::open_at_version(&url, 2)
            .await
            .unwrap();
        old.close().await;
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO events (id, gateway, equipment, rule, severity, transition, time_ms, message, source,
                received_ms, payload) VALUES ('00000000-0000-4000-8000-000000000001', 'gw2', 'lift-9', 'x',
                'low', 'raise', 0, 'old', 'mqtt', 0, '{}')",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let central = start_central(&url, broker.port, "", "").await;
        assert_eq!(
            central.store.event_count().await.unwrap(),
            1,
            "kept by the migration"
        );
        let started = Instant::now();
        let mut gw = TestClient::connect(broker.port, "gws").await;
        let t = now();
        gw.publish_all([
            (
                "seguard/v1/gw2/incidents".to_owned(),
                sealed(
                    GW2_KEY,
                    "incidents",
                    &incident("gw2", 5, "lift.fault", "raise", &t),
                ),
            ),
            (
                "seguard/v1/gw1/incidents".to_owned(),
                sealed(
                    GW1_KEY,
                    "incidents",
                    &incident("gw1", 1, "lift.trapped", "raise", &t),
                ),
            ),
            (
                "seguard/v1/gw1/incidents".to_owned(),
                sealed(
                    GW1_KEY,
                    "incidents",
                    &incident("gw1", 5, "lift.trapped2", "raise", &t),
                ),
            ),
        ])
        .await;
        eventually("all three stored", Duration::from_secs(10), || async {
            (central.store.event_count().await.unwrap() == 4).then_some(())
        })
        .await;
        assert_eq!(central.metrics.rejected("mqtt", "malformed"), 0);
        let alarms = get_json(central.addr, "/api/v1/alarms", Some(REGULATOR_TOKEN)).await;
        let gateways: Vec<&str> = alarms
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["gateway"].as_str().unwrap())
            .collect();
        assert_eq!(
            gateways.iter().filter(|g| **g == "gw1").count(),
            2,
            "{alarms}"
        );
        assert_eq!(
            gateways.iter().filter(|g| **g == "gw2").count(),
            1,
            "{alarms}"
        );
        eprintln!("{url}: stored in {:?}", started.elapsed());
        central.stop().await;
    }
}
