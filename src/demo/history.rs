//! The district's past, generated for the demo so that a regulator sees the risk ranking, the
//! maintenance-unit scorecards and the hazard ledgers on first run: a second gateway's
//! registry (`gw-history`: twelve lifts and an autoclave, three maintenance units; without a
//! position, so the map keeps showing the live fleet alone), 40 days of faults and nine trapped-passenger dispatches written through central's own
//! store steps, one inspection report with three hazards (one overdue), and two filling
//! stations' cylinder registers with a month of fills and refusals. Deterministic;
//! written once per data directory.

use serde_json::json;

use crate::central::clean::Notes;
use crate::central::config::CentralConfig;
use crate::central::dispatch::Status;
use crate::central::hazards::ReportIn;
use crate::central::store::{RescueStep, Store, StoreError};
use crate::model::{FillRecord, GatewayRegistry, Incident};

/// The agency the demo's report comes from (its token is printed).
pub const AGENCY: &str = "District Special Equipment Inspection Institute";
/// The maintenance units of the history fleet besides the demo's own.
pub const UNITS: [&str; 3] = [
    super::MAINTENANCE_UNIT,
    "Eastern Lift Maintenance",
    "Riverside Lift Works",
];
const GATEWAY: &str = "gw-history";
const DAY_MS: i64 = 86_400_000;

/// A small deterministic generator (a linear congruential one): the same history every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as i64
    }
}

fn equipment(i: usize, today: chrono::NaiveDate) -> serde_json::Value {
    let unit = UNITS[i % 3];
    let autoclave = i == 12;
    let next_inspection = match i {
        2 => today - chrono::Days::new(21),
        5 => today + chrono::Days::new(12),
        _ => today + chrono::Days::new(120 + 20 * i as u64),
    };
    let mut e = json!({
        "id": format!("h{}", i + 1),
        "kind": if autoclave { "autoclave" } else { "elevator" },
        "name": if autoclave { "蒸压釜 1号".to_owned() } else { format!("历史电梯 {}号", i + 1) },
        "registration_code": format!("311031010020160{:05}", 100 + i),
        "using_unit": if i.is_multiple_of(2) { "滨江商业广场" } else { "东方花园物业" },
        "address": format!("{} {}号", if i < 6 { "滨江路" } else { "东方路" }, 10 + i),
        "nameplate": {},
        "next_inspection": next_inspection.to_string(),
        "insured": !(i == 5 || i == 8),
        "in_service": if i % 4 == 2 { "2004-06-01" } else { "2016-03-01" },
    });
    if !autoclave {
        e["maintenance_unit"] = json!({ "name": unit, "phone": "+86-21-5555-0000" });
    }
    e
}

fn incident(n: u64, eq: &serde_json::Value, rule: &str, raise: bool, at_ms: i64) -> Incident {
    let id = format!("00000000-0000-4000-9000-{n:012}");
    let equipment = eq["id"].as_str().unwrap_or_default();
    let time = crate::central::store::rfc3339(at_ms);
    serde_json::from_value(json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": GATEWAY,
        "site": { "id": "district", "name": "区内历史数据", "address": "" },
        "equipment": eq,
        "event": { "id": id, "equipment": equipment, "rule": format!("{equipment}.{rule}"),
                   "severity": "high", "transition": if raise { "raise" } else { "clear" },
                   "time": time, "message": format!("{rule} ({equipment})") }
    }))
    .expect("a generated incident is valid")
}

