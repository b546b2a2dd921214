//! Code tables: the small integers or words a device sends for a state, mapped to the values
//! the rules expect (`values = { 0 = "stopped", 1 = "running" }`), with an explicit handling of
//! codes the table does not list. Shared by every source; it knows neither MQTT nor Modbus.
//!
//! Keys are written as TOML keys (always text): a key matches a payload string equal to it, and
//! a key that is a decimal integer also matches that integer sent as a number (`1`, `1.0`) or a
//! bool (`false` = 0, `true` = 1). Values are texts, bools or numbers, all of the field's type.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::diag::Problem;
use crate::model::Value;
use crate::model::ValueType;

/// What a code the table does not list becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownCode {
    /// This value (for a service mode, typically "unknown", which the trapped rule treats as
    /// a mode it cannot trust).
    Value(Value),
    /// The whole message is rejected and counted.
    Reject,
    /// The reading is kept with bad quality: stored, but no rule decides on it.
    Bad,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeTable {
    entries: BTreeMap<String, Value>,
    pub unknown: UnknownCode,
}

/// A code looked up in a table: the mapped value, or the code as text when it is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Known(Value),
    Unknown(String),
}

impl CodeTable {
    /// Every value the table can produce, the unknown-code value included.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        let unknown = match &self.unknown {
            UnknownCode::Value(v) => Some(v),
            _ => None,
        };
        self.entries.values().chain(unknown)
    }

    /// Looks up a JSON value: a string by its text, a number or bool by its integer.
    pub fn lookup(&self, raw: &serde_json::Value) -> Lookup {
        let key = match raw {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => u8::from(*b).to_string(),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => i.to_string(),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
                    _ => n.to_string(),
                },
            },
            other => other.to_string(),
        };
        match self.entries.get(&key) {
            Some(v) => Lookup::Known(v.clone()),
            None => {
                // "01" in the table and 1 on the wire: integers compare by value.
                let by_value = key.parse::<i64>().ok().and_then(|code| {
                    self.entries
                        .iter()
                        .find(|(k, _)| k.trim().parse::<i64>().ok() == Some(code))
                });
                match (raw, by_value) {
                    (serde_json::Value::Number(_) | serde_json::Value::Bool(_), Some((_, v))) => {
                        Lookup::Known(v.clone())
                    }
                    _ => Lookup::Unknown(key),
                }
            }
        }
    }

    /// Builds a table from `values` and `unknown` as written, checking every value against the
    /// field's type. `span` places problems of the table as a whole.
    pub fn from_toml(
        values: &toml::Table,
        unknown: Option<&toml::Value>,
        value_type: ValueType,
        span: Range<usize>,
        unknown_span: Option<Range<usize>>,
        problems: &mut Vec<Problem>,
    ) -> CodeTable {
        let n_problems = problems.len();
        let mut entries = BTreeMap::new();
        if values.is_empty() {
            problems.push(
                Problem::new(span.clone(), "`values` is empty")
                    .hint("list the codes, e.g. values = { 0 = \"stopped\", 1 = \"running\" }"),
            );
        }
        for (code, value) in values {
            match typed(value, value_type) {
                Some(v) => {
                    entries.insert(code.clone(), v);
                }
                None => problems.push(
                    Problem::new(
                        span.clone(),
                        format!(
                            "code `{code}` maps to {value}, which is not {}",
                            type_name(value_type)
                        ),
                    )
                    .hint("every value of a code table has the field's type (type = \"text\", \"bool\" or \"number\")"),
                ),
            }
        }
        let unknown = match unknown {
            None => {
                problems.push(
                    Problem::new(span, "a code table needs `unknown`: what a code it does not list becomes")
                        .hint("add unknown = \"bad\" (kept with bad quality), unknown = \"reject\" (the message is refused), or unknown = { value = ... }"),
                );
                UnknownCode::Bad
            }
            Some(toml::Value::String(s)) if s == "bad" => UnknownCode::Bad,
            Some(toml::Value::String(s)) if s == "reject" => UnknownCode::Reject,
            Some(toml::Value::Table(t)) if t.len() == 1 && t.contains_key("value") => {
                match typed(&t["value"], value_type) {
                    Some(v) => UnknownCode::Value(v),
                    None => {
                        problems.push(Problem::new(
                            unknown_span.unwrap_or(span),
                            format!(
                                "the unknown-code value {} is not {}",
                                t["value"],
                                type_name(value_type)
                            ),
                        ));
                        UnknownCode::Bad
                    }
                }
            }
            Some(other) => {
                problems.push(
                    Problem::new(
                        unknown_span.unwrap_or(span),
                        format!("unknown = {other} is not understood"),
                    )
                    .hint("write unknown = \"bad\", unknown = \"reject\", or unknown = { value = ... }"),
                );
                UnknownCode::Bad
            }
        };
        if problems.len() > n_problems {
            entries.clear();
        }
        CodeTable { entries, unknown }
    }
}

