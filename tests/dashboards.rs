//! The Grafana dashboards in `dashboards/` query only what seguard writes.
//!
//! Every dashboard JSON is loaded and each query is taken apart with a small parser for the
//! shapes the dashboards use (`dashboards/generate.py` writes them):
//! - InfluxQL: `SELECT fn("field") AS "x" FROM "measurement", ... WHERE "tag" =~ ... GROUP BY
//!   "tag"`, and `SHOW TAG VALUES FROM "measurement" WITH KEY = "tag"`;
//! - Flux: `r._measurement == "..."`, `r._field == "..."`, `r.tag`, and the column lists of
//!   `group(columns: [...])` and `pivot(rowKey: [...])`;
//! - SQL (central's store): `FROM table alias`, `JOIN table alias`, `alias.column`;
//! - PromQL: `seguard_...` sample names and `by (...)` labels.
//!
//! What seguard writes comes from the code and the example configs, never from a list kept here:
//! measurements are `EquipmentKind::ALL` plus `seguard_quality` (see `src/uplink/influx/line.rs`);
//! fields are the metric names of the MQTT mappings and Modbus profiles; tables and columns are
//! central's migrations; Prometheus names are what `Metrics::render` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use seguard::config::LevelKind;
use seguard::model::EquipmentKind;
use serde_json::Value;

const QUALITY: &str = "seguard_quality";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads a gateway config. The compose site names its InfluxDB token by environment variable,
/// which `load` requires to be set; any value does for a check.
fn load_gateway_config(path: &Path) -> seguard::config::Config {
    std::env::set_var("SEGUARD_INFLUX_TOKEN", "dashboards-test");
    seguard::config::load(path).unwrap_or_else(|e| panic!("{} must load: {e}", path.display()))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

// ---- What the gateway writes to InfluxDB ------------------------------------------------------

/// Measurements, and per measurement the tags and fields a query may name.
struct Written {
    tags: BTreeMap<String, BTreeSet<String>>,
    fields: BTreeMap<String, BTreeSet<String>>,
}

fn add_config_metrics(config: &seguard::config::Config, metrics: &mut BTreeSet<String>) {
    for mapping in &config.mqtt_mappings {
        metrics.extend(mapping.fields.iter().map(|f| f.metric.clone()));
    }
    for device in &config.modbus_devices {
        metrics.insert(device.online_metric.clone());
        for group in &device.groups {
            metrics.extend(group.points.iter().map(|p| p.metric.clone()));
        }
    }
}

fn written() -> Written {
    let mut metrics = BTreeSet::new();
    // Every gateway config among the examples (a `[gateway]` table; central's has `[[gateway]]`),
    // and the compose stack's own.
    let mut configs = files(&root().join("firmware-configs"), "toml");
    configs.push(root().join("deploy/compose/site.toml"));
    let mut n_gateway_configs = 0;
    for path in configs {
        let text = std::fs::read_to_string(&path).expect("reading config");
        let table: toml::Table = toml::from_str(&text).expect("config is TOML");
        if !table.get("gateway").is_some_and(|g| g.is_table()) {
            continue;
        }
        let config = load_gateway_config(&path);
        add_config_metrics(&config, &mut metrics);
        n_gateway_configs += 1;
    }
    assert!(
        n_gateway_configs >= 3,
        "found only {n_gateway_configs} gateway configs"
    );
    // Every Modbus profile (its registers) and MQTT terminal profile (its fields), also those
    // no example site uses.
    for path in files(&root().join("firmware-configs/profiles"), "toml") {
        let text = std::fs::read_to_string(&path).expect("reading profile");
        let profile: toml::Table = toml::from_str(&text).expect("profile is TOML");
        let entries = profile
            .get("register")
            .or_else(|| profile.get("field"))
            .and_then(|e| e.as_array())
            .unwrap_or_else(|| panic!("{}: no register or field array", path.display()));
        for entry in entries {
            metrics.insert(entry["metric"].as_str().expect("metric").to_owned());
        }
    }
    assert!(metrics.contains("pressure") && metrics.contains("fault_code"));

    let equipment_tags: BTreeSet<String> =
        ["site", "gateway", "equipment"].map(String::from).into();
    let mut tags = BTreeMap::new();
    let mut fields = BTreeMap::new();
    for kind in EquipmentKind::ALL {
        tags.insert(kind.as_str().to_owned(), equipment_tags.clone());
        fields.insert(kind.as_str().to_owned(), metrics.clone());
    }
    let mut quality_tags = equipment_tags;
    quality_tags.insert("metric".into());
    tags.insert(QUALITY.into(), quality_tags);
    fields.insert(QUALITY.into(), ["bad", "stale"].map(String::from).into());
    Written { tags, fields }
}

// ---- Query parsers ----------------------------------------------------------------------------

/// The names one InfluxDB query uses.
#[derive(Debug, Default)]
struct Used {
    measurements: BTreeSet<String>,
    tags: BTreeSet<String>,
    fields: BTreeSet<String>,
    /// Names in a WHERE clause: InfluxQL lets these be tags or fields.
    tags_or_fields: BTreeSet<String>,
}

/// `"name"` identifiers of an InfluxQL fragment, in order.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The text between `start` (case-insensitive keyword) and the first of `ends` after it.
fn clause<'a>(query: &'a str, start: &str, ends: &[&str]) -> Option<&'a str> {
    let upper = query.to_ascii_uppercase();
    let from = upper.find(start)? + start.len();
    let to = ends
        .iter()
        .filter_map(|e| upper[from..].find(e).map(|i| from + i))
        .min()
        .unwrap_or(query.len());
    Some(&query[from..to])
}

