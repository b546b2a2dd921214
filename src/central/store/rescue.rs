//! What the rescue page shows beside the dispatch record: the lift's position (WGS-84, from the
//! registry central holds) and the floor the car stopped at (from the trapped incident's
//! details), and the using unit's and building's phones from the registry. Read-only.

use super::{Store, StoreError};

/// The facts of one dispatch for the rescue page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RescueFacts {
    /// WGS-84 (lat, lon), when the registry records a position.
    pub position: Option<(f64, f64)>,
    /// The floor the car stopped at, as the incident reported it ("B2", "7").
    pub floor: Option<String>,
    /// The using unit's and the building's phones, from the registry record.
    pub using_unit_phone: Option<String>,
    pub building_phone: Option<String>,
}

/// The registry position and the stored incident of a dispatch.
#[derive(sqlx::FromRow)]
struct FactsRow {
    lat: Option<f64>,
    lon: Option<f64>,
    payload: Option<String>,
    record: Option<String>,
}

impl Store {
    pub async fn rescue_facts(&self, dispatch_id: &str) -> Result<RescueFacts, StoreError> {
        let Some(row) = sqlx::query_as::<_, FactsRow>(
            "SELECT e.lat, e.lon, ev.payload, e.record FROM dispatches d
             LEFT JOIN equipment e ON e.gateway = d.gateway AND e.id = d.equipment
             LEFT JOIN events ev ON ev.id = d.event_id
             WHERE d.id = $1",
        )
        .bind(dispatch_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(RescueFacts::default());
        };
        let record: serde_json::Value = row
            .record
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        let phone = |key: &str| record[key].as_str().map(str::to_owned);
        Ok(RescueFacts {
            position: row.lat.zip(row.lon),
            floor: row.payload.as_deref().and_then(floor_of),
            using_unit_phone: phone("using_unit_phone"),
            building_phone: phone("building_phone"),
        })
    }
}

/// The `floor` detail of a stored incident (`event.details.floor`): text or a number.
fn floor_of(payload: &str) -> Option<String> {
    let incident: serde_json::Value = serde_json::from_str(payload).ok()?;
    match &incident["event"]["details"]["floor"] {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        // Numbers arrive as f64: floor 7 is stored as 7.0.
        serde_json::Value::Number(n) => n.as_f64().map(|f| {
            if f.fract() == 0.0 {
                format!("{}", f as i64)
            } else {
                f.to_string()
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_read_from_the_incident_details() {
        let with = |floor: &str| format!(r#"{{"event":{{"details":{{"floor":{floor}}}}}}}"#);
        assert_eq!(floor_of(&with("\"B2\"")).as_deref(), Some("B2"));
        assert_eq!(floor_of(&with("7")).as_deref(), Some("7"));
        assert_eq!(floor_of(&with("7.0")).as_deref(), Some("7"));
        assert_eq!(floor_of(&with("\"\"")), None);
        assert_eq!(floor_of(r#"{"event":{"details":{}}}"#), None);
        assert_eq!(floor_of("not json"), None);
    }
}
