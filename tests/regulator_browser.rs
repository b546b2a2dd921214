//! The regulator's pages in headless Chromium: the risk ranking with its reasons and export,
//! the maintenance-unit scorecards in both languages and their printable report, on the fleet of
//! `common/regulator_fleet.rs`, and an inspection hazard walked from report to verified closure
//! by the using unit, the regulator and the agency, and a record the higher-level platform
//! refused, re-queued from the exchange page. Screenshots go to target/screenshots/regulator/.
//! Needs Debian `chromium` and `npm ci` (playwright-core); tests/run provides both.

mod common;
#[path = "common/regulator_fleet.rs"]
mod fleet;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use seguard::auth::token_hash;
use seguard::central::config::parse;
use seguard::central::Central;

const REGULATOR: &str = "regulator-token";
const WEST_MALL: &str = "west-mall-token";
const AGENCY: &str = "agency-token";

fn config_text(db: &Path) -> String {
    format!(
        r#"
[central]
instance = "regulator-browser"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[[gateway]]
id = "gw1"
token_sha256 = "{gw}"
[[token]]
role = "regulator"
name = "inspector-li"
sha256 = "{regulator}"
[[token]]
role = "equipment_unit"
name = "west-mall-facilities"
unit = "West Mall Co."
sha256 = "{west}"
[[token]]
role = "inspection_agency"
name = "inspector-wang"
unit = "District Special Equipment Inspection Institute"
sha256 = "{agency}"
{tables}"#,
        west = token_hash(WEST_MALL),
        agency = token_hash(AGENCY),
        db = db.display(),
        gw = token_hash("gw1-token"),
        regulator = token_hash(REGULATOR),
        tables = fleet::central_tables(),
    )
}

