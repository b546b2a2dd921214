//! The equipment list (`GET /api/v1/equipment`, paged worst state first) and its counts
//! (`GET /api/v1/equipment/counts`) on real stores, SQLite and PostgreSQL: the pages together
//! hold every piece once in order, the counts match them, an equipment unit sees its own, a
//! rescue team none, and a bad cursor or filter is refused.

mod common;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::postgres::Postgres;
use seguard::auth::token_hash;
use seguard::central::config::parse;
use seguard::central::Central;
use seguard::model::{GatewayState, GatewayStatus};
use serde_json::{json, Value};
use tower::ServiceExt;

const REGULATOR: &str = "regulator-token";
const TOWER: &str = "tower-unit-token";
const RESCUE: &str = "rescue-team-token";
const GW1: &str = "gw1-token";
const GW2: &str = "gw2-token";
const TOWER_UNIT: &str = "Tower Property Co.";
const HILL_UNIT: &str = "Hill Estate Co.";
const PAST: &str = "2025-01-01";
const FUTURE: &str = "2099-01-01";

fn config_text(store_url: &str) -> String {
    format!(
        r#"
[central]
instance = "equipment-list"
http_listen = "127.0.0.1:0"
[store]
url = "{store_url}"
[[gateway]]
id = "gw1"
token_sha256 = "{gw1}"
[[gateway]]
id = "gw2"
token_sha256 = "{gw2}"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
[[token]]
role = "regulator"
name = "inspector-li"
sha256 = "{regulator}"
[[token]]
role = "equipment_unit"
name = "tower-desk"
unit = "{TOWER_UNIT}"
sha256 = "{tower}"
[[token]]
role = "rescue_team"
name = "shenlong-duty"
unit = "Shenlong Elevator Service"
sha256 = "{rescue}"
"#,
        gw1 = token_hash(GW1),
        gw2 = token_hash(GW2),
        regulator = token_hash(REGULATOR),
        tower = token_hash(TOWER),
        rescue = token_hash(RESCUE),
    )
}

/// The fleet: (gateway, id, name, using unit, next inspection). gw2 goes offline.
const FLEET: [(&str, &str, &str, &str, Option<&str>); 23] = [
    ("gw1", "t01", "Lift 01", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t02", "Lift 02", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t03", "Lift 03", TOWER_UNIT, Some(PAST)),
    ("gw1", "t04", "Lift 04", TOWER_UNIT, Some(PAST)),
    ("gw1", "t05", "Lift 05", TOWER_UNIT, Some(PAST)),
    ("gw1", "t06", "Lift 06", TOWER_UNIT, None),
    ("gw1", "t07", "Lift 07", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t08", "Lift 08", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t09", "Lift 09", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t10", "Lift 10", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t11", "Lift 11", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "t12", "Lift 12", TOWER_UNIT, Some(FUTURE)),
    // A name with the cursor's separator and escape in it.
    ("gw1", "boiler", "Boiler_1 100%", TOWER_UNIT, Some(FUTURE)),
    ("gw1", "h01", "Hill 01", HILL_UNIT, Some(FUTURE)),
    ("gw1", "h02", "Hill 02", HILL_UNIT, Some(PAST)),
    ("gw1", "h03", "Hill 03", HILL_UNIT, Some(FUTURE)),
    ("gw1", "h04", "Hill 04", HILL_UNIT, Some(FUTURE)),
    ("gw1", "h05", "Hill 05", HILL_UNIT, Some(FUTURE)),
    ("gw1", "h06", "Hill 06", HILL_UNIT, Some(FUTURE)),
    ("gw2", "w01", "Lift 20", TOWER_UNIT, Some(FUTURE)),
    ("gw2", "w02", "Lift 21", TOWER_UNIT, Some(PAST)),
    ("gw2", "w03", "Lift 22", TOWER_UNIT, Some(FUTURE)),
    ("gw2", "w04", "Lift 23", TOWER_UNIT, Some(FUTURE)),
];

fn record(id: &str) -> Value {
    let (_, _, name, unit, next) = FLEET.iter().find(|e| e.1 == id).unwrap();
    json!({
        "id": id, "kind": "elevator", "name": name, "registration_code": format!("3110{id}"),
        "using_unit": unit, "address": format!("1 Test Road, {id}"),
        "maintenance_unit": { "name": "Shenlong Elevator Service", "phone": "+86-21-5555-0101" },
        "location": { "lat": 31.2, "lon": 121.5, "crs": "WGS-84" }, "nameplate": {},
        "next_inspection": next, "insured": true
    })
}

