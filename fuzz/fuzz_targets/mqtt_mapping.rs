//! MQTT payload mapping: a topic and a payload from a device, mapped with the example site's
//! mappings plus a few that use every time format, scale and offset.
//!
//! Input: the topic, a newline, then the payload bytes.
//! Properties: never panics; a mapped message gives readings of a known equipment, each with a
//! finite number (or a bool or text) and a time that the line-protocol encoder can write in
//! nanoseconds; a refused message has one of the counted reasons.
#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use seguard::ingest::mqtt::mapping::{Mapper, Rejection};
use seguard::model::Value;

const SITE_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../firmware-configs/site-example.toml"
);

/// Mappings the example does not show: every other time format, scales and offsets.
const MORE_MAPPINGS: &str = r#"
[site]
id = "s1"
name = "fuzz site"
[gateway]
id = "gw1"
[mqtt]
host = "127.0.0.1"
[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
nameplate = { working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }
[[ingest.mqtt]]
topic = "s/{equipment}/sec"
time_pointer = "/t"
time_format = "unix_s"
fields = [{ pointer = "/p", metric = "pressure", scale = 1e-6 }, { pointer = "/c", metric = "temp", scale = 0.1, offset = -40 }]
[[ingest.mqtt]]
topic = "s/{equipment}/us"
time_pointer = "/t"
time_format = "unix_us"
fields = [{ pointer = "/p", metric = "pressure", scale = 1e300 }, { pointer = "/on", metric = "on", type = "bool" }]
[[ingest.mqtt]]
topic = "s/+/{equipment}/ns"
time_pointer = "/t"
time_format = "unix_ns"
fields = [{ pointer = "/a/0", metric = "a" }, { pointer = "/code", metric = "code", type = "text" }]
"#;

/// The mapper and the equipment it knows.
fn mapper() -> &'static (Mapper, HashSet<String>) {
    static MAPPER: OnceLock<(Mapper, HashSet<String>)> = OnceLock::new();
    MAPPER.get_or_init(|| {
        let text = std::fs::read_to_string(SITE_EXAMPLE).expect("the example site config");
        let example = seguard::config::parse(&text, Path::new(SITE_EXAMPLE))
            .unwrap_or_else(|e| panic!("{e}"));
        let more = seguard::config::parse(MORE_MAPPINGS, Path::new("fuzz.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let known: HashSet<String> = example
            .equipment
            .iter()
            .chain(&more.equipment)
            .map(|e| e.id.clone())
            .collect();
        let mut mappings = example.mqtt_mappings;
        mappings.extend(more.mqtt_mappings);
        (Mapper::new(mappings, known.clone(), 4096), known)
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(topic) = std::str::from_utf8(&data[..split]) else {
        return; // MQTT topics are UTF-8; the client refuses anything else.
    };
    let payload = data.get(split + 1..).unwrap_or_default();
    let arrival = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let (mapper, known) = mapper();
    match mapper.map(topic, payload, arrival) {
        Ok(mapped) => {
            let readings = mapped.readings;
            assert!(!readings.is_empty(), "a mapped message gives readings");
            for r in &readings {
                assert!(
                    known.contains(&r.equipment),
                    "unknown equipment {}",
                    r.equipment
                );
                if let Value::Number(n) = r.value {
                    assert!(n.is_finite(), "{} is {n}", r.metric);
                }
                assert!(
                    r.time.timestamp_nanos_opt().is_some(),
                    "time {} of {} cannot be written in nanoseconds",
                    r.time,
                    r.metric
                );
            }
        }
        Err(rejection) => {
            assert!(Rejection::ALL_REASONS.contains(&rejection.reason()));
            assert!(!rejection.to_string().is_empty());
        }
    }
});