/// Writes the history ending at `now_ms`, unless this store has it already.
pub async fn write(store: &Store, config: &CentralConfig, now_ms: i64) -> Result<(), StoreError> {
    if !store.reports(Some(AGENCY)).await?.is_empty() {
        return Ok(());
    }
    let today = crate::central::zone::local_date(now_ms, config.zone());
    let fleet: Vec<_> = (0..13).map(|i| equipment(i, today)).collect();
    let registry: GatewayRegistry = serde_json::from_value(json!({
        "schema": "seguard.registry.v1", "gateway": GATEWAY,
        "site": { "id": "district", "name": "区内历史数据", "address": "" },
        "equipment": fleet,
    }))
    .expect("a generated registry is valid");
    store.merge_registry(&registry, now_ms).await?;
    let mut dice = Dice(17);
    let mut n = 0u64;
    let start = now_ms - 40 * DAY_MS;
    // A door fault that keeps coming back on h3 (Riverside's), alarms here and there.
    for (day, i) in [
        (3, 2),
        (9, 2),
        (16, 2),
        (24, 2),
        (30, 2),
        (12, 6),
        (20, 9),
        (33, 12),
    ] {
        let at = start + day * DAY_MS + dice.next(8 * 3_600_000);
        let rule = if i == 12 {
            "pressure_high"
        } else {
            "door_close_fault"
        };
        for (raise, t) in [(true, at), (false, at + 20 * 60_000)] {
            n += 1;
            store
                .ingest_incident(
                    config,
                    &incident(n, &fleet[i], rule, raise, t),
                    &Notes::default(),
                    "demo",
                    t,
                )
                .await?;
        }
    }
    // A trapped passenger every four days, round the lifts; each unit answers in its own way.
    for k in 0..9 {
        let i = (k * 5) % 12;
        let unit = UNITS[i % 3];
        let at = start + (4 * k as i64 + 2) * DAY_MS + dice.next(10 * 3_600_000);
        n += 1;
        let raised = store
            .ingest_incident(
                config,
                &incident(n, &fleet[i], "trapped", true, at),
                &Notes::default(),
                "demo",
                at,
            )
            .await?;
        let Some(dispatch) = raised.dispatch else {
            continue;
        };
        let (respond_s, arrive_s) = match i % 3 {
            0 => (40 + dice.next(80), 480 + dice.next(700)),
            1 => (90 + dice.next(80), 900 + dice.next(1100)),
            _ => (120 + dice.next(160), 1200 + dice.next(900)),
        };
        let mut called = unit.to_owned();
        let mut respond_at = at + respond_s * 1000;
        if respond_s > 180 {
            // No answer within 3 minutes: the dispatch escalates to the backup unit, as
            // central's timer does, and the backup answers.
            let check = at + 181_000;
            for due in store.due_dispatches(check, 50).await? {
                if due.id == dispatch {
                    store.escalate(config, &due, check).await?;
                }
            }
            called = config.dispatch.backup_unit.clone().unwrap_or_default();
            respond_at = check + 60_000;
        }
        let steps = [
            (Status::Responded, respond_at),
            (Status::OnSite, at + arrive_s * 1000),
            (Status::Completed, at + (arrive_s + 600) * 1000),
        ];
        for (status, t) in steps {
            let _ = store
                .set_dispatch_status(
                    config,
                    &dispatch,
                    &RescueStep {
                        status,
                        unit: &called,
                        actor: "duty",
                        role: "rescue_team",
                        note: "",
                        now: t,
                    },
                )
                .await?;
        }
        n += 1;
        let cleared = at + (arrive_s + 300) * 1000;
        store
            .ingest_incident(
                config,
                &incident(n, &fleet[i], "trapped", false, cleared),
                &Notes::default(),
                "demo",
                cleared,
            )
            .await?;
    }
    // The agency's report on h3, a month ago.
    let report: ReportIn = serde_json::from_value(json!({
        "report_no": "DSEI-DEMO-0001", "gateway": GATEWAY, "equipment": "h3",
        "inspected_on": (today - chrono::Days::new(30)).to_string(),
        "conclusion": "pass_after_correction", "manufacturer": "东方电梯制造有限公司",
        "hazards": [
            { "description": "制动衬片磨损超限", "severity": "major", "legal_basis": "TSG T7001-2023 2.8",
              "deadline": (today - chrono::Days::new(5)).to_string(), "product_defect": true },
            { "description": "层门门锁啮合长度不足", "severity": "major", "legal_basis": "TSG T7001-2023 6.9",
              "deadline": (today + chrono::Days::new(10)).to_string() },
            { "description": "轿厢应急照明亮度不足", "severity": "general", "legal_basis": "TSG T7001-2023 8.6",
              "deadline": (today + chrono::Days::new(25)).to_string() }
        ]
    }))
    .expect("a generated report is valid");
    store
        .insert_report(AGENCY, "demo-agency", &report, now_ms - 30 * DAY_MS)
        .await?;
    store.raise_overdue_hazards(now_ms, config.zone()).await?;
    cylinders(store, today, start).await
}

