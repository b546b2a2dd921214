//! Central at city scale, on SQLite and on PostgreSQL: a registry of 128,000 elevators and
//! 8,000 pressure vessels from 1,000 gateways, and a history of 1,000,000 events (500,000
//! alarms, raised and cleared over the last 30 days) with 50,000 rescue dispatches, written by
//! the bench straight into a store `seguard central` migrated. Then, against the release
//! binary as a process (with a mosquitto for its MQTT intake):
//! - the map's data (`/api/v1/map/markers`): the whole city at zoom 11 (server clusters) and
//!   one district's box at zoom 14, bytes and time to the last byte; the time from navigation
//!   until the last marker is in a cluster in headless Chromium (`tests/browser/city_map.mjs`,
//!   screenshot in `target/screenshots/city-bench-{store}/`);
//! - the alarm list (first page, filtered by kind/severity/state, by area, and five pages deep
//!   by cursor) and the dispatch board (open, closed, paged) and situations, p50/p99, and
//!   p50/p99 of each query; the equipment list's first page (worst state first, the unit
//!   overview's table) p50/p99 and bytes, and its counts;
//! - indicators (`/api/v1/indicators`, a month of dispatches in its KPIs), median; the
//!   maintenance units' scorecards for the month, median; the risk ranking's first page,
//!   median, and the whole city's ranking as one CSV download;
//! - the power cut: 2,000 elevators of 20 gateways in one area publish a power cut over MQTT at
//!   once, 300 with a trapped passenger; stored per second (first publish → last commit),
//!   every incident stored once and every trapped passenger dispatched once (asserted), and
//!   the time from the first dispatch created to the last notification delivered to the rescue
//!   units' webhook receiver;
//! - incident intake over HTTP (each request answers after the commit, so its latency is
//!   intake → stored) at rising rates, until p99 exceeds 1 s or the rate is not kept;
//! - central's CPU (cores over the measured span) and RSS (median of samples, peak VmHWM).
//!
//! `cargo bench --bench city` or `benches/run-all.sh city` (release; on a machine doing nothing
//! else). Under `cargo test --bench city` a small city (2,000 lifts,
//! 20,000 events, a power cut of 200 lifts) proves it runs. `SEGUARD_CITY_STORES=sqlite` or
//! `postgres` runs one store. `SEGUARD_PG_STATS=1` has PostgreSQL load pg_stat_statements and
//! prints the power cut's statements, dearest first, with the server's time against the wall's.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::city::{self, City};
use common::free_port;
use common::postgres::Postgres;
use serde_json::json;
use support::{median, quantile, setting, smoke_test, Seguard};

const REGULATOR_TOKEN: &str = "city-regulator";
const GATEWAY_TOKEN: &str = "city-gateway-0";
/// gw0000's key, sealing what it publishes over MQTT.
const GATEWAY_KEY: &str = "city-bench-gateway-key-0123456789abcdef";

#[derive(Clone, Copy)]
struct Scale {
    city: City,
    requests: usize,
    rates: &'static [u64],
    mqtt_rates: &'static [u64],
    step: Duration,
    /// Lifts per gateway in the power cut (of `FLOOD_GATEWAYS`).
    flood_lifts: usize,
}

const FULL: Scale = Scale {
    city: City::FULL,
    requests: 200,
    rates: &[250, 500, 1_000, 1_500, 2_000, 3_000],
    mqtt_rates: &[500, 1_000, 1_500, 2_000, 3_000, 4_000],
    step: Duration::from_secs(5),
    flood_lifts: FLOOD_LIFTS,
};

const SMOKE: Scale = Scale {
    city: City {
        elevators: 2_000,
        vessels: 100,
        gateways: 20,
        events: 20_000,
        dispatches: 1_000,
    },
    requests: 10,
    rates: &[50, 100],
    mqtt_rates: &[50, 100],
    step: Duration::from_secs(1),
    flood_lifts: 10,
};

