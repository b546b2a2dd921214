//! The alarm list (`GET /api/v1/alarms`): filtered, ordered and paged in SQL, on both engines.
//!
//! Alarms come newest first, ordered by `(raised_ms, id)`. A page holds at most `limit` alarms
//! (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]); when more match, [`AlarmPage::next`] is a
//! cursor `{raised_ms}_{id}` that the next request passes as `before`. Keyset paging: a page
//! does not shift when new alarms arrive meanwhile. The indexes `alarms_list (raised_ms, id)`
//! and `alarms_open_list (cleared_ms, raised_ms, id)` serve the order and the cursor, the
//! second for the active alarms (`cleared_ms IS NULL`) without reading closed ones.

use serde::{Deserialize, Serialize};
use sqlx::Row;

pub use super::page::Bind;
use super::page::{Key, Paging};
use super::{rfc3339, Store, StoreError};

/// Alarms per page when the request does not say.
pub const DEFAULT_PAGE: i64 = 200;
/// The most alarms one page holds.
pub const MAX_PAGE: i64 = 1000;

const PAGING: Paging = Paging {
    key: &[Key::Int("raised_ms"), Key::Text("id")],
    descending: true,
    default: DEFAULT_PAGE,
    max: MAX_PAGE,
};

#[derive(Debug, Clone, Serialize)]
pub struct AlarmRow {
    pub id: String,
    pub gateway: String,
    pub equipment: String,
    pub rule: String,
    pub severity: String,
    pub kind: String,
    pub using_unit: String,
    pub address: String,
    pub trapped: bool,
    pub message: String,
    pub raised: String,
    pub cleared: Option<String>,
    /// ISA-18.2 state: active_unacked, active_acked, rtn_unacked, normal.
    pub state: String,
    pub acked: Option<String>,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
}

/// The query string of `GET /api/v1/alarms`. An empty or absent field accepts everything.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlarmFilter {
    pub kind: Option<String>,
    pub severity: Option<String>,
    /// `active` (not cleared), or one ISA-18.2 state.
    pub state: Option<String>,
    pub using_unit: Option<String>,
    /// The area the address lies in ([`area_key`]: its first part before a comma, or up to
    /// the street or town in a Chinese address), ignoring case.
    pub area: Option<String>,
    /// At most this many alarms (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page: only alarms that come after it.
    pub before: Option<String>,
}

/// One page of the alarm list, and the cursor of the next when more alarms match.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmPage {
    pub alarms: Vec<AlarmRow>,
    pub next: Option<String>,
}

pub(super) const COLUMNS: &str =
    "id, gateway, equipment, rule, severity, kind, using_unit, address, trapped, message,
    raised_ms, cleared_ms, acked_ms, acked_by, ack_comment";

/// The SQL condition of a `state` filter value.
fn state_condition(state: &str) -> Option<&'static str> {
    Some(match state {
        "active" => "cleared_ms IS NULL",
        "active_unacked" => "cleared_ms IS NULL AND acked_ms IS NULL",
        "active_acked" => "cleared_ms IS NULL AND acked_ms IS NOT NULL",
        "rtn_unacked" => "cleared_ms IS NOT NULL AND acked_ms IS NULL",
        "normal" => "cleared_ms IS NOT NULL AND acked_ms IS NOT NULL",
        _ => return None,
    })
}