/// Two filling stations' registers and a month of their fills: refusals for an unregistered
/// cylinder, a scrapped one and an expired inspection, and a cylinder that moved between the
/// stations (its page: `/c/LPG-3101000001`).
async fn cylinders(store: &Store, today: chrono::NaiveDate, start: i64) -> Result<(), StoreError> {
    const EAST: &str = "城东液化气充装站";
    const WEST: &str = "城西液化气充装站";
    let mut csv = String::from(
        "code,owner,medium,type,made,last_inspection,next_inspection,scrapped,insured\n",
    );
    for k in 1..=8 {
        let owner = if k <= 5 { EAST } else { WEST };
        let (next, scrapped) = match k {
            4 => (today - chrono::Days::new(40), "否"),
            7 => (today + chrono::Days::new(400), "是"),
            _ => (today + chrono::Days::new(300 + 30 * k), "否"),
        };
        let insured = if k == 2 || k == 6 { "否" } else { "是" };
        csv.push_str(&format!(
            "LPG-31010000{k:02},{owner},LPG,YSP-15,2018-0{}-01,2023-06-01,{next},{scrapped},{insured}\n",
            1 + k % 9
        ));
    }
    let rows =
        crate::central::cylinders::parse_register(&csv).expect("a generated register parses");
    store
        .import_register(&rows, "demo", "regulator", start)
        .await?;
    let mut n = 0u64;
    let mut fill = |station: &str, code: &str, day: i64, rejections: &[&str]| {
        n += 1;
        let id = format!("00000000-0000-4000-b000-{n:012}");
        serde_json::from_value::<FillRecord>(json!({
            "schema": "seguard.fill.v1", "id": id, "gateway": GATEWAY, "equipment": "scale-1",
            "station": station, "cylinder_code": code,
            "time": crate::central::store::rfc3339(start + day * DAY_MS + 9 * 3_600_000),
            "medium": "LPG", "mass_kg": 14.6, "pressure_mpa": 0.82, "temperature_c": 18.0,
            "residual_pressure_mpa": 0.12, "operator": "张师傅", "gun": "G2",
            "accepted": rejections.is_empty(), "rejections": rejections,
        }))
        .expect("a generated fill is valid")
    };
    let fills = [
        fill(EAST, "LPG-3101000001", 2, &[]),
        fill(EAST, "LPG-3101000002", 3, &[]),
        fill(EAST, "LPG-3101000003", 5, &[]),
        fill(EAST, "LPG-3101000004", 6, &["inspection_expired"]),
        fill(EAST, "NOCODE-17", 8, &["unregistered"]),
        fill(WEST, "LPG-3101000006", 9, &[]),
        fill(WEST, "LPG-3101000007", 11, &["scrapped"]),
        fill(EAST, "LPG-3101000001", 20, &[]),
        fill(WEST, "LPG-3101000001", 34, &["not_owned"]),
    ];
    for f in &fills {
        store.ingest_fill(f, start).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::scorecard;

    /// The generated history shows what the tools are for: the Riverside lift with the
    /// recurring door fault and the overdue inspection on top, Riverside graded worst, the
    /// overdue hazard alarmed; and a second run writes nothing.
    #[tokio::test]
    async fn history_fills_the_regulators_tools_once() {
        let dir = tempfile::tempdir().unwrap();
        let o = super::super::DemoOptions {
            mqtt: "127.0.0.1:1883".parse().unwrap(),
            central_http: "127.0.0.1:8080".parse().unwrap(),
            gateway_http: "127.0.0.1:9180".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            center: (31.2304, 121.4737),
            elevators: 12,
            trapped_after_s: 20.0,
            influx: None,
        };
        let text = super::super::central_toml(&o, "k".repeat(40).as_str());
        let config = crate::central::config::parse(&text, std::path::Path::new("c.toml")).unwrap();
        let url = format!("sqlite://{}", dir.path().join("central.db").display());
        let store = Store::open(&url).await.unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:00:00Z")
            .unwrap()
            .timestamp_millis();
        write(&store, &config, now).await.unwrap();
        let everything = crate::central::risk::Selection::default();
        let ranked = crate::central::risk::ranking(&store, &config, now, &everything, |r| r)
            .await
            .unwrap();
        let top: Vec<(usize, &str, f64)> = ranked
            .rows
            .iter()
            .take(3)
            .map(|(rank, r)| (*rank, r.id.as_str(), r.score))
            .collect();
        assert_eq!(top, [(1, "h3", 127.0), (2, "h6", 43.0), (3, "h9", 33.0)]);
        let from = now - 40 * DAY_MS;
        let cards = scorecard::over(&store, &config, from, now, now)
            .await
            .unwrap();
        let grades: Vec<(&str, &str)> = cards.iter().map(|c| (c.unit.as_str(), c.grade)).collect();
        assert_eq!(
            grades,
            [
                ("Eastern Lift Maintenance", "A"),
                ("Shenlong Elevator Service", "A"),
                ("Riverside Lift Works", "D")
            ]
        );
        let hazards = store
            .hazards(&Default::default(), false, now, config.zone())
            .await
            .unwrap();
        assert_eq!(hazards.iter().filter(|h| h.overdue).count(), 1);
        assert!(hazards[0].overdue_alarm_id.is_some());
        let events = store.event_count().await.unwrap();
        assert_eq!(events, 34);
        write(&store, &config, now).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), events, "written once");
        let stations = store.cylinder_indicators().await.unwrap();
        let rates: Vec<(&str, i64, i64)> = stations
            .iter()
            .map(|s| (s.station.as_str(), s.cylinders, s.labelled))
            .collect();
        assert_eq!(
            rates,
            [("城东液化气充装站", 5, 4), ("城西液化气充装站", 3, 3)]
        );
    }
}
