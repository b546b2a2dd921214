//! The MQTT mappings' settings: the `[ingest]` table and its `[[ingest.mqtt]]` mappings as
//! written, the typed mappings the ingest runs, and their validation (with terminal profiles,
//! `profile.rs`). The broker connection's settings are `crate::broker`'s.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{is_valid_metric_name, Check, Problem};
use crate::model::ValueType;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Where MQTT terminal profiles are, relative to the config file (default `profiles`).
    pub profiles: Option<String>,
    #[serde(default)]
    pub mqtt: Vec<Spanned<RawMqttMapping>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttMapping {
    /// A terminal profile (`<profiles>/<name>.toml`) that gives topic, time and fields.
    pub profile: Option<Spanned<String>>,
    /// Required without a profile; with one, it replaces the profile's topic.
    pub topic: Option<Spanned<String>>,
    pub equipment: Option<Spanned<String>>,
    pub time_pointer: Option<Spanned<String>>,
    pub time_format: Option<TimeFormat>,
    /// With a profile, these are added to the profile's fields.
    #[serde(default)]
    pub fields: Vec<Spanned<RawField>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub pointer: Spanned<String>,
    pub metric: Spanned<String>,
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    pub unit: Option<String>,
    pub scale: Option<Spanned<f64>>,
    pub offset: Option<f64>,
    /// Code table: code → value of the field's type (`crate::ingest::codes`).
    pub values: Option<Spanned<toml::Table>>,
    /// What a code the table does not list becomes: "bad", "reject" or { value = ... }.
    pub unknown: Option<Spanned<toml::Value>>,
}

/// How the time of a reading is written in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    UnixS,
    UnixMs,
    UnixUs,
    UnixNs,
    Rfc3339,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSegment {
    Literal(String),
    /// `{equipment}`: this segment names the equipment.
    Equipment,
    /// `+`: any single segment.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttMapping {
    /// The template as configured, with `{site}` already filled in.
    pub topic: String,
    pub segments: Vec<TopicSegment>,
    /// Fixed equipment when the topic has no `{equipment}` segment.
    pub equipment: Option<String>,
    pub time: Option<(String, TimeFormat)>,
    pub fields: Vec<FieldMapping>,
}

impl MqttMapping {
    /// The MQTT subscription filter: placeholders become `+`.
    pub fn filter(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                TopicSegment::Literal(l) => l.as_str(),
                TopicSegment::Equipment | TopicSegment::Any => "+",
            })
            .collect();
        parts.join("/")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    /// RFC 6901 JSON pointer into the payload.
    pub pointer: String,
    pub metric: String,
    pub value_type: ValueType,
    pub unit: Option<String>,
    pub scale: f64,
    pub offset: f64,
    /// Code → value table (`values`); without one the payload value is used as it is.
    pub codes: Option<crate::ingest::codes::CodeTable>,
}

/// One mapped field as written, in a site config or a terminal profile.
pub(crate) fn field_mapping(f: &Spanned<RawField>, problems: &mut Vec<Problem>) -> FieldMapping {
    let f_ref = f.get_ref();
    check_pointer(&f_ref.pointer, problems);
    let metric = f_ref.metric.get_ref();
    if !is_valid_metric_name(metric) {
        problems.push(
            Problem::new(
                f_ref.metric.span(),
                format!("metric name `{}` is not valid", metric.escape_debug()),
            )
            .hint("use snake_case names such as car_status or pressure, without spaces, quotes, backslashes or control characters"),
        );
    }
    let scale = f_ref.scale.as_ref().map_or(1.0, |s| {
        if !s.get_ref().is_finite() || *s.get_ref() == 0.0 {
            problems.push(Problem::new(
                s.span(),
                "scale must be a finite, non-zero number",
            ));
        }
        *s.get_ref()
    });
    let value_type = f_ref.value_type.unwrap_or(ValueType::Number);
    let codes = match (&f_ref.values, &f_ref.unknown) {
        (Some(values), unknown) => {
            if f_ref.scale.is_some() || f_ref.offset.is_some() {
                problems.push(
                    Problem::new(
                        values.span(),
                        "a field with `values` takes no scale or offset",
                    )
                    .hint("put the value each code stands for in the table"),
                );
            }
            Some(crate::ingest::codes::CodeTable::from_toml(
                values.get_ref(),
                unknown.as_ref().map(|u| u.get_ref()),
                value_type,
                values.span(),
                unknown.as_ref().map(|u| u.span()),
                problems,
            ))
        }
        (None, Some(unknown)) => {
            problems.push(
                Problem::new(unknown.span(), "`unknown` without `values`")
                    .hint("`unknown` says what a code missing from `values` becomes"),
            );
            None
        }
        (None, None) => None,
    };
    FieldMapping {
        pointer: f_ref.pointer.get_ref().clone(),
        metric: metric.clone(),
        value_type,
        unit: f_ref.unit.clone(),
        scale,
        offset: f_ref.offset.unwrap_or(0.0),
        codes,
    }
}

