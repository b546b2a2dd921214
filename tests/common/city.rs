//! A generated city for central: the registry of `elevators` elevators and `vessels` pressure
//! vessels of `gateways` gateways spread over Shenzhen, and a history of `events` events (half
//! as many alarms, raised and cleared over the last 30 days, the newest 0.5 % still active)
//! with `dispatches` trapped-passenger dispatches (200 still open), written straight into a
//! store central migrated. Used by `benches/city.rs` and `tests/city_map.rs`.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;
/// The districts the addresses name first (the area the alarm list filters by).
const DISTRICTS: [&str; 6] = [
    "Futian", "Luohu", "Nanshan", "Bao'an", "Longgang", "Longhua",
];

#[derive(Debug, Clone, Copy)]
pub struct City {
    pub elevators: usize,
    pub vessels: usize,
    pub gateways: usize,
    pub events: usize,
    pub dispatches: usize,
}

impl City {
    /// Shenzhen's scale: 128,000 elevators on 1,000 gateways, a million events.
    pub const FULL: City = City {
        elevators: 128_000,
        vessels: 8_000,
        gateways: 1_000,
        events: 1_000_000,
        dispatches: 50_000,
    };
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Rows of `columns` values each, inserted `per_statement` rows at a time in one transaction.
async fn insert_rows(pool: &sqlx::AnyPool, table: &str, columns: &str, rows: Vec<Vec<Value>>) {
    let width = columns.split(',').count();
    let per_statement = (30_000 / width).min(100);
    let mut tx = pool.begin().await.expect("begin");
    for chunk in rows.chunks(per_statement) {
        let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..width {
                n += 1;
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Value::T(s) => q.bind(s.clone()),
                    Value::I(i) => q.bind(*i),
                    Value::F(f) => q.bind(*f),
                    Value::N => q.bind(Option::<i64>::None),
                };
            }
        }
        q.execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    tx.commit().await.expect("commit");
}

enum Value {
    T(String),
    I(i64),
    F(f64),
    N,
}
use Value::{F, I, N, T};