fn parse_influxql(query: &str) -> Used {
    let mut used = Used::default();
    let upper = query.to_ascii_uppercase();
    if upper.starts_with("SHOW TAG VALUES") {
        let from = clause(query, " FROM ", &[" WITH "]).expect("SHOW TAG VALUES FROM");
        used.measurements.extend(quoted(from));
        let key = clause(query, " WITH KEY = ", &[" WHERE "]).expect("WITH KEY =");
        used.tags.extend(quoted(key));
        return used;
    }
    assert!(upper.starts_with("SELECT "), "unexpected InfluxQL: {query}");
    // SELECT: every quoted name except the one after AS is a field.
    let select = clause(query, "SELECT ", &[" FROM "]).expect("SELECT .. FROM");
    for item in select.split(',') {
        let item = match item.to_ascii_uppercase().find(" AS ") {
            Some(i) => &item[..i],
            None => item,
        };
        used.fields.extend(quoted(item));
    }
    let from = clause(
        query,
        " FROM ",
        &[" WHERE ", " GROUP BY ", " ORDER BY ", " LIMIT "],
    )
    .expect("FROM");
    used.measurements.extend(quoted(from));
    if let Some(filter) = clause(query, " WHERE ", &[" GROUP BY ", " ORDER BY ", " LIMIT "]) {
        used.tags_or_fields.extend(quoted(filter));
    }
    if let Some(group) = clause(query, " GROUP BY ", &[" FILL(", " ORDER BY ", " LIMIT "]) {
        used.tags.extend(quoted(group));
    }
    used
}

/// `"a", "b"` string literals inside the brackets that follow `key` (`columns: [...]`).
fn bracketed_strings(query: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find(key) {
        let after = &rest[i + key.len()..];
        let open = after.find('[').expect("[ after key");
        let close = after.find(']').expect("] after key");
        out.extend(quoted(&after[open..close]));
        rest = &after[close..];
    }
    out
}

