//! Keyset pages, for the alarm list and the dispatch board (newest first) and the equipment
//! list (worst state first). A page is the rows past a cursor (the key of the last row of the
//! previous page), ordered by the list's key columns, the last of which make a row unique; one
//! row more than the page is read to know whether another follows. A page does not shift when
//! new rows arrive meanwhile.
//!
//! A cursor is the key's values joined by `_`, a text with its `%` and `_` written `%25` and
//! `%5F`: `{raised_ms}_{id}` for an alarm, `{state_rank}_{name}_{gateway}_{id}` for equipment.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::StoreError;

/// A value bound to a placeholder of a built query.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    /// `query` with this value bound to its next placeholder.
    pub fn onto<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Text(v) => query.bind(v),
            Bind::Int(v) => query.bind(v),
        }
    }
}

/// `sql` with `binds` bound to its placeholders in order.
pub fn bound<'q>(
    sql: &'q str,
    binds: impl IntoIterator<Item = Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    binds
        .into_iter()
        .fold(sqlx::query(sql), |query, bind| bind.onto(query))
}

/// A column of a list's order.
#[derive(Debug, Clone, Copy)]
pub(super) enum Key {
    Int(&'static str),
    Text(&'static str),
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Int(c) | Key::Text(c) => c,
        }
    }
}

/// How one list is paged.
pub(super) struct Paging {
    /// The columns rows are ordered by, most significant first; together they are unique.
    pub key: &'static [Key],
    /// Newest first: every key column descending, and the cursor passed as `before`;
    /// otherwise ascending, the cursor passed as `after`.
    pub descending: bool,
    /// Rows per page when the request does not say.
    pub default: i64,
    /// The most rows one page holds.
    pub max: i64,
}

impl Paging {
    /// The query parameter that carries the cursor: `before` or `after`.
    pub fn cursor_param(&self) -> &'static str {
        if self.descending {
            "before"
        } else {
            "after"
        }
    }

    /// `ORDER BY` the key, each column named with `prefix` (a table's name and a dot, or
    /// nothing).
    pub fn order_by(&self, prefix: &str) -> String {
        let direction = if self.descending { " DESC" } else { "" };
        let columns: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{prefix}{}{direction}", k.column()))
            .collect();
        format!("ORDER BY {}", columns.join(", "))
    }

    /// The end of a page's query after its `FROM` (`WHERE … ORDER BY … LIMIT $n`), with the
    /// cursor added to `conditions` and the limit to `binds`, and the page size.
    pub fn tail(
        &self,
        mut conditions: Vec<String>,
        binds: &mut Vec<Bind>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<(String, i64), StoreError> {
        if let Some(values) = self.cursor(cursor)? {
            let columns: Vec<&str> = self.key.iter().map(|k| k.column()).collect();
            conditions.push(self.past(&columns, values, binds));
        }
        let limit = self.limit(limit)?;
        binds.push(Bind::Int(limit + 1));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", conditions.join(" AND "))
        };
        let tail = format!("{filter}{} LIMIT ${}", self.order_by(""), binds.len());
        Ok((tail, limit))
    }

    /// The key's values in `cursor` (absent or empty: the first page), or a bad query.
    pub fn cursor(&self, cursor: Option<&str>) -> Result<Option<Vec<Bind>>, StoreError> {
        let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        self.parse_cursor(cursor).map(Some).ok_or_else(|| {
            StoreError::BadQuery(format!(
                "`{}` must be the `next` cursor of a previous page, not `{cursor}`",
                self.cursor_param()
            ))
        })
    }

    /// The condition that a row's `columns` come after (or, newest first, before) `values`,
    /// which are added to `binds`.
    pub fn past(&self, columns: &[&str], values: Vec<Bind>, binds: &mut Vec<Bind>) -> String {
        let first = binds.len() + 1;
        binds.extend(values);
        let placeholders: Vec<String> = (first..=binds.len()).map(|n| format!("${n}")).collect();
        format!(
            "({}) {} ({})",
            columns.join(", "),
            if self.descending { "<" } else { ">" },
            placeholders.join(", ")
        )
    }

    /// The page size asked for, or the default; a bad query beyond the maximum.
    pub fn limit(&self, limit: Option<i64>) -> Result<i64, StoreError> {
        let limit = limit.unwrap_or(self.default);
        if !(1..=self.max).contains(&limit) {
            return Err(StoreError::BadQuery(format!(
                "limit must be between 1 and {}, not {limit}",
                self.max
            )));
        }
        Ok(limit)
    }

    /// Runs a page's query and returns its rows (at most `limit`) and the next page's cursor
    /// when more matched. The rows hold the key's columns under their names.
    pub async fn fetch(
        &self,
        pool: &AnyPool,
        sql: &str,
        binds: Vec<Bind>,
        limit: i64,
    ) -> Result<(Vec<AnyRow>, Option<String>), StoreError> {
        let mut rows = bound(sql, binds).fetch_all(pool).await?;
        let mut next = None;
        if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            next = Some(self.cursor_of(&rows[limit as usize - 1])?);
        }
        Ok((rows, next))
    }

    /// The cursor after `row`.
    fn cursor_of(&self, row: &AnyRow) -> Result<String, StoreError> {
        let mut parts = Vec::with_capacity(self.key.len());
        for key in self.key {
            parts.push(match key {
                Key::Int(c) => row.try_get::<i64, _>(*c)?.to_string(),
                Key::Text(c) => escape(&row.try_get::<String, _>(*c)?),
            });
        }
        Ok(parts.join("_"))
    }

    /// The key's values in a cursor, or `None` when it is not one of this list's.
    fn parse_cursor(&self, cursor: &str) -> Option<Vec<Bind>> {
        let parts: Vec<&str> = cursor.split('_').collect();
        if parts.len() != self.key.len() {
            return None;
        }
        parts
            .iter()
            .zip(self.key)
            .map(|(part, key)| match key {
                Key::Int(_) => part.parse().ok().map(Bind::Int),
                Key::Text(_) => unescape(part).map(Bind::Text),
            })
            .collect()
    }
}