fn incident(gateway: &str, n: u32, id: &str, rule: &str, transition: &str) -> Value {
    let uuid = format!("00000000-0000-4000-8000-{n:012}");
    json!({
        "schema": "seguard.incident.v1", "id": uuid, "gateway": gateway,
        "site": { "id": "s1", "name": "Tower site", "address": "1 Test Road" },
        "equipment": record(id),
        "event": { "id": uuid, "equipment": id, "rule": rule, "severity": "high",
                   "transition": transition, "time": format!("2026-05-01T08:00:{n:02}Z"),
                   "message": format!("{rule} on {id}") }
    })
}

/// A GET through the router: status, body and the path of the next page (`Link`).
async fn get(
    router: &axum::Router,
    path: &str,
    token: &str,
) -> (StatusCode, Value, Option<String>) {
    let response = router
        .clone()
        .oneshot(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let next = response.headers().get("link").map(|v| {
        let link = v.to_str().unwrap();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        link.split(['<', '>']).nth(1).unwrap().to_owned()
    });
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap(), next)
}

/// Every page from `path` on, following `Link`: (id, state) in order, and how many pages.
async fn all_pages(
    router: &axum::Router,
    path: &str,
    token: &str,
) -> (Vec<(String, String)>, usize) {
    let (mut path, mut seen, mut pages) = (path.to_owned(), Vec::new(), 0);
    loop {
        let (status, page, next) = get(router, &path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        pages += 1;
        for e in page.as_array().unwrap() {
            seen.push((
                e["id"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            ));
        }
        let Some(next) = next else { break };
        assert!(next.contains("after="), "{next}");
        path = next;
    }
    (seen, pages)
}

fn ids(rows: &[(String, String)]) -> Vec<&str> {
    rows.iter().map(|(id, _)| id.as_str()).collect()
}

/// The counts of the states in a listing, worst first.
fn tally(rows: &[(String, String)]) -> Value {
    let n = |s: &str| rows.iter().filter(|(_, state)| state == s).count();
    json!({ "trapped": n("trapped"), "alarm": n("alarm"), "offline": n("offline"),
            "overdue": n("overdue"), "normal": n("normal") })
}

async fn pages_hold_every_piece_once_worst_first(store_url: &str) {
    let config = parse(&config_text(store_url), Path::new("equipment-list.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let central = Central::start(config).await.unwrap();
    let now = seguard::central::now_ms();
    for gateway in ["gw1", "gw2"] {
        let registry: seguard::model::GatewayRegistry = serde_json::from_value(json!({
            "schema": "seguard.registry.v1", "gateway": gateway,
            "site": { "id": "s1", "name": "Tower site", "address": "1 Test Road" },
            "equipment": FLEET.iter().filter(|e| e.0 == gateway).map(|e| record(e.1)).collect::<Vec<_>>(),
        }))
        .unwrap();
        central.store.merge_registry(&registry, now).await.unwrap();
    }
    let router = seguard::central::api::router(seguard::central::api::AppState {
        config: central.config.clone(),
        store: central.store.clone(),
        metrics: central.metrics.clone(),
        mqtt_connected: std::sync::Arc::new(true.into()),
        wake: Default::default(),
    });
    // Trapped passengers in t07 and h01; alarms on t03 (inspection overdue too) and w01 (its
    // gateway offline too); t08's alarm cleared.
    for (token, body) in [
        (
            GW1,
            incident("gw1", 1, "t07", "elevator.trapped_at_level", "raise"),
        ),
        (
            GW1,
            incident("gw1", 2, "h01", "elevator.trapped_at_level", "raise"),
        ),
        (
            GW1,
            incident("gw1", 3, "t03", "elevator.door_fault", "raise"),
        ),
        (
            GW2,
            incident("gw2", 4, "w01", "elevator.door_fault", "raise"),
        ),
        (
            GW1,
            incident("gw1", 5, "t08", "elevator.door_fault", "raise"),
        ),
        (
            GW1,
            incident("gw1", 6, "t08", "elevator.door_fault", "clear"),
        ),
    ] {
        let response = router
            .clone()
            .oneshot(
                Request::post("/api/v1/intake/incidents")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let offline = GatewayStatus {
        gateway: "gw2".into(),
        site: "s1".into(),
        state: GatewayState::Offline,
        since: None,
    };
    central
        .store
        .set_gateway_status(&offline, now)
        .await
        .unwrap();

    // The regulator's pages of four: every piece once, trapped, alarm, offline, overdue,
    // normal, then by name; the cursor crosses states and a name with `_` and `%`.
    let (all, pages) = all_pages(&router, "/api/v1/equipment?limit=4", REGULATOR).await;
    assert_eq!(pages, 6);
    assert_eq!(
        ids(&all),
        [
            "h01", "t07", "t03", "w01", "w02", "w03", "w04", "h02", "t04", "t05", "boiler", "h03",
            "h04", "h05", "h06", "t01", "t02", "t06", "t08", "t09", "t10", "t11", "t12"
        ]
    );
    let expected_all = json!({
        "equipment": 23,
        "states": { "trapped": 2, "alarm": 2, "offline": 3, "overdue": 3, "normal": 13 },
        "inspection_overdue": 5, "open_alarms": 4
    });
    assert_eq!(expected_all["states"], tally(&all));
    let (status, counts, _) = get(&router, "/api/v1/equipment/counts", REGULATOR).await;
    assert_eq!((status, counts), (StatusCode::OK, expected_all));
    let (_, first, next) = get(&router, "/api/v1/equipment", REGULATOR).await;
    assert_eq!(
        first.as_array().unwrap().len(),
        23,
        "the default page holds them"
    );
    assert_eq!(next, None);
    assert_eq!(first[0]["display"], json!([31.2, 121.5]), "{}", first[0]);

    // The overdue inspections, whatever the state, in the same order.
    let (overdue, _) = all_pages(
        &router,
        "/api/v1/equipment?inspection=overdue&limit=2",
        REGULATOR,
    )
    .await;
    assert_eq!(ids(&overdue), ["t03", "w02", "h02", "t04", "t05"]);

    // An equipment unit: its own only, and its own counts.
    let (own, _) = all_pages(&router, "/api/v1/equipment?limit=5", TOWER).await;
    assert_eq!(
        ids(&own),
        [
            "t07", "t03", "w01", "w02", "w03", "w04", "t04", "t05", "boiler", "t01", "t02", "t06",
            "t08", "t09", "t10", "t11", "t12"
        ]
    );
    let expected_own = json!({
        "equipment": 17,
        "states": { "trapped": 1, "alarm": 2, "offline": 3, "overdue": 2, "normal": 9 },
        "inspection_overdue": 4, "open_alarms": 3
    });
    assert_eq!(expected_own["states"], tally(&own));
    let (status, counts, _) = get(&router, "/api/v1/equipment/counts", TOWER).await;
    assert_eq!((status, counts), (StatusCode::OK, expected_own));
    let (own_overdue, _) = all_pages(&router, "/api/v1/equipment?inspection=overdue", TOWER).await;
    assert_eq!(ids(&own_overdue), ["t03", "w02", "t04", "t05"]);

    // A rescue team sees no registry; a bad cursor, limit or filter is refused.
    for path in ["/api/v1/equipment", "/api/v1/equipment/counts"] {
        let (status, body, _) = get(&router, path, RESCUE).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        let (status, body, _) = get(&router, path, "not-a-token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    for (query, expected) in [
        ("?after=yesterday", "`after` must be the `next` cursor"),
        (
            "?after=0_Lift%2001_gw1",
            "`after` must be the `next` cursor",
        ),
        (
            "?after=x_Lift%2001_gw1_t01",
            "`after` must be the `next` cursor",
        ),
        ("?limit=0", "limit must be between 1 and 500"),
        ("?limit=501", "limit must be between 1 and 500"),
        ("?inspection=soon", "unknown inspection `soon`"),
    ] {
        let (status, body, _) = get(&router, &format!("/api/v1/equipment{query}"), REGULATOR).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
    central.stop().await;
}

#[tokio::test]
async fn equipment_pages_and_counts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("central.db").display());
    pages_hold_every_piece_once_worst_first(&url).await;
    // A unit's page reads its own rows through its index, a regulator's the city's by name:
    // neither reads the whole registry.
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for (unit, index) in [
        (Some(TOWER_UNIT), "INDEX equipment_unit (using_unit=?)"),
        (None, "SCAN e USING COVERING INDEX equipment_name"),
    ] {
        let (sql, binds, _) = seguard::central::store::EquipmentFilter::default()
            .sql(unit, today)
            .unwrap();
        let plan = common::sqlite_plan(&pool, &sql, binds).await;
        assert!(plan.contains(index), "{unit:?}: {plan}");
    }
    // The counts read the rare states from the open alarms and the offline gateways, and the
    // totals off indexes: no step scans the registry's table, and the city's pieces past
    // inspection are a range of their index.
    for unit in [None, Some(TOWER_UNIT)] {
        let (rare, totals, binds) = seguard::central::store::counts_sql(unit, today);
        for sql in [rare, totals] {
            let plan = common::sqlite_plan(&pool, &sql, binds.clone()).await;
            assert!(
                !plan.split("; ").any(|step| step == "SCAN e"),
                "{unit:?}: {plan}"
            );
        }
    }
    let (_, totals, binds) = seguard::central::store::counts_sql(None, today);
    let plan = common::sqlite_plan(&pool, &totals, binds).await;
    assert!(
        plan.contains("SEARCH e USING COVERING INDEX equipment_inspection (next_inspection<?)"),
        "{plan}"
    );
}

#[tokio::test]
async fn equipment_pages_and_counts_on_postgres() {
    let pg = Postgres::start();
    pages_hold_every_piece_once_worst_first(&pg.url()).await;
}