#[tokio::test]
async fn ranked_list_and_scorecards_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&config_text(&dir.path().join("c.db")), Path::new("r.toml")).unwrap();
    let central = fleet::central_with_fleet(config).await;
    let results = common::browser::run_script(
        "regulator.mjs",
        vec![
            ("BASE_URL", format!("http://{}", central.addr)),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/regulator")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(results["grades"]["Slow Lifts"], "D");
    assert_eq!(results["risk_order"][0], "s1");
    assert_eq!(
        results["risk_paged"], results["risk_order"],
        "the pages of two make the whole ranking"
    );
    assert_eq!(results["csv_lines"], 3);
    central.stop().await;
}

#[tokio::test]
async fn a_hazard_is_walked_from_report_to_verified_closure_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&config_text(&dir.path().join("c.db")), Path::new("r.toml")).unwrap();
    let central = fleet::central_with_fleet(config).await;
    let base = format!("http://{}", central.addr);
    // The agency posts its report as its system would.
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/inspections"))
        .bearer_auth(AGENCY)
        .json(&serde_json::json!({
            "report_no": "DSEI-2026-0417", "gateway": "gw1", "equipment": "s1",
            "inspected_on": "2026-11-02", "conclusion": "pass_after_correction",
            "manufacturer": "Orient Elevator Works",
            "hazards": [
                { "description": "制动衬片磨损超限", "severity": "major",
                  "legal_basis": "TSG T7001-2023 2.8", "deadline": "2026-11-20", "product_defect": true },
                { "description": "轿厢应急照明亮度不足", "severity": "general",
                  "legal_basis": "TSG T7001-2023 8.6", "deadline": "2099-12-31" }
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let hazard = body["hazards"][0].as_str().unwrap().to_owned();
    let results = common::browser::run_script(
        "hazards.mjs",
        vec![
            ("BASE_URL", base),
            ("UNIT_TOKEN", WEST_MALL.into()),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("AGENCY_TOKEN", AGENCY.into()),
            ("HAZARD_ID", hazard),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/regulator")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(results["final"], "verified");
    assert_eq!(
        results["batch_reports"], 2,
        "the corrected batch's two reports"
    );
    assert!(results["refused"]
        .as_str()
        .unwrap()
        .contains("responsibility"));
    central.stop().await;
}

#[tokio::test]
async fn a_cylinder_page_opened_from_its_code_on_a_phone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&config_text(&dir.path().join("c.db")), Path::new("r.toml")).unwrap();
    let central = Central::start(config).await.unwrap();
    let base = format!("http://{}", central.addr);
    let client = reqwest::Client::new();
    let header = "code,owner,medium,type,made,last_inspection,next_inspection,scrapped,insured\n";
    for register in [
        "LPG-0001,城东液化气充装站,LPG,YSP-15,2019-05-01,2022-05-01,2026-05-01,否,是\n",
        "LPG-0001,城西液化气充装站,LPG,YSP-15,2019-05-01,2026-05-03,2099-05-03,否,是\n",
    ] {
        let r = client
            .post(format!("{base}/api/v1/cylinders/import"))
            .bearer_auth(REGULATOR)
            .body(format!("{header}{register}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }
    for (n, station, time) in [
        (1, "城东液化气充装站", "2026-04-10T02:00:00Z"),
        (2, "城西液化气充装站", "2099-06-01T02:00:00Z"),
    ] {
        let fill: seguard::model::FillRecord = serde_json::from_value(serde_json::json!({
            "schema": "seguard.fill.v1", "id": format!("00000000-0000-4000-a000-{n:012}"),
            "gateway": "gw1", "equipment": "scale-1", "station": station, "cylinder_code": "LPG-0001",
            "time": time, "medium": "LPG", "mass_kg": 14.5, "pressure_mpa": 0.8,
            "residual_pressure_mpa": 0.1, "operator": "张师傅", "accepted": true, "rejections": []
        }))
        .unwrap();
        central.store.ingest_fill(&fill, 0).await.unwrap();
    }
    // A cylinder no register declares, refused at the station: it gets a row from the fill.
    let refused: seguard::model::FillRecord = serde_json::from_value(serde_json::json!({
        "schema": "seguard.fill.v1", "id": "00000000-0000-4000-a000-000000000009",
        "gateway": "gw1", "equipment": "scale-1", "station": "城东液化气充装站", "cylinder_code": "LPG-0999",
        "time": "2026-04-11T02:00:00Z", "medium": "LPG", "operator": "张师傅",
        "accepted": false, "rejections": ["unregistered"]
    }))
    .unwrap();
    central.store.ingest_fill(&refused, 0).await.unwrap();
    let results = common::browser::run_script(
        "cylinder.mjs",
        vec![
            ("BASE_URL", base),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("CODE", "LPG-0001".into()),
            ("UNDECLARED", "LPG-0999".into()),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/regulator")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(results["state"], "valid");
    assert_eq!(results["undeclared_state"], "unregistered");
    central.stop().await;
}

#[tokio::test]
async fn a_refused_exchange_record_is_listed_and_requeued_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let key = format!("equipment:gw1:s1:{}", fleet::ms("2026-11-01T00:00:00Z"));
    let platform = fleet::receiver().await;
    platform.refuse.lock().unwrap().insert(key.clone());
    platform.down.store(0, Ordering::SeqCst);
    let port = platform.port;
    let text = format!(
        "{}\n[exchange]\nendpoint = \"http://127.0.0.1:{port}/records\"\narea_code = \"310115\"\npoll_interval_ms = 100\n",
        config_text(&dir.path().join("c.db"))
    );
    let central = Central::start(parse(&text, Path::new("r.toml")).unwrap())
        .await
        .unwrap();
    fleet::write(&central.store, &central.config).await;
    common::eventually(
        "the record refused, the rest sent",
        Duration::from_secs(20),
        || async {
            let q = central.store.exchange_status().await.ok()?;
            (q.refused == 1 && q.pending == 0 && q.sent > 0).then_some(())
        },
    )
    .await;
    assert!(!platform.delivered.lock().unwrap().contains_key(&key));
    // The platform was fixed; the regulator re-queues the record from the page.
    platform.refuse.lock().unwrap().clear();
    let results = common::browser::run_script(
        "exchange.mjs",
        vec![
            ("BASE_URL", format!("http://{}", central.addr)),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            ("KEY", key.clone()),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/regulator")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(results["after"], 0);
    common::eventually(
        "the re-queued record delivered",
        Duration::from_secs(10),
        || async {
            let delivered = platform.delivered.lock().unwrap();
            delivered.contains_key(&key).then_some(())
        },
    )
    .await;
    central.stop().await;
}