pub(crate) fn check_pointer(pointer: &Spanned<String>, problems: &mut Vec<Problem>) {
    let p = pointer.get_ref();
    if !p.is_empty() && !p.starts_with('/') {
        problems.push(
            Problem::new(pointer.span(), format!("`{p}` is not a JSON pointer")).hint(format!(
                "JSON pointers start with '/', for example \"/{p}\""
            )),
        );
    }
}

impl Check {
    pub(crate) fn mqtt_mapping(
        &mut self,
        raw: &Spanned<RawMqttMapping>,
        site_id: &str,
        known: &HashSet<&str>,
        profiles_dir: &std::path::Path,
    ) -> Option<MqttMapping> {
        let m = raw.get_ref();
        let profile = m.profile.as_ref().and_then(|name| {
            crate::ingest::mqtt::profile::load(profiles_dir, name.get_ref())
                .map_err(|problems| {
                    for l in problems {
                        self.push(
                            Problem::new(
                                name.span(),
                                format!(
                                    "in terminal profile {}:{}:{}: {}",
                                    l.path.display(),
                                    l.line,
                                    l.column,
                                    l.message
                                ),
                            )
                            .hint(l.hint.unwrap_or_else(|| {
                                "the shipped terminal profiles in firmware-configs/profiles/ show the format".to_owned()
                            })),
                        );
                    }
                })
                .ok()
        });
        if m.profile.is_some() && profile.is_none() {
            return None;
        }
        let (topic_span, template) = match (&m.topic, &profile) {
            (Some(t), _) => (t.span(), t.get_ref().clone()),
            (None, Some(p)) => (
                m.profile.as_ref().map(|n| n.span()).unwrap_or_default(),
                p.topic.clone(),
            ),
            (None, None) => {
                self.push(Problem::new(raw.span(), "this mapping has no topic").hint(
                    "add topic = \"...\", or profile = \"NAME\" to take a terminal profile's topic",
                ));
                return None;
            }
        };
        let topic = template.replace("{site}", site_id);
        let mut segments = Vec::new();
        for part in topic.split('/') {
            segments.push(match part {
                "{equipment}" => TopicSegment::Equipment,
                "+" => TopicSegment::Any,
                "#" => {
                    self.push(
                        Problem::new(topic_span.clone(), "`#` is not allowed in a mapping topic")
                            .hint("use `+` for one segment; every segment must be bound so payloads map to one equipment"),
                    );
                    return None;
                }
                p if p.contains('{') || p.contains('}') || p.contains('+') => {
                    self.push(
                        Problem::new(topic_span.clone(), format!("topic segment `{p}` is not understood"))
                            .hint("placeholders are {site} and {equipment}, each a whole segment"),
                    );
                    return None;
                }
                p => TopicSegment::Literal(p.to_owned()),
            });
        }
        let n_equipment = segments
            .iter()
            .filter(|s| **s == TopicSegment::Equipment)
            .count();
        let equipment = m.equipment.as_ref().map(|e| e.get_ref().clone());
        match (n_equipment, &m.equipment) {
            (0, None) => self.push(
                Problem::new(
                    topic_span.clone(),
                    "this mapping does not say which equipment it is for",
                )
                .hint("put {equipment} in the topic, or add equipment = \"ID\""),
            ),
            (1, Some(e)) => self.push(
                Problem::new(
                    e.span(),
                    "equipment is given both in the topic and as a field",
                )
                .hint("remove one of them"),
            ),
            (n, _) if n > 1 => self.push(Problem::new(
                topic_span.clone(),
                "{equipment} appears more than once",
            )),
            _ => {}
        }
        if let Some(e) = &m.equipment {
            if !known.contains(e.get_ref().as_str()) {
                self.push(
                    Problem::new(e.span(), format!("unknown equipment `{}`", e.get_ref()))
                        .hint("declare it in an [[equipment]] table first"),
                );
            }
        }
        let time = match (&m.time_pointer, &profile) {
            (Some(p), _) => {
                check_pointer(p, &mut self.problems);
                Some((
                    p.get_ref().clone(),
                    m.time_format.unwrap_or(TimeFormat::UnixMs),
                ))
            }
            (None, Some(p)) => p.time.clone(),
            (None, None) => None,
        };
        let mut fields = profile.map(|p| p.fields).unwrap_or_default();
        if fields.is_empty() && m.fields.is_empty() {
            self.push(
                Problem::new(raw.span(), "this mapping has no fields")
                    .hint("add [[ingest.mqtt.fields]] with pointer and metric"),
            );
        }
        for f in &m.fields {
            let field = field_mapping(f, &mut self.problems);
            if fields.iter().any(|p| p.metric == field.metric) {
                self.push(
                    Problem::new(
                        f.get_ref().metric.span(),
                        format!("metric `{}` is also mapped by the profile", field.metric),
                    )
                    .hint("remove the field here, or map it under another metric name"),
                );
            }
            fields.push(field);
        }
        Some(MqttMapping {
            topic,
            segments,
            equipment,
            time,
            fields,
        })
    }
}
