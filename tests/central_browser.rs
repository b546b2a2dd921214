//! The dashboard in headless Chromium at desktop and phone sizes: the map's markers and
//! colours, an acknowledgement made from the alarm page, the pages in Chinese and in English,
//! times in central's zone, the rescue page's navigation links, phones and steps (one taken
//! offline), labels and keyboard reach. Screenshots go to target/screenshots/central/.
//! Needs Debian `chromium` and `npm ci` (playwright-core); tests/run provides both.

mod common;

use std::path::Path;
use std::time::Duration;

use seguard::auth::token_hash;
use seguard::central::config::parse;
use seguard::central::geo;
use seguard::central::Central;
use seguard::model::{GatewayState, GatewayStatus};
use serde_json::{json, Value};

const GW1: &str = "gw1-token";
const GW2: &str = "gw2-token";
const REGULATOR: &str = "regulator-token";

/// The minute the test's events start at: recent, since central orders an event from outside
/// its time window around receive time by when it arrived, not by its own time.
fn event_base() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    static BASE: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        (chrono::Utc::now() - TimeDelta::minutes(10))
            .duration_trunc(TimeDelta::minutes(1))
            .expect("a minute")
    })
}

/// Event `n`'s time as the pages show it in central's default zone, Asia/Shanghai (UTC+8, no
/// daylight saving).
fn shown_in_shanghai(n: u32) -> String {
    let time = event_base() + chrono::TimeDelta::seconds(i64::from(n % 60) + 8 * 3600);
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn incident(
    gateway: &str,
    n: u32,
    lift: &str,
    lat: f64,
    rule: &str,
    transition: &str,
    next_inspection: &str,
) -> Value {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    // The trapped passenger's car stopped at B2.
    let details = if n == 1 {
        json!({ "floor": "B2" })
    } else {
        json!({})
    };
    json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": gateway,
        "site": { "id": "s1", "name": "Riverside", "address": "8 River Road" },
        "equipment": {
            "id": lift, "kind": "elevator", "name": format!("Lift {lift}"),
            "registration_code": "31103101002016010001", "rescue_code": "02417",
            "using_unit": "Riverside Property Co.",
            "maintenance_unit": { "name": "Shenlong Elevator Service", "phone": "+86-21-5555-0101" },
            "address": format!("8 River Road, {lift}"),
            "location": { "lat": lat, "lon": 121.50, "crs": "WGS-84" },
            "nameplate": {}, "next_inspection": next_inspection, "insured": true
        },
        "event": { "id": id, "equipment": lift, "rule": rule, "severity": "high", "transition": transition,
                   "time": (event_base() + chrono::TimeDelta::seconds(i64::from(n % 60))).to_rfc3339(), "message": format!("{rule} on {lift}"),
                   "details": details }
    })
}

/// Where the scripts copy the README's screenshots: docs/screenshots/ when the tests run with
/// UPDATE_DOCS_SCREENSHOTS=1, nowhere otherwise (an ordinary run leaves the tree as it was).
fn docs(root: &Path) -> String {
    std::env::var_os("UPDATE_DOCS_SCREENSHOTS")
        .map(|_| root.join("docs/screenshots").display().to_string())
        .unwrap_or_default()
}

/// Central's config for these tests: SQLite at `db`, gateway gw1, the regulator's token, and
/// `extra` (tables).
fn config(db: &Path, extra: &str) -> String {
    format!(
        r#"
[central]
instance = "browser"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[[gateway]]
id = "gw1"
token_sha256 = "{gw1}"
[[token]]
role = "regulator"
name = "inspector-li"
sha256 = "{regulator}"
{extra}"#,
        db = db.display(),
        gw1 = token_hash(GW1),
        regulator = token_hash(REGULATOR),
    )
}