fn parse_flux(query: &str) -> Used {
    let mut used = Used::default();
    let bytes = query.as_bytes();
    let mut i = 0;
    while let Some(at) = query[i..].find("r.") {
        let start = i + at;
        i = start + 2;
        // `r.` must start an identifier reference, not end one (`for.`, `attr.`).
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let name: String = query[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = query[i + name.len()..].trim_start();
        let literal = after
            .strip_prefix("==")
            .map(str::trim_start)
            .and_then(|s| s.strip_prefix('"'))
            .map(|s| s[..s.find('"').expect("closing quote")].to_owned());
        match name.as_str() {
            "_measurement" => used
                .measurements
                .insert(literal.expect("r._measurement == \"...\"")),
            "_field" => used.fields.insert(literal.expect("r._field == \"...\"")),
            "_value" | "_time" | "_start" | "_stop" => false,
            other if other.starts_with('_') => panic!("unexpected Flux column r.{other}"),
            other => used.tags.insert(other.to_owned()),
        };
    }
    for key in ["columns:", "rowKey:"] {
        for column in bracketed_strings(query, key) {
            if !column.starts_with('_') {
                used.tags.insert(column);
            }
        }
    }
    used
}

fn check_influx(
    place: &str,
    query: &str,
    used: &Used,
    written: &Written,
    problems: &mut Vec<String>,
) {
    if used.measurements.is_empty() {
        problems.push(format!("{place}: names no measurement: {query}"));
    }
    let mut tags = BTreeSet::new();
    let mut fields = BTreeSet::new();
    for m in &used.measurements {
        match (written.tags.get(m), written.fields.get(m)) {
            (Some(t), Some(f)) => {
                tags.extend(t.iter().cloned());
                fields.extend(f.iter().cloned());
            }
            _ => problems.push(format!("{place}: measurement {m:?} is never written")),
        }
    }
    for t in &used.tags {
        if !tags.contains(t) {
            problems.push(format!(
                "{place}: tag {t:?} is not a tag of {:?}",
                used.measurements
            ));
        }
    }
    for f in &used.fields {
        if !fields.contains(f) {
            problems.push(format!(
                "{place}: field {f:?} is not written to {:?}",
                used.measurements
            ));
        }
    }
    for n in &used.tags_or_fields {
        if !tags.contains(n) && !fields.contains(n) {
            problems.push(format!(
                "{place}: {n:?} is neither a tag nor a field of {:?}",
                used.measurements
            ));
        }
    }
}

// ---- Central's store (PostgreSQL panels) ------------------------------------------------------

/// Tables and their columns, from the `CREATE TABLE` statements of central's migrations.
fn central_schema() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("src/central/store/schema.rs"))
        .expect("reading central's schema");
    let mut tables = BTreeMap::new();
    for statement in text.split("CREATE TABLE ").skip(1) {
        let name: String = statement
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let body = &statement[statement.find('(').expect("(")..];
        let mut columns = BTreeSet::new();
        for line in body.lines() {
            let line = line.trim().trim_start_matches('(');
            let column: String = line
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let is_column = !column.is_empty()
                && line[column.len()..].starts_with(' ')
                && line[column.len()..]
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_uppercase())
                && !line.starts_with("PRIMARY KEY");
            if is_column {
                columns.insert(column);
            }
            if line.ends_with("\",") || line.ends_with(")\"") {
                break;
            }
        }
        tables.insert(name, columns);
    }
    tables
}

fn check_sql(
    place: &str,
    sql: &str,
    schema: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut aliases = BTreeMap::new();
    for pair in words.windows(3) {
        if pair[0] == "FROM" || pair[0] == "JOIN" {
            let table = pair[1];
            if !schema.contains_key(table) {
                problems.push(format!(
                    "{place}: table {table:?} is not in central's schema"
                ));
                continue;
            }
            aliases.insert(pair[2].to_owned(), table.to_owned());
        }
    }
    if aliases.is_empty() {
        problems.push(format!("{place}: no `FROM table alias` in {sql}"));
    }
    // Every `alias.column` reference.
    let bytes = sql.as_bytes();
    for (i, _) in sql.match_indices('.') {
        let alias_start = sql[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let alias = &sql[alias_start..i];
        let column: String = sql[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if alias.is_empty() || column.is_empty() || bytes[alias_start].is_ascii_digit() {
            continue;
        }
        match aliases.get(alias) {
            Some(table) if schema[table].contains(&column) => {}
            Some(table) => {
                problems.push(format!("{place}: column {table}.{column} does not exist"))
            }
            None => problems.push(format!(
                "{place}: unknown table alias {alias:?} in {alias}.{column}"
            )),
        }
    }
}

// ---- The gateway's Prometheus metrics ----------------------------------------------------------

/// Sample names the gateway exposes, each with its label names, after every recording method ran
/// once (a family shows samples only once a label set was created).
fn prometheus_samples() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = seguard::metrics::Metrics::new();
    metrics.readings_received("mqtt", 1);
    metrics.message_rejected("malformed", "t", &"x");
    metrics.alarm_raised("high");
    metrics.alarm_cleared();
    metrics.alarm_transition("raise");
    metrics.alarm_stats(&seguard::rules::AlarmStats::default());
    metrics.fill_checked("accepted");
    metrics.uplink_written("influx", 1, 0.01);
    metrics.uplink_failed("influx", &"x", std::time::Duration::from_secs(1));
    metrics.uplink_rejected("influx", 1, &"x");
    metrics.queue_depth("telemetry", 1);
    metrics.dropped("telemetry", 1);
    metrics.outbox_skipped("telemetry", 1);
    metrics.broker_connected("site", true);
    metrics.incidents_published(1);
    metrics.modbus_error("pv-1", "timeout", &"x");
    metrics.modbus_device_online("pv-1", true);
    let text = metrics.render();
    let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).expect("sample line");
        let labels = samples.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.find('}').expect("}")];
            for pair in body.split(',') {
                labels.insert(pair.split('=').next().expect("label").to_owned());
            }
        }
    }
    samples
}

