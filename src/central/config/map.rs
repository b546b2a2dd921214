//! `[map]`: the basemap (tiles and their coordinate system), its centre and zoom, and the
//! district outline the dashboard draws.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Problem;

/// Which coordinate system the basemap tiles are drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum TileCrs {
    #[serde(rename = "WGS-84")]
    Wgs84,
    #[serde(rename = "GCJ-02")]
    Gcj02,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MapSettings {
    /// Leaflet tile URL template; empty means the plain offline base.
    pub tile_url: String,
    pub tile_crs: TileCrs,
    pub tile_attribution: String,
    /// WGS-84 centre used before any equipment is known.
    pub center: [f64; 2],
    pub zoom: u8,
    /// A district outline (GeoJSON, WGS-84) drawn on the map.
    #[serde(skip)]
    pub district_geojson: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMap {
    pub(super) tile_url: Option<String>,
    pub(super) tile_crs: Option<TileCrs>,
    pub(super) tile_attribution: Option<String>,
    pub(super) center: Option<Spanned<[f64; 2]>>,
    pub(super) zoom: Option<u8>,
    pub(super) district_geojson: Option<String>,
}

/// The `[map]` table; relative paths are resolved against `base`.
pub(super) fn validate(raw: RawMap, base: &Path, problems: &mut Vec<Problem>) -> MapSettings {
    let center = raw.center.map_or([31.2304, 121.4737], |c| {
        let [lat, lon] = *c.get_ref();
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            problems.push(Problem::new(
                c.span(),
                "center must be [lat, lon] in degrees",
            ));
        }
        [lat, lon]
    });
    MapSettings {
        tile_url: raw.tile_url.unwrap_or_default(),
        tile_crs: raw.tile_crs.unwrap_or(TileCrs::Wgs84),
        tile_attribution: raw.tile_attribution.unwrap_or_default(),
        center,
        zoom: raw.zoom.unwrap_or(12),
        district_geojson: raw.district_geojson.map(|p| base.join(p)),
    }
}
