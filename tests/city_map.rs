//! The whole city's map in headless Chromium (`tests/browser/city_map.mjs`): central on SQLite
//! with a generated registry of 128,000 elevators and 8,000 pressure vessels of 1,000 gateways
//! (`tests/common/city.rs`; `SEGUARD_CITY_MAP_ELEVATORS` makes it smaller), every marker counted
//! in the clusters central sends for the view (`/api/v1/map/markers`), the one lift with a
//! trapped passenger in exactly one cluster that reads red, and a screenshot in
//! `target/screenshots/city/city-map.png`. Not timed here: `benches/city.rs` measures the time
//! in release.

mod common;

use std::path::Path;
use std::time::Duration;

use common::city::{self, City};
use seguard::auth::token_hash;
use seguard::central::config::parse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_city_is_drawn_in_clusters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/city.db", dir.path().display());
    let elevators = std::env::var("SEGUARD_CITY_MAP_ELEVATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(City::FULL.elevators);
    let scale = City {
        elevators,
        vessels: City::FULL.vessels * elevators / City::FULL.elevators,
        events: 0,
        dispatches: 0,
        ..City::FULL
    };
    seguard::central::store::Store::open(&url)
        .await
        .expect("store")
        .close()
        .await;
    let took = city::generate(&url, scale).await;
    eprintln!("{scale:?} generated in {:.0} s", took.as_secs_f64());
    // One lift with a trapped passenger, its alarm open: its cluster must read red.
    let pool = sqlx::AnyPool::connect(&url).await.expect("store");
    sqlx::query(
            "INSERT INTO alarms (id, gateway, equipment, rule, severity, kind, using_unit, address, trapped,
                message, raised_ms, area)
             VALUES ('trapped-1', 'gw0007', 'e7', 'lift.trapped', 'critical', 'elevator', 'Property 7',
                'Futian, 7 road 7', 1, 'trapped', 0, 'futian')",
        )
        .execute(&pool)
        .await
        .expect("trapped alarm");
    pool.close().await;
    let config = parse(
        &format!(
            "[central]\ninstance = \"city-map\"\nhttp_listen = \"127.0.0.1:0\"\n[store]\nurl = \"{url}\"\n\
             [[token]]\nrole = \"regulator\"\nname = \"desk\"\nsha256 = \"{}\"\n",
            token_hash("city-desk")
        ),
        Path::new("central.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let central = seguard::central::Central::start(config)
        .await
        .expect("central");
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/city");
    let result = tokio::time::timeout(
        Duration::from_secs(600),
        common::browser::run_script(
            "city_map.mjs",
            vec![
                ("BASE_URL", format!("http://{}", central.addr)),
                ("REGULATOR_TOKEN", "city-desk".to_owned()),
                ("MARKERS", (scale.elevators + scale.vessels).to_string()),
                ("SCREENSHOTS", screenshots.display().to_string()),
                ("TIMEOUT_MS", "540000".to_owned()),
                ("TRAPPED", "e7".to_owned()),
            ],
        ),
    )
    .await
    .expect("the map is drawn within 10 minutes");
    eprintln!("city map: {result}");
    assert!(result["clusters"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        result["trapped"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    assert!(screenshots.join("city-map.png").exists());
    central.stop().await;
}
