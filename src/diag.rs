//! Config problems with their place in the file, rendered as `file:line:column: message`, and
//! the checks every module's settings share. Every module may use this one; it uses none.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use toml::Spanned;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Byte range in the source text; `None` when the problem concerns the file as a whole.
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(span: impl Into<Option<Range<usize>>>, message: impl Into<String>) -> Self {
        Problem {
            span: span.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A problem placed in its file, ready to show to a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Located {
    pub fn new(path: &Path, text: &str, problem: Problem) -> Self {
        let (line, column) = match &problem.span {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        Located {
            path: path.to_owned(),
            line,
            column,
            message: problem.message,
            hint: problem.hint,
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The message of a TOML error, on one line. Some syntax errors come without one (a carriage
/// return that no newline follows, for example): those get a plain one, so that no problem is
/// shown with an empty message.
pub fn toml_message(error: &toml::de::Error) -> String {
    // Some toml messages span lines ("invalid date-time\nvalue is out of range").
    let message = error.message().trim().replace('\n', ": ");
    if message.is_empty() {
        "invalid TOML syntax; look for a stray character here, such as a carriage return without a newline".to_owned()
    } else {
        message
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// What validating a config collects: problems (the file is refused), warnings (`seguard check`
/// shows them and the file is taken), and the config file's directory, which relative paths
/// (profiles, TLS and secret files) are relative to. The checks below are shared; each module
/// adds the checks of its own settings in an `impl Check` block of its `config.rs`.
#[derive(Debug, Default)]
pub struct Check {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub config_dir: PathBuf,
}

impl Check {
    pub fn new(config_dir: &Path) -> Self {
        Check {
            config_dir: config_dir.to_owned(),
            ..Check::default()
        }
    }

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    pub fn check_id(&mut self, id: &Spanned<String>, what: &str) {
        if !is_valid_id(id.get_ref()) {
            self.push(
                Problem::new(id.span(), format!("{what} `{}` is not a valid id", id.get_ref()))
                    .hint("use letters, digits, '-', '_' and '.' only: ids become MQTT topic segments and InfluxDB tags"),
            );
        }
    }

    pub fn date(&mut self, d: &Spanned<toml::value::Datetime>) -> Option<NaiveDate> {
        let parsed = d
            .get_ref()
            .date
            .filter(|_| d.get_ref().time.is_none())
            .and_then(|date| {
                NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
            });
        if parsed.is_none() {
            self.push(
                Problem::new(d.span(), format!("`{}` is not a date", d.get_ref()))
                    .hint("write a bare date, for example next_inspection = 2027-03-31"),
            );
        }
        parsed
    }

    pub fn delay(&mut self, raw: &Option<Spanned<f64>>) -> Duration {
        match raw {
            None => Duration::ZERO,
            Some(s) if s.get_ref().is_finite() && *s.get_ref() >= 0.0 && *s.get_ref() < 1e9 => {
                Duration::from_secs_f64(*s.get_ref())
            }
            Some(s) => {
                self.push(Problem::new(
                    s.span(),
                    "a delay is a number of seconds, zero or more",
                ));
                Duration::ZERO
            }
        }
    }

    pub fn seconds_or(&mut self, raw: &Option<Spanned<f64>>, default: f64) -> Duration {
        match raw {
            None => Duration::from_secs_f64(default),
            Some(_) => self.delay(raw),
        }
    }

    pub fn positive(&mut self, raw: &Option<Spanned<f64>>, what: &str) -> Option<f64> {
        let r = raw.as_ref()?;
        let value = *r.get_ref();
        if !(value.is_finite() && value > 0.0) {
            self.push(Problem::new(
                r.span(),
                format!("{what} must be a number above 0"),
            ));
            return None;
        }
        Some(value)
    }

    pub fn fraction(&mut self, raw: &Option<Spanned<f64>>, default: f64, what: &str) -> f64 {
        match raw {
            None => default,
            Some(f) if f.get_ref().is_finite() && *f.get_ref() > 0.0 && *f.get_ref() < 1.0 => {
                *f.get_ref()
            }
            Some(f) => {
                self.push(
                    Problem::new(
                        f.span(),
                        format!("{what} must be a fraction between 0 and 1"),
                    )
                    .hint("write a fraction: 0.95 for 95 %, 0.03 for 3 %"),
                );
                default
            }
        }
    }
}

/// Whether `id` can name a site, gateway, equipment or rule: ids become MQTT topic segments and
/// InfluxDB tags, so only letters, digits, '-', '_' and '.'.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether `name` can be a metric: it becomes an InfluxDB field key and tag value, which cannot
/// hold whitespace or control characters, and which line protocol cannot end with a backslash
/// (InfluxDB 3's parser refuses the line, and with it the batch). Quotes and backslashes are
/// refused altogether.
pub fn is_valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz finding (fuzz/README.md): a lone carriage return in a comment was reported with an
    /// empty message.
    #[test]
    fn toml_errors_without_a_message_get_one() {
        let text = "a = 1\n# comment\r with a lone carriage return\nb = 2\n";
        let error = toml::from_str::<toml::Table>(text).unwrap_err();
        assert_eq!(error.message().trim(), "", "toml gives no message here");
        let message = toml_message(&error);
        assert!(message.starts_with("invalid TOML syntax"), "{message}");
        let span = error.span().expect("the error has a place");
        assert_eq!(line_column(text, span.start).0, 2);
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let text = "a = 1\nname = \"电梯\" x";
        let offset = text.find('x').unwrap();
        assert_eq!(line_column(text, offset), (2, 13));
        assert_eq!(line_column(text, 0), (1, 1));
    }
}
