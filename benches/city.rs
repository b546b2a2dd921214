//! Central at city scale, on SQLite and on PostgreSQL: a registry of 128,000 elevators and
//! 8,000 pressure vessels from 1,000 gateways, and a history of 1,000,000 events (500,000
//! alarms, raised and cleared over the last 30 days) with 50,000 rescue dispatches, written by
//! the bench straight into a store `seguard central` migrated. Then, against the release
//! binary as a process:
//! - map data for the whole city (`/api/v1/equipment`): bytes and time to the last byte; the
//!   time from navigation until the last marker is in its cluster in headless Chromium
//!   (`tests/browser/city_map.mjs`, screenshot in `target/screenshots/city-bench-{store}/`);
//! - the alarm list (first page, filtered by kind/severity/state, by area, and five pages deep
//!   by cursor) and the dispatch board (`/api/v1/dispatches`), p50/p99;
//! - indicators (`/api/v1/indicators`, a month of dispatches in its KPIs), median;
//! - incident intake over HTTP (each request answers after the commit, so its latency is
//!   intake → stored) at rising rates, until p99 exceeds 1 s or the rate is not kept;
//! - central's CPU (cores over the measured span) and RSS (median of samples, peak VmHWM).
//!
//! `cargo bench --bench city` or `benches/run-all.sh city` (release; on a machine doing nothing
//! else). Under `cargo test --bench city` a small city (2,000 lifts,
//! 20,000 events) proves it runs. `SEGUARD_CITY_STORES=sqlite` or `postgres` runs one store.

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

#[derive(Clone, Copy)]
struct Scale {
    city: City,
    requests: usize,
    rates: &'static [u64],
    step: Duration,
}

const FULL: Scale = Scale {
    city: City::FULL,
    requests: 200,
    rates: &[250, 500, 1_000, 1_500, 2_000, 3_000],
    step: Duration::from_secs(5),
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
    step: Duration::from_secs(1),
};

fn central_toml(http: &str, url: &str) -> String {
    format!(
        "[central]\ninstance = \"city-bench\"\nhttp_listen = \"{http}\"\nmax_body_bytes = 65536\n\
         [central.http_limits]\nrate_per_s = 100000\nrate_burst = 100000\n\
         [store]\nurl = \"{url}\"\n\
         [[gateway]]\nid = \"gw0000\"\ntoken_sha256 = \"{gw}\"\n\
         [[token]]\nrole = \"regulator\"\nname = \"bench\"\nsha256 = \"{reg}\"\n",
        gw = seguard::auth::token_hash(GATEWAY_TOKEN),
        reg = seguard::auth::token_hash(REGULATOR_TOKEN),
    )
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
    draw_ms: f64,
    list_p50: f64,
    list_p99: f64,
    board_p50: f64,
    board_p99: f64,
    indicators_ms: f64,
    intake: Vec<(u64, f64, f64, u64)>,
    sustained: f64,
    cpu_cores: f64,
    rss_mib: f64,
    peak_mib: f64,
}

async fn run(store: &'static str, scale: Scale, dir: &std::path::Path) -> Row {
    let pg = (store == "postgres").then(Postgres::start);
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
    let config = dir.join(format!("central-{store}.toml"));
    std::fs::write(&config, central_toml(&http_addr, &url)).expect("config");
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

    let map_urls = vec![format!("{base}/api/v1/equipment"); 3];
    let (map_times, map_bytes) = timed_gets(&http, &map_urls).await;
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
    let mut list_urls = Vec::new();
    for k in 0..scale.requests {
        list_urls.push(match k % 4 {
            0 => format!("{base}/api/v1/alarms?limit=50"),
            1 => format!("{base}/api/v1/alarms?kind=elevator&severity=high&limit=50"),
            2 => format!("{base}/api/v1/alarms?state=active&limit=50"),
            _ => format!("{base}/api/v1/alarms?area=Futian&limit=50"),
        });
    }
    let (mut list_times, _) = timed_gets(&http, &list_urls).await;
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
    let (board_times, _) = timed_gets(
        &http,
        &vec![format!("{base}/api/v1/dispatches"); scale.requests / 2],
    )
    .await;
    let (indicator_times, _) =
        timed_gets(&http, &vec![format!("{base}/api/v1/indicators"); 3]).await;

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
    drop(pg);
    Row {
        store,
        generated_s: generated.as_secs_f64(),
        map_bytes,
        map_ms: median(map_times),
        draw_ms: drawn["drawn_ms"].as_f64().unwrap_or(f64::NAN),
        list_p50: quantile(list_times.clone(), 0.5),
        list_p99: quantile(list_times, 0.99),
        board_p50: quantile(board_times.clone(), 0.5),
        board_p99: quantile(board_times, 0.99),
        indicators_ms: median(indicator_times),
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
    println!("| store | generated (s) | whole-city map data (MB / ms) | map drawn in Chromium (ms) | alarm list p50 / p99 (ms) | board p50 / p99 (ms) | indicators (ms) | intake sustained (/s, p99 ≤ 1 s) | central CPU (cores) | RSS median / peak (MiB) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1} / {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} |",
            r.store,
            r.generated_s,
            r.map_bytes as f64 / 1e6,
            r.map_ms,
            r.draw_ms,
            r.list_p50,
            r.list_p99,
            r.board_p50,
            r.board_p99,
            r.indicators_ms,
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
