//! The whole chain on real servers: elevator telemetry → gateway (rule fires) → incident over
//! MQTT → central (shared subscription, SQLite) → rescue dispatch webhook. The trapped rule is
//! a threshold rule here whose id contains "trapped", which is what central's configurable
//! predicate (`dispatch.trapped_rule_contains`) looks for.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mqtt::TestClient;
use common::Mosquitto;
use seguard::central::config::token_hash;
use seguard::central::Central;
use seguard::gateway::Gateway;
use serde_json::{json, Value};

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
    let central_text = format!(
        r#"
[central]
instance = "e2e"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[mqtt]
port = {port}
[dispatch]
poll_interval_ms = 100
[[gateway]]
id = "gw1"
token_sha256 = "{hash}"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
webhook = "http://127.0.0.1:{hook_port}/shenlong"
"#,
        db = dir.path().join("central.db").display(),
        port = broker.port,
        hash = token_hash("unused"),
    );
    let central = Central::start(
        seguard::central::config::parse(&central_text, Path::new("c.toml")).unwrap(),
    )
    .await
    .unwrap();

    let site = format!(
        r#"
[site]
id = "s1"
name = "Test site"
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
"#,
        port = broker.port
    );
    let gateway = Gateway::start(
        seguard::config::parse(&site, Path::new("site.toml")).unwrap_or_else(|e| panic!("{e}")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

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
