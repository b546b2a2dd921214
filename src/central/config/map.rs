//! `[map]`: the basemap of the pages' map (tiles or a preset, its coordinate system, the
//! starting view, a district outline).

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};

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
    /// Values of `{s}` in the tile URLs (Leaflet's default `abc` when empty).
    pub tile_subdomains: Vec<String>,
    /// A label layer drawn over the tiles (a preset's), or empty.
    pub label_url: String,
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
pub struct RawMap {
    /// `tianditu` or `amap` (web/tiles.rs), instead of `tile_url`.
    preset: Option<Spanned<String>>,
    tile_key: Option<String>,
    tile_url: Option<String>,
    tile_crs: Option<TileCrs>,
    tile_attribution: Option<String>,
    center: Option<Spanned<[f64; 2]>>,
    zoom: Option<u8>,
    district_geojson: Option<String>,
}

impl Check {
    pub(crate) fn map_settings(&mut self, map: RawMap) -> MapSettings {
        let center = map.center.map_or([31.2304, 121.4737], |c| {
            let [lat, lon] = *c.get_ref();
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                self.push(Problem::new(
                    c.span(),
                    "center must be [lat, lon] in degrees",
                ));
            }
            [lat, lon]
        });
        let preset = map.preset.as_ref().and_then(|p| {
            let chosen = crate::central::web::tiles::preset(p.get_ref(), map.tile_key.as_deref());
            let conflict = (map.tile_url.is_some() || map.tile_crs.is_some()).then(|| {
                "a preset sets tile_url and tile_crs itself: remove them, or the preset".to_owned()
            });
            match conflict.map_or(chosen, Err) {
                Ok(preset) => Some(preset),
                Err(why) => {
                    self.push(
                        Problem::new(p.span(), why).hint(
                            "preset = \"tianditu\" with tile_key = \"…\", or preset = \"amap\"",
                        ),
                    );
                    None
                }
            }
        });
        MapSettings {
            tile_url: preset.as_ref().map_or_else(
                || map.tile_url.clone().unwrap_or_default(),
                |p| p.tile_url.clone(),
            ),
            tile_subdomains: preset
                .as_ref()
                .map(|p| p.subdomains.clone())
                .unwrap_or_default(),
            label_url: preset
                .as_ref()
                .map(|p| p.label_url.clone())
                .unwrap_or_default(),
            tile_crs: preset
                .as_ref()
                .map_or(map.tile_crs.unwrap_or(TileCrs::Wgs84), |p| p.crs),
            tile_attribution: preset.as_ref().map_or_else(
                || map.tile_attribution.clone().unwrap_or_default(),
                |p| p.attribution.clone(),
            ),
            center,
            zoom: map.zoom.unwrap_or(12),
            district_geojson: map.district_geojson.map(|p| self.config_dir.join(p)),
        }
    }
}