fn central_toml(http: &str, url: &str, mqtt: u16, hook: u16) -> String {
    let mut text = format!(
        "[central]\ninstance = \"city-bench\"\nhttp_listen = \"{http}\"\nmax_body_bytes = 65536\n\
         [central.http_limits]\nrate_per_s = 100000\nrate_burst = 100000\n\
         [store]\nurl = \"{url}\"\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt}\n\
         [flood]\ncount = 10\nwindow_s = 600\nradius_km = 3\nbatch_s = 1\n\
         [[gateway]]\nid = \"gw0000\"\ntoken_sha256 = \"{gw}\"\nsigning_key = \"{GATEWAY_KEY}\"\n\
         [[token]]\nrole = \"regulator\"\nname = \"bench\"\nsha256 = \"{reg}\"\n",
        gw = seguard::auth::token_hash(GATEWAY_TOKEN),
        reg = seguard::auth::token_hash(REGULATOR_TOKEN),
    );
    for u in FLOOD_UNITS {
        text.push_str(&format!(
            "[[rescue_unit]]\nname = \"{u}\"\nphone = \"+86-755-5555-0101\"\nwebhook = \"http://127.0.0.1:{hook}/{u}\"\n"
        ));
    }
    for g in 0..FLOOD_GATEWAYS {
        text.push_str(&format!(
            "[[gateway]]\nid = \"flood{g:02}\"\ntoken_sha256 = \"{}\"\nsigning_key = \"{}\"\n",
            seguard::auth::token_hash(&format!("flood-token-{g}")),
            flood_key(g)
        ));
    }
    text
}

/// The power cut: `FLOOD_GATEWAYS` × `FLOOD_LIFTS` elevators in one area about 2 km across
/// lose mains power at once, with a passenger trapped in 3 of every 20.
const FLOOD_GATEWAYS: usize = 20;
const FLOOD_LIFTS: usize = 100;
const FLOOD_UNITS: [&str; 5] = ["unit-a", "unit-b", "unit-c", "unit-d", "unit-e"];

fn flood_key(g: usize) -> String {
    format!("city-bench-flood-key-{g:02}-0123456789abcdef")
}

/// The flood's incidents as the gateways publish them (sealed), and how many are trapped.
fn flood_messages(lifts: usize) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut messages = Vec::new();
    let mut trapped = 0;
    for k in 0..FLOOD_GATEWAYS * lifts {
        let (g, lift) = (k % FLOOD_GATEWAYS, k / FLOOD_GATEWAYS);
        let at = (
            22.540 + (k % 97) as f64 * 0.000_19,
            114.050 + (k % 89) as f64 * 0.000_21,
        );
        let mut publish = |n: usize, rule: &str, severity: &str| {
            let id = format!("20000000-0000-4000-8000-{g:04}{n:08}");
            let equipment = format!("flood{g:02}-lift-{lift:03}");
            let unit = FLOOD_UNITS[k % FLOOD_UNITS.len()];
            let message = json!({
                "schema": "seguard.incident.v1", "id": id, "gateway": format!("flood{g:02}"),
                "site": { "id": format!("flood-site-{g}"), "name": format!("Estate {g}"), "address": "Futian" },
                "equipment": {
                    "id": equipment, "kind": "elevator", "name": format!("Lift {lift} of estate {g}"),
                    "registration_code": format!("3120{g:04}{lift:012}"), "using_unit": format!("Estate {g} Property Co."),
                    "maintenance_unit": { "name": unit, "phone": "+86-755-0000" },
                    "address": format!("Futian, building {lift}, estate {g}"),
                    "location": { "lat": at.0, "lon": at.1, "crs": "WGS-84" }, "nameplate": {}
                },
                "event": {
                    "id": id, "equipment": equipment, "rule": rule, "severity": severity,
                    "transition": "raise", "time": chrono::Utc::now().to_rfc3339(),
                    "message": format!("{rule} on {equipment}")
                }
            });
            let sealed = seguard::signing::seal(
                flood_key(g).as_bytes(),
                "incidents",
                &serde_json::to_vec(&message).expect("json"),
            );
            messages.push((format!("seguard/v1/flood{g:02}/incidents"), sealed));
        };
        publish(lift * 2, "lift.power_cut", "high");
        if k % 20 < 3 {
            publish(lift * 2 + 1, "lift.trapped", "critical");
            trapped += 1;
        }
    }
    (messages, trapped)
}