fn check_promql(
    place: &str,
    expr: &str,
    samples: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    let mut labels = BTreeSet::new();
    let mut n_names = 0;
    let tokens = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    for token in tokens.filter(|t| t.starts_with("seguard_")) {
        n_names += 1;
        match samples.get(token) {
            Some(l) => labels.extend(l.iter().cloned()),
            None => problems.push(format!("{place}: {token} is not exposed by the gateway")),
        }
    }
    if n_names == 0 && !expr.starts_with("up{") {
        problems.push(format!("{place}: no seguard_ metric in {expr}"));
    }
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        let list = &rest[i + 4..];
        let close = list.find(')').expect(")");
        for label in list[..close].split(',').map(str::trim) {
            if n_names > 0 && !labels.contains(label) {
                problems.push(format!(
                    "{place}: label {label:?} is not on the metrics of {expr}"
                ));
            }
        }
        rest = &list[close..];
    }
}

// ---- Dashboards -------------------------------------------------------------------------------

struct Query {
    place: String,
    datasource: String,
    text: String,
}

/// Every query of a dashboard: panel targets and template variables.
fn queries(file: &Path, board: &Value) -> Vec<Query> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for panel in board["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().expect("targets") {
            let datasource = target["datasource"]["uid"]
                .as_str()
                .or(panel["datasource"]["uid"].as_str())
                .expect("datasource uid")
                .to_owned();
            let text = ["query", "rawSql", "expr"]
                .iter()
                .find_map(|k| target[*k].as_str())
                .unwrap_or_else(|| panic!("{name}: panel {title:?}: target without a query"));
            out.push(Query {
                place: format!("{name}: panel {title:?}"),
                datasource,
                text: text.to_owned(),
            });
        }
    }
    for variable in board["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            out.push(Query {
                place: format!("{name}: variable {}", variable["name"]),
                datasource: variable["datasource"]["uid"]
                    .as_str()
                    .expect("uid")
                    .to_owned(),
                text: variable["query"].as_str().expect("query").to_owned(),
            });
        }
    }
    out
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let boards: Vec<(PathBuf, Value)> = files(&root().join("dashboards"), "json")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("reading dashboard");
            let board = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            (path, board)
        })
        .collect();
    assert!(
        boards.len() >= 7,
        "expected the map, pressure, elevator and health dashboards"
    );
    boards
}

