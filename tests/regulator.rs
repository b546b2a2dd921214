//! The regulator's tools on real stores (SQLite and PostgreSQL), over the fleet of
//! `common/regulator_fleet.rs`: the risk ranking with its reasons, the maintenance-unit
//! scorecards with exact numbers, and both over HTTP with their scopes and CSV exports.

mod common;
#[path = "common/regulator_fleet.rs"]
mod fleet;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::postgres::Postgres;
use seguard::auth::token_hash;
use seguard::central::config::{parse, CentralConfig};
use seguard::central::scorecard::{self, Period};
use seguard::central::store::Store;
use seguard::central::{risk, Central};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Two tests of one body: on SQLite (a file in a temporary directory) and on PostgreSQL.
macro_rules! on_both_stores {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $body(&format!("sqlite://{}", dir.path().join("c.db").display())).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let pg = Postgres::start();
            $body(&pg.url()).await;
        }
    };
}

const REGULATOR: &str = "regulator-token";
const WEST_MALL: &str = "west-mall-token";
const SLOW_TEAM: &str = "slow-team-token";
const AGENCY: &str = "agency-token";
const AGENCY_NAME: &str = "District Special Equipment Inspection Institute";

fn config(store_url: &str) -> CentralConfig {
    parse(&config_text(store_url), Path::new("regulator.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn config_text(store_url: &str) -> String {
    format!(
        r#"
[central]
instance = "regulator-test"
http_listen = "127.0.0.1:0"
[store]
url = "{store_url}"
[[gateway]]
id = "gw1"
token_sha256 = "{gw}"
[[token]]
role = "regulator"
name = "inspector-li"
sha256 = "{regulator}"
[[token]]
role = "equipment_unit"
name = "west-mall"
unit = "West Mall Co."
sha256 = "{west}"
[[token]]
role = "rescue_team"
name = "slow-duty"
unit = "{slow}"
sha256 = "{slow_team}"
[[token]]
role = "inspection_agency"
name = "inspector-wang"
unit = "{agency_name}"
sha256 = "{agency}"
{tables}"#,
        agency_name = AGENCY_NAME,
        agency = token_hash(AGENCY),
        gw = token_hash("gw1-token"),
        regulator = token_hash(REGULATOR),
        west = token_hash(WEST_MALL),
        slow = fleet::SLOW,
        slow_team = token_hash(SLOW_TEAM),
        tables = fleet::central_tables(),
    )
}

/// The ranking at noon (Shanghai) on 30 November 2026, as (equipment, score, reasons), of
/// `selection`, with how many equipment it holds and the ranks of the rows.
async fn ranking_of(
    store: &Store,
    config: &CentralConfig,
    selection: &risk::Selection<'_>,
) -> (usize, Vec<usize>, Vec<(String, f64, Vec<String>)>) {
    let now = fleet::ms("2026-11-30T04:00:00Z");
    let ranking = risk::ranking(store, config, now, selection, |r| r)
        .await
        .unwrap();
    let ranks = ranking.rows.iter().map(|(rank, _)| *rank).collect();
    let rows = ranking
        .rows
        .into_iter()
        .map(|(_, r)| {
            let reasons = r
                .factors
                .iter()
                .map(|f| format!("{} {} × {:?} = {:?}", f.factor, f.value, f.weight, f.points))
                .collect();
            (r.id, r.score, reasons)
        })
        .collect();
    (ranking.total, ranks, rows)
}

async fn ranking_and_scorecards_hold(store_url: &str) {
    let config = config(store_url);
    let store = Store::open(store_url).await.unwrap();
    fleet::write(&store, &config).await;

    // The lift with a recurring fault and an overdue inspection tops the list; the uninsured,
    // old lift due for inspection follows; the autoclave's kind puts it above the quiet lifts.
    let (total, ranks, ranked) = ranking_of(&store, &config, &Default::default()).await;
    assert_eq!((total, ranks), (5, vec![1, 2, 3, 4, 5]));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ranked,
        vec![
            (
                "s1".into(),
                63.0,
                s(&[
                    "inspection_overdue 46 × 25.0 = 25.0",
                    "maintenance_grade \"D\" × 15.0 = 15.0",
                    "recurring_faults 2 × 5.0 = 10.0",
                    "kind \"elevator\" × 5.0 = 5.0",
                    "alarms 4 × 1.0 = 4.0",
                    "trapped 1 × 4.0 = 4.0",
                ])
            ),
            (
                "s2".into(),
                48.0,
                s(&[
                    "maintenance_grade \"D\" × 15.0 = 15.0",
                    "inspection_due_soon 20 × 10.0 = 10.0",
                    "uninsured 1 × 8.0 = 8.0",
                    "age 20 × 1.0 = 5.0",
                    "kind \"elevator\" × 5.0 = 5.0",
                    "trapped 1 × 4.0 = 4.0",
                    "alarms 1 × 1.0 = 1.0",
                ])
            ),
            (
                "a1".into(),
                11.0,
                s(&["kind \"autoclave\" × 10.0 = 10.0", "alarms 1 × 1.0 = 1.0"])
            ),
            (
                "q1".into(),
                10.0,
                s(&[
                    "kind \"elevator\" × 5.0 = 5.0",
                    "trapped 1 × 4.0 = 4.0",
                    "alarms 1 × 1.0 = 1.0"
                ])
            ),
            (
                "q2".into(),
                10.0,
                s(&[
                    "kind \"elevator\" × 5.0 = 5.0",
                    "trapped 1 × 4.0 = 4.0",
                    "alarms 1 × 1.0 = 1.0"
                ])
            ),
        ]
    );
    // A page is the same rows with the same ranks; ties keep their order (q1 before q2).
    let page = risk::Selection {
        offset: 2,
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        ranking_of(&store, &config, &page).await,
        (5, vec![3, 4], ranked[2..4].to_vec())
    );
    // Days are counted in `[central] time_zone`: at 01:00 on 1 December in Shanghai (still 30
    // November in UTC) s2's inspection on 20 December is 19 days away, not 20.
    let late = fleet::ms("2026-11-30T17:00:00Z");
    let ranking = risk::ranking(&store, &config, late, &Default::default(), |r| r)
        .await
        .unwrap();
    let s2 = &ranking.rows.iter().find(|(_, r)| r.id == "s2").unwrap().1;
    let due = s2
        .factors
        .iter()
        .find(|f| f.factor == "inspection_due_soon");
    assert_eq!(
        due.map(|f| f.value.clone()),
        Some(json!(19)),
        "{:?}",
        s2.factors
    );
    // Ranks count within a selection: the lifts alone, from their first.
    let lifts = risk::Selection {
        kind: Some("elevator"),
        offset: 1,
        limit: 10,
        ..Default::default()
    };
    let (total, ranks, rows) = ranking_of(&store, &config, &lifts).await;
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        (total, ranks, ids),
        (4, vec![2, 3, 4], vec!["s2", "q1", "q2"])
    );

    // November's scorecards: the unit that answers slowly gets the worse grade.
    let period = Period::month("2026-11", chrono_tz::Asia::Shanghai).unwrap();
    let cards = scorecard::for_period(&store, &config, &period, fleet::ms("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    let view: Vec<Value> = cards
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(
        view,
        vec![
            json!({
                "unit": "Quick Lifts", "elevators": 2, "insured": 2, "insurance_rate": 1.0,
                "trapped": 2, "trapped_per_100": 100.0, "dispatches": 2,
                "responses_counted": 2, "responded_in_time": 2, "response_rate": 1.0,
                "arrivals_counted": 2, "arrived_in_time": 2, "arrival_rate": 1.0,
                "response_median_s": 90.0, "response_p90_s": 114.0,
                "arrival_median_s": 750.0, "arrival_p90_s": 870.0,
                "second_level": 0, "second_level_rate": 0.0, "recurring_faults": 0,
                "grade": "A", "shortfalls": []
            }),
            json!({
                "unit": "Slow Lifts", "elevators": 2, "insured": 1, "insurance_rate": 0.5,
                "trapped": 2, "trapped_per_100": 100.0, "dispatches": 2,
                "responses_counted": 2, "responded_in_time": 1, "response_rate": 0.5,
                "arrivals_counted": 2, "arrived_in_time": 1, "arrival_rate": 0.5,
                "response_median_s": 170.0, "response_p90_s": 170.0,
                "arrival_median_s": 1700.0, "arrival_p90_s": 1700.0,
                "second_level": 1, "second_level_rate": 0.5, "recurring_faults": 2,
                "grade": "D",
                "shortfalls": [
                    { "grade": "C", "measure": "response_rate", "value": 0.5, "limit": 0.7 },
                    { "grade": "C", "measure": "arrival_rate", "value": 0.5, "limit": 0.7 },
                    { "grade": "C", "measure": "insurance_rate", "value": 0.5, "limit": 0.7 },
                    { "grade": "C", "measure": "second_level_rate", "value": 0.5, "limit": 0.1 }
                ]
            }),
        ]
    );
    // The ranking's grades skip the recurring faults (no grade reads them): same grades and
    // measures, recurring faults left at 0.
    let graded = scorecard::for_grades(
        &store,
        &config,
        period.from_ms,
        period.to_ms,
        fleet::ms("2026-12-01T00:00:00Z"),
    )
    .await
    .unwrap();
    let without_recurrences: Vec<scorecard::Scorecard> = cards
        .iter()
        .map(|c| scorecard::Scorecard {
            recurring_faults: 0,
            ..c.clone()
        })
        .collect();
    assert_eq!(graded, without_recurrences);
    assert!(cards.iter().any(|c| c.recurring_faults > 0));
    // October had nothing: no unit has data, so no grade is lowered.
    let october = Period::month("2026-10", chrono_tz::Asia::Shanghai).unwrap();
    let cards = scorecard::for_period(&store, &config, &october, fleet::ms("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        cards
            .iter()
            .map(|c| (c.unit.as_str(), c.dispatches, c.grade))
            .collect::<Vec<_>>(),
        vec![("Quick Lifts", 0, "A"), ("Slow Lifts", 0, "D")],
        "no dispatch lowers no grade, but Slow Lifts' uninsured lift keeps it at D"
    );
    store.close().await;
}

on_both_stores!(ranking_and_scorecards_hold: ranking_and_scorecards_on_sqlite, ranking_and_scorecards_on_postgres);

/// Months begin at local midnight in `[central] time_zone`: a lift trapped at 23:30 on the
/// last day of November in Los Angeles (07:30 on 1 December in UTC, and in Shanghai) counts in
/// November's scorecard, not December's; November there begins in summer time (UTC−7) and
/// ends in winter time (UTC−8).
async fn a_month_ends_at_local_midnight_in_the_zone(store_url: &str) {
    let text = config_text(store_url).replace(
        "[central]\n",
        "[central]\ntime_zone = \"America/Los_Angeles\"\n",
    );
    let config = parse(&text, Path::new("regulator.toml")).unwrap_or_else(|e| panic!("{e}"));
    // Written before central starts, so that its dispatch timers find the rescue done.
    let store = Store::open(store_url).await.unwrap();
    store
        .merge_registry(&fleet::registry(None), fleet::ms("2026-11-01T00:00:00Z"))
        .await
        .unwrap();
    fleet::rescue(
        &store,
        &config,
        &fleet::Rescue {
            n: 50,
            lift: "q1",
            unit: fleet::QUICK,
            escalated: false,
            raised: "2026-11-30T23:30:00-08:00",
            responded: "2026-11-30T23:31:00-08:00",
            on_site: "2026-11-30T23:45:00-08:00",
            cleared: "2026-11-30T23:50:00-08:00",
            completed: "2026-12-01T00:10:00-08:00",
        },
    )
    .await;
    store.close().await;
    let central = Central::start(config.clone()).await.unwrap();
    let router = router_of(&central);
    let quick = |month: &'static str| {
        let router = router.clone();
        async move {
            let (status, _, body) = get(
                &router,
                &format!("/api/v1/scorecards?month={month}"),
                REGULATOR,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            let card = v["units"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["unit"] == fleet::QUICK)
                .cloned()
                .unwrap();
            (
                v["from"].as_str().unwrap().to_owned(),
                v["to"].as_str().unwrap().to_owned(),
                card["trapped"].as_i64().unwrap(),
                card["dispatches"].as_i64().unwrap(),
            )
        }
    };
    assert_eq!(
        quick("2026-11").await,
        (
            "2026-11-01T07:00:00.000Z".to_owned(),
            "2026-12-01T08:00:00.000Z".to_owned(),
            1,
            1
        )
    );
    assert_eq!(
        quick("2026-12").await,
        (
            "2026-12-01T08:00:00.000Z".to_owned(),
            "2027-01-01T08:00:00.000Z".to_owned(),
            0,
            0
        )
    );
    central.stop().await;
}

on_both_stores!(a_month_ends_at_local_midnight_in_the_zone: a_month_ends_at_local_midnight_in_the_zone_on_sqlite, a_month_ends_at_local_midnight_in_the_zone_on_postgres);

async fn get(router: &axum::Router, path: &str, token: &str) -> (StatusCode, String, String) {
    send(router, Request::get(path), token, Body::empty()).await
}

async fn post(router: &axum::Router, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(path).header("content-type", "application/json");
    let (status, _, text) = send(router, request, token, Body::from(body.to_string())).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn send(
    router: &axum::Router,
    request: axum::http::request::Builder,
    token: &str,
    body: Body,
) -> (StatusCode, String, String) {
    let response = router
        .clone()
        .oneshot(
            request
                .header("authorization", format!("Bearer {token}"))
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The API: filters, scopes and CSV, on the running central (the wall clock decides only
/// how many days an inspection is overdue, not the order asserted here).
#[tokio::test]
async fn risk_and_scorecards_over_http_with_scopes_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let config = config(&url);
    let central = fleet::central_with_fleet(config.clone()).await;
    let router = router_of(&central);
    let ids = |body: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["equipment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, _, body) = get(&router, "/api/v1/risk", REGULATOR).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body)[0], "s1");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["settings"]["weight"]["recurring_faults"], 5.0,
        "the weights are in the answer"
    );
    assert_eq!(
        (v["total"].as_u64(), v["limit"].as_u64()),
        (Some(5), Some(100))
    );
    // Paged: the second row alone, at its rank; a page size out of bounds is refused.
    let (_, _, body) = get(&router, "/api/v1/risk?offset=1&limit=1", REGULATOR).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            ids(&body),
            page["equipment"][0]["rank"].as_u64(),
            page["total"].as_u64()
        ),
        (vec!["s2".to_owned()], Some(2), Some(5))
    );
    for bad in ["limit=0", "limit=1001", "limit=many"] {
        let (status, _, body) = get(&router, &format!("/api/v1/risk?{bad}"), REGULATOR).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (_, _, body) = get(&router, "/api/v1/risk?area=JING%27AN", REGULATOR).await;
    assert_eq!(ids(&body), ["s1", "s2"]);
    let (_, _, body) = get(&router, "/api/v1/risk?kind=autoclave", REGULATOR).await;
    assert_eq!(ids(&body), ["a1"]);
    // An equipment unit sees its own equipment only; a rescue team none.
    let (_, _, body) = get(&router, "/api/v1/risk", WEST_MALL).await;
    assert_eq!(ids(&body), ["s1", "s2"]);
    assert_eq!(
        get(&router, "/api/v1/risk", SLOW_TEAM).await.0,
        StatusCode::FORBIDDEN
    );
    // CSV: UTF-8 with a byte-order mark, one line per equipment after the header.
    let (status, content_type, csv) =
        get(&router, "/api/v1/risk?format=csv&area=jing", REGULATOR).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "text/csv; charset=utf-8")
    );
    assert!(
        csv.starts_with("\u{feff}rank,score,gateway,equipment,"),
        "{csv}"
    );
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("1,"), "{csv}");
    assert!(
        lines[1]
            .contains(",s1,Lift s1,elevator,West Mall Co.,Slow Lifts,\"5 West Road, Jing'an\","),
        "{csv}"
    );

    // Scorecards of November: the regulator sees both units, the slow unit's team its own.
    let (status, _, body) = get(&router, "/api/v1/scorecards?month=2026-11", REGULATOR).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["from"], "2026-10-31T16:00:00.000Z");
    let grades: Vec<(&str, &str)> = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["unit"].as_str().unwrap(), u["grade"].as_str().unwrap()))
        .collect();
    assert_eq!(grades, [("Quick Lifts", "A"), ("Slow Lifts", "D")]);
    let (_, _, body) = get(&router, "/api/v1/scorecards?month=2026-11", SLOW_TEAM).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["units"].as_array().unwrap().len(), 1);
    assert_eq!(v["units"][0]["unit"], "Slow Lifts");
    assert_eq!(
        get(&router, "/api/v1/scorecards", WEST_MALL).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&router, "/api/v1/scorecards?month=2026-13", REGULATOR)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (_, _, csv) = get(
        &router,
        "/api/v1/scorecards?month=2026-11&format=csv",
        REGULATOR,
    )
    .await;
    assert_eq!(
        csv,
        "\u{feff}period,unit,grade,elevators,insured,insurance_rate,trapped,trapped_per_100,dispatches,response_rate,arrival_rate,response_median_s,response_p90_s,arrival_median_s,arrival_p90_s,second_level,recurring_faults\r\n\
         2026-11,Quick Lifts,A,2,2,1,2,100,2,1,1,90,114,750,870,0,0\r\n\
         2026-11,Slow Lifts,D,2,1,0.5,2,100,2,0.5,0.5,170,170,1700,1700,1,2\r\n"
    );
    central.stop().await;
}

