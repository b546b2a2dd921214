//! The whole chain on real servers: elevator telemetry → gateway (rule fires) → incident over
//! MQTT → central (shared subscription, SQLite) → rescue dispatch webhook. The trapped rule is
//! a threshold rule here whose id contains "trapped", which is what central's configurable
//! predicate (`dispatch.trapped_rule_contains`) looks for.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mqtt::TestClient;
use common::Mosquitto;
use seguard::auth::token_hash;
use seguard::central::Central;
use seguard::gateway::Gateway;
use serde_json::{json, Value};

/// The key gw1 signs its messages to central with; central holds the same.
const GW1_KEY: &str = "gw1-signing-key-0123456789abcdef0123";

/// Central on SQLite in `dir`, reading the broker on `port`, knowing gateway `gw1`; `extra` is
/// more TOML (dispatch settings, rescue units, tokens).
async fn start_central(dir: &Path, port: u16, extra: &str) -> Central {
    let text = format!(
        r#"
[central]
instance = "e2e"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[mqtt]
port = {port}
[[gateway]]
id = "gw1"
token_sha256 = "{hash}"
signing_key = "{GW1_KEY}"
{extra}
"#,
        db = dir.join("central.db").display(),
        hash = token_hash("unused"),
    );
    Central::start(seguard::central::config::parse(&text, Path::new("c.toml")).unwrap())
        .await
        .unwrap()
}

