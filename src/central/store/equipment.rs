//! One piece of equipment for its page (`GET /api/v1/equipment/{gateway}/{id}`) and the search
//! that leads there (`GET /api/v1/equipment/search?q=`): registration code, 96333 code, name
//! or address. Read-only.

use serde::Serialize;
use sqlx::Row;

use super::alarms::{alarm_from_row, like_pattern, AlarmRow, COLUMNS};
use super::board::{dispatch_from_row, DISPATCH_COLUMNS};
use super::dashboard::{equipment_state_from_row, EQUIPMENT_STATE_COLUMNS};
use super::{rfc3339, EquipmentState, Store, StoreError};
use crate::central::dispatch::Dispatch;
use crate::model::FillRecord;

/// The most matches a search returns.
pub const SEARCH_LIMIT: i64 = 20;
/// The most alarms, dispatches and fills the page lists, newest first.
const HISTORY: i64 = 50;

/// A search match: enough to tell two lifts of one building apart.
#[derive(Debug, Clone, Serialize)]
pub struct EquipmentMatch {
    pub gateway: String,
    pub id: String,
    pub kind: String,
    pub name: String,
    pub registration_code: String,
    pub rescue_code: Option<String>,
    pub using_unit: String,
    pub address: String,
}

/// The latest value central received for one rule of the equipment (with its alarm events:
/// central keeps no time series), and the limit it was held against.
#[derive(Debug, Clone, Serialize)]
pub struct LatestReading {
    pub rule: String,
    pub value: f64,
    pub limit: Option<f64>,
    pub time: String,
    pub transition: String,
}

/// Everything the equipment page shows.
#[derive(Debug, Clone, Serialize)]
pub struct EquipmentDetail {
    pub equipment: EquipmentState,
    pub readings: Vec<LatestReading>,
    pub alarms: Vec<AlarmRow>,
    pub dispatches: Vec<Dispatch>,
    /// A cylinder's fills (by its code), or a filling station's (by the station).
    pub fills: Vec<FillRecord>,
}

impl Store {
    /// Equipment whose registration code, 96333 code, name or address holds `q` (ASCII case
    /// ignored); only `using_unit`'s when given. An exact code comes first.
    pub async fn search_equipment(
        &self,
        q: &str,
        using_unit: Option<&str>,
    ) -> Result<Vec<EquipmentMatch>, StoreError> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(Vec::new());
        }
        // The 96333 code lives in the registry record, serialized by serde_json without spaces.
        let rescue = format!("%\"rescue_code\":\"{}\"%", &like_pattern(q)[1..]);
        let rows = sqlx::query(
            "SELECT gateway, id, kind, name, registration_code, using_unit, address, record FROM equipment
             WHERE (LOWER(registration_code) LIKE LOWER($1) ESCAPE '\\' OR LOWER(name) LIKE LOWER($1) ESCAPE '\\'
                OR LOWER(address) LIKE LOWER($1) ESCAPE '\\' OR record LIKE $2 ESCAPE '\\')
               AND ($3 = '' OR using_unit = $3)
             ORDER BY CASE WHEN registration_code = $4 THEN 0 ELSE 1 END, name, gateway, id LIMIT $5",
        )
        .bind(like_pattern(q))
        .bind(rescue)
        .bind(using_unit.unwrap_or("").to_owned())
        .bind(q.to_owned())
        .bind(SEARCH_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let record: String = r.try_get("record")?;
                let record: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
                Ok(EquipmentMatch {
                    gateway: r.try_get("gateway")?,
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    name: r.try_get("name")?,
                    registration_code: r.try_get("registration_code")?,
                    rescue_code: record["rescue_code"].as_str().map(str::to_owned),
                    using_unit: r.try_get("using_unit")?,
                    address: r.try_get("address")?,
                })
            })
            .collect()
    }

    /// The page of one piece of equipment, or None when central does not know it (or it is not
    /// `using_unit`'s, when given).
    pub async fn equipment_detail(
        &self,
        gateway: &str,
        id: &str,
        using_unit: Option<&str>,
        today: chrono::NaiveDate,
    ) -> Result<Option<EquipmentDetail>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {EQUIPMENT_STATE_COLUMNS} FROM equipment e LEFT JOIN gateways g ON g.id = e.gateway
             WHERE e.gateway = $1 AND e.id = $2 AND ($3 = '' OR e.using_unit = $3)"
        ))
        .bind(gateway.to_owned())
        .bind(id.to_owned())
        .bind(using_unit.unwrap_or("").to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let equipment = equipment_state_from_row(&row, &today.to_string())?;
        let alarms = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM alarms WHERE gateway = $1 AND equipment = $2
             ORDER BY raised_ms DESC, id DESC LIMIT $3"
        ))
        .bind(gateway.to_owned())
        .bind(id.to_owned())
        .bind(HISTORY)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(alarm_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let dispatches = sqlx::query(&format!(
            "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE gateway = $1 AND equipment = $2
             ORDER BY created_ms DESC LIMIT $3"
        ))
        .bind(gateway.to_owned())
        .bind(id.to_owned())
        .bind(HISTORY)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(dispatch_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let readings = self.latest_readings(gateway, id).await?;
        let fills = match equipment.kind.as_str() {
            "gas_cylinder" => {
                self.fills_of_cylinder(&equipment.registration_code, HISTORY)
                    .await?
            }
            "filling_station" => self.fills_of_station(gateway, id).await?,
            _ => Vec::new(),
        };
        Ok(Some(EquipmentDetail {
            equipment,
            readings,
            alarms,
            dispatches,
            fills,
        }))
    }

    /// The newest event with a value, per rule.
    async fn latest_readings(
        &self,
        gateway: &str,
        id: &str,
    ) -> Result<Vec<LatestReading>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule, value, limit_value, time_ms, transition FROM events
             WHERE gateway = $1 AND equipment = $2 AND value IS NOT NULL
             ORDER BY time_ms DESC LIMIT 500",
        )
        .bind(gateway.to_owned())
        .bind(id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<LatestReading> = Vec::new();
        for r in &rows {
            let rule: String = r.try_get("rule")?;
            if out.iter().any(|o| o.rule == rule) {
                continue;
            }
            out.push(LatestReading {
                rule,
                value: r.try_get("value")?,
                limit: r.try_get("limit_value")?,
                time: rfc3339(r.try_get("time_ms")?),
                transition: r.try_get("transition")?,
            });
        }
        Ok(out)
    }

    /// The fills a station reported, newest first.
    async fn fills_of_station(
        &self,
        gateway: &str,
        id: &str,
    ) -> Result<Vec<FillRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM fill_records WHERE gateway = $1 ORDER BY time_ms DESC LIMIT 2000",
        )
        .bind(gateway.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let text: String = row.try_get("record")?;
            let fill: FillRecord =
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if fill.equipment == id {
                out.push(fill);
                if out.len() as i64 == HISTORY {
                    break;
                }
            }
        }
        Ok(out)
    }
}