fn router_of(central: &Central) -> axum::Router {
    seguard::central::api::router(seguard::central::api::AppState {
        config: central.config.clone(),
        store: central.store.clone(),
        metrics: central.metrics.clone(),
        mqtt_connected: std::sync::Arc::new(true.into()),
        wake: Default::default(),
    })
}

/// One report, two ledgers, three no-lets-go: an agency's report puts two hazards on the
/// using unit's ledger (one also on the manufacturer's), the overdue one raises one alarm and
/// adds to the risk score, and an item closes only with cause, responsibility and corrective
/// action recorded and a verifier's yes.
async fn hazards_are_followed_to_verified_closure(store_url: &str) {
    let config = config(store_url);
    let central = fleet::central_with_fleet(config.clone()).await;
    let router = router_of(&central);
    let report = json!({
        "report_no": "DSEI-2026-0417", "gateway": "gw1", "equipment": "s1",
        "inspected_on": "2026-11-02", "conclusion": "pass_after_correction",
        "manufacturer": "Orient Elevator Works",
        "hazards": [
            { "description": "brake lining worn below limit", "severity": "major",
              "legal_basis": "TSG T7001-2023 item 2.8", "deadline": "2026-11-20", "product_defect": true },
            { "description": "car emergency light dim", "severity": "general",
              "legal_basis": "TSG T7001-2023 item 8.6", "deadline": "2099-12-31" }
        ]
    });
    let (status, body) = post(&router, "/api/v1/inspections", AGENCY, report.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids: Vec<String> = serde_json::from_value(body["hazards"].clone()).unwrap();
    assert_eq!(ids.len(), 2);
    let (status, body) = post(&router, "/api/v1/inspections", AGENCY, report.clone()).await;
    assert_eq!(
        (status, &body["duplicate"]),
        (StatusCode::OK, &json!(true)),
        "posted twice, stored once"
    );
    let mut unknown = report.clone();
    unknown["equipment"] = json!("nowhere");
    unknown["report_no"] = json!("DSEI-2026-0418");
    assert_eq!(
        post(&router, "/api/v1/inspections", AGENCY, unknown)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let mut invalid = report.clone();
    invalid["hazards"][0]["legal_basis"] = json!(" ");
    let (status, body) = post(&router, "/api/v1/inspections", AGENCY, invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["problems"], json!(["hazard 1: legal_basis is empty"]));
    assert_eq!(
        post(&router, "/api/v1/inspections", REGULATOR, report)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // The ledgers: the regulator's, overdue first; the manufacturer's holds the product defect;
    // the using unit sees its own; a rescue team none.
    let list = |body: String| -> Vec<(String, bool, String)> {
        let v: Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["description"].as_str().unwrap().to_owned(),
                    h["overdue"].as_bool().unwrap(),
                    h["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let brake = (
        "brake lining worn below limit".to_owned(),
        true,
        "open".to_owned(),
    );
    let light = (
        "car emergency light dim".to_owned(),
        false,
        "open".to_owned(),
    );
    assert_eq!(
        list(get(&router, "/api/v1/hazards", REGULATOR).await.2),
        [brake.clone(), light.clone()]
    );
    assert_eq!(
        list(
            get(
                &router,
                "/api/v1/hazards?manufacturer=Orient%20Elevator%20Works",
                REGULATOR
            )
            .await
            .2
        ),
        [brake]
    );
    assert_eq!(
        list(get(&router, "/api/v1/hazards", WEST_MALL).await.2).len(),
        2
    );
    assert_eq!(
        list(get(&router, "/api/v1/hazards", AGENCY).await.2).len(),
        2
    );
    assert_eq!(
        get(&router, "/api/v1/hazards", SLOW_TEAM).await.0,
        StatusCode::FORBIDDEN
    );

    // Overdue: one alarm, once, on the lift; and the risk score counts both open items and
    // the overdue one (at noon on 30 November: the brake's deadline has passed).
    let now = seguard::central::now_ms();
    // (Central's own check runs every 30 s and may have raised it first: then this call finds
    // nothing to do; either way there is one alarm.)
    assert!(
        central
            .store
            .raise_overdue_hazards(now, chrono_tz::Asia::Shanghai)
            .await
            .unwrap()
            <= 1
    );
    assert_eq!(
        central
            .store
            .raise_overdue_hazards(now, chrono_tz::Asia::Shanghai)
            .await
            .unwrap(),
        0
    );
    let (_, _, alarms) = get(&router, "/api/v1/alarms?state=active", REGULATOR).await;
    let alarms: Value = serde_json::from_str(&alarms).unwrap();
    let rules: Vec<&str> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["s1.hazard_overdue"]);
    let (_, _, ranked) = ranking_of(&central.store, &config, &Default::default()).await;
    assert_eq!(ranked[0].0, "s1");
    assert_eq!(ranked[0].1, 103.0);
    assert!(
        ranked[0]
            .2
            .contains(&"open_hazards 2 × 10.0 = 20.0".to_owned()),
        "{:?}",
        ranked[0].2
    );
    assert!(
        ranked[0]
            .2
            .contains(&"overdue_hazards 1 × 20.0 = 20.0".to_owned()),
        "{:?}",
        ranked[0].2
    );

    // Three no-lets-go: nothing to verify before a correction; a correction with the
    // responsibility unclear is refused; only the using unit records one.
    let brake_id = &ids[0];
    let verify = format!("/api/v1/hazards/{brake_id}/verify");
    let correct = format!("/api/v1/hazards/{brake_id}/correction");
    assert_eq!(
        post(&router, &verify, REGULATOR, json!({ "accepted": true }))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let unclear = json!({ "cause": "lining wore early", "responsibility": " ", "corrective_action": "replaced lining" });
    let (status, body) = post(&router, &correct, WEST_MALL, unclear).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "not closable while these are unclear: responsibility"
    );
    let full = json!({ "cause": "lining wore early: batch 2024-07 of the maker",
                       "responsibility": "manufacturer (material); maintenance unit missed the wear check",
                       "corrective_action": "lining replaced 2026-11-25; wear checked monthly" });
    assert_eq!(
        post(&router, &correct, REGULATOR, full.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = post(&router, &correct, WEST_MALL, full.clone()).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("corrected")),
        "{body}"
    );
    // Sent back by the regulator, corrected again, verified by the agency.
    let (status, body) = post(
        &router,
        &verify,
        REGULATOR,
        json!({ "accepted": false, "note": "attach the test record" }),
    )
    .await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["review_note"].as_str()
        ),
        (StatusCode::OK, Some("open"), Some("attach the test record"))
    );
    assert_eq!(
        post(&router, &correct, WEST_MALL, full).await.0,
        StatusCode::OK
    );
    let (status, body) = post(
        &router,
        &verify,
        AGENCY,
        json!({ "accepted": true, "note": "brake test passed" }),
    )
    .await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["verified_by"].as_str()
        ),
        (StatusCode::OK, Some("verified"), Some("inspector-wang"))
    );
    assert_eq!(
        post(&router, &verify, AGENCY, json!({ "accepted": true }))
            .await
            .0,
        StatusCode::CONFLICT,
        "closed stays closed"
    );
    // Its alarm cleared; the open ledger holds the light only, the full one both.
    let (_, _, alarms) = get(&router, "/api/v1/alarms?state=active", REGULATOR).await;
    assert_eq!(serde_json::from_str::<Value>(&alarms).unwrap(), json!([]));
    assert_eq!(
        list(get(&router, "/api/v1/hazards", REGULATOR).await.2),
        [light]
    );
    assert_eq!(
        list(
            get(&router, "/api/v1/hazards?closed=true", REGULATOR)
                .await
                .2
        )
        .len(),
        2
    );
    assert_eq!(
        central
            .store
            .raise_overdue_hazards(now, chrono_tz::Asia::Shanghai)
            .await
            .unwrap(),
        0
    );
    let (_, _, reports) = get(&router, "/api/v1/inspections", AGENCY).await;
    let reports: Value = serde_json::from_str(&reports).unwrap();
    assert_eq!(
        (
            reports[0]["hazards"].as_i64(),
            reports[0]["open_hazards"].as_i64()
        ),
        (Some(2), Some(1))
    );
    central.stop().await;
}