/// `%part%` for `LIKE … ESCAPE '\'`, with the pattern characters of `part` taken literally.
pub(super) fn like_pattern(part: &str) -> String {
    let mut out = String::from("%");
    for c in part.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl AlarmFilter {
    /// The query of one page (one row more than the page, to know whether another follows),
    /// its bound values and the page size; only alarms of `using_unit` when given.
    pub fn sql(&self, using_unit: Option<&str>) -> Result<(String, Vec<Bind>, i64), StoreError> {
        let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut equal = |column: &str, value: String, conditions: &mut Vec<String>| {
            binds.push(Bind::Text(value));
            conditions.push(format!("{column} = ${}", binds.len()));
        };
        for (column, value) in [
            ("kind", given(&self.kind)),
            ("severity", given(&self.severity)),
            ("using_unit", given(&self.using_unit)),
            ("using_unit", using_unit.map(str::to_owned)),
        ] {
            if let Some(v) = value {
                equal(column, v, &mut conditions);
            }
        }
        if let Some(state) = given(&self.state) {
            let condition = state_condition(&state).ok_or_else(|| {
                StoreError::BadQuery(format!(
                    "unknown state `{state}`: use active, active_unacked, active_acked, rtn_unacked or normal"
                ))
            })?;
            conditions.push(condition.to_owned());
        }
        if let Some(area) = given(&self.area) {
            binds.push(Bind::Text(area.trim().to_lowercase()));
            conditions.push(format!("area = ${}", binds.len()));
        }
        let (tail, limit) =
            PAGING.tail(conditions, &mut binds, self.before.as_deref(), self.limit)?;
        let sql = format!("SELECT {COLUMNS} FROM alarms {tail}");
        Ok((sql, binds, limit))
    }
}

/// The area an alarm is listed under: the area its address lies in, lowercased, so that the
/// list's filter is an indexed equality (`alarms_area`).
pub(super) fn area_key(address: &str) -> String {
    super::trends::area_of(address).to_lowercase()
}

/// Alarms filled in per transaction by [`Store::backfill_alarm_areas`].
const BACKFILL_BATCH: i64 = 5_000;

impl Store {
    /// Gives the alarms stored before migration 10 their area (SQL cannot compute it on both
    /// engines alike), a batch per transaction; returns how many were filled in. Idempotent:
    /// two instances starting together write the same values.
    pub async fn backfill_alarm_areas(&self) -> Result<u64, StoreError> {
        let mut filled = 0;
        loop {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, address FROM alarms WHERE area IS NULL ORDER BY id LIMIT $1",
            )
            .bind(BACKFILL_BATCH)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.pool.begin().await?;
            for (id, address) in &rows {
                sqlx::query("UPDATE alarms SET area = $1 WHERE id = $2")
                    .bind(area_key(address))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            filled += rows.len() as u64;
            tracing::info!(filled, "alarm areas filled in");
        }
    }

    /// One page of the alarms that match `filter`, newest first; only `using_unit`'s when given.
    pub async fn alarm_page(
        &self,
        filter: &AlarmFilter,
        using_unit: Option<&str>,
    ) -> Result<AlarmPage, StoreError> {
        let (sql, binds, limit) = filter.sql(using_unit)?;
        let (rows, next) = PAGING.fetch(&self.pool, &sql, binds, limit).await?;
        let alarms = rows
            .iter()
            .map(alarm_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlarmPage { alarms, next })
    }

    /// The first page of the alarms that match `filter`.
    pub async fn alarms(
        &self,
        filter: &AlarmFilter,
        using_unit: Option<&str>,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        Ok(self.alarm_page(filter, using_unit).await?.alarms)
    }
}

pub(super) fn alarm_from_row(r: &sqlx::any::AnyRow) -> Result<AlarmRow, StoreError> {
    let cleared: Option<i64> = r.try_get("cleared_ms")?;
    let acked: Option<i64> = r.try_get("acked_ms")?;
    let state = match (cleared.is_some(), acked.is_some()) {
        (false, false) => "active_unacked",
        (false, true) => "active_acked",
        (true, false) => "rtn_unacked",
        (true, true) => "normal",
    };
    Ok(AlarmRow {
        id: r.try_get("id")?,
        gateway: r.try_get("gateway")?,
        equipment: r.try_get("equipment")?,
        rule: r.try_get("rule")?,
        severity: r.try_get("severity")?,
        kind: r.try_get("kind")?,
        using_unit: r.try_get("using_unit")?,
        address: r.try_get("address")?,
        trapped: r.try_get::<i64, _>("trapped")? != 0,
        message: r.try_get("message")?,
        raised: rfc3339(r.try_get("raised_ms")?),
        cleared: cleared.map(rfc3339),
        state: state.into(),
        acked: acked.map(rfc3339),
        acked_by: r.try_get("acked_by")?,
        ack_comment: r.try_get("ack_comment")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bound_conditions() {
        let filter = AlarmFilter {
            state: Some("active".into()),
            severity: Some("critical".into()),
            area: Some(" FuTian 福田区 ".into()),
            before: Some("1700000000000_abc".into()),
            limit: Some(10),
            ..AlarmFilter::default()
        };
        let (sql, binds, limit) = filter.sql(Some("Tower Property Co.")).unwrap();
        assert_eq!(
            sql.split("FROM alarms ").nth(1).unwrap(),
            "WHERE severity = $1 AND using_unit = $2 AND cleared_ms IS NULL \
             AND area = $3 AND (raised_ms, id) < ($4, $5) \
             ORDER BY raised_ms DESC, id DESC LIMIT $6"
        );
        assert_eq!(
            binds,
            [
                Bind::Text("critical".into()),
                Bind::Text("Tower Property Co.".into()),
                Bind::Text("futian 福田区".into()),
                Bind::Int(1_700_000_000_000),
                Bind::Text("abc".into()),
                Bind::Int(11),
            ]
        );
        assert_eq!(limit, 10);
    }

    #[test]
    fn bad_filters_are_refused_with_what_to_send() {
        let cases = [
            (
                AlarmFilter {
                    state: Some("open".into()),
                    ..Default::default()
                },
                "unknown state `open`",
            ),
            (
                AlarmFilter {
                    before: Some("yesterday".into()),
                    ..Default::default()
                },
                "`before` must be",
            ),
            (
                AlarmFilter {
                    before: Some("12_".into()),
                    ..Default::default()
                },
                "`before` must be",
            ),
            (
                AlarmFilter {
                    limit: Some(0),
                    ..Default::default()
                },
                "limit must be between 1 and 1000",
            ),
            (
                AlarmFilter {
                    limit: Some(1001),
                    ..Default::default()
                },
                "limit must be between 1 and 1000",
            ),
        ];
        for (filter, expected) in cases {
            let error = filter.sql(None).unwrap_err().to_string();
            assert!(error.contains(expected), "{filter:?}: {error}");
        }
        let (sql, binds, _) = AlarmFilter::default().sql(None).unwrap();
        assert!(!sql.contains("WHERE"), "{sql}");
        assert_eq!(binds, [Bind::Int(DEFAULT_PAGE + 1)]);
    }
}
