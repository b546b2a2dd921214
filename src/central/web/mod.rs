//! The dashboard's pages and assets, embedded in the binary: no internet needed at run time.
//! Leaflet, its marker-cluster plugin and uPlot (the indicator charts) come from npm through
//! build.rs (OUT_DIR/web). No page holds inline script: each loads its own script from
//! `/assets/` (see `headers.rs`).

pub mod headers;
pub mod session;
pub mod tiles;

pub const MAP_HTML: &str = include_str!("map.html");
pub const ALARMS_HTML: &str = include_str!("alarms.html");
pub const INDICATORS_HTML: &str = include_str!("indicators.html");
pub const RESCUE_HTML: &str = include_str!("rescue.html");
pub const BOARD_HTML: &str = include_str!("board.html");
pub const SEARCH_HTML: &str = include_str!("search.html");
pub const EQUIPMENT_HTML: &str = include_str!("equipment.html");
pub const UNIT_HTML: &str = include_str!("unit.html");
pub const RISK_HTML: &str = include_str!("risk.html");
pub const HAZARDS_HTML: &str = include_str!("hazards.html");
pub const CYLINDER_HTML: &str = include_str!("cylinder.html");
pub const EXCHANGE_HTML: &str = include_str!("exchange.html");
pub const SCORECARDS_HTML: &str = include_str!("scorecards.html");
pub const SCORECARD_REPORT_HTML: &str = include_str!("scorecard_report.html");

/// The text catalogues, one per language (`i18n/*.json`, keys alike), as the script that hands
/// them to `seguard.js`: every text a page shows comes from here.
pub const I18N_JS: &str = concat!(
    "window.SEGUARD_I18N = {\"zh-CN\": ",
    include_str!("i18n/zh-CN.json"),
    ", \"en\": ",
    include_str!("i18n/en.json"),
    "};\n"
);

macro_rules! built {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name)).as_slice()
    };
}

/// The asset served at `/assets/{name}`, with its content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    let found: (&str, &[u8]) = match name {
        "seguard.css" => ("text/css", include_bytes!("seguard.css")),
        "regulator.css" => ("text/css", include_bytes!("regulator.css")),
        "seguard.js" => ("text/javascript", include_bytes!("seguard.js")),
        "i18n.js" => ("text/javascript", I18N_JS.as_bytes()),
        "map.js" => ("text/javascript", include_bytes!("map.js")),
        "alarms.js" => ("text/javascript", include_bytes!("alarms.js")),
        "indicators.js" => ("text/javascript", include_bytes!("indicators.js")),
        "rescue.js" => ("text/javascript", include_bytes!("rescue.js")),
        "board.js" => ("text/javascript", include_bytes!("board.js")),
        "search.js" => ("text/javascript", include_bytes!("search.js")),
        "equipment.js" => ("text/javascript", include_bytes!("equipment.js")),
        "unit.js" => ("text/javascript", include_bytes!("unit.js")),
        "risk.js" => ("text/javascript", include_bytes!("risk.js")),
        "hazards.js" => ("text/javascript", include_bytes!("hazards.js")),
        "cylinder.js" => ("text/javascript", include_bytes!("cylinder.js")),
        "exchange.js" => ("text/javascript", include_bytes!("exchange.js")),
        "scorecards.js" => ("text/javascript", include_bytes!("scorecards.js")),
        "leaflet.js" => ("text/javascript", built!("leaflet.js")),
        "leaflet.css" => ("text/css", built!("leaflet.css")),
        "leaflet.markercluster.js" => ("text/javascript", built!("leaflet.markercluster.js")),
        "MarkerCluster.css" => ("text/css", built!("MarkerCluster.css")),
        "MarkerCluster.Default.css" => ("text/css", built!("MarkerCluster.Default.css")),
        "uplot.js" => ("text/javascript", built!("uplot.js")),
        "uplot.css" => ("text/css", built!("uplot.css")),
        _ => return None,
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Both catalogues parse and hold the same keys, none empty.
    #[test]
    fn catalogues_have_the_same_keys() {
        let parse = |text: &str| serde_json::from_str::<BTreeMap<String, String>>(text).unwrap();
        let zh = parse(include_str!("i18n/zh-CN.json"));
        let en = parse(include_str!("i18n/en.json"));
        assert_eq!(zh.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>());
        assert!(zh.values().chain(en.values()).all(|v| !v.is_empty()));
    }
}