/// A rescue units' webhook receiver that takes every message.
async fn webhook_sink() -> u16 {
    let app = axum::Router::new().route("/{*path}", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("webhook sink") });
    port
}

async fn scalar(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// What the flood measured: incidents published, stored per second (first publish → last
/// commit), p99 publish → taken for storing (ms), dispatches, and first dispatch created → last
/// one's notification delivered (ms).
struct Flood {
    incidents: usize,
    per_s: f64,
    taken_p99: f64,
    dispatches: i64,
    notified_ms: f64,
}

/// Publishes the power cut over MQTT to central and measures it from the store: every incident
/// stored once, every trapped passenger dispatched once, each dispatch notified.
async fn flood(url: &str, broker: u16, lifts: usize) -> Flood {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("store");
    let (messages, trapped) = flood_messages(lifts);
    let n = messages.len();
    let stats = url.starts_with("postgres") && std::env::var_os("SEGUARD_PG_STATS").is_some();
    if stats {
        statements_reset(&pool).await;
    }
    let mut client = common::mqtt::TestClient::connect(broker, "city-bench-flood").await;
    let started_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    client.publish_all(messages).await;
    // The flood's gateways by name, which the (gateway, …) indexes find: a `LIKE 'flood%'`
    // is a scan of the million events of the history on PostgreSQL under a non-C collation,
    // and polled every 20 ms it would take the cores central is measured on.
    let gateways = (0..FLOOD_GATEWAYS)
        .map(|g| format!("'flood{g:02}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let flood_gateways = format!("gateway IN ({gateways})");
    let count = format!("SELECT COUNT(*) FROM events WHERE {flood_gateways}");
    let mut stored_at = started.elapsed();
    while (scalar(&pool, &count).await as usize) < n {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the flood is stored in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        stored_at = started.elapsed();
    }
    if stats {
        statements_report(&pool, stored_at).await;
    }
    let taken: Vec<f64> = sqlx::query_scalar::<_, i64>(&format!(
        "SELECT received_ms - time_ms FROM events WHERE {flood_gateways}"
    ))
    .fetch_all(&pool)
    .await
    .expect("latencies")
    .into_iter()
    .map(|ms| ms as f64)
    .collect();
    let dispatches = format!(
        "SELECT COUNT(*) FROM dispatches WHERE {flood_gateways} AND created_ms >= {started_ms}"
    );
    let unsent = format!(
        "SELECT COUNT(*) FROM notifications n JOIN dispatches d ON d.id = n.dispatch_id
         WHERE d.{flood_gateways} AND n.sent_ms IS NULL"
    );
    while scalar(&pool, &dispatches).await < trapped as i64 || scalar(&pool, &unsent).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the flood is notified in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = scalar(
        &pool,
        &format!("SELECT MIN(created_ms) FROM dispatches WHERE {flood_gateways}"),
    )
    .await;
    let last = scalar(
        &pool,
        &format!("SELECT MAX(n.sent_ms) FROM notifications n JOIN dispatches d ON d.id = n.dispatch_id WHERE d.{flood_gateways}"),
    )
    .await;
    let made = scalar(&pool, &dispatches).await;
    assert_eq!(made, trapped as i64, "one dispatch per trapped passenger");
    assert_eq!(
        scalar(&pool, &count).await as usize,
        n,
        "every incident stored once"
    );
    pool.close().await;
    Flood {
        incidents: n,
        per_s: n as f64 / stored_at.as_secs_f64(),
        taken_p99: quantile(taken, 0.99),
        dispatches: made,
        notified_ms: (last - first) as f64,
    }
}

/// Forgets what PostgreSQL's statements cost so far (`SEGUARD_PG_STATS=1`: the server loads
/// pg_stat_statements).
async fn statements_reset(pool: &sqlx::AnyPool) {
    for sql in [
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "SELECT pg_stat_statements_reset()",
    ] {
        sqlx::query(sql).execute(pool).await.expect(sql);
    }
}

/// Prints what the server spent since [`statements_reset`], dearest statement first: calls,
/// server time and rows; then the sums against the `wall` time they were spent in. Server time
/// far below the wall time means the time went to round trips and to central itself.
async fn statements_report(pool: &sqlx::AnyPool, wall: Duration) {
    let rows = sqlx::query(
        "SELECT CAST(calls AS BIGINT), CAST(total_exec_time AS DOUBLE PRECISION), CAST(rows AS BIGINT),
            LEFT(regexp_replace(query, '\\s+', ' ', 'g'), 120)
         FROM pg_stat_statements ORDER BY total_exec_time DESC",
    )
    .fetch_all(pool)
    .await
    .expect("pg_stat_statements");
    let (mut calls, mut ms) = (0, 0.0);
    for (i, r) in rows.iter().enumerate() {
        use sqlx::Row;
        let (n, spent, returned, text): (i64, f64, i64, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        calls += n;
        ms += spent;
        if i < 20 {
            println!("  {n:>6} calls {spent:>8.1} ms {returned:>6} rows | {text}");
        }
    }
    println!(
        "  the server: {calls} statements, {ms:.0} ms, in {:.0} ms of the flood",
        wall.as_secs_f64() * 1000.0
    );
}

/// Milliseconds of each GET, and the bytes of the last body.
async fn timed_gets(http: &reqwest::Client, urls: &[String]) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for url in urls {
        let t = Instant::now();
        let response = http
            .get(url)
            .bearer_auth(REGULATOR_TOKEN)
            .send()
            .await
            .expect("GET");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        bytes = response.bytes().await.expect("body").len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (times, bytes)
}

fn incident(n: u64, time: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let id = format!("10000000-0000-4000-8000-{n:012}");
    json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": "gw0000",
        "site": { "id": "site-0", "name": "Estate 0", "address": "Futian" },
        "equipment": {
            "id": format!("e{}", n % 128), "kind": "elevator", "name": format!("Unit {}", n % 128),
            "registration_code": "31100000000000000001", "using_unit": "Property 0",
            "maintenance_unit": { "name": "Lift Service 0", "phone": "+86-755-0000" },
            "address": "0 road 0, Futian", "location": { "lat": 22.54, "lon": 114.05, "crs": "WGS-84" },
            "nameplate": {}
        },
        "event": {
            "id": id, "equipment": format!("e{}", n % 128), "rule": "lift.door_open_fault",
            "severity": "medium", "transition": if n.is_multiple_of(2) { "raise" } else { "clear" },
            "time": time.to_rfc3339(), "message": "door open fault"
        }
    })
}

/// Publishes `rate` incidents/s over MQTT for `span` (gw0000's, sealed) and follows the count
/// stored every 10 ms; returns (p99 ms offered → stored, stored per s, not stored within 30 s
/// of the end). Intake stores in arrival order, so message k counts as stored once k + 1 are:
/// its latency is from its due time (not its actual publish, which can only be later) to then.
async fn mqtt_step(
    pool: &sqlx::AnyPool,
    client: &rumqttc::AsyncClient,
    rate: u64,
    span: Duration,
    next_id: &mut u64,
) -> (f64, f64, u64) {
    let count = "SELECT COUNT(*) FROM events WHERE gateway = 'gw0000' AND source = 'mqtt'";
    let base = scalar(pool, count).await;
    let total = (rate as f64 * span.as_secs_f64()) as u64;
    let first = *next_id;
    *next_id += total;
    let started = Instant::now();
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for k in 0..total {
                let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let body = incident(first + k, chrono::Utc::now());
                let sealed = seguard::signing::seal(
                    GATEWAY_KEY.as_bytes(),
                    "incidents",
                    &serde_json::to_vec(&body).expect("json"),
                );
                client
                    .publish(
                        "seguard/v1/gw0000/incidents",
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        sealed,
                    )
                    .await
                    .expect("publish");
            }
        })
    };
    let mut timeline: Vec<(f64, u64)> = Vec::new();
    loop {
        let stored = (scalar(pool, count).await - base) as u64;
        let at = started.elapsed();
        timeline.push((at.as_secs_f64(), stored));
        if stored >= total || at > span + Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    publisher.await.expect("publisher");
    let (end, stored) = *timeline.last().expect("a sample");
    let mut latencies = Vec::new();
    let mut i = 0;
    for k in 0..stored {
        while timeline[i].1 <= k {
            i += 1;
        }
        latencies.push((timeline[i].0 - k as f64 / rate as f64) * 1000.0);
    }
    (
        quantile(latencies, 0.99),
        stored as f64 / end,
        total - stored,
    )
}