/// Writes the city into the store at `url` (already migrated by central's `Store::open`).
pub async fn generate(url: &str, scale: City) -> Duration {
    let started = Instant::now();
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("store");
    if url.starts_with("sqlite") {
        // Only the bench's own writing goes without sync; central opens it with full sync.
        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = OFF"] {
            sqlx::query(pragma).execute(&pool).await.expect(pragma);
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(128_000);
    let now = now_ms();
    let gw = |i: usize| format!("gw{:04}", i % scale.gateways);
    let total = scale.elevators + scale.vessels;
    insert_rows(
        &pool,
        "gateways",
        "id, site, state, since_ms, updated_ms",
        (0..scale.gateways)
            .map(|g| {
                vec![
                    T(gw(g)),
                    T(format!("site-{g}")),
                    T("online".into()),
                    I(now),
                    I(now),
                ]
            })
            .collect(),
    )
    .await;
    let mut where_is = Vec::with_capacity(total);
    let mut equipment = Vec::with_capacity(total);
    for i in 0..total {
        let elevator = i < scale.elevators;
        let (lat, lon) = (
            rng.random_range(22.45..22.75),
            rng.random_range(113.85..114.35),
        );
        where_is.push((lat, lon));
        let district = DISTRICTS[i % 6];
        let record = json!({
            "id": format!("e{i}"), "kind": if elevator { "elevator" } else { "pressure_vessel" },
            "name": format!("Unit {i}"), "registration_code": format!("3110{i:016}"),
            "rescue_code": format!("{:05}", i % 100_000), "using_unit": format!("Property {}", i % 5_000),
            "maintenance_unit": { "name": format!("Lift Service {}", i % 200), "phone": "+86-755-0000" },
            "address": format!("{district}, {} road {}", i % 900, i), "nameplate": {}
        });
        equipment.push(vec![
            T(gw(i)),
            T(format!("e{i}")),
            T(if elevator {
                "elevator"
            } else {
                "pressure_vessel"
            }
            .into()),
            T(format!("Unit {i}")),
            T(format!("3110{i:016}")),
            T(format!("Property {}", i % 5_000)),
            T(format!("Lift Service {}", i % 200)),
            T(format!("{district}, {} road {}", i % 900, i)),
            F(lat),
            F(lon),
            T(if i % 20 == 0 {
                "2026-01-01"
            } else {
                "2027-06-30"
            }
            .into()),
            I(i64::from(i % 10 != 0)),
            T(format!("site-{}", i % scale.gateways)),
            T(record.to_string()),
            I(now),
        ]);
    }
    insert_rows(
        &pool,
        "equipment",
        "gateway, id, kind, name, registration_code, using_unit, maintenance_unit, address, lat, lon, next_inspection, insured, site, record, updated_ms",
        equipment,
    )
    .await;
    // Alarms: raise and clear events each; the newest 0.5 % still active. The first
    // `dispatches` of them are trapped passengers with a completed dispatch (200 still open).
    let alarms = scale.events / 2;
    let rules = [
        ("lift.trapped", "critical"),
        ("lift.power_cut", "high"),
        ("lift.door_open_fault", "medium"),
        ("pv.pressure_high", "high"),
    ];
    let mut alarm_rows = Vec::new();
    let mut event_rows = Vec::new();
    let mut dispatch_rows = Vec::new();
    let mut step_rows = Vec::new();
    for a in 0..alarms {
        let i = rng.random_range(0..total);
        let trapped = a < scale.dispatches;
        let (rule, severity) = if trapped {
            rules[0]
        } else if i >= scale.elevators {
            rules[3]
        } else {
            rules[1 + a % 2]
        };
        let raised = now - 30 * DAY_MS + (a as i64 * 30 * DAY_MS / alarms as i64);
        let active = a >= alarms - alarms / 200;
        let cleared = if active { N } else { I(raised + 600_000) };
        let id = format!("{a:032x}");
        let eq = format!("e{i}");
        let district = DISTRICTS[i % 6];
        let address = format!("{district}, {} road {}", i % 900, i);
        alarm_rows.push(vec![
            T(id.clone()),
            T(gw(i)),
            T(eq.clone()),
            T(rule.into()),
            T(severity.into()),
            T(if i < scale.elevators {
                "elevator"
            } else {
                "pressure_vessel"
            }
            .into()),
            T(format!("Property {}", i % 5_000)),
            T(address.clone()),
            I(i64::from(trapped)),
            T(format!("{rule} on {eq}")),
            I(raised),
            cleared,
            T(district.to_lowercase()),
        ]);
        for (k, transition) in ["raise", "clear"].iter().enumerate() {
            event_rows.push(vec![
                T(format!("{a:031x}{k}")),
                T(id.clone()),
                T(gw(i)),
                T(eq.clone()),
                T(rule.into()),
                T(severity.into()),
                T((*transition).into()),
                I(raised + k as i64 * 600_000),
                T(format!("{rule} on {eq}")),
                T("mqtt".into()),
                I(raised + k as i64 * 600_000 + 40),
                T("{}".into()),
            ]);
        }
        if trapped {
            let open = a >= scale.dispatches - 200;
            let unit = format!("Lift Service {}", i % 200);
            let record = json!({
                "fault_type": "11", "fault_name": "trapped passenger", "rule": rule,
                "message": format!("{rule} on {eq}"),
                "elevator": { "equipment_id": eq, "name": format!("Unit {i}"), "registration_code": format!("3110{i:016}") },
                "address": address, "using_unit": format!("Property {}", i % 5_000),
                "maintenance_unit": { "name": unit, "phone": "+86-755-0000" }, "site": format!("site-{}", i % scale.gateways)
            });
            let d = format!("d{a:031x}");
            dispatch_rows.push(vec![
                T(d.clone()),
                T(format!("R{a:08}")),
                T(id.clone()),
                T(format!("{a:031x}0")),
                T(gw(i)),
                T(eq.clone()),
                I(raised),
                I(raised + 50),
                T(if open { "occurred" } else { "completed" }.into()),
                I(0),
                T(unit.clone()),
                T("+86-755-0000".into()),
                T(json!([{ "name": unit, "phone": "+86-755-0000" }]).to_string()),
                I(raised + 50),
                if open { I(now + 3_600_000) } else { N },
                if open { N } else { I(raised + 120_000) },
                if open { N } else { I(raised + 900_000) },
                if open { N } else { I(raised + 1_800_000) },
                T(record.to_string()),
            ]);
            for (seq, step) in ["occurred", "completed"].iter().enumerate() {
                step_rows.push(vec![
                    T(format!("{d}-{seq}")),
                    T(d.clone()),
                    I(seq as i64),
                    I(raised + 50 + seq as i64 * 1_800_000),
                    T((*step).into()),
                    I(0),
                    T(unit.clone()),
                    T("central".into()),
                    T(String::new()),
                ]);
            }
        }
        if alarm_rows.len() >= 50_000 {
            flush(
                &pool,
                &mut alarm_rows,
                &mut event_rows,
                &mut dispatch_rows,
                &mut step_rows,
            )
            .await;
        }
    }
    flush(
        &pool,
        &mut alarm_rows,
        &mut event_rows,
        &mut dispatch_rows,
        &mut step_rows,
    )
    .await;
    if url.starts_with("postgres") {
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
    }
    pool.close().await;
    started.elapsed()
}

async fn flush(
    pool: &sqlx::AnyPool,
    alarms: &mut Vec<Vec<Value>>,
    events: &mut Vec<Vec<Value>>,
    dispatches: &mut Vec<Vec<Value>>,
    steps: &mut Vec<Vec<Value>>,
) {
    insert_rows(
        pool,
        "alarms",
        "id, gateway, equipment, rule, severity, kind, using_unit, address, trapped, message, raised_ms, cleared_ms, area",
        std::mem::take(alarms),
    )
    .await;
    insert_rows(
        pool,
        "events",
        "id, alarm_id, gateway, equipment, rule, severity, transition, time_ms, message, source, received_ms, payload",
        std::mem::take(events),
    )
    .await;
    insert_rows(
        pool,
        "dispatches",
        "id, order_no, alarm_id, event_id, gateway, equipment, incident_ms, created_ms, status, level, unit, unit_phone, chain, level_started_ms, next_check_ms, responded_ms, on_site_ms, closed_ms, record",
        std::mem::take(dispatches),
    )
    .await;
    insert_rows(
        pool,
        "dispatch_steps",
        "id, dispatch_id, seq, at_ms, step, level, unit, actor, note",
        std::mem::take(steps),
    )
    .await;
}