on_both_stores!(hazards_are_followed_to_verified_closure: hazards_are_followed_to_verified_closure_on_sqlite, hazards_are_followed_to_verified_closure_on_postgres);

/// A batch of inspection reports from the agency's spreadsheet: one line per hazard, Chinese
/// text, a quoted field with a comma, CRLF line ends and a byte-order mark.
const BATCH_HEADER: &str = "\u{feff}report_no,gateway,equipment,inspected_on,conclusion,manufacturer,description,severity,legal_basis,deadline,product_defect\r\n";
const BATCH_LINES: [&str; 5] = [
    "DSEI-2026-0501,gw1,s1,2026-11-24,整改后合格,Orient Elevator Works,制动器闸瓦磨损超限,重大,\"TSG T7001-2023 附件A, 2.8\",2026-12-10,是\r\n",
    "DSEI-2026-0501,gw1,s1,2026-11-24,整改后合格,Orient Elevator Works,轿厢应急照明亮度不足,一般,TSG T7001-2023 附件A 8.6,2027-01-15,否\r\n",
    "DSEI-2026-0502,gw1,q1,2026-11-25,合格,,,,,,\r\n",
    "DSEI-2026-0503,gw1,q2,2026-11-25,pass_after_correction,,层门门锁啮合长度不足,major,TSG T7001-2023 附件A 6.8,2026-12-20,\r\n",
    "DSEI-2026-0504,gw1,a9,2026-11-26,合格,,,,,,\r\n",
];

