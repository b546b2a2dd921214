//! Keyset pages, newest first, for the alarm list and the dispatch board. A page is the rows
//! before a cursor `{time_ms}_{id}` (the last row of the previous page), ordered by the list's
//! time column and id, both descending; one row more than the page is read to know whether
//! another follows. A page does not shift when new rows arrive meanwhile.

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

/// How one list is paged.
pub(super) struct Paging {
    /// The column rows are ordered by, with `id` after it.
    pub time_column: &'static str,
    /// Rows per page when the request does not say.
    pub default: i64,
    /// The most rows one page holds.
    pub max: i64,
}

impl Paging {
    /// The end of a page's query after its `FROM` (`WHERE … ORDER BY … LIMIT $n`), with the
    /// cursor `before` added to `conditions` and the limit to `binds`, and the page size.
    pub fn tail(
        &self,
        mut conditions: Vec<String>,
        binds: &mut Vec<Bind>,
        before: Option<&str>,
        limit: Option<i64>,
    ) -> Result<(String, i64), StoreError> {
        let time = self.time_column;
        if let Some(cursor) = before.filter(|c| !c.is_empty()) {
            let (ms, id) = parse_cursor(cursor).ok_or_else(|| {
                StoreError::BadQuery(format!(
                    "`before` must be the `next` cursor of a previous page, not `{cursor}`"
                ))
            })?;
            binds.push(Bind::Int(ms));
            binds.push(Bind::Text(id));
            conditions.push(format!(
                "({time}, id) < (${}, ${})",
                binds.len() - 1,
                binds.len()
            ));
        }
        let limit = limit.unwrap_or(self.default);
        if !(1..=self.max).contains(&limit) {
            return Err(StoreError::BadQuery(format!(
                "limit must be between 1 and {}, not {limit}",
                self.max
            )));
        }
        binds.push(Bind::Int(limit + 1));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", conditions.join(" AND "))
        };
        let tail = format!(
            "{filter}ORDER BY {time} DESC, id DESC LIMIT ${}",
            binds.len()
        );
        Ok((tail, limit))
    }

    /// Runs a page's query and returns its rows (at most `limit`) and the next page's cursor
    /// when more matched.
    pub async fn fetch(
        &self,
        pool: &AnyPool,
        sql: &str,
        binds: Vec<Bind>,
        limit: i64,
    ) -> Result<(Vec<AnyRow>, Option<String>), StoreError> {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = bind.onto(query);
        }
        let mut rows = query.fetch_all(pool).await?;
        let mut next = None;
        if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            let last = &rows[limit as usize - 1];
            next = Some(format!(
                "{}_{}",
                last.try_get::<i64, _>(self.time_column)?,
                last.try_get::<String, _>("id")?
            ));
        }
        Ok((rows, next))
    }
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (ms, id) = cursor.split_once('_')?;
    let ms = ms.parse().ok()?;
    (!id.is_empty()).then(|| (ms, id.to_owned()))
}
