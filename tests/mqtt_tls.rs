//! MQTT over TLS against mosquitto with a CA the test generates (openssl), client certificates
//! required and a password file (mosquitto_passwd):
//! (a) every MQTT client of the project works over TLS: a reading goes device → gateway ingest
//!     (readings API), and its alarm goes gateway central uplink → central intake (stored);
//! (b) a client certificate from another CA is refused, with a clear log line;
//! (c) a wrong password is refused, with a clear log line;
//! (d) a broker certificate not signed by the configured CA is refused, with a clear log line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::eventually;
use common::tls::{LogCapture, MosquittoTls, TestPki};
use seguard::auth::token_hash;
use seguard::central::Central;
use seguard::gateway::Gateway;
use serde_json::json;

/// The key gw1 signs its messages to central with, in both configs.
const SIGNING_KEY: &str = "tls-test-signing-key-of-32-bytes-or-more";

const GATEWAY_PASSWORD: &str = "gw-secret-3141";
const CENTRAL_PASSWORD: &str = "central-secret-2718";
const DEVICE_PASSWORD: &str = "device-secret-1618";

fn users() -> [(&'static str, &'static str); 3] {
    [
        ("gateway", GATEWAY_PASSWORD),
        ("central", CENTRAL_PASSWORD),
        ("device", DEVICE_PASSWORD),
    ]
}

/// Writes `secret` to a file in `dir` and returns its path, as a config would name it.
fn secret_file(dir: &Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("writing the secret file");
    path.display().to_string()
}

/// A site whose `[mqtt]` broker (shared by the central uplink) is `port` over TLS.
fn site_config(
    port: u16,
    pki: &TestPki,
    client: &str,
    password_file: &str,
) -> seguard::config::Config {
    let text = format!(
        r#"
[site]
id = "s1"
name = "TLS site"

[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
shutdown_flush_s = 2

[mqtt]
host = "127.0.0.1"
port = {port}
username = "gateway"
password_file = "{password_file}"
reconnect_min_ms = 100
reconnect_max_ms = 300

[mqtt.tls]
ca_file = "{ca}"
client_cert = "{client}.pem"
client_key = "{client}.key"

[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}

[[ingest.mqtt]]
topic = "site/{{site}}/boiler/pressure"
equipment = "pv-1"
fields = [ {{ pointer = "/pressure_mpa", metric = "pressure", unit = "MPa" }} ]

[[rules.threshold]]
id = "vessel-pressure"
equipment = ["pv-1"]
metric = "pressure"
high = {{ limit = 1.6 }}

[uplink.central]
confirm_timeout_ms = 2000
signing_key = "{SIGNING_KEY}"
"#,
        ca = pki.path("ca.pem").display(),
    );
    // Relative certificate paths are relative to the config file: put it in the PKI dir.
    let config_path = pki.path("site.toml");
    seguard::config::parse(&text, &config_path).unwrap_or_else(|e| panic!("{e}"))
}

async fn latest_pressure(gateway: &Gateway) -> Option<f64> {
    let url = format!(
        "http://{}/api/v1/readings/latest?equipment=pv-1",
        gateway.http_addr
    );
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    let readings = body.as_array().cloned().unwrap_or_default();
    readings
        .iter()
        .find(|r| r["metric"] == json!("pressure"))
        .and_then(|r| r["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_uplink_and_central_intake_work_over_tls() {
    let pki = TestPki::generate();
    let broker = MosquittoTls::start(&pki, "server", &users());
    let secrets = tempfile::tempdir().unwrap();

    let central_text = format!(
        r#"
[central]
instance = "tls"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[mqtt]
port = {port}
username = "central"
password_file = "{password_file}"
[mqtt.tls]
ca_file = "ca.pem"
client_cert = "client.pem"
client_key = "client.key"
[[gateway]]
id = "gw1"
token_sha256 = "{hash}"
signing_key = "{SIGNING_KEY}"
"#,
        db = secrets.path().join("central.db").display(),
        port = broker.port,
        password_file = secret_file(secrets.path(), "central.pw", CENTRAL_PASSWORD),
        hash = token_hash("unused"),
    );
    let central_config = seguard::central::config::parse(&central_text, &pki.path("central.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let central = Central::start(central_config).await.unwrap();

    let password_file = secret_file(secrets.path(), "gateway.pw", GATEWAY_PASSWORD);
    let gateway = Gateway::start(site_config(broker.port, &pki, "client", &password_file))
        .await
        .unwrap();
    eventually(
        "the gateway connects over TLS",
        Duration::from_secs(10),
        || async {
            gateway
                .live
                .site_broker
                .load(std::sync::atomic::Ordering::Relaxed)
                .then_some(())
        },
    )
    .await;

    broker.publish(
        &pki,
        "device",
        DEVICE_PASSWORD,
        "site/s1/boiler/pressure",
        r#"{"pressure_mpa": 1.7}"#,
    );
    let pressure = eventually("the reading in the API", Duration::from_secs(10), || {
        latest_pressure(&gateway)
    })
    .await;
    assert_eq!(pressure, 1.7);

    // 1.7 MPa is above the high limit: the alarm travels the central uplink and central's
    // intake, both over TLS, into central's store.
    let stored = eventually(
        "the incident stored at central",
        Duration::from_secs(15),
        || async { central.store.event_count().await.ok().filter(|n| *n > 0) },
    )
    .await;
    assert_eq!(stored, 1, "one alarm event");
    gateway.stop().await;
    central.stop().await;
}

/// Runs a gateway with `client` certificate and `password` against `broker` for a while and
/// returns what it logged; asserts that it never connected.
async fn refused_gateway_log(
    broker: &MosquittoTls,
    pki: &TestPki,
    client: &str,
    password: &str,
) -> String {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secret_file(secrets.path(), "gateway.pw", password);
    let gateway = Gateway::start(site_config(broker.port, pki, client, &password_file))
        .await
        .unwrap();
    let refused = "site broker refused the connection";
    eventually(
        "the refusal in the gateway's log",
        Duration::from_secs(10),
        || async { logs.text().contains(refused).then_some(()) },
    )
    .await;
    assert!(
        !gateway
            .live
            .site_broker
            .load(std::sync::atomic::Ordering::Relaxed),
        "the gateway must not be connected"
    );
    gateway.stop().await;
    let text = logs.text();
    assert!(
        !text.contains("connected to site broker"),
        "the gateway connected:\n{text}"
    );
    if let Some(line) = text.lines().find(|l| l.contains(refused)) {
        eprintln!("{line}");
    }
    text
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = TestPki::generate();
    let broker = MosquittoTls::start(&pki, "server", &users());
    let log = refused_gateway_log(&broker, &pki, "other-client", GATEWAY_PASSWORD).await;
    assert!(
        log.contains("the broker refused the TLS handshake, most likely our client certificate"),
        "{log}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let pki = TestPki::generate();
    let broker = MosquittoTls::start(&pki, "server", &users());
    let log = refused_gateway_log(&broker, &pki, "client", "not-the-password").await;
    assert!(
        log.contains("the broker refused the username or password"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-password"),
        "the password is logged:\n{log}"
    );
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_is_refused() {
    let pki = TestPki::generate();
    let broker = MosquittoTls::start(&pki, "other-server", &users());
    let log = refused_gateway_log(&broker, &pki, "client", GATEWAY_PASSWORD).await;
    assert!(
        log.contains("the broker's certificate is not trusted"),
        "{log}"
    );
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
}