async fn post_batch(router: &axum::Router, token: &str, csv: &str) -> (StatusCode, Value) {
    let request = Request::post("/api/v1/inspections/batch").header("content-type", "text/csv");
    let (status, _, text) = send(router, request, token, Body::from(csv.to_owned())).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A batch of reports is stored whole or not at all: a bad line refuses the file with every
/// problem at its line (in Chinese and English) and stores nothing; the corrected file is
/// stored in one go, and uploading it again stores nothing twice.
async fn inspection_batches_are_stored_whole(store_url: &str) {
    let config = config(store_url);
    let central = fleet::central_with_fleet(config.clone()).await;
    let router = router_of(&central);
    let stored = |router: axum::Router| async move {
        let (_, _, body) = get(&router, "/api/v1/inspections", AGENCY).await;
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    // Line 5's deadline comes before its inspection (a typo for 2026-12-20).
    let bad = BATCH_LINES[3].replace("2026-12-20", "2026-11-20");
    let file = format!(
        "{BATCH_HEADER}{}{}{}{bad}",
        BATCH_LINES[0], BATCH_LINES[1], BATCH_LINES[2]
    );
    let (status, body) = post_batch(&router, AGENCY, &file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["problems"],
        json!([{ "line": 5,
                 "en": "report DSEI-2026-0503: deadline 2026-11-20 is before the inspection on 2026-11-25",
                 "zh": "报告 DSEI-2026-0503：整改期限 2026-11-20 早于检验日 2026-11-25" }])
    );
    assert_eq!(
        stored(router.clone()).await,
        0,
        "nothing of a refused file is stored"
    );
    // Equipment central does not know refuses the file too.
    let file = format!("{BATCH_HEADER}{}", BATCH_LINES.concat());
    let (status, body) = post_batch(&router, AGENCY, &file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["problems"],
        json!([{ "line": 6, "en": "report DSEI-2026-0504: central knows no equipment gw1/a9",
                 "zh": "报告 DSEI-2026-0504：中心不认识设备 gw1/a9" }])
    );
    assert_eq!(stored(router.clone()).await, 0);
    // The corrected file: three reports, three hazards on the ledgers.
    let file = format!("{BATCH_HEADER}{}", BATCH_LINES[..4].concat());
    let (status, body) = post_batch(&router, AGENCY, &file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outcomes: Vec<(i64, &str, i64, bool)> = body["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["report_no"].as_str().unwrap(),
                r["hazards"].as_i64().unwrap(),
                r["duplicate"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (2, "DSEI-2026-0501", 2, false),
            (4, "DSEI-2026-0502", 0, false),
            (5, "DSEI-2026-0503", 1, false)
        ]
    );
    assert_eq!(
        (body["created"].as_i64(), body["duplicates"].as_i64()),
        (Some(3), Some(0))
    );
    let (_, _, ledger) = get(&router, "/api/v1/hazards", REGULATOR).await;
    let ledger: Value = serde_json::from_str(&ledger).unwrap();
    let items: Vec<(&str, &str, &str, &str)> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["equipment"].as_str().unwrap(),
                h["severity"].as_str().unwrap(),
                h["legal_basis"].as_str().unwrap(),
                h["deadline"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("s1", "major", "TSG T7001-2023 附件A, 2.8", "2026-12-10"),
            ("q2", "major", "TSG T7001-2023 附件A 6.8", "2026-12-20"),
            ("s1", "general", "TSG T7001-2023 附件A 8.6", "2027-01-15"),
        ]
    );
    let (_, _, maker) = get(
        &router,
        "/api/v1/hazards?manufacturer=Orient%20Elevator%20Works",
        REGULATOR,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&maker)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "the worn brake is a product defect: on the manufacturer's ledger too"
    );
    // The same file again: every report a duplicate, nothing stored twice.
    let (status, body) = post_batch(&router, AGENCY, &file).await;
    assert_eq!(
        (
            status,
            body["created"].as_i64(),
            body["duplicates"].as_i64()
        ),
        (StatusCode::OK, Some(0), Some(3))
    );
    assert_eq!(stored(router.clone()).await, 3);
    assert_eq!(
        post_batch(&router, REGULATOR, &file).await.0,
        StatusCode::FORBIDDEN,
        "only an inspection agency posts reports"
    );
    central.stop().await;
}

on_both_stores!(inspection_batches_are_stored_whole: inspection_batches_are_stored_whole_on_sqlite, inspection_batches_are_stored_whole_on_postgres);

fn fill(
    n: u32,
    station: &str,
    code: &str,
    time: &str,
    rejections: &[&str],
) -> seguard::model::FillRecord {
    serde_json::from_value(json!({
        "schema": "seguard.fill.v1", "id": format!("00000000-0000-4000-a000-{n:012}"),
        "gateway": "gw1", "equipment": format!("scale-{station}"), "station": station,
        "cylinder_code": code, "time": time, "medium": "LPG", "mass_kg": 14.5,
        "pressure_mpa": 0.8, "residual_pressure_mpa": 0.1, "operator": "op-7",
        "accepted": rejections.is_empty(), "rejections": rejections,
    }))
    .unwrap()
}

async fn post_csv(router: &axum::Router, token: &str, csv: &str) -> (StatusCode, Value) {
    let request = Request::post("/api/v1/cylinders/import").header("content-type", "text/csv");
    let (status, _, text) = send(router, request, token, Body::from(csv.to_owned())).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A cylinder's whole life: the register from two imports (owner change, inspection), the
/// fills and refusals the gateways reported, and the indicators per station.
async fn cylinders_are_traced_by_code(store_url: &str) {
    let config = config(store_url);
    let central = Central::start(config.clone()).await.unwrap();
    let router = router_of(&central);
    let header = "code,owner,medium,type,made,last_inspection,next_inspection,scrapped,insured\n";
    let first = format!(
        "{header}LPG-0001,Station A,LPG,YSP-15,2019-05-01,2022-05-01,2026-05-01,no,yes\n\
                         LPG-0002,Station A,LPG,YSP-15,2020-01-01,2024-01-01,2028-01-01,no,no\n\
                         LPG-0003,Station B,LPG,YSP-15,2008-01-01,2020-01-01,2024-01-01,yes,\n"
    );
    let (status, body) = post_csv(&router, REGULATOR, &first).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "registered": 3, "updated": 0, "unchanged": 0 })
        )
    );
    let second = format!(
        "{header}LPG-0001,Station B,LPG,YSP-15,2019-05-01,2026-05-03,2030-05-03,no,yes\n\
                          LPG-0002,Station A,LPG,YSP-15,2020-01-01,2024-01-01,2028-01-01,no,no\n"
    );
    let (status, body) = post_csv(&router, REGULATOR, &second).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "registered": 0, "updated": 1, "unchanged": 1 })
        )
    );
    let (status, body) = post_csv(
        &router,
        REGULATOR,
        &format!("{header}X-1,,LPG,t,,,,maybe,\n"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["problems"],
        json!([
            { "line": 2, "en": "scrapped `maybe` is not yes or no", "zh": "scrapped `maybe` 不是“是”或“否”" },
            { "line": 2, "en": "owner is empty", "zh": "owner（产权单位）为空" }
        ])
    );
    assert_eq!(
        post_csv(&router, WEST_MALL, &second).await.0,
        StatusCode::BAD_REQUEST,
        "not its register"
    );
    assert_eq!(
        post_csv(&router, SLOW_TEAM, &second).await.0,
        StatusCode::FORBIDDEN
    );

    for (n, station, code, time, why) in [
        (1, "Station A", "LPG-0001", "2026-04-10T02:00:00Z", &[][..]),
        (2, "Station A", "LPG-0002", "2026-04-10T03:00:00Z", &[]),
        (
            3,
            "Station A",
            "UNREG-9",
            "2026-04-11T03:00:00Z",
            &["unregistered"],
        ),
        (
            4,
            "Station B",
            "LPG-0003",
            "2026-04-12T03:00:00Z",
            &["scrapped"],
        ),
        (5, "Station B", "LPG-0001", "2026-05-20T03:00:00Z", &[]),
    ] {
        assert!(central
            .store
            .ingest_fill(&fill(n, station, code, time, why), 0)
            .await
            .unwrap());
    }
    let (status, _, body) = get(&router, "/api/v1/cylinders/LPG-0001", REGULATOR).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["register"]["owner"], "Station B");
    assert_eq!(v["register"]["last_inspection"], "2026-05-03");
    let events: Vec<(&str, &str)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("registered", "LPG YSP-15 (Station A)"),
            ("inspected", "2026-05-03"),
            ("owner_changed", "Station A → Station B")
        ]
    );
    let stations: Vec<&str> = v["fills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["station"].as_str().unwrap())
        .collect();
    assert_eq!(stations, ["Station B", "Station A"], "newest first");
    assert_eq!(
        get(&router, "/api/v1/cylinders/LPG-0001", WEST_MALL)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&router, "/api/v1/cylinders/NOPE-1", REGULATOR).await.0,
        StatusCode::NOT_FOUND
    );

    let indicators = |undeclared: i64, insured: i64| {
        json!([
            { "station": "Station A", "cylinders": 3, "labelled": 2, "labelling_rate": 2.0 / 3.0,
              "undeclared": undeclared, "insured": insured, "insurance_rate": insured as f64 / 3.0,
              "fills": 3, "refused": 1, "refused_by_reason": { "unregistered": 1 } },
            { "station": "Station B", "cylinders": 2, "labelled": 2, "labelling_rate": 1.0,
              "undeclared": 0, "insured": 1, "insurance_rate": 0.5, "fills": 2, "refused": 1,
              "refused_by_reason": { "scrapped": 1 } }
        ])
    };
    let (_, _, body) = get(&router, "/api/v1/cylinders/indicators", REGULATOR).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        indicators(1, 1)
    );

    // The code no register declared has a row of its own, from its fill: the regulator sees it.
    let of = |body: &str| -> (Value, Vec<(String, String)>, usize) {
        let v: Value = serde_json::from_str(body).unwrap();
        let events = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["detail"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (
            v["register"].clone(),
            events,
            v["fills"].as_array().unwrap().len(),
        )
    };
    let (status, _, body) = get(&router, "/api/v1/cylinders/UNREG-9", REGULATOR).await;
    assert_eq!(status, StatusCode::OK);
    let (register, events, fills) = of(&body);
    assert_eq!(
        (
            register["origin"].as_str(),
            register["owner"].as_str(),
            register["medium"].as_str(),
            fills
        ),
        (Some("fills"), Some(""), Some("LPG"), 1)
    );
    assert_eq!(
        events,
        [("seen_in_fill".to_owned(), "Station A".to_owned())]
    );
    // A later import declares it: the details fill in, its fill and first sighting stay; the
    // labelling rate still counts the fill that found it unregistered as unlabelled.
    let (status, body) = post_csv(
        &router,
        REGULATOR,
        &format!("{header}UNREG-9,Station A,LPG,YSP-15,2021-03-01,2025-03-01,2029-03-01,no,yes\n"),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "registered": 1, "updated": 0, "unchanged": 0 })
        )
    );
    let (_, _, body) = get(&router, "/api/v1/cylinders/UNREG-9", REGULATOR).await;
    let (register, events, fills) = of(&body);
    assert_eq!(
        (
            register["origin"].as_str(),
            register["owner"].as_str(),
            register["next_inspection"].as_str(),
            fills
        ),
        (Some("register"), Some("Station A"), Some("2029-03-01"), 1)
    );
    assert_eq!(
        events,
        [
            ("seen_in_fill".to_owned(), "Station A".to_owned()),
            ("registered".to_owned(), "LPG YSP-15 (Station A)".to_owned())
        ]
    );
    let (_, _, body) = get(&router, "/api/v1/cylinders/indicators", REGULATOR).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        indicators(0, 2)
    );
    central.stop().await;
}