/// Central started from `text` (named `name` in messages), and the base URL of its HTTP API.
async fn start(text: &str, name: &str) -> (Central, String) {
    let central = Central::start(parse(text, Path::new(name)).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", central.addr);
    (central, base)
}

/// Gateway gw1's registry of site s1 with the equipment `ids` (see `record`).
fn registry(ids: &[&str]) -> seguard::model::GatewayRegistry {
    serde_json::from_value(json!({
        "schema": "seguard.registry.v1", "gateway": "gw1",
        "site": { "id": "s1", "name": "Riverside", "address": "8 River Road" },
        "equipment": ids.iter().map(|id| record(id)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// The JSON answer to a GET of `url` with the bearer `token`.
async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn dashboard_map_ack_and_rescue_page_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (hook_port, mut hooks) = {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, rx)
    };
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir.path().join("central.db"),
        &format!(
            r#"
[map]
# Unreachable on purpose: the map must fall back to its plain base.
tile_url = "http://127.0.0.1:1/{{z}}/{{x}}/{{y}}.png"
tile_crs = "GCJ-02"
[[gateway]]
id = "gw2"
token_sha256 = "{gw2}"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
webhook = "http://127.0.0.1:{hook_port}/shenlong"
"#,
            gw2 = token_hash(GW2),
        ),
    );
    let (central, base) = start(&text, "browser.toml").await;
    let client = reqwest::Client::new();
    let post = |gateway: &str, body: Value| {
        let token = if gateway == "gw1" { GW1 } else { GW2 };
        client
            .post(format!("{base}/api/v1/intake/incidents"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // lift-a trapped, lift-b door alarm, lift-c alarm that cleared, lift-d overdue inspection,
    // lift-e behind an offline gateway. lift-f: its position is later spoiled in the store (as
    // rows from before intake checked coordinates can be); the map must leave it out, not zoom
    // to the world.
    #[rustfmt::skip]
    let incidents = [
        ("gw1", 1, "lift-a", 31.20, "elevator.trapped_at_level", "raise", "2027-01-01"),
        ("gw1", 2, "lift-b", 31.23, "elevator.door_fault", "raise", "2027-01-01"),
        ("gw1", 3, "lift-c", 31.26, "elevator.door_fault", "raise", "2027-01-01"),
        ("gw1", 4, "lift-c", 31.26, "elevator.door_fault", "clear", "2027-01-01"),
        ("gw1", 5, "lift-d", 31.29, "elevator.power_cut", "raise", "2020-01-01"),
        ("gw1", 6, "lift-d", 31.29, "elevator.power_cut", "clear", "2020-01-01"),
        ("gw2", 7, "lift-e", 31.32, "elevator.power_cut", "raise", "2027-01-01"),
        ("gw2", 8, "lift-e", 31.32, "elevator.power_cut", "clear", "2027-01-01"),
        ("gw1", 9, "lift-f", 31.35, "elevator.door_fault", "raise", "2027-01-01"),
        ("gw1", 10, "lift-f", 31.35, "elevator.door_fault", "clear", "2027-01-01"),
    ];
    for (gateway, n, lift, lat, rule, transition, next_inspection) in incidents {
        let body = incident(gateway, n, lift, lat, rule, transition, next_inspection);
        let r = post(gateway, body).await.unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    }
    {
        sqlx::any::install_default_drivers();
        let db = format!("sqlite://{}", dir.path().join("central.db").display());
        let pool = sqlx::AnyPool::connect(&db).await.unwrap();
        sqlx::query("UPDATE equipment SET lat = 1000, lon = -1000 WHERE id = 'lift-f'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    // What the page draws from: no position for the bad coordinate (checked without JS too).
    let equipment: Value = get_json(&client, format!("{base}/api/v1/equipment"), REGULATOR).await;
    let shown: Vec<(&str, bool)> = equipment
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["display"].is_array()))
        .collect();
    assert!(shown.contains(&("lift-f", false)), "{shown:?}");
    assert_eq!(
        shown.iter().filter(|(_, drawn)| *drawn).count(),
        5,
        "{shown:?}"
    );
    central
        .store
        .set_gateway_status(
            &GatewayStatus {
                gateway: "gw2".into(),
                site: "s2".into(),
                state: GatewayState::Offline,
                since: None,
            },
            seguard::central::now_ms(),
        )
        .await
        .unwrap();
    let dispatch = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .unwrap()
        .unwrap();
    let rescue_url = dispatch["rescue_url"].as_str().unwrap().to_owned();
    let alarm_id = "00000000-0000-4000-8000-000000000002";

    // Where lift-a (WGS-84 31.20, 121.50) is on AMap (GCJ-02) and Baidu (BD-09).
    let gcj = geo::wgs84_to_gcj02(31.20, 121.50);
    let bd = geo::gcj02_to_bd09(gcj.0, gcj.1);
    let screenshots = root.join("target/screenshots/central");
    let results = common::browser::run_script(
        "dashboard.mjs",
        vec![
            ("BASE_URL", base),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("ALARM_ID", alarm_id.into()),
            ("RESCUE_URL", rescue_url),
            (
                "EXPECTED",
                r#"{"trapped":1,"alarm":1,"normal":1,"overdue":1,"offline":1}"#.into(),
            ),
            ("ALARM_TIME", shown_in_shanghai(2)),
            ("TRAPPED_TIME", shown_in_shanghai(1)),
            ("GCJ02", json!([gcj.0, gcj.1]).to_string()),
            ("BD09", json!([bd.0, bd.1]).to_string()),
            ("SCREENSHOTS", screenshots.display().to_string()),
            ("DOCS", docs(root)),
        ],
    )
    .await;
    eprintln!("browser results: {results}");

    // What the pages did is in the store, with who did it.
    let audit = central.store.audit(10).await.unwrap();
    let ack = audit
        .iter()
        .find(|a| a.action == "alarm.ack")
        .expect("ack in the audit log");
    assert_eq!(
        (ack.actor.as_str(), ack.target.as_str(), ack.detail.as_str()),
        ("inspector-li", alarm_id, "called the maintenance unit")
    );
    let id = dispatch["id"].as_str().unwrap();
    let d = central.store.dispatch(id).await.unwrap().unwrap();
    let steps: Vec<(String, String)> = d
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.note.clone()))
        .collect();
    assert_eq!(d.status, seguard::central::dispatch::Status::Completed);
    assert!(
        steps.contains(&("on_site".into(), "on_site from the phone".into())),
        "{steps:?}"
    );
    // The step taken offline arrived once.
    assert_eq!(
        steps.iter().filter(|(step, _)| step == "responded").count(),
        1,
        "{steps:?}"
    );
    assert!(
        steps.contains(&("responded".into(), "responded from the phone".into())),
        "{steps:?}"
    );
    central.stop().await;
}

/// The dispatch board: an open dispatch counts down to its response deadline and turns red when
/// it passes (8 s here instead of 3 min); a new trapped incident appears flagged.
#[tokio::test]
async fn dispatch_board_counts_down_and_turns_red_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir.path().join("central.db"),
        r#"
[dispatch]
respond_within_s = 8
arrive_within_s = 600
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
"#,
    );
    let (central, base) = start(&text, "board.toml").await;
    let trapped = |n, lift| {
        incident(
            "gw1",
            n,
            lift,
            31.20,
            "elevator.trapped_at_level",
            "raise",
            "2027-01-01",
        )
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/intake/incidents"))
        .bearer_auth(GW1)
        .json(&trapped(1, "lift-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let results = common::browser::run_script(
        "board.mjs",
        vec![
            ("BASE_URL", base),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("GATEWAY_TOKEN", GW1.into()),
            ("INCIDENT", trapped(2, "lift-b").to_string()),
            ("DOCS", docs(root)),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/central")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    eprintln!("browser results: {results}");
    assert_eq!(central.store.dispatches(None).await.unwrap().len(), 2);
    central.stop().await;
}

const UNIT: &str = "unit-token";
const AGENCY: &str = "agency-token";

/// A registry record of the equipment page test: lift-a with its phones, a boiler with its
/// nameplate, a cylinder due for inspection, the filling station, and another unit's lift.
fn record(id: &str) -> Value {
    let base = json!({
        "id": id, "using_unit": "Riverside Property Co.", "address": format!("8 River Road, {id}"),
        "location": { "lat": 31.20, "lon": 121.50, "crs": "WGS-84" }, "nameplate": {},
        "next_inspection": "2027-01-01", "insured": true
    });
    let extra = match id {
        "lift-a" => json!({
            "kind": "elevator", "name": "Lift A", "registration_code": "31103101002016019999",
            "rescue_code": "02417", "using_unit_phone": "+86-21-5555-0303",
            "building_phone": "+86-21-5555-0333",
            "maintenance_unit": { "name": "Shenlong Elevator Service", "phone": "+86-21-5555-0101" },
            "nameplate": { "rated_speed_m_s": 1.75, "rated_load_kg": 1000, "floors": 24 }
        }),
        "boiler-1" => json!({
            "kind": "pressure_vessel", "name": "Canteen boiler", "registration_code": "21103101002016000001",
            "location": { "lat": 31.21, "lon": 121.51, "crs": "WGS-84" },
            "nameplate": { "working_pressure_mpa": 1.0, "set_pressure_mpa": 1.1, "design_pressure_mpa": 1.25, "medium": "steam" }
        }),
        // A cylinder travels: no position.
        "cyl-1" => {
            json!({ "kind": "gas_cylinder", "name": "LPG cylinder", "registration_code": "CYL-0001",
                           "location": null, "next_inspection": "2025-01-01" })
        }
        // Another unit's lift: the unit overview must not show it.
        "lift-z" => {
            json!({ "kind": "elevator", "name": "Hill lift", "registration_code": "31103101002016018888",
                            "using_unit": "Hill Estate Co.", "address": "9 Hill Road, lift-z" })
        }
        _ => {
            json!({ "kind": "filling_station", "name": "Riverside LPG station", "registration_code": "ST-01",
                     "location": { "lat": 31.22, "lon": 121.52, "crs": "WGS-84" } })
        }
    };
    let mut merged = base;
    for (k, v) in extra.as_object().unwrap() {
        merged[k] = v.clone();
    }
    merged
}

fn event(n: u32, id: &str, rule: &str, value: Option<(f64, f64)>) -> Value {
    let uuid = format!("00000000-0000-4000-8000-{n:012}");
    let mut e = json!({
        "schema": "seguard.incident.v1", "id": uuid, "gateway": "gw1",
        "site": { "id": "s1", "name": "Riverside", "address": "8 River Road" },
        "equipment": record(id),
        "event": { "id": uuid, "equipment": id, "rule": rule, "severity": "high", "transition": "raise",
                   "time": (event_base() + chrono::TimeDelta::seconds(i64::from(n))).to_rfc3339(),
                   "message": format!("{rule} on {id}"), "details": {} }
    });
    if let Some((v, limit)) = value {
        e["event"]["value"] = json!(v);
        e["event"]["limit"] = json!(limit);
    }
    e
}

/// The equipment page reached from the search box, the map's popup and the alarm list, with
/// its registry, phones, readings, history and fills; CSV exports with the BOM; both languages;
/// labels, keyboard and contrast; desktop and phone.
#[tokio::test]
async fn equipment_page_from_search_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir.path().join("central.db"),
        &format!(
            r#"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
[[token]]
role = "equipment_unit"
name = "riverside-desk"
unit = "Riverside Property Co."
sha256 = "{unit}"
[[token]]
role = "inspection_agency"
name = "inspector-wang"
unit = "District Special Equipment Institute"
sha256 = "{agency}"
[map]
district_geojson = "{district}"
"#,
            unit = token_hash(UNIT),
            agency = token_hash(AGENCY),
            district = dir.path().join("district.geojson").display(),
        ),
    );
    // The district the operator supplies: an outline around the equipment and one street.
    let district = json!({ "type": "FeatureCollection", "features": [
        { "type": "Feature", "properties": { "name": "Riverside", "level": "district" },
          "geometry": { "type": "Polygon", "coordinates": [[[121.48, 31.18], [121.54, 31.18], [121.54, 31.24], [121.48, 31.24], [121.48, 31.18]]] } },
        { "type": "Feature", "properties": { "name": "Riverside, street 1", "level": "street" },
          "geometry": { "type": "Polygon", "coordinates": [[[121.48, 31.18], [121.51, 31.18], [121.51, 31.21], [121.48, 31.18]]] } },
    ]});
    std::fs::write(dir.path().join("district.geojson"), district.to_string()).unwrap();
    let (central, base) = start(&text, "equipment.toml").await;
    let registry = registry(&["lift-a", "boiler-1", "cyl-1", "station-1", "lift-z"]);
    let now = seguard::central::now_ms();
    central.store.merge_registry(&registry, now).await.unwrap();
    let client = reqwest::Client::new();
    for body in [
        event(1, "lift-a", "elevator.trapped_at_level", None),
        event(
            2,
            "boiler-1",
            "boiler-1.pressure.high_high",
            Some((1.32, 1.25)),
        ),
    ] {
        let r = client
            .post(format!("{base}/api/v1/intake/incidents"))
            .bearer_auth(GW1)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    }
    for (n, code, refused) in [(1, "CYL-0001", false), (2, "CYL-0002", true)] {
        let fill: seguard::model::FillRecord = serde_json::from_value(json!({
            "schema": "seguard.fill.v1", "id": format!("00000000-0000-4000-9000-{n:012}"),
            "gateway": "gw1", "equipment": "station-1", "station": "ST-01", "cylinder_code": code,
            "time": (event_base() + chrono::TimeDelta::seconds(n)).to_rfc3339(),
            "medium": "LPG", "mass_kg": 14.5, "accepted": !refused,
            "rejections": if refused { json!(["inspection_expired"]) } else { json!([]) },
        }))
        .unwrap();
        assert!(central.store.ingest_fill(&fill, now).await.unwrap());
    }
    // Inspection findings: one overdue hazard on the unit's own lift, one on another unit's
    // lift that its overview must not show.
    for (no, equipment, description, deadline) in [
        (
            "R-1",
            "lift-a",
            "brake lining worn below limit",
            "2026-11-20",
        ),
        ("R-2", "lift-z", "pit ladder missing", "2099-12-31"),
    ] {
        let report = json!({
            "report_no": no, "gateway": "gw1", "equipment": equipment,
            "inspected_on": "2026-11-02", "conclusion": "pass_after_correction",
            "hazards": [{ "description": description, "severity": "major",
                          "legal_basis": "TSG T7001-2023 item 2.8", "deadline": deadline }]
        });
        let r = client
            .post(format!("{base}/api/v1/inspections"))
            .bearer_auth(AGENCY)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    }
    // The rescue page's phones: the using unit's and the building's from the registry.
    let dispatch = &central.store.dispatches(None).await.unwrap()[0];
    let view: Value = get_json(
        &client,
        format!("{base}/api/v1/dispatches/{}", dispatch.id),
        REGULATOR,
    )
    .await;
    let phones: Vec<(&str, &str)> = view["rescue"]["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["role"].as_str().unwrap(), p["phone"].as_str().unwrap()))
        .collect();
    assert!(
        phones.contains(&("using", "+86-21-5555-0303")),
        "{phones:?}"
    );
    assert!(
        phones.contains(&("building", "+86-21-5555-0333")),
        "{phones:?}"
    );
    // The using unit's own token finds its lift by the 96333 code.
    let found: Value = get_json(
        &client,
        format!("{base}/api/v1/equipment/search?q=02417"),
        UNIT,
    )
    .await;
    assert_eq!(found[0]["id"], "lift-a", "{found}");

    let results = common::browser::run_script(
        "equipment.mjs",
        vec![
            ("BASE_URL", base),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("UNIT_TOKEN", UNIT.into()),
            ("LIFT_CODE", "31103101002016019999".into()),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/central")
                    .display()
                    .to_string(),
            ),
            ("DOCS", docs(root)),
        ],
    )
    .await;
    eprintln!("browser results: {results}");
    central.stop().await;
}

/// The AMap preset: tiles in GCJ-02, so the markers and the district outline are converted
/// with `central::geo` (whose conversion is tested against published pairs), and the page's
/// policy allows the preset's tile hosts. No browser: the tiles are on the internet.
#[tokio::test]
async fn amap_preset_draws_markers_in_gcj02() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("district.geojson"),
        r#"{"type":"Polygon","coordinates":[[[121.48,31.18],[121.54,31.18],[121.54,31.24],[121.48,31.18]]]}"#,
    )
    .unwrap();
    let text = config(
        &dir.path().join("central.db"),
        &format!(
            "[map]\npreset = \"amap\"\ndistrict_geojson = \"{}\"\n",
            dir.path().join("district.geojson").display()
        ),
    );
    let (central, base) = start(&text, "amap.toml").await;
    let registry = registry(&["lift-a"]);
    central
        .store
        .merge_registry(&registry, seguard::central::now_ms())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(REGULATOR)
            .send()
    };
    let map: Value = get("/api/v1/map/config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(map["tile_crs"], "GCJ-02");
    assert_eq!(map["tile_subdomains"][0], "webrd01");
    let (g_lat, g_lon) = geo::wgs84_to_gcj02(31.20, 121.50);
    let equipment: Value = get("/api/v1/equipment")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = &equipment[0]["display"];
    assert!(
        (shown[0].as_f64().unwrap() - g_lat).abs() < 1e-12
            && (shown[1].as_f64().unwrap() - g_lon).abs() < 1e-12,
        "{shown} is not GCJ-02 ({g_lat}, {g_lon})"
    );
    // GCJ-02 moves a point in Shanghai by a few hundred metres: the conversion happened.
    assert!((g_lon - 121.50).abs() > 0.003, "{g_lon}");
    let outline: Value = get("/api/v1/map/district")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (o_lat, o_lon) = geo::wgs84_to_gcj02(31.18, 121.48);
    assert!((outline["coordinates"][0][0][0].as_f64().unwrap() - o_lon).abs() < 1e-12);
    assert!((outline["coordinates"][0][0][1].as_f64().unwrap() - o_lat).abs() < 1e-12);
    let page = get("/").await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("img-src 'self' data: https://*.is.autonavi.com;"),
        "{csp}"
    );
    central.stop().await;
}

/// The equipment page's and the indicators' queries (search, detail, trends) on PostgreSQL, as
/// the browser test runs them on SQLite: the same SQL on both engines.
#[tokio::test]
async fn equipment_search_detail_and_trends_on_postgres() {
    let pg = common::postgres::Postgres::start();
    let sqlite = Path::new("/nonexistent/central.db");
    let text = config(
        sqlite,
        &format!(
            "[[token]]\nrole = \"equipment_unit\"\nname = \"riverside-desk\"\nunit = \"Riverside Property Co.\"\nsha256 = \"{}\"\n",
            token_hash(UNIT)
        ),
    )
    .replace(&format!("sqlite://{}", sqlite.display()), &pg.url());
    let (central, base) = start(&text, "pg.toml").await;
    let registry = registry(&["lift-a", "boiler-1", "station-1", "lift-z"]);
    let now = seguard::central::now_ms();
    central.store.merge_registry(&registry, now).await.unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/intake/incidents"))
        .bearer_auth(GW1)
        .json(&event(
            2,
            "boiler-1",
            "boiler-1.pressure.high_high",
            Some((1.32, 1.25)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let get = |path: String, token: &'static str| {
        let client = client.clone();
        async move {
            let r = client.get(path).bearer_auth(token).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    // Search: by 96333 code, by a name part ignoring case, and scoped to the unit.
    let found = get(format!("{base}/api/v1/equipment/search?q=02417"), REGULATOR).await;
    assert_eq!(found[0]["id"], "lift-a", "{found}");
    let found = get(
        format!("{base}/api/v1/equipment/search?q=BOILER"),
        REGULATOR,
    )
    .await;
    assert_eq!(found[0]["id"], "boiler-1", "{found}");
    let found = get(format!("{base}/api/v1/equipment/search?q=lift"), UNIT).await;
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lift-a"], "the other unit's lift-z is not found");
    // Detail: the reading and its limit; another unit's equipment is not found.
    let detail = get(format!("{base}/api/v1/equipment/gw1/boiler-1"), REGULATOR).await;
    assert_eq!(detail["readings"][0]["value"], 1.32, "{detail}");
    assert_eq!(detail["readings"][0]["limit"], 1.25, "{detail}");
    assert_eq!(detail["alarms"].as_array().unwrap().len(), 1);
    let hidden = client
        .get(format!("{base}/api/v1/equipment/gw1/lift-z"))
        .bearer_auth(UNIT)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status().as_u16(), 404);
    // Trends: this week's alarm, and the breakdown by area.
    let trends = get(
        format!("{base}/api/v1/indicators/trends?weeks=4&offset_min=480"),
        REGULATOR,
    )
    .await;
    // (The alarm is ten minutes old: last week's on a Monday just after midnight.)
    let weekly: Vec<i64> = (trends["series"]["alarms"].as_array().unwrap().iter())
        .map(|n| n.as_i64().unwrap())
        .collect();
    assert_eq!(weekly.len(), 4);
    assert_eq!(weekly[2] + weekly[3], 1, "{trends}");
    let areas = trends["breakdowns"]["area"].as_array().unwrap();
    assert_eq!(areas[0]["group"], "8 River Road", "{trends}");
    assert_eq!(areas[0]["alarms"], 1, "{trends}");
    central.stop().await;
}
