//! WGS-84 ↔ GCJ-02, and GCJ-02 → BD-09 (Baidu's system, for its navigation links). Positions are stored as WGS-84 (raw GPS) and converted exactly once, when
//! drawn, to the basemap's system. GCJ-02 is the obfuscated system Chinese web maps (Amap,
//! Tencent, Tianditu tiles in practice) use; outside China it equals WGS-84. The inverse has no
//! closed form: it iterates the forward transform.

use std::f64::consts::PI;

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

fn outside_china(lat: f64, lon: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// Whether (lat, lon) is a point on the globe: finite, latitude within ±90°, longitude within
/// ±180°.
pub fn is_wgs84(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0
}

/// WGS-84 (lat, lon) → GCJ-02 (lat, lon).
pub fn wgs84_to_gcj02(lat: f64, lon: f64) -> (f64, f64) {
    if outside_china(lat, lon) {
        return (lat, lon);
    }
    let mut d_lat = transform_lat(lon - 105.0, lat - 35.0);
    let mut d_lon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (lat + d_lat, lon + d_lon)
}

/// GCJ-02 (lat, lon) → WGS-84 (lat, lon), by fixed-point iteration of the forward transform
/// until it moves less than 1e-10° (two or three rounds in practice).
pub fn gcj02_to_wgs84(lat: f64, lon: f64) -> (f64, f64) {
    if outside_china(lat, lon) {
        return (lat, lon);
    }
    let (mut w_lat, mut w_lon) = (lat, lon);
    for _ in 0..10 {
        let (g_lat, g_lon) = wgs84_to_gcj02(w_lat, w_lon);
        let (e_lat, e_lon) = (g_lat - lat, g_lon - lon);
        w_lat -= e_lat;
        w_lon -= e_lon;
        if e_lat.abs() < 1e-10 && e_lon.abs() < 1e-10 {
            break;
        }
    }
    (w_lat, w_lon)
}

/// GCJ-02 (lat, lon) → BD-09 (lat, lon), the further offset Baidu Maps draws and navigates in.
/// Unlike GCJ-02 it applies everywhere, not only in China.
pub fn gcj02_to_bd09(lat: f64, lon: f64) -> (f64, f64) {
    let x_pi = PI * 3000.0 / 180.0;
    let z = (lon * lon + lat * lat).sqrt() + 0.000_02 * (lat * x_pi).sin();
    let theta = lat.atan2(lon) + 0.000_003 * (lon * x_pi).cos();
    (z * theta.sin() + 0.006, z * theta.cos() + 0.0065)
}

/// Converts every `[lon, lat]` position of a GeoJSON value in place (GeoJSON is lon-first).
pub fn geojson_to_gcj02(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => {
            let is_position = items.len() >= 2
                && items
                    .iter()
                    .take(2)
                    .all(|v| v.is_f64() || v.is_i64() || v.is_u64());
            if is_position {
                let lon = items[0].as_f64().unwrap_or_default();
                let lat = items[1].as_f64().unwrap_or_default();
                let (g_lat, g_lon) = wgs84_to_gcj02(lat, lon);
                items[0] = g_lon.into();
                items[1] = g_lat.into();
            } else {
                items.iter_mut().for_each(geojson_to_gcj02);
            }
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(geojson_to_gcj02),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_off_the_globe_are_not_wgs84() {
        let cases = [
            ((31.2352, 121.5058), true),
            ((-90.0, 180.0), true),
            ((90.0, -180.0), true),
            ((1000.0, -1000.0), false),
            ((90.0001, 0.0), false),
            ((0.0, -180.0001), false),
            ((f64::NAN, 0.0), false),
            ((0.0, f64::INFINITY), false),
        ];
        for ((lat, lon), expected) in cases {
            assert_eq!(is_wgs84(lat, lon), expected, "{lat}, {lon}");
        }
    }

    /// Known pair from the README of the coordtransform reference implementation:
    /// `wgs84togcj02(116.404, 39.915)` → `[116.41024449916938, 39.91640428150164]`.
    const KNOWN: ((f64, f64), (f64, f64)) = (
        (39.915, 116.404),
        (39.916_404_281_501_64, 116.410_244_499_169_38),
    );

    /// Points for the round trip: Beijing, Shanghai, Guangzhou.
    const POINTS: [(f64, f64); 3] = [
        (39.9075, 116.3914),
        (31.2304, 121.4737),
        (23.1291, 113.2644),
    ];

    #[test]
    fn wgs84_to_gcj02_matches_known_pairs() {
        let ((lat, lon), (g_lat, g_lon)) = KNOWN;
        let (a, b) = wgs84_to_gcj02(lat, lon);
        assert!(
            (a - g_lat).abs() < 1e-9 && (b - g_lon).abs() < 1e-9,
            "({a},{b})"
        );
        let (w_lat, w_lon) = gcj02_to_wgs84(g_lat, g_lon);
        assert!(
            (w_lat - lat).abs() < 1e-8 && (w_lon - lon).abs() < 1e-8,
            "({w_lat},{w_lon})"
        );
    }

    #[test]
    fn gcj02_to_wgs84_inverts_to_1e8() {
        for (lat, lon) in POINTS {
            let (g_lat, g_lon) = wgs84_to_gcj02(lat, lon);
            // About 500 m apart: the offset a WGS-84 point drawn on a GCJ-02 map shows.
            assert!((g_lat - lat).abs() + (g_lon - lon).abs() > 1e-3);
            let (w_lat, w_lon) = gcj02_to_wgs84(g_lat, g_lon);
            assert!((w_lat - lat).abs() < 1e-8 && (w_lon - lon).abs() < 1e-8);
        }
    }

    /// Known pairs: the coordtransform reference's README, `gcj02tobd09(116.404, 39.915)` →
    /// `[116.41036949371029, 39.92133699351021]`; and Beijing railway station as a published
    /// coordinate-conversion package documents it, GCJ-02 (39.90245, 116.42703) → BD-09
    /// (39.90851, 116.43351), to 5 decimals.
    #[test]
    fn gcj02_to_bd09_matches_known_pairs() {
        let (lat, lon) = gcj02_to_bd09(39.915, 116.404);
        assert!(
            (lat - 39.921_336_993_510_21).abs() < 1e-9
                && (lon - 116.410_369_493_710_29).abs() < 1e-9,
            "({lat},{lon})"
        );
        let (lat, lon) = gcj02_to_bd09(39.90245, 116.42703);
        assert!(
            (lat - 39.90851).abs() < 1e-5 && (lon - 116.43351).abs() < 1e-5,
            "({lat},{lon})"
        );
    }

    #[test]
    fn outside_china_is_unchanged() {
        assert_eq!(wgs84_to_gcj02(48.8584, 2.2945), (48.8584, 2.2945));
    }
}