on_both_stores!(cylinders_are_traced_by_code: cylinders_are_traced_by_code_on_sqlite, cylinders_are_traced_by_code_on_postgres);

/// The daily indicators the fleet (with the fills `FILLS`) should give on `date` at `now`,
/// worked out from the fleet's own facts, not from the store.
fn expected_indicators(date: chrono::NaiveDate, now: i64) -> Value {
    let equipment: Vec<Value> = fleet::EQUIPMENT.map(fleet::equipment).to_vec();
    let dated: Vec<&Value> = equipment
        .iter()
        .filter(|e| e["next_inspection"].is_string())
        .collect();
    let overdue = dated
        .iter()
        .filter(|e| e["next_inspection"].as_str().unwrap() < date.to_string().as_str())
        .count();
    let elevators: Vec<&Value> = equipment
        .iter()
        .filter(|e| e["kind"] == "elevator")
        .collect();
    let insured = elevators.iter().filter(|e| e["insured"] == true).count();
    let codes: BTreeSet<&str> = FILLS.iter().map(|f| f.1).collect();
    let labelled: BTreeSet<&str> = FILLS
        .iter()
        .filter(|f| !f.3.contains(&"unregistered"))
        .map(|f| f.1)
        .collect();
    let (respond, arrive) = (180_000, 1_800_000);
    let responded = fleet::RESCUES
        .iter()
        .filter(|r| fleet::ms(r.responded) - fleet::ms(r.raised) <= respond)
        .count();
    let arrived = fleet::RESCUES
        .iter()
        .filter(|r| fleet::ms(r.on_site) - fleet::ms(r.raised) <= arrive)
        .count();
    let raised: Vec<i64> = fleet::ALARMS
        .iter()
        .map(|a| fleet::ms(a.3))
        .chain(fleet::RESCUES.iter().map(|r| fleet::ms(r.raised)))
        .collect();
    assert!(
        raised.len() <= 10,
        "the fleet has too few alarms for a flood"
    );
    let last_day = raised
        .iter()
        .filter(|t| **t >= now - 86_400_000 && **t <= now)
        .count();
    let rate = |a: usize, b: usize| {
        if b == 0 {
            Value::Null
        } else {
            json!(a as f64 / b as f64)
        }
    };
    json!({
        "inspection_overdue": { "overdue": overdue, "with_date": dated.len(), "rate": rate(overdue, dated.len()) },
        "elevator_insurance": { "insured": insured, "elevators": elevators.len(), "rate": rate(insured, elevators.len()) },
        "cylinder_labelling": { "labelled": labelled.len(), "seen": codes.len(), "rate": rate(labelled.len(), codes.len()) },
        "response_rate": { "within_s": 180.0, "in_time": responded, "dispatches": fleet::RESCUES.len(), "rate": rate(responded, fleet::RESCUES.len()) },
        "arrival_rate": { "within_s": 1800.0, "in_time": arrived, "dispatches": fleet::RESCUES.len(), "rate": rate(arrived, fleet::RESCUES.len()) },
        "alarms": { "last_24h": last_day, "per_hour": last_day as f64 / 24.0, "floods_last_24h": 0 },
    })
}

