//! The map's data: the basemap settings, the district outline, and the map's compact markers
//! and clusters for a box and zoom; each position converted to the basemap's coordinate system.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{caller, ApiError, AppState};
use crate::central::config::{CentralConfig, TileCrs};
use crate::central::geo;
use crate::central::store::{MapPoint, WORST_FIRST};

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

/// Below this many points the map gets every marker and clusters them itself.
pub const MARKER_LIMIT: usize = 2_000;
/// From this zoom on the map shows single markers (Leaflet's `disableClusteringAtZoom`).
pub const MARKER_ZOOM: u8 = 15;
/// A server cluster's cell, in screen pixels at the request's zoom.
const CELL_PX: f64 = 60.0;

#[derive(Deserialize)]
pub(super) struct MarkerQuery {
    /// `south,west,north,east` in the basemap's system; absent for everything.
    bbox: Option<String>,
    /// The map's zoom (Web Mercator, 256-pixel tiles).
    zoom: Option<u8>,
}

/// A grid cell's points while they are counted.
struct Cell {
    n: u64,
    lat: f64,
    lon: f64,
    worst: usize,
    /// The first point's marker, sent alone when the cell holds one point.
    marker: serde_json::Value,
}

/// `GET /api/v1/map/markers?bbox=&zoom=`: what the map draws, compactly. Every marker
/// (`complete`) while the caller sees at most [`MARKER_LIMIT`] points; otherwise the markers in
/// the box when they are few or the zoom is [`MARKER_ZOOM`] or more; otherwise clusters of a
/// grid of [`CELL_PX`] pixels, each wearing the worst state of its points, with the lone points
/// of a cell as markers. `total` counts the points in the answer (clusters' and markers'),
/// `bounds` is the box of all the caller's points. Positions in the basemap's system;
/// a marker is `[gateway, id, lat, lon, kind, state, name]`, a cluster `[lat, lon, count, worst]`.
pub(super) async fn markers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<MarkerQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = c.equipment_scope("list equipment")?;
    let bbox = match q.bbox.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_bbox(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "bbox must be south,west,north,east in degrees, not `{text}`"
            ))
        })?),
    };
    let zoom = q.zoom.unwrap_or(state.config.map.zoom).min(22);
    let view = state
        .store
        .map_view(crate::central::zone::today(state.config.zone()))
        .await?;
    let mut mine: Vec<(&MapPoint, [f64; 2])> = Vec::new();
    let mut bounds: Option<[f64; 4]> = None;
    for p in view.points.iter() {
        if unit.is_some_and(|u| u != &*p.using_unit) {
            continue;
        }
        let Some(at) = display(&state.config, Some((p.lat, p.lon))) else {
            continue;
        };
        let b = bounds.get_or_insert([at[0], at[1], at[0], at[1]]);
        *b = [
            b[0].min(at[0]),
            b[1].min(at[1]),
            b[2].max(at[0]),
            b[3].max(at[1]),
        ];
        mine.push((p, at));
    }
    let complete = mine.len() <= MARKER_LIMIT;
    if !complete {
        if let Some([s, w, n, e]) = bbox {
            mine.retain(|(_, [lat, lon])| (s..=n).contains(lat) && (w..=e).contains(lon));
        }
    }
    let marker = |p: &MapPoint, at: [f64; 2]| {
        json!([
            &*p.gateway,
            &*p.id,
            at[0],
            at[1],
            &*p.kind,
            view.state(p),
            &*p.name
        ])
    };
    let total = mine.len();
    let (clusters, markers) = if complete || zoom >= MARKER_ZOOM || mine.len() <= MARKER_LIMIT {
        let markers: Vec<_> = mine.iter().map(|(p, at)| marker(p, *at)).collect();
        (Vec::new(), markers)
    } else {
        let cell = CELL_PX * 360.0 / (256.0 * 2f64.powi(zoom.into()));
        let mut cells: HashMap<(i64, i64), Cell> = HashMap::new();
        for (p, at) in &mine {
            let key = ((at[0] / cell).floor() as i64, (at[1] / cell).floor() as i64);
            let worst = WORST_FIRST
                .iter()
                .position(|s| *s == view.state(p))
                .unwrap_or(WORST_FIRST.len() - 1);
            let c = cells.entry(key).or_insert_with(|| Cell {
                n: 0,
                lat: 0.0,
                lon: 0.0,
                worst,
                marker: marker(p, *at),
            });
            c.n += 1;
            c.lat += at[0];
            c.lon += at[1];
            c.worst = c.worst.min(worst);
        }
        let mut cells: Vec<_> = cells.into_iter().collect();
        cells.sort_by_key(|(key, _)| *key);
        let (mut clusters, mut markers) = (Vec::new(), Vec::new());
        for (_, c) in cells {
            if c.n == 1 {
                markers.push(c.marker);
            } else {
                let n = c.n as f64;
                clusters.push(json!([c.lat / n, c.lon / n, c.n, WORST_FIRST[c.worst]]));
            }
        }
        (clusters, markers)
    };
    Ok(Json(json!({
        "total": total,
        "complete": complete,
        "bounds": bounds.map(|[s, w, n, e]| [[s, w], [n, e]]),
        "clusters": clusters,
        "markers": markers,
    })))
}

fn parse_bbox(text: &str) -> Option<[f64; 4]> {
    let v: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()?;
    match v[..] {
        [s, w, n, e] if s <= n && w <= e => Some([s, w, n, e]),
        _ => None,
    }
}
