//! MQTT terminal profiles: what one kind of elevator terminal (or other MQTT device) sends, kept
//! in `<profiles>/<name>.toml` beside the Modbus device profiles, and used by an
//! `[[ingest.mqtt]]` mapping with `profile = "<name>"`.
//!
//! ```toml
//! description = "..."
//! topic = "lift/{equipment}/status"   # {site} and {equipment} as in a mapping
//! time_pointer = "/ts"                # optional, with time_format (default unix_ms)
//! time_format = "unix_ms"
//! [[field]]                           # the same keys as a mapping's fields
//! pointer = "/car_status"
//! metric = "car_status"
//! type = "text"
//! values = { 0 = "stopped", 1 = "running" }
//! unknown = "bad"
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::config::{check_pointer, field_mapping, FieldMapping, RawField, TimeFormat};
use crate::diag::{toml_message, Located, Problem};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerminalProfile {
    description: Option<String>,
    topic: Spanned<String>,
    time_pointer: Option<Spanned<String>>,
    time_format: Option<TimeFormat>,
    #[serde(rename = "field", default)]
    fields: Vec<Spanned<RawField>>,
}

/// A terminal profile, validated; its topic still holds `{site}` and `{equipment}`.
#[derive(Debug, Clone)]
pub struct TerminalProfile {
    /// What terminal this is, for people reading `seguard check` output and the file.
    pub description: String,
    pub topic: String,
    pub time: Option<(String, TimeFormat)>,
    pub fields: Vec<FieldMapping>,
}

/// Reads and validates the terminal profile `name` from `dir`; problems are placed in the
/// profile's own file.
pub fn load(dir: &Path, name: &str) -> Result<TerminalProfile, Vec<Located>> {
    let path = dir.join(format!("{name}.toml"));
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    let text = if valid_name {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    } else {
        Err("a profile name is letters, digits, '-', '_' and '.'".to_owned())
    };
    let text = text.map_err(|e| {
        vec![Located {
            path: path.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read terminal profile: {e}"),
            hint: None,
        }]
    })?;
    parse(&text, &path)
}

/// Parses and validates profile text; `path` only names the file in messages.
pub fn parse(text: &str, path: &Path) -> Result<TerminalProfile, Vec<Located>> {
    let locate = |problems: Vec<Problem>| -> Vec<Located> {
        problems
            .into_iter()
            .map(|p| Located::new(path, text, p))
            .collect()
    };
    let raw: RawTerminalProfile =
        toml::from_str(text).map_err(|e| locate(vec![Problem::new(e.span(), toml_message(&e))]))?;
    let mut problems = Vec::new();
    if raw.fields.is_empty() {
        problems.push(
            Problem::new(None, "this terminal profile has no fields")
                .hint("add [[field]] tables with pointer and metric"),
        );
    }
    let time = raw.time_pointer.as_ref().map(|p| {
        check_pointer(p, &mut problems);
        (
            p.get_ref().clone(),
            raw.time_format.unwrap_or(TimeFormat::UnixMs),
        )
    });
    let mut fields: Vec<FieldMapping> = Vec::with_capacity(raw.fields.len());
    for f in &raw.fields {
        let field = field_mapping(f, &mut problems);
        if fields.iter().any(|other| other.metric == field.metric) {
            problems.push(Problem::new(
                f.get_ref().metric.span(),
                format!("metric `{}` is mapped twice", field.metric),
            ));
        }
        fields.push(field);
    }
    if !problems.is_empty() {
        return Err(locate(problems));
    }
    Ok(TerminalProfile {
        description: raw.description.unwrap_or_default(),
        topic: raw.topic.into_inner(),
        time,
        fields,
    })
}