/// The test config with an upward exchange to the receiver on `port`.
fn exchange_config(store_url: &str, port: u16) -> CentralConfig {
    let text = format!(
        "{}\n[exchange]\nendpoint = \"http://127.0.0.1:{port}/records\"\narea_code = \"310115\"\npoll_interval_ms = 100\nretry_max_s = 1\n[exchange.field_map]\nregistration_code = \"equip_code\"\n",
        config_text(store_url),
    );
    parse(&text, Path::new("regulator.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The fills the exchange test's store holds: (n, code, time, refusals).
const FILLS: [(u32, &str, &str, &[&str]); 3] = [
    (1, "LPG-0001", "2026-11-10T02:00:00Z", &[]),
    (2, "LPG-0002", "2026-11-10T03:00:00Z", &[]),
    (3, "UNREG-9", "2026-11-11T03:00:00Z", &["unregistered"]),
];

/// Every record reaches the higher-level platform once, across a receiver outage and a
/// central restart: the queue is a table, a record leaves it only when confirmed. A lift's
/// record changed twice while no scan ran arrives in both versions, in order; the daily
/// indicators arrive with every field as the fleet's facts give them.
async fn exchange_delivers_every_record_once(store_url: &str) {
    let r = fleet::receiver().await;
    let config = exchange_config(store_url, r.port);
    // The fleet's history and some fills are in the store before central first starts, so the
    // day's indicators record is made from them.
    let store = Store::open(store_url).await.unwrap().with_exchange(true);
    fleet::write(&store, &config).await;
    for (n, code, time, why) in FILLS {
        assert!(store
            .ingest_fill(&fill(n, "Station A", code, time, why), 0)
            .await
            .unwrap());
    }
    store.close().await;
    let central = Central::start(config.clone()).await.unwrap();
    let started = seguard::central::now_ms();
    // The receiver is down: records wait, the status says why.
    let router = router_of(&central);
    common::eventually("a failed attempt", Duration::from_secs(10), || async {
        let (_, _, body) = get(&router, "/api/v1/exchange/status", REGULATOR).await;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["queue"]["failing"].as_i64()? > 0).then_some(v)
    })
    .await;
    let (_, _, body) = get(&router, "/api/v1/exchange/status", REGULATOR).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["queue"]["last_error"].as_str().unwrap().contains("503"),
        "{v}"
    );
    assert_eq!(v["queue"]["sent"], 0);
    central.stop().await;
    // While central is down, and so no scan runs, s1's record changes twice within one
    // millisecond of the store's clock; the registry's other records are unchanged.
    let store = Store::open(store_url).await.unwrap().with_exchange(true);
    let changed_at = fleet::ms("2026-12-01T00:00:00Z");
    for address in [
        "5 West Road, Jing'an, north gate",
        "5 West Road, Jing'an, east gate",
    ] {
        store
            .merge_registry(&fleet::registry(Some(("s1", address))), changed_at)
            .await
            .unwrap();
    }
    store.close().await;
    // Central restarts; then the receiver comes back.
    let central = Central::start(config.clone()).await.unwrap();
    r.down.store(0, Ordering::SeqCst);
    let router = router_of(&central);
    common::eventually("the queue drained", Duration::from_secs(20), || async {
        let (_, _, body) = get(&router, "/api/v1/exchange/status", REGULATOR).await;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["queue"]["pending"] == 0 && v["queue"]["sent"].as_i64()? > 0).then_some(v)
    })
    .await;
    // Give the sender a few more rounds: nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = r.delivered.lock().unwrap().clone();
    let order = r.order.lock().unwrap().clone();
    let twice: Vec<&String> = delivered
        .iter()
        .filter(|(_, (n, _))| *n != 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let of = |kind: &str| delivered.keys().filter(|k| k.starts_with(kind)).count();
    // 8 episodes of raise and clear: 16 events; 4 dispatches, each completed.
    assert_eq!(of("incident:"), 16);
    assert_eq!(
        delivered
            .keys()
            .filter(|k| k.starts_with("dispatch:") && k.ends_with(":completed"))
            .count(),
        4
    );
    // Each piece of equipment in its first version (the incidents repeat it unchanged, which
    // makes no version), and s1 in both of its changes, in the order they were made.
    let versions = |id: &str| -> Vec<(String, String)> {
        order
            .iter()
            .filter(|k| k.starts_with(&format!("equipment:gw1:{id}:")))
            .map(|k| {
                let data = &delivered[k].1;
                (k.clone(), data["address"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let first = fleet::ms("2026-11-01T00:00:00Z");
    for id in ["a1", "q1", "q2", "s2"] {
        let address = fleet::equipment(id)["address"].as_str().unwrap().to_owned();
        assert_eq!(
            versions(id),
            [(format!("equipment:gw1:{id}:{first}"), address)]
        );
    }
    assert_eq!(
        versions("s1"),
        [
            (
                format!("equipment:gw1:s1:{first}"),
                "5 West Road, Jing'an".to_owned()
            ),
            (
                format!("equipment:gw1:s1:{changed_at}"),
                "5 West Road, Jing'an, north gate".to_owned()
            ),
            (
                format!("equipment:gw1:s1:{}", changed_at + 1),
                "5 West Road, Jing'an, east gate".to_owned()
            ),
        ]
    );
    assert_eq!(of("equipment:"), 7);
    let lift = &delivered[&format!("equipment:gw1:s1:{first}")];
    assert!(
        lift.1.get("equip_code").is_some() && lift.1.get("registration_code").is_none(),
        "{}",
        lift.1
    );
    // One indicators record for the day, every field as the fleet's facts give it.
    let indicators: Vec<&String> = delivered
        .keys()
        .filter(|k| k.starts_with("indicators:310115:"))
        .collect();
    assert_eq!(indicators.len(), 1, "{indicators:?}");
    let record = &delivered[indicators[0]].1;
    let date: chrono::NaiveDate = record["date"].as_str().unwrap().parse().unwrap();
    assert_eq!(indicators[0], &format!("indicators:310115:{date}"));
    assert_eq!(
        record["indicators"],
        expected_indicators(date, started),
        "the indicators record"
    );
    let status = central.store.exchange_status().await.unwrap();
    assert_eq!(
        status.sent as usize,
        delivered.len(),
        "what central marked sent is what arrived"
    );
    central.stop().await;
}

on_both_stores!(exchange_delivers_every_record_once: exchange_delivers_every_record_once_on_sqlite, exchange_delivers_every_record_once_on_postgres);

/// The exchange's status as a regulator reads it.
async fn exchange_status(router: &axum::Router) -> Value {
    let (status, _, body) = get(router, "/api/v1/exchange/status", REGULATOR).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// One record the receiver refuses does not hold the queue: a 503 or a 429 retries the whole
/// batch and sets nothing aside; a 422 for a batch is narrowed down to the records it refuses
/// (an earlier version of s1, and one incident), which are set aside, listed with the status and
/// an excerpt of the answer, and counted, while every other record arrives once and in queue
/// order, s1's later version too. A regulator re-queues one after the receiver was fixed and it
/// arrives; one re-queued while the receiver still refuses it is set aside again.
async fn exchange_sets_aside_a_refused_record(store_url: &str) {
    let r = fleet::receiver().await;
    let config = exchange_config(store_url, r.port);
    let store = Store::open(store_url).await.unwrap().with_exchange(true);
    fleet::write(&store, &config).await;
    let changed_at = fleet::ms("2026-12-01T00:00:00Z");
    store
        .merge_registry(
            &fleet::registry(Some(("s1", "5 West Road, Jing'an, north gate"))),
            changed_at,
        )
        .await
        .unwrap();
    // The queue as the sender will find it, in its order (central adds the day's indicators).
    store
        .exchange_scan(seguard::central::now_ms())
        .await
        .unwrap();
    let queued: Vec<String> = store
        .exchange_due(i64::MAX, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.key)
        .collect();
    store.close().await;
    let first = fleet::ms("2026-11-01T00:00:00Z");
    let s1_first = format!("equipment:gw1:s1:{first}");
    let s1_later = format!("equipment:gw1:s1:{changed_at}");
    let incident = queued
        .iter()
        .filter(|k| k.starts_with("incident:"))
        .nth(5)
        .unwrap()
        .clone();
    assert!(queued.contains(&s1_first) && queued.contains(&s1_later));
    assert!(
        queued.len() > 20 && queued.len() < 100,
        "one batch: {queued:?}"
    );
    let central = Central::start(config.clone()).await.unwrap();
    let router = router_of(&central);
    // Down with 503, then 429: the whole batch is retried and nothing is set aside.
    for down in [503, 429] {
        r.down.store(down, Ordering::SeqCst);
        common::eventually(
            "two whole batches refused",
            Duration::from_secs(15),
            || async {
                let requests = r.requests.lock().unwrap();
                (requests.iter().filter(|(s, _)| *s == down).count() >= 2).then_some(())
            },
        )
        .await;
        let v = exchange_status(&router).await;
        assert_eq!(
            (&v["queue"]["refused"], &v["queue"]["sent"]),
            (&json!(0), &json!(0)),
            "{v}"
        );
        assert!(
            v["queue"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(&down.to_string())),
            "{v}"
        );
        assert_eq!(v["queue"]["refused_records"], json!([]));
    }
    let whole: Vec<Vec<String>> = r
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, keys)| keys.clone())
        .collect();
    assert!(
        whole
            .iter()
            .all(|keys| keys.len() == queued.len() + 1 && keys[..queued.len()] == queued[..]),
        "every retry carries the whole batch: {whole:?}"
    );
    assert!(r.delivered.lock().unwrap().is_empty());
    // The receiver is up but cannot take two of the batch's records.
    r.refuse
        .lock()
        .unwrap()
        .extend([s1_first.clone(), incident.clone()]);
    r.down.store(0, Ordering::SeqCst);
    let v = common::eventually("the rest delivered", Duration::from_secs(20), || async {
        let v = exchange_status(&router).await;
        (v["queue"]["pending"] == 0 && v["queue"]["refused"] == 2).then_some(v)
    })
    .await;
    // Give the sender a few more rounds: nothing is sent twice, nothing refused is retried.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused_requests = |key: &str| {
        r.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, keys)| *s == 422 && keys == &[key.to_owned()])
            .count()
    };
    assert_eq!(
        (refused_requests(&s1_first), refused_requests(&incident)),
        (1, 1),
        "each refused record was tried alone once"
    );
    let delivered = r.delivered.lock().unwrap().clone();
    let order = r.order.lock().unwrap().clone();
    assert!(delivered.values().all(|(n, _)| *n == 1), "{delivered:?}");
    let day = order.last().unwrap();
    assert!(day.starts_with("indicators:310115:"), "{order:?}");
    let expected: Vec<String> = queued
        .iter()
        .filter(|k| **k != s1_first && **k != incident)
        .chain([day])
        .cloned()
        .collect();
    assert_eq!(order, expected, "every other record, once, in queue order");
    assert_eq!(
        delivered[&s1_later].1["address"],
        "5 West Road, Jing'an, north gate"
    );
    assert_eq!(v["queue"]["sent"], json!(order.len()));
    assert_eq!(v["queue"]["by_kind"]["equipment"][2], 1);
    assert_eq!(v["queue"]["by_kind"]["incident"][2], 1);
    let listed = v["queue"]["refused_records"].as_array().unwrap();
    let mut keys: Vec<&str> = listed.iter().map(|x| x["key"].as_str().unwrap()).collect();
    keys.sort();
    let mut want = [incident.as_str(), s1_first.as_str()];
    want.sort();
    assert_eq!(keys, want, "{v}");
    for x in listed {
        let kind = if x["key"] == json!(s1_first) {
            "equipment"
        } else {
            "incident"
        };
        assert_eq!((&x["kind"], &x["status"]), (&json!(kind), &json!(422)));
        let answer = x["answer"].as_str().unwrap();
        assert!(answer.starts_with(fleet::REFUSAL), "{answer}");
        assert_eq!(answer.chars().count(), 501, "500 characters and a cut mark");
        assert!(x["refused"].as_str().unwrap().starts_with("20"), "{x}");
    }
    assert_eq!(
        (
            central.metrics.exchange_refused_count("equipment"),
            central.metrics.exchange_refused_count("incident"),
        ),
        (1, 1)
    );
    assert!(central
        .metrics
        .render()
        .contains("seguard_central_exchange_refused_total{kind=\"equipment\"} 1"));
    // Only a regulator re-queues, and only a refused record.
    let requeue = |key: &str| json!({ "key": key });
    let (status, _) = post(
        &router,
        "/api/v1/exchange/requeue",
        WEST_MALL,
        requeue(&s1_first),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        &router,
        "/api/v1/exchange/requeue",
        REGULATOR,
        requeue(&s1_later),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The receiver was fixed for s1: re-queued, its first version arrives, once.
    r.refuse.lock().unwrap().remove(&s1_first);
    let (status, body) = post(
        &router,
        "/api/v1/exchange/requeue",
        REGULATOR,
        requeue(&s1_first),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refusal"]["status"], 422);
    common::eventually(
        "the re-queued record delivered",
        Duration::from_secs(10),
        || async {
            r.delivered
                .lock()
                .unwrap()
                .contains_key(&s1_first)
                .then_some(())
        },
    )
    .await;
    // The incident re-queued while the receiver still refuses it is set aside again.
    let (status, _) = post(
        &router,
        "/api/v1/exchange/requeue",
        REGULATOR,
        requeue(&incident),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    common::eventually("refused again", Duration::from_secs(10), || async {
        (refused_requests(&incident) == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = exchange_status(&router).await;
    assert_eq!(
        (&v["queue"]["pending"], &v["queue"]["refused"]),
        (&json!(0), &json!(1)),
        "{v}"
    );
    assert_eq!(v["queue"]["refused_records"][0]["key"], json!(incident));
    assert_eq!(refused_requests(&incident), 2, "not retried by itself");
    assert_eq!(central.metrics.exchange_refused_count("incident"), 2);
    let delivered = r.delivered.lock().unwrap().clone();
    assert_eq!(delivered[&s1_first].0, 1);
    assert!(delivered.values().all(|(n, _)| *n == 1));
    assert!(!delivered.contains_key(&incident));
    assert_eq!(v["queue"]["sent"], json!(delivered.len()));
    assert_eq!(r.order.lock().unwrap().last(), Some(&s1_first));
    // Both re-queues are in the audit log, each naming the refusal it cleared.
    let (_, _, body) = get(&router, "/api/v1/audit", REGULATOR).await;
    let audit: Value = serde_json::from_str(&body).unwrap();
    let requeued: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "exchange.requeue")
        .map(|a| (a["target"].as_str().unwrap(), a["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(requeued.len(), 2, "{audit}");
    assert!(requeued
        .iter()
        .all(|(_, detail)| detail.starts_with("refused 422") && detail.contains(fleet::REFUSAL)));
    assert!(requeued.iter().any(|(k, _)| *k == s1_first));
    central.stop().await;
}

on_both_stores!(exchange_sets_aside_a_refused_record: exchange_sets_aside_a_refused_record_on_sqlite, exchange_sets_aside_a_refused_record_on_postgres);