/// Offers `rate` incidents/s for `span`; returns (p99 ms, achieved per s, errors).
async fn intake_step(
    http: &reqwest::Client,
    base: &str,
    rate: u64,
    span: Duration,
    next_id: &mut u64,
) -> (f64, f64, u64) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let total = (rate as f64 * span.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let body = incident(*next_id, chrono::Utc::now());
        *next_id += 1;
        let (http, url, latencies, errors) = (
            http.clone(),
            format!("{base}/api/v1/intake/incidents"),
            latencies.clone(),
            errors.clone(),
        );
        tasks.spawn(async move {
            let t = Instant::now();
            let ok = http
                .post(url)
                .bearer_auth(GATEWAY_TOKEN)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                latencies
                    .lock()
                    .unwrap()
                    .push(t.elapsed().as_secs_f64() * 1000.0);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = latencies.lock().unwrap().clone();
    let stored = latencies.len() as f64;
    (
        quantile(latencies, 0.99),
        stored / elapsed,
        errors.load(Ordering::Relaxed),
    )
}

struct Row {
    store: &'static str,
    generated_s: f64,
    map_bytes: usize,
    map_ms: f64,
    district_bytes: usize,
    district_ms: f64,
    /// p50 / p99 (ms) of each list query.
    by_query: Vec<(String, f64, f64)>,
    flood: Flood,
    /// (offered, stored per s, p99 ms, not stored) of each MQTT step.
    mqtt_intake: Vec<(u64, f64, f64, u64)>,
    mqtt_sustained: f64,
    draw_ms: f64,
    list_p50: f64,
    list_p99: f64,
    board_p50: f64,
    board_p99: f64,
    /// The equipment list's first page: p50, p99 (ms) and bytes.
    equipment_p50: f64,
    equipment_p99: f64,
    equipment_bytes: usize,
    indicators_ms: f64,
    scorecards_ms: f64,
    risk_ms: f64,
    risk_bytes: usize,
    risk_csv_ms: f64,
    risk_csv_bytes: usize,
    intake: Vec<(u64, f64, f64, u64)>,
    sustained: f64,
    cpu_cores: f64,
    rss_mib: f64,
    peak_mib: f64,
}

async fn run(store: &'static str, scale: Scale, dir: &std::path::Path) -> Row {
    let pg = (store == "postgres").then(Postgres::start_durable);
    let url = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}/city.db", dir.display()),
    };
    // Central's own migrations make the schema, then the bench fills it.
    seguard::central::store::Store::open(&url)
        .await
        .expect("store")
        .close()
        .await;
    let generated = city::generate(&url, scale.city).await;
    eprintln!(
        "{store}: city generated in {:.0} s",
        generated.as_secs_f64()
    );
    let http_addr = format!("127.0.0.1:{}", free_port());
    let broker = common::Mosquitto::start();
    let hook = webhook_sink().await;
    let config = dir.join(format!("central-{store}.toml"));
    std::fs::write(&config, central_toml(&http_addr, &url, broker.port, hook)).expect("config");
    let mut central = Seguard::spawn(
        "central",
        &config,
        &http_addr,
        dir.join(format!("central-{store}.log")),
    );
    central.wait_ready(Duration::from_secs(120)).await;
    let base = format!("http://{http_addr}");
    let http = reqwest::Client::new();
    let cpu0 = central.cpu_seconds();
    let t0 = Instant::now();
    let sampling = Arc::new(AtomicBool::new(true));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (sampling, samples, pid) = (sampling.clone(), samples.clone(), central.pid());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let text =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                {
                    samples.lock().unwrap().push(kib / 1024.0);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // The map's data as the page asks for it: the whole city at the zoom the page fits it to
    // (clusters), and one district's box (Futian's centre) at a street zoom.
    let map_urls = vec![format!("{base}/api/v1/map/markers?zoom=11"); 5];
    let (map_times, map_bytes) = timed_gets(&http, &map_urls).await;
    let district_urls =
        vec![format!("{base}/api/v1/map/markers?bbox=22.52,114.03,22.56,114.08&zoom=14"); 5];
    let (district_times, district_bytes) = timed_gets(&http, &district_urls).await;
    let screenshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/screenshots/city-bench-{store}"));
    let drawn = common::browser::run_script(
        "city_map.mjs",
        vec![
            ("BASE_URL", base.clone()),
            ("REGULATOR_TOKEN", REGULATOR_TOKEN.to_owned()),
            (
                "MARKERS",
                (scale.city.elevators + scale.city.vessels).to_string(),
            ),
            ("SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
    .await;
    eprintln!("{store}: map in Chromium {drawn}");
    let mut list_times = Vec::new();
    let mut by_query = Vec::new();
    for query in [
        "limit=50",
        "kind=elevator&severity=high&limit=50",
        "state=active&limit=50",
        "area=Futian&limit=50",
        "area=Futian&state=active&limit=50",
    ] {
        let urls = vec![format!("{base}/api/v1/alarms?{query}"); scale.requests / 4];
        let (times, _) = timed_gets(&http, &urls).await;
        by_query.push((
            format!("alarms?{query}"),
            quantile(times.clone(), 0.5),
            quantile(times.clone(), 0.99),
        ));
        list_times.extend(times);
    }
    // Five pages deep by cursor.
    for _ in 0..scale.requests / 10 {
        let mut url = format!("{base}/api/v1/alarms?kind=elevator&limit=50");
        for _ in 0..5 {
            let t = Instant::now();
            let r = http
                .get(&url)
                .bearer_auth(REGULATOR_TOKEN)
                .send()
                .await
                .expect("GET");
            let link = r
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            r.bytes().await.expect("body");
            list_times.push(t.elapsed().as_secs_f64() * 1000.0);
            let Some(next) = link.and_then(|l| l.split(['<', '>']).nth(1).map(str::to_owned))
            else {
                break;
            };
            url = if next.starts_with("http") {
                next
            } else {
                format!("{base}{next}")
            };
        }
    }
    // The board polls its open dispatches and the last closed ones; a history is paged.
    let mut board_times = Vec::new();
    for query in ["state=open&limit=500", "state=closed&limit=50", "limit=100"] {
        let urls = vec![format!("{base}/api/v1/dispatches?{query}"); scale.requests / 4];
        let (times, _) = timed_gets(&http, &urls).await;
        by_query.push((
            format!("dispatches?{query}"),
            quantile(times.clone(), 0.5),
            quantile(times.clone(), 0.99),
        ));
        board_times.extend(times);
    }
    let (times, _) = timed_gets(
        &http,
        &vec![format!("{base}/api/v1/situations"); scale.requests / 4],
    )
    .await;
    by_query.push((
        "situations".into(),
        quantile(times.clone(), 0.5),
        quantile(times, 0.99),
    ));
    // The unit overview as a regulator opens it: the equipment list's first page and counts.
    let equipment_urls = vec![format!("{base}/api/v1/equipment"); scale.requests / 4];
    let (equipment_times, equipment_bytes) = timed_gets(&http, &equipment_urls).await;
    let (equipment_p50, equipment_p99) = (
        quantile(equipment_times.clone(), 0.5),
        quantile(equipment_times, 0.99),
    );
    by_query.push(("equipment".into(), equipment_p50, equipment_p99));
    let counts_urls = vec![format!("{base}/api/v1/equipment/counts"); scale.requests / 4];
    let (times, _) = timed_gets(&http, &counts_urls).await;
    by_query.push((
        "equipment/counts".into(),
        quantile(times.clone(), 0.5),
        quantile(times, 0.99),
    ));
    let (indicator_times, _) =
        timed_gets(&http, &vec![format!("{base}/api/v1/indicators"); 3]).await;
    // The maintenance units' scorecards for this month (the history's dispatches fall in it),
    // and the whole city's risk ranking, as a regulator opens them.
    let (scorecard_times, _) =
        timed_gets(&http, &vec![format!("{base}/api/v1/scorecards"); 3]).await;
    let (risk_times, risk_bytes) = timed_gets(&http, &vec![format!("{base}/api/v1/risk"); 3]).await;
    // The whole city's ranking as one CSV download, the heaviest report a regulator can ask.
    let (risk_csv_times, risk_csv_bytes) =
        timed_gets(&http, &[format!("{base}/api/v1/risk?format=csv")]).await;

    let flood = flood(&url, broker.port, scale.flood_lifts).await;
    eprintln!(
        "{store}: flood of {} incidents stored at {:.0}/s (p99 publish → taken {:.0} ms), {} dispatches notified {:.0} ms from the first created to the last delivered",
        flood.incidents, flood.per_s, flood.taken_p99, flood.dispatches, flood.notified_ms
    );
    // Sustained MQTT intake (the batched path) at rising rates.
    let mut mqtt_intake = Vec::new();
    let mut mqtt_sustained = 0.0;
    {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("store");
        let publisher = common::mqtt::TestClient::connect(broker.port, "city-bench-gw0000").await;
        let mut next_id = 1_000_000_000;
        for &rate in scale.mqtt_rates {
            let (p99, achieved, lost) =
                mqtt_step(&pool, &publisher.client, rate, scale.step, &mut next_id).await;
            eprintln!("{store}: MQTT intake offered {rate}/s: stored {achieved:.0}/s, p99 {p99:.0} ms, {lost} not stored");
            mqtt_intake.push((rate, achieved, p99, lost));
            if p99 > 1000.0 || lost > 0 || achieved < 0.9 * rate as f64 {
                break;
            }
            mqtt_sustained = achieved;
        }
        pool.close().await;
    }
    let mut intake = Vec::new();
    let mut sustained = 0.0;
    let mut next_id = 0;
    for &rate in scale.rates {
        let (p99, achieved, errors) =
            intake_step(&http, &base, rate, scale.step, &mut next_id).await;
        eprintln!("{store}: intake offered {rate}/s: stored {achieved:.0}/s, p99 {p99:.0} ms, {errors} errors");
        intake.push((rate, achieved, p99, errors));
        if p99 > 1000.0 || errors > 0 || achieved < 0.9 * rate as f64 {
            break;
        }
        sustained = achieved;
    }
    let cpu = (central.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let peak = central.status_kib("VmHWM") as f64 / 1024.0;
    let rss = median(samples.lock().unwrap().clone());
    central.stop();
    drop(broker);
    drop(pg);
    Row {
        store,
        generated_s: generated.as_secs_f64(),
        map_bytes,
        map_ms: median(map_times),
        district_bytes,
        district_ms: median(district_times),
        by_query,
        flood,
        mqtt_intake,
        mqtt_sustained,
        draw_ms: drawn["drawn_ms"].as_f64().unwrap_or(f64::NAN),
        list_p50: quantile(list_times.clone(), 0.5),
        list_p99: quantile(list_times, 0.99),
        board_p50: quantile(board_times.clone(), 0.5),
        board_p99: quantile(board_times, 0.99),
        equipment_p50,
        equipment_p99,
        equipment_bytes,
        indicators_ms: median(indicator_times),
        scorecards_ms: median(scorecard_times),
        risk_ms: median(risk_times),
        risk_bytes,
        risk_csv_ms: median(risk_csv_times),
        risk_csv_bytes,
        intake,
        sustained,
        cpu_cores: cpu,
        rss_mib: rss,
        peak_mib: peak,
    }
}

fn main() {
    let smoke = smoke_test();
    let scale = if smoke { SMOKE } else { FULL };
    let stores: String = setting("SEGUARD_CITY_STORES", "sqlite,postgres".to_owned());
    let dir = tempfile::tempdir().expect("temp dir");
    let rows: Vec<Row> = support::runtime().block_on(async {
        let mut rows = Vec::new();
        for store in ["sqlite", "postgres"] {
            if stores.split(',').any(|s| s == store) {
                rows.push(run(store, scale, dir.path()).await);
            }
        }
        rows
    });
    println!(
        "\ncity: {} elevators + {} vessels, {} gateways, {} events, {} dispatches{}",
        scale.city.elevators,
        scale.city.vessels,
        scale.city.gateways,
        scale.city.events,
        scale.city.dispatches,
        if smoke { " (smoke)" } else { "" }
    );
    println!("| store | generated (s) | whole-city map data (kB / ms) | district map data (kB / ms) | map drawn in Chromium (ms) | alarm list p50 / p99 (ms) | board p50 / p99 (ms) | equipment list, first page p50 / p99 (ms) / kB | indicators (ms) | scorecards, a month (ms) | risk ranking, first page (ms / kB) | risk ranking CSV, whole city (ms / MB) | MQTT flood stored (/s) | flood first dispatch → last notified (ms) | MQTT intake sustained (/s, p99 ≤ 1 s) | HTTP intake sustained (/s, p99 ≤ 1 s) | central CPU (cores) | RSS median / peak (MiB) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1} / {:.0} | {:.1} / {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} / {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} / {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} |",
            r.store,
            r.generated_s,
            r.map_bytes as f64 / 1e3,
            r.map_ms,
            r.district_bytes as f64 / 1e3,
            r.district_ms,
            r.draw_ms,
            r.list_p50,
            r.list_p99,
            r.board_p50,
            r.board_p99,
            r.equipment_p50,
            r.equipment_p99,
            r.equipment_bytes as f64 / 1e3,
            r.indicators_ms,
            r.scorecards_ms,
            r.risk_ms,
            r.risk_bytes as f64 / 1e3,
            r.risk_csv_ms,
            r.risk_csv_bytes as f64 / 1e6,
            r.flood.per_s,
            r.flood.notified_ms,
            r.mqtt_sustained,
            r.sustained,
            r.cpu_cores,
            r.rss_mib,
            r.peak_mib
        );
    }
    for r in &rows {
        let steps: Vec<String> = r
            .intake
            .iter()
            .map(|(rate, got, p99, errors)| {
                format!("{rate}/s → {got:.0}/s p99 {p99:.0} ms ({errors} errors)")
            })
            .collect();
        println!("intake steps on {}: {}", r.store, steps.join("; "));
        let steps: Vec<String> = r
            .mqtt_intake
            .iter()
            .map(|(rate, got, p99, lost)| {
                format!("{rate}/s → {got:.0}/s p99 {p99:.0} ms ({lost} not stored)")
            })
            .collect();
        println!("MQTT intake steps on {}: {}", r.store, steps.join("; "));
        let queries: Vec<String> = r
            .by_query
            .iter()
            .map(|(q, p50, p99)| format!("{q} {p50:.1} / {p99:.1}"))
            .collect();
        println!(
            "list queries on {} (p50 / p99 ms): {}",
            r.store,
            queries.join("; ")
        );
        println!(
            "flood on {}: {} incidents, p99 publish → taken for storing {:.0} ms, {} dispatches",
            r.store, r.flood.incidents, r.flood.taken_p99, r.flood.dispatches
        );
    }
    if smoke {
        for r in &rows {
            assert!(r.map_bytes > 0 && r.list_p99.is_finite() && r.board_p99.is_finite());
            assert!(
                !r.intake.is_empty() && r.intake[0].1 > 0.0,
                "{}: nothing stored",
                r.store
            );
        }
    }
}
