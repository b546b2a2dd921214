//! The demo's own district outline (GeoJSON, WGS-84), written beside its configs and drawn on
//! the map under the markers, so that without a tile server the first screen is a place: an
//! irregular outline about 4 km around the centre, cut into four streets.

use serde_json::{json, Value};

/// Corners of the outline.
const CORNERS: usize = 24;
/// Streets the district is cut into, as sectors from the centre.
const STREETS: usize = 4;

/// The outline's corners, [lon, lat] as GeoJSON writes them, the same every run.
fn ring(center: (f64, f64)) -> Vec<[f64; 2]> {
    let km_lat = 1.0 / 111.0;
    let km_lon = km_lat / center.0.to_radians().cos();
    (0..CORNERS)
        .map(|i| {
            let a = i as f64 / CORNERS as f64 * std::f64::consts::TAU;
            // 3.6 to 4.6 km out: a district is not a circle.
            let r = 4.1 + 0.35 * (3.0 * a).sin() + 0.15 * (7.0 * a).cos();
            [
                center.1 + r * km_lon * a.cos(),
                center.0 + r * km_lat * a.sin(),
            ]
        })
        .collect()
}

/// The district (a polygon named `name`) and its streets (sectors, `level = "street"`).
pub fn geojson(center: (f64, f64), name: &str) -> Value {
    let corners = ring(center);
    let mut outline = corners.clone();
    outline.push(corners[0]);
    let middle = [center.1, center.0];
    let mut features = vec![json!({
        "type": "Feature",
        "properties": { "name": name, "level": "district" },
        "geometry": { "type": "Polygon", "coordinates": [outline] },
    })];
    for s in 0..STREETS {
        let from = s * CORNERS / STREETS;
        let mut sector = vec![middle];
        sector.extend((from..=from + CORNERS / STREETS).map(|i| corners[i % CORNERS]));
        sector.push(middle);
        features.push(json!({
            "type": "Feature",
            "properties": { "name": format!("{name}, street {}", s + 1), "level": "street" },
            "geometry": { "type": "Polygon", "coordinates": [sector] },
        }));
    }
    json!({ "type": "FeatureCollection", "features": features })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_is_closed_and_holds_the_fleet() {
        let c = (31.2304, 121.4737);
        let g = geojson(c, "Demo district");
        let features = g["features"].as_array().unwrap();
        assert_eq!(features.len(), 1 + STREETS);
        let ring = features[0]["geometry"]["coordinates"][0]
            .as_array()
            .unwrap();
        assert_eq!(ring.first(), ring.last());
        // Every corner 3.5 to 5 km out; the fleet stands within 4 km (mod.rs's test).
        for p in ring {
            let (lon, lat) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            let km = ((lat - c.0).powi(2) + ((lon - c.1) * c.0.to_radians().cos()).powi(2)).sqrt()
                * 111.0;
            assert!((3.5..5.0).contains(&km), "{km}");
        }
        for street in &features[1..] {
            let s = street["geometry"]["coordinates"][0].as_array().unwrap();
            assert_eq!(s.first(), s.last());
        }
    }
}