/// A gateway from a site config text, given half a second to subscribe.
async fn start_gateway(site: &str) -> Gateway {
    let config =
        seguard::config::parse(site, Path::new("site.toml")).unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapped_rule_at_the_gateway_reaches_the_rescue_webhook() {
    let broker = Mosquitto::start();
    let (tx, mut hooks) = tokio::sync::mpsc::unbounded_channel::<(Value, Instant)>();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((body, Instant::now()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let central = start_central(
        dir.path(),
        broker.port,
        &format!(
            r#"
[dispatch]
poll_interval_ms = 100
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
webhook = "http://127.0.0.1:{hook_port}/shenlong"
"#
        ),
    )
    .await;

    let site = format!(
        r#"
[site]
id = "s1"
name = "Test site"
address = "1 Test Road"

[outbox]
kind = "memory"

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
rescue_code = "02417"
using_unit = "Tower Property Co."
maintenance_unit = {{ name = "Shenlong Elevator Service", phone = "+86-21-5555-0101" }}
address = "1 Test Road, core A"
location = {{ lat = 31.2352, lon = 121.5058 }}

[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/telemetry"
time_pointer = "/ts"
fields = [ {{ pointer = "/stopped_occupied_s", metric = "stopped_occupied_s" }} ]

[[rules.threshold]]
id = "elevator-trapped-test"
equipment = ["lift-1"]
metric = "stopped_occupied_s"
high = {{ limit = 60.0 }}

[uplink.central]
confirm_timeout_ms = 2000
signing_key = "{GW1_KEY}"
"#,
        port = broker.port
    );
    let gateway = start_gateway(&site).await;

    let mut device = TestClient::connect(broker.port, "lift-1-terminal").await;
    let now = chrono::Utc::now().timestamp_millis();
    let published = Instant::now();
    device
        .publish_all([(
            "site/s1/lift-1/telemetry".to_owned(),
            json!({ "ts": now, "stopped_occupied_s": 75 })
                .to_string()
                .into_bytes(),
        )])
        .await;
    let (body, arrived) = tokio::time::timeout(Duration::from_secs(15), hooks.recv())
        .await
        .expect("the dispatch webhook arrives")
        .unwrap();
    let latency = arrived - published;
    eprintln!(
        "device publish → gateway rule → central → webhook: {:.1} ms",
        latency.as_secs_f64() * 1e3
    );
    assert!(
        body["rule"]
            .as_str()
            .unwrap()
            .starts_with("elevator-trapped-test"),
        "{body}"
    );
    assert_eq!(
        body["elevator"]["registration_code"],
        json!("31103101002016010001")
    );
    assert_eq!(
        body["maintenance_unit"]["name"],
        json!("Shenlong Elevator Service")
    );
    assert_eq!(body["gateway"], json!("gw1"));
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    gateway.stop().await;
    central.stop().await;
}

/// Fill records travel like incidents: checked at the gateway, queued durably, published at
/// QoS1 on `{prefix}/{gateway}/fills`, stored once by id at central, readable by cylinder, and
/// counted in the labelling indicator (an unregistered code is an unlabelled cylinder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_records_reach_central_once_each() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let central = start_central(
        dir.path(),
        broker.port,
        &format!(
            r#"
[[token]]
role = "regulator"
name = "bureau"
sha256 = "{}"
"#,
            token_hash("regulator-secret")
        ),
    )
    .await;
    let site = format!(
        r#"
[site]
id = "s1"
name = "Filling plant"
address = "2 Test Road"
[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_min_ms = 50
reconnect_max_ms = 500
[outbox]
dir = "{outbox}"

[[equipment]]
id = "station-1"
kind = "filling_station"
registration_code = "TS4231001-2027"

[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/fill"
time_pointer = "/ts"
fields = [
  {{ pointer = "/code", metric = "cylinder_code", type = "text" }},
  {{ pointer = "/medium", metric = "medium", type = "text" }},
  {{ pointer = "/kg", metric = "fill_mass_kg" }},
]

[rules.fill]
station = "PD-LPG-01"

[[rules.cylinder]]
code = "LPG-OK"
medium = "LPG"
volume_l = 35.5
permitted_fill_kg = 14.5
next_inspection = 2099-06-30
station = "PD-LPG-01"

[[rules.cylinder]]
code = "LPG-EXPIRED"
medium = "LPG"
volume_l = 35.5
permitted_fill_kg = 14.5
next_inspection = 2020-01-14
station = "PD-LPG-01"

[uplink.central]
confirm_timeout_ms = 2000
signing_key = "{GW1_KEY}"
"#,
        port = broker.port,
        outbox = dir.path().join("outbox").display(),
    );
    let gateway = start_gateway(&site).await;

    let mut scale = TestClient::connect(broker.port, "station-1-scale").await;
    let t0 = chrono::Utc::now().timestamp_millis();
    let fill = |i: i64, code: &str, kg: f64| {
        (
            "site/s1/station-1/fill".to_owned(),
            json!({ "ts": t0 + i * 1000, "code": code, "medium": "LPG", "kg": kg })
                .to_string()
                .into_bytes(),
        )
    };
    let fills = vec![
        fill(0, "LPG-OK", 14.2),
        fill(1, "LPG-EXPIRED", 14.0),
        fill(2, "NOPE-404", 14.0),
        fill(3, "LPG-OK", 15.1),
    ];
    scale.publish_all(fills).await;

    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("http://{}{path}", central.addr))
            .bearer_auth("regulator-secret")
            .send()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let ok_fills: Vec<Value> = loop {
        let body: Vec<Value> = get("/api/v1/cylinders/LPG-OK/fills")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body.len() >= 2 || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ok_fills.len(), 2, "{ok_fills:?}");
    // Newest first: the overfill, then the good one.
    assert_eq!(ok_fills[0]["accepted"], json!(false));
    assert_eq!(ok_fills[0]["rejections"], json!(["overfill"]));
    assert_eq!(ok_fills[1]["accepted"], json!(true));
    assert_eq!(ok_fills[1]["mass_kg"], json!(14.2));
    assert_eq!(ok_fills[1]["station"], json!("PD-LPG-01"));
    assert_eq!(ok_fills[1]["gateway"], json!("gw1"));

    let expired: Vec<Value> = get("/api/v1/cylinders/LPG-EXPIRED/fills")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["rejections"], json!(["inspection_expired"]));

    // A record published again (as after a lost PUBACK) is a duplicate, stored once.
    let again = serde_json::to_vec(&ok_fills[1]).unwrap();
    scale
        .publish_all([(
            "seguard/v1/gw1/fills".to_owned(),
            seguard::signing::seal(GW1_KEY.as_bytes(), "fills", &again),
        )])
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = central.metrics.render();
        if text.contains("seguard_central_fills_received_total{outcome=\"duplicate\"} 1")
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics.contains("seguard_central_fills_received_total{outcome=\"stored\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("seguard_central_fills_received_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );

    // Three cylinders seen, one of them without a registered code.
    let indicators: Value = get("/api/v1/indicators")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let labelling = &indicators["cylinder_labelling"];
    assert_eq!(labelling["seen"], json!(3), "{indicators}");
    assert_eq!(labelling["labelled"], json!(2), "{indicators}");

    // A regulator-only view.
    let anonymous = http
        .get(format!(
            "http://{}/api/v1/cylinders/LPG-OK/fills",
            central.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    gateway.stop().await;
    central.stop().await;
}
