//! Basemap presets people in a Chinese district recognise, chosen with `[map] preset`:
//! - `tianditu`: the national Tianditu vector map with its Chinese label layer. Its tiles are in
//!   CGCS2000, which differs from WGS-84 by centimetres, so markers are drawn as WGS-84. Tianditu
//!   needs a key (`tile_key`, a browser key: it travels in every tile request).
//! - `amap`: AMap (GaoDe) road tiles with Chinese labels, in GCJ-02: markers and outlines are
//!   converted with `central::geo` at render time.
//!
//! Hosts are written as `{s}.parent` so that the Content-Security-Policy names them exactly
//! (`*.parent`, `headers.rs`).

use crate::central::config::TileCrs;

/// The tile layers of a preset, as the map pages draw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub tile_url: String,
    /// Values of `{s}` in the URLs.
    pub subdomains: Vec<String>,
    /// A layer of place names drawn over the tiles (Tianditu's), or empty.
    pub label_url: String,
    pub crs: TileCrs,
    pub attribution: String,
}

/// The preset names `[map] preset` accepts.
pub const NAMES: &[&str] = &["tianditu", "amap"];

/// The preset called `name`, with `key` where it needs one; `Err` says what is wrong.
pub fn preset(name: &str, key: Option<&str>) -> Result<Preset, String> {
    match name {
        "tianditu" => {
            let key = key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                "the tianditu preset needs `tile_key` (a Tianditu browser key)".to_owned()
            })?;
            if !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err("tile_key must be letters and digits only".to_owned());
            }
            let layer = |name: &str| {
                format!(
                    "https://{{s}}.tianditu.gov.cn/{name}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0\
                     &LAYER={name}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
                )
            };
            Ok(Preset {
                tile_url: layer("vec"),
                subdomains: (0..8).map(|n| format!("t{n}")).collect(),
                label_url: layer("cva"),
                crs: TileCrs::Wgs84,
                attribution: "© 天地图 Tianditu".to_owned(),
            })
        }
        "amap" => Ok(Preset {
            tile_url: "https://{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
                .to_owned(),
            subdomains: (1..=4).map(|n| format!("webrd0{n}")).collect(),
            label_url: String::new(),
            crs: TileCrs::Gcj02,
            attribution: "© 高德地图 AMap".to_owned(),
        }),
        other => Err(format!(
            "unknown map preset `{other}`: use {}",
            NAMES.join(" or ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tianditu_needs_a_key_and_draws_in_wgs84() {
        assert!(preset("tianditu", None).unwrap_err().contains("tile_key"));
        assert!(preset("tianditu", Some("ab\"c")).is_err());
        let p = preset("tianditu", Some("0123abcd")).unwrap();
        assert_eq!(p.crs, TileCrs::Wgs84);
        assert!(p
            .tile_url
            .starts_with("https://{s}.tianditu.gov.cn/vec_w/wmts?"));
        assert!(p.tile_url.ends_with("&tk=0123abcd") && p.label_url.contains("LAYER=cva"));
        assert_eq!(p.subdomains.len(), 8);
    }

    /// `[map] preset` in a central config: the preset's tiles, or a problem placed at it.
    #[test]
    fn presets_in_the_central_config() {
        let parse = |map: &str| {
            let text = format!("[central]\ninstance = \"a\"\n[map]\n{map}");
            crate::central::config::parse(&text, std::path::Path::new("c.toml"))
        };
        let amap = parse("preset = \"amap\"\n").unwrap();
        assert_eq!(amap.map.tile_crs, TileCrs::Gcj02);
        assert!(amap.map.tile_url.contains("autonavi.com"));
        let tianditu = parse("preset = \"tianditu\"\ntile_key = \"k123\"\n").unwrap();
        assert_eq!(tianditu.map.tile_subdomains.len(), 8);
        for (map, says) in [
            ("preset = \"tianditu\"\n", "needs `tile_key`"),
            (
                "preset = \"amap\"\ntile_url = \"http://x/{z}\"\n",
                "remove them, or the preset",
            ),
            ("preset = \"osm\"\n", "unknown map preset `osm`"),
        ] {
            let e = parse(map).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("c.toml:4:10"), "{map}: {e}");
        }
    }

    #[test]
    fn amap_is_gcj02_without_a_key() {
        let p = preset("amap", None).unwrap();
        assert_eq!(p.crs, TileCrs::Gcj02);
        assert!(p.tile_url.contains("{x}") && p.tile_url.contains("{z}"));
        assert_eq!(p.subdomains[0], "webrd01");
        assert!(preset("google", None)
            .unwrap_err()
            .contains("tianditu or amap"));
    }
}
