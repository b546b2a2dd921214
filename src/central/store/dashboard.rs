//! What the dashboard reads: a piece of equipment's row with its state, an alarm's timeline,
//! the audit log and the regulator's indicators; and the operator's alarm acknowledgement,
//! audited.

use serde::Serialize;
use sqlx::Row;

use super::{insert_audit, rfc3339, Store, StoreError};
use crate::central::config::CentralConfig;
use crate::model::EquipmentKind;

#[derive(Debug, Clone, Serialize)]
pub struct EquipmentState {
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub name: String,
    pub registration_code: String,
    pub using_unit: String,
    pub maintenance_unit: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub next_inspection: Option<String>,
    pub insured: Option<bool>,
    /// normal, alarm, trapped, offline or overdue (inspection).
    pub state: String,
    pub gateway_state: String,
    pub open_alarms: i64,
    pub latest_alarm: Option<String>,
    /// The full registry record as the gateway sent it.
    pub record: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: String,
    pub transition: String,
    pub time: String,
    pub received: String,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
    pub source: String,
    /// What intake repaired (`text_replaced`, `location_dropped`, `time_outside_window`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intake_notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// A row of `events` as the timeline reads it.
#[derive(sqlx::FromRow)]
struct StoredEvent {
    id: String,
    transition: String,
    time_ms: i64,
    received_ms: i64,
    value: Option<f64>,
    limit_value: Option<f64>,
    message: String,
    source: String,
    intake_notes: Option<String>,
}

/// A row of `audit_log`.
#[derive(sqlx::FromRow)]
struct StoredAudit {
    at_ms: i64,
    actor: String,
    role: String,
    action: String,
    target: String,
    detail: String,
}

/// The registry's counts the indicators need.
#[derive(sqlx::FromRow)]
struct RegistryCounts {
    with_date: i64,
    overdue: i64,
    elevators: i64,
    insured: i64,
}

/// Cylinders seen in fill records, and those of them found in a registry.
#[derive(sqlx::FromRow)]
struct CylinderCounts {
    seen: i64,
    labelled: i64,
}

/// The response and arrival rates' counts over every dispatch.
#[derive(sqlx::FromRow)]
struct DispatchCounts {
    responses: i64,
    responded_in_time: i64,
    arrivals: i64,
    arrived_in_time: i64,
}

/// An equipment row with what decides its state (`equipment_state_from_row`), over
/// `equipment e LEFT JOIN gateways g ON g.id = e.gateway`.
pub(super) const EQUIPMENT_STATE_COLUMNS: &str = "e.gateway, e.id, e.kind, e.name, e.registration_code, e.using_unit,
    e.maintenance_unit, e.address, e.lat, e.lon, e.next_inspection, e.insured, e.record,
    COALESCE(g.state, 'unknown') AS gateway_state,
    (SELECT COUNT(*) FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL) AS open_alarms,
    (SELECT COUNT(*) FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL AND a.trapped = 1) AS open_trapped,
    (SELECT a.message FROM alarms a WHERE a.gateway = e.gateway AND a.equipment = e.id ORDER BY a.raised_ms DESC LIMIT 1) AS latest_alarm";

impl Store {
    pub async fn alarm_unit(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT using_unit FROM alarms WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Acknowledges an alarm with who, when and a comment; false when it was already acked.
    pub async fn ack_alarm(
        &self,
        id: &str,
        actor: &str,
        role: &str,
        comment: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE alarms SET acked_ms = $1, acked_by = $2, ack_comment = $3 WHERE id = $4 AND acked_ms IS NULL",
        )
        .bind(now)
        .bind(actor)
        .bind(comment)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            insert_audit(&mut tx, now, actor, role, "alarm.ack", id, comment).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn timeline(&self, alarm_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<StoredEvent> = sqlx::query_as(
            "SELECT id, transition, time_ms, received_ms, value, limit_value, message, source, intake_notes
             FROM events WHERE alarm_id = $1 ORDER BY time_ms",
        )
        .bind(alarm_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| EventRow {
                id: r.id,
                transition: r.transition,
                time: rfc3339(r.time_ms),
                received: rfc3339(r.received_ms),
                value: r.value,
                limit: r.limit_value,
                message: r.message,
                source: r.source,
                intake_notes: r
                    .intake_notes
                    .map(|n| n.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<StoredAudit> = sqlx::query_as("SELECT at_ms, actor, role, action, target, detail FROM audit_log ORDER BY at_ms DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRow {
                at: rfc3339(r.at_ms),
                actor: r.actor,
                role: r.role,
                action: r.action,
                target: r.target,
                detail: r.detail,
            })
            .collect())
    }

    /// How many events are stored: each event id once.
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The regulator's indicators at `now`.
    pub async fn indicators(
        &self,
        config: &CentralConfig,
        now: i64,
    ) -> Result<serde_json::Value, StoreError> {
        let today = crate::central::zone::local_date(now, config.zone());
        // Counted in SQL: the registry of a city is not read into memory for four numbers.
        let counts: RegistryCounts = sqlx::query_as(
            "SELECT COUNT(next_inspection) AS with_date,
                COALESCE(SUM(CASE WHEN next_inspection < $1 THEN 1 ELSE 0 END), 0) AS overdue,
                COALESCE(SUM(CASE WHEN kind = $2 THEN 1 ELSE 0 END), 0) AS elevators,
                COALESCE(SUM(CASE WHEN kind = $2 AND insured = 1 THEN 1 ELSE 0 END), 0) AS insured
             FROM equipment",
        )
        .bind(today.to_string())
        .bind(EquipmentKind::Elevator.as_str())
        .fetch_one(&self.pool)
        .await?;
        let (overdue, with_date) = (counts.overdue as usize, counts.with_date as usize);
        let (insured, elevators) = (counts.insured as usize, counts.elevators as usize);
        let cylinders: CylinderCounts = sqlx::query_as("SELECT COUNT(DISTINCT cylinder_code) AS seen, COUNT(DISTINCT CASE WHEN labelled = 1 THEN cylinder_code END) AS labelled FROM fill_records")
            .fetch_one(&self.pool)
            .await?;
        let respond_ms = config.dispatch.respond_within.as_millis() as i64;
        let arrive_ms = config.dispatch.arrive_within.as_millis() as i64;
        // Counted in SQL too: an open dispatch counts once its limit has passed; a false alarm
        // is left out of arrival.
        let d: DispatchCounts = sqlx::query_as(
            "SELECT
                COALESCE(SUM(CASE WHEN responded_ms IS NOT NULL OR $1 - created_ms > $2 THEN 1 ELSE 0 END), 0) AS responses,
                COALESCE(SUM(CASE WHEN responded_ms - created_ms <= $2 THEN 1 ELSE 0 END), 0) AS responded_in_time,
                COALESCE(SUM(CASE WHEN status <> 'false_alarm' AND (on_site_ms IS NOT NULL OR $1 - created_ms > $3) THEN 1 ELSE 0 END), 0) AS arrivals,
                COALESCE(SUM(CASE WHEN status <> 'false_alarm' AND on_site_ms - created_ms <= $3 THEN 1 ELSE 0 END), 0) AS arrived_in_time
             FROM dispatches",
        )
        .bind(now)
        .bind(respond_ms)
        .bind(arrive_ms)
        .fetch_one(&self.pool)
        .await?;
        let day_ago = now - 24 * 3600 * 1000;
        let raised: Vec<i64> = sqlx::query_scalar(
            "SELECT raised_ms FROM alarms WHERE raised_ms >= $1 ORDER BY raised_ms",
        )
        .bind(day_ago)
        .fetch_all(&self.pool)
        .await?;
        let floods = floods(&raised, 10 * 60 * 1000);
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                serde_json::Value::Null
            } else {
                (a as f64 / b as f64).into()
            }
        };
        Ok(serde_json::json!({
            "inspection_overdue": { "overdue": overdue, "with_date": with_date, "rate": ratio(overdue, with_date) },
            "elevator_insurance": { "insured": insured, "elevators": elevators, "rate": ratio(insured, elevators) },
            "cylinder_labelling": { "labelled": cylinders.labelled, "seen": cylinders.seen, "rate": ratio(cylinders.labelled as usize, cylinders.seen as usize) },
            "response_rate": { "within_s": config.dispatch.respond_within.as_secs_f64(), "in_time": d.responded_in_time, "dispatches": d.responses, "rate": ratio(d.responded_in_time as usize, d.responses as usize) },
            "arrival_rate": { "within_s": config.dispatch.arrive_within.as_secs_f64(), "in_time": d.arrived_in_time, "dispatches": d.arrivals, "rate": ratio(d.arrived_in_time as usize, d.arrivals as usize) },
            "alarms": { "last_24h": raised.len(), "per_hour": raised.len() as f64 / 24.0, "floods_last_24h": floods },
        }))
    }
}

/// Alarm floods among `raised` (ascending times): more than 10 alarms within `window` ms
/// (ISA-18.2's flood); a flood is counted at the alarm that starts such a window, and the
/// alarms within that window start no other.
fn floods(raised: &[i64], window: i64) -> usize {
    let mut floods = 0;
    let mut in_flood_until = i64::MIN;
    // `end` is the first alarm past the window that starts at `t` (it only moves on).
    let mut end = 0;
    for (i, t) in raised.iter().enumerate() {
        while end < raised.len() && raised[end] < t + window {
            end += 1;
        }
        if end - i > 10 && *t >= in_flood_until {
            floods += 1;
            in_flood_until = t + window;
        }
    }
    floods
}

/// One row of [`EQUIPMENT_STATE_COLUMNS`] with its map state on `today` (YYYY-MM-DD).
pub(super) fn equipment_state_from_row(
    r: &sqlx::any::AnyRow,
    today: &str,
) -> Result<EquipmentState, StoreError> {
    let open_alarms: i64 = r.try_get("open_alarms")?;
    let open_trapped: i64 = r.try_get("open_trapped")?;
    let gateway_state: String = r.try_get("gateway_state")?;
    let next_inspection: Option<String> = r.try_get("next_inspection")?;
    let overdue = next_inspection.as_deref().is_some_and(|d| d < today);
    let state = if open_trapped > 0 {
        "trapped"
    } else if open_alarms > 0 {
        "alarm"
    } else if gateway_state == "offline" {
        "offline"
    } else if overdue {
        "overdue"
    } else {
        "normal"
    };
    let record: String = r.try_get("record")?;
    Ok(EquipmentState {
        gateway: r.try_get("gateway")?,
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        registration_code: r.try_get("registration_code")?,
        using_unit: r.try_get("using_unit")?,
        maintenance_unit: r.try_get("maintenance_unit")?,
        address: r.try_get("address")?,
        lat: r.try_get("lat")?,
        lon: r.try_get("lon")?,
        next_inspection,
        insured: r.try_get::<Option<i64>, _>("insured")?.map(|v| v != 0),
        state: state.into(),
        gateway_state,
        open_alarms,
        latest_alarm: r.try_get("latest_alarm")?,
        record: serde_json::from_str(&record).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_flood_is_more_than_ten_alarms_in_the_window() {
        let minute = 60_000;
        let every = |n: i64, from: i64, step: i64| (0..n).map(move |i| from + i * step);
        let window = 10 * minute;
        assert_eq!(
            super::floods(&every(10, 0, minute / 2).collect::<Vec<_>>(), window),
            0
        );
        assert_eq!(
            super::floods(&every(11, 0, minute / 2).collect::<Vec<_>>(), window),
            1
        );
        // Thirty in nine minutes are one flood; a second burst an hour later is another.
        let two: Vec<i64> = every(30, 0, 18_000)
            .chain(every(11, 60 * minute, 1_000))
            .collect();
        assert_eq!(super::floods(&two, window), 2);
        // Eleven spread over more than the window are none.
        assert_eq!(
            super::floods(&every(11, 0, minute).collect::<Vec<_>>(), window),
            0
        );
        // A steady stream of one every 30 s for an hour: a flood every ten minutes.
        assert_eq!(
            super::floods(&every(120, 0, minute / 2).collect::<Vec<_>>(), window),
            6
        );
    }
}