/// A text for a cursor: `%` and `_` written `%25` and `%5F`.
fn escape(text: &str) -> String {
    text.replace('%', "%25").replace('_', "%5F")
}

/// The text `escape` wrote, or `None` when `part` holds another `%` sequence; an empty text
/// is no key (every key text is an id or a name).
fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3)?;
        out.push(match code {
            "%25" => '%',
            "%5F" => '_',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EQUIPMENT: Paging = Paging {
        key: &[
            Key::Int("state_rank"),
            Key::Text("name"),
            Key::Text("gateway"),
            Key::Text("id"),
        ],
        descending: false,
        default: 10,
        max: 20,
    };

    #[test]
    fn a_cursor_holds_any_text_and_only_its_own_key() {
        for (cursor, expected) in [
            (
                "0_Lift%5F1 100%25_gw_1_x",
                None, // five parts: the gateway's `_` was not escaped
            ),
            (
                "0_Lift%5F1 100%25_gw%5F1_x",
                Some(vec![
                    Bind::Int(0),
                    Bind::Text("Lift_1 100%".into()),
                    Bind::Text("gw_1".into()),
                    Bind::Text("x".into()),
                ]),
            ),
            ("x_Lift_gw_id", None),
            ("0_Lift 50%_gw_id", None),
            ("0__gw_id", None),
            ("1700000000000_abc", None),
        ] {
            assert_eq!(EQUIPMENT.parse_cursor(cursor), expected, "{cursor}");
        }
        assert_eq!(escape("Lift_1 100%"), "Lift%5F1 100%25");
        assert_eq!(unescape(&escape("a%5F_%%25")).as_deref(), Some("a%5F_%%25"));
    }

    #[test]
    fn ascending_pages_continue_after_the_cursor() {
        let mut binds = vec![Bind::Text("2026-05-01".into())];
        let (tail, limit) = EQUIPMENT
            .tail(
                vec!["using_unit = $1".into()],
                &mut binds,
                Some("3_Lift 1_gw1_lift-1"),
                None,
            )
            .unwrap();
        assert_eq!(
            tail,
            "WHERE using_unit = $1 AND (state_rank, name, gateway, id) > ($2, $3, $4, $5) \
             ORDER BY state_rank, name, gateway, id LIMIT $6"
        );
        assert_eq!(limit, 10);
        assert_eq!(binds.len(), 6);
        assert_eq!(binds[5], Bind::Int(11));
        let err = EQUIPMENT
            .tail(Vec::new(), &mut Vec::new(), Some("3_x"), None)
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("`after` must be the `next` cursor"));
    }
}