fn typed(value: &toml::Value, value_type: ValueType) -> Option<Value> {
    match (value, value_type) {
        (toml::Value::String(s), ValueType::Text) => Some(Value::Text(s.clone())),
        (toml::Value::Boolean(b), ValueType::Bool) => Some(Value::Bool(*b)),
        (toml::Value::Integer(i), ValueType::Number) => Some(Value::Number(*i as f64)),
        (toml::Value::Float(f), ValueType::Number) if f.is_finite() => Some(Value::Number(*f)),
        _ => None,
    }
}

fn type_name(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Text => "text",
        ValueType::Bool => "a bool",
        ValueType::Number => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(text: &str, value_type: ValueType) -> (CodeTable, Vec<String>) {
        let doc: toml::Table = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let t = CodeTable::from_toml(
            doc["values"].as_table().unwrap(),
            doc.get("unknown"),
            value_type,
            0..1,
            None,
            &mut problems,
        );
        (t, problems.into_iter().map(|p| p.message).collect())
    }

    /// Codes as numbers, numeric strings, bools and words, against one table each.
    #[test]
    fn codes_map_by_number_text_and_bool() {
        let (modes, problems) = table(
            r#"values = { 0 = "out_of_service", 1 = "normal", 2 = "inspection", "01" = "normal", x = "earthquake" }
               unknown = { value = "unknown" }"#,
            ValueType::Text,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let known = |s: &str| Lookup::Known(Value::Text(s.into()));
        let cases = [
            (json!(2), known("inspection")),
            (json!(2.0), known("inspection")),
            (json!("2"), known("inspection")),
            (json!("01"), known("normal")),
            (json!(false), known("out_of_service")),
            (json!("x"), known("earthquake")),
            (json!(9), Lookup::Unknown("9".into())),
            (json!("02"), Lookup::Unknown("02".into())),
            (json!(2.5), Lookup::Unknown("2.5".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(modes.lookup(&raw), expected, "{raw}");
        }
        assert_eq!(
            modes.unknown,
            UnknownCode::Value(Value::Text("unknown".into()))
        );
        assert_eq!(modes.values().count(), 6);
    }

    #[test]
    fn every_mistake_in_a_table_is_reported() {
        let (_, problems) = table(r#"values = { 0 = false, 1 = "yes" }"#, ValueType::Bool);
        assert_eq!(
            problems,
            [
                "code `1` maps to \"yes\", which is not a bool",
                "a code table needs `unknown`: what a code it does not list becomes",
            ]
        );
        let (_, problems) = table(
            r#"values = { 0 = 1.5 }
               unknown = "drop""#,
            ValueType::Number,
        );
        assert_eq!(problems, ["unknown = \"drop\" is not understood"]);
        let (_, problems) = table(
            r#"values = { 0 = true }
               unknown = { value = "x" }"#,
            ValueType::Bool,
        );
        assert_eq!(problems, ["the unknown-code value \"x\" is not a bool"]);
    }
}
