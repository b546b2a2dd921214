//! Config parsing: the same text as a gateway site config, a central config, a Modbus device
//! profile and a simulator fleet file.
//!
//! Input: config text (TOML). The file is named as if it sat in `firmware-configs/`, so the
//! shipped profiles resolve.
//! Properties: never panics; every error names at least one problem, each with a message and a
//! line and column inside the text; a gateway config that is accepted keeps its invariants
//! (ids are topic- and tag-safe, metric names hold no whitespace).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use seguard::config::Located;

const CONFIG_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware-configs/fuzz.toml");

/// Asserts that a problem points into `text`.
fn check_located(text: &str, problem: &Located) {
    assert!(
        !problem.message.trim().is_empty(),
        "empty message: {problem:?}"
    );
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&problem.line),
        "line {} outside 1..={}: {problem}",
        problem.line,
        lines.len()
    );
    let line_chars = lines[problem.line - 1].chars().count();
    assert!(
        (1..=line_chars + 1).contains(&problem.column),
        "column {} outside 1..={} on line {}: {problem}",
        problem.column,
        line_chars + 1,
        problem.line
    );
}

fn check_problems(text: &str, problems: &[Located]) {
    assert!(!problems.is_empty(), "an invalid config names its problems");
    for p in problems {
        check_located(text, p);
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fuzz_target!(|data: &[u8]| {
    // `load` reads files with `read_to_string`: text that is not UTF-8 is a read error.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(CONFIG_PATH);

    match seguard::config::parse(text, path) {
        Ok(config) => {
            assert!(is_id(&config.site.id) && is_id(&config.gateway.id));
            for e in &config.equipment {
                assert!(is_id(&e.id), "equipment id {:?}", e.id);
            }
            for m in &config.mqtt_mappings {
                for f in &m.fields {
                    assert!(
                        !f.metric.is_empty() && !f.metric.contains(char::is_whitespace),
                        "metric {:?}",
                        f.metric
                    );
                }
            }
        }
        Err(e) => check_problems(text, e.problems()),
    }

    if let Err(e) = seguard::central::config::parse(text, path) {
        check_problems(text, e.problems());
    }

    if let Err(e) = seguard::ingest::modbus::config::parse_profile("fuzz", text, path) {
        check_problems(text, &e.problems);
    }

    match seguard::sim::config::FleetConfig::parse(text, path) {
        Ok(_) => {}
        Err(seguard::sim::config::FleetError::Invalid(problem)) => check_located(text, &problem),
        Err(e) => panic!("parsing text cannot fail to read: {e}"),
    }
});
