//! The map's data: the basemap settings, the district outline and the equipment with its state,
//! each position converted to the basemap's coordinate system.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::json;

use super::{caller, ApiError, AppState};
use crate::central::config::{CentralConfig, TileCrs};
use crate::central::geo;

pub(super) async fn map_config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let m = &state.config.map;
    let center = match m.tile_crs {
        TileCrs::Wgs84 => m.center,
        TileCrs::Gcj02 => {
            let (lat, lon) = geo::wgs84_to_gcj02(m.center[0], m.center[1]);
            [lat, lon]
        }
    };
    Json(json!({
        "tile_url": m.tile_url,
        "tile_subdomains": m.tile_subdomains,
        "label_url": m.label_url,
        "tile_crs": m.tile_crs,
        "tile_attribution": m.tile_attribution,
        "center": center,
        "zoom": m.zoom,
        "district": m.district_geojson.is_some(),
    }))
}

pub(super) async fn map_district(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let path = state
        .config
        .map
        .district_geojson
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("district outline".into()))?;
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ApiError::NotFound(format!("district outline ({e})")))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::BadRequest(format!("district outline is not GeoJSON: {e}")))?;
    if state.config.map.tile_crs == TileCrs::Gcj02 {
        geo::geojson_to_gcj02(&mut value);
    }
    Ok(Json(value))
}

/// Equipment with its state and, for drawing, its position in the basemap's system.
pub(super) async fn equipment(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = c.equipment_scope("list equipment")?;
    let today = chrono::Utc::now().date_naive();
    let rows = state.store.equipment_states(unit, today).await?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e).expect("equipment serializes");
            v["display"] = json!(display(&state.config, e.lat.zip(e.lon)));
            v
        })
        .collect();
    Ok(Json(json!(out)))
}

/// A WGS-84 position in the basemap's system, for drawing. A coordinate off the globe is not
/// drawn: one such marker would zoom the map out to the whole world.
pub(super) fn display(config: &CentralConfig, position: Option<(f64, f64)>) -> Option<[f64; 2]> {
    position
        .filter(|(lat, lon)| geo::is_wgs84(*lat, *lon))
        .map(|(lat, lon)| match config.map.tile_crs {
            TileCrs::Gcj02 => {
                let (a, b) = geo::wgs84_to_gcj02(lat, lon);
                [a, b]
            }
            TileCrs::Wgs84 => [lat, lon],
        })
}