#[test]
fn every_dashboard_queries_only_what_seguard_writes() {
    let written = written();
    let schema = central_schema();
    assert!(schema["alarms"].contains("trapped") && schema["equipment"].contains("lat"));
    let samples = prometheus_samples();
    let mut problems = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, board) in dashboards() {
        for q in queries(&file, &board) {
            match q.datasource.as_str() {
                "seguard-influx-flux" => {
                    check_influx(
                        &q.place,
                        &q.text,
                        &parse_flux(&q.text),
                        &written,
                        &mut problems,
                    );
                    *counts.entry("flux").or_default() += 1;
                }
                "seguard-influx-influxql" => {
                    check_influx(
                        &q.place,
                        &q.text,
                        &parse_influxql(&q.text),
                        &written,
                        &mut problems,
                    );
                    *counts.entry("influxql").or_default() += 1;
                }
                "seguard-central-pg" => {
                    check_sql(&q.place, &q.text, &schema, &mut problems);
                    *counts.entry("sql").or_default() += 1;
                }
                "seguard-prometheus" => {
                    check_promql(&q.place, &q.text, &samples, &mut problems);
                    *counts.entry("promql").or_default() += 1;
                }
                other => problems.push(format!("{}: unknown datasource uid {other}", q.place)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Both languages, for the same panels: the generator writes each InfluxDB panel twice.
    assert_eq!(counts.get("flux"), counts.get("influxql"), "{counts:?}");
    assert!(
        counts["flux"] >= 8 && counts["sql"] >= 4 && counts["promql"] >= 10,
        "{counts:?}"
    );
}

#[test]
fn parsers_find_every_name_in_the_query_shapes_used() {
    let q = parse_influxql(
        r#"SELECT mean("pressure") AS "p", last("floor") FROM "pressure_vessel", "autoclave" WHERE "equipment" =~ /^$v$/ AND "fault_code" <> 0 AND $timeFilter GROUP BY time($__interval), "site" fill(none)"#,
    );
    assert_eq!(q.fields, ["floor", "pressure"].map(String::from).into());
    assert_eq!(
        q.measurements,
        ["autoclave", "pressure_vessel"].map(String::from).into()
    );
    assert_eq!(
        q.tags_or_fields,
        ["equipment", "fault_code"].map(String::from).into()
    );
    assert_eq!(q.tags, ["site"].map(String::from).into());
    let q = parse_influxql(r#"SHOW TAG VALUES FROM "elevator" WITH KEY = "equipment""#);
    assert_eq!(q.measurements, ["elevator"].map(String::from).into());
    assert_eq!(q.tags, ["equipment"].map(String::from).into());

    let q = parse_flux(
        "from(bucket: v.defaultBucket)\n  |> filter(fn: (r) => r._measurement == \"elevator\" and r._field == \"speed\")\n  |> filter(fn: (r) => r.equipment =~ /x/ and r._value > 0.0)\n  |> group(columns: [\"gateway\", \"_field\"])",
    );
    assert_eq!(q.measurements, ["elevator"].map(String::from).into());
    assert_eq!(q.fields, ["speed"].map(String::from).into());
    assert_eq!(q.tags, ["equipment", "gateway"].map(String::from).into());

    // A wrong name is caught, so the main test can fail.
    let written = written();
    let mut problems = Vec::new();
    let q = parse_flux("r._measurement == \"lift\" and r._field == \"presure\" and r.room == 1");
    check_influx("t", "", &q, &written, &mut problems);
    // The unknown measurement, and so neither its field nor its tag can match.
    assert_eq!(problems.len(), 3, "{problems:?}");
    problems.clear();
    let q =
        parse_flux("r._measurement == \"elevator\" and r._field == \"presure\" and r.room == 1");
    check_influx("t", "", &q, &written, &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
    problems.clear();
    check_sql(
        "t",
        "SELECT a.nope FROM alarms a",
        &central_schema(),
        &mut problems,
    );
    assert_eq!(problems, ["t: column alarms.nope does not exist"]);
    problems.clear();
    check_promql(
        "t",
        "sum by (lane) (seguard_readings_received_total)",
        &prometheus_samples(),
        &mut problems,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}

/// The limits drawn on the pressure dashboards are the compose site's `receiver-pressure` rule.
#[test]
fn pressure_thresholds_drawn_match_the_rule() {
    let config = load_gateway_config(&root().join("deploy/compose/site.toml"));
    let rule = config
        .thresholds
        .iter()
        .find(|r| r.id == "receiver-pressure")
        .expect("rule receiver-pressure");
    let limit = |kind: LevelKind| {
        rule.levels
            .iter()
            .find(|l| l.kind == kind)
            .expect("level")
            .limit
    };
    let expected = vec![limit(LevelKind::High), limit(LevelKind::HighHigh)];
    let mut n_panels = 0;
    for (file, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            let steps = &panel["fieldConfig"]["defaults"]["thresholds"]["steps"];
            if panel["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Pressure"))
            {
                let drawn: Vec<f64> = steps
                    .as_array()
                    .expect("threshold steps")
                    .iter()
                    .filter_map(|s| s["value"].as_f64())
                    .collect();
                assert_eq!(drawn, expected, "{}", file.display());
                n_panels += 1;
            }
        }
    }
    assert_eq!(n_panels, 2, "one pressure panel per language");
}

/// The central config the compose stack mounts is valid.
#[test]
fn compose_central_config_loads() {
    seguard::central::config::load(&root().join("deploy/compose/central.toml"))
        .unwrap_or_else(|e| panic!("deploy/compose/central.toml: {e}"));
}
