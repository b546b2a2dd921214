//! Reading dispatches: one with its steps, the dispatch board's pages (keyset, newest first,
//! open or closed alone), and whether a rescue-page link or a unit belongs to a dispatch.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::page::{Bind, Key, Paging};
use super::{rfc3339, Store, StoreError};
use crate::central::dispatch::{Dispatch, Level, Record, Status, Step};

/// Dispatches per board page when the request does not say.
pub const DEFAULT_BOARD_PAGE: i64 = 100;
/// The most dispatches one board page holds.
pub const MAX_BOARD_PAGE: i64 = 500;

const BOARD_PAGING: Paging = Paging {
    key: &[Key::Int("created_ms"), Key::Text("id")],
    descending: true,
    default: DEFAULT_BOARD_PAGE,
    max: MAX_BOARD_PAGE,
};

/// The query string of `GET /api/v1/dispatches`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DispatchFilter {
    /// `open` (not closed) or `closed`; absent for both.
    pub state: Option<String>,
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

/// One page of the dispatch board, and the cursor of the next when more match.
#[derive(Debug, Clone)]
pub struct DispatchPage {
    pub dispatches: Vec<Dispatch>,
    pub next: Option<String>,
}

pub(super) const DISPATCH_COLUMNS: &str = "id, order_no, alarm_id, event_id, gateway, equipment, incident_ms, created_ms, status,
    level, unit, unit_phone, chain, level_started_ms, next_check_ms, responded_ms, on_site_ms, closed_ms, record";

/// A row of `dispatch_steps` as stored.
#[derive(sqlx::FromRow)]
struct StepRow {
    at_ms: i64,
    step: String,
    level: i64,
    unit: String,
    actor: String,
    note: String,
}

impl Store {
    /// A dispatch with its steps, or `None`.
    pub async fn dispatch(&self, id: &str) -> Result<Option<Dispatch>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut d = dispatch_from_row(&row)?;
        d.steps = self.steps(id).await?;
        Ok(Some(d))
    }

    pub async fn steps(&self, id: &str) -> Result<Vec<Step>, StoreError> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT at_ms, step, level, unit, actor, note FROM dispatch_steps WHERE dispatch_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Step {
                at: rfc3339(r.at_ms),
                step: r.step,
                level: r.level,
                unit: r.unit,
                actor: r.actor,
                note: r.note,
            })
            .collect())
    }

    /// The unit a rescue-page link was sent to, when `token` is a link of dispatch `id`.
    pub async fn dispatch_link_unit(
        &self,
        id: &str,
        token: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT unit FROM dispatch_links WHERE token_sha256 = $1 AND dispatch_id = $2",
        )
        .bind(crate::auth::token_hash(token))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Whether `unit` was ever called for this dispatch.
    pub async fn dispatch_called(&self, id: &str, unit: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dispatch_steps WHERE dispatch_id = $1 AND unit = $2",
        )
        .bind(id)
        .bind(unit)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The first page of dispatches, newest first; only those that called `unit` when given.
    pub async fn dispatches(&self, unit: Option<&str>) -> Result<Vec<Dispatch>, StoreError> {
        Ok(self
            .dispatch_page(&DispatchFilter::default(), unit)
            .await?
            .dispatches)
    }

    /// One page of the dispatch board, newest first by `(created_ms, id)` (keyset paging, like
    /// the alarm list): open or closed ones alone when asked; only those that called `unit`
    /// when given. The indexes `dispatches_list` and `dispatches_open_list` serve the order.
    pub async fn dispatch_page(
        &self,
        filter: &DispatchFilter,
        unit: Option<&str>,
    ) -> Result<DispatchPage, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        match filter.state.as_deref().filter(|s| !s.is_empty()) {
            None => {}
            Some("open") => conditions.push("closed_ms IS NULL".into()),
            Some("closed") => conditions.push("closed_ms IS NOT NULL".into()),
            Some(other) => {
                return Err(StoreError::BadQuery(format!(
                    "unknown state `{other}`: use open or closed"
                )))
            }
        }
        if let Some(u) = unit {
            binds.push(Bind::Text(u.to_owned()));
            conditions.push(format!(
                "id IN (SELECT dispatch_id FROM dispatch_steps WHERE unit = ${})",
                binds.len()
            ));
        }
        let (tail, limit) = BOARD_PAGING.tail(
            conditions,
            &mut binds,
            filter.before.as_deref(),
            filter.limit,
        )?;
        let sql = format!("SELECT {DISPATCH_COLUMNS} FROM dispatches {tail}");
        let (rows, next) = BOARD_PAGING.fetch(&self.pool, &sql, binds, limit).await?;
        let dispatches = rows
            .iter()
            .map(dispatch_from_row)
            .collect::<Result<_, _>>()?;
        Ok(DispatchPage { dispatches, next })
    }
}

pub(super) fn dispatch_from_row(r: &AnyRow) -> Result<Dispatch, StoreError> {
    let record: String = r.try_get("record")?;
    let record: Record =
        serde_json::from_str(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let status: String = r.try_get("status")?;
    Ok(Dispatch {
        id: r.try_get("id")?,
        order_no: r.try_get("order_no")?,
        incident_id: r.try_get("event_id")?,
        alarm_id: r.try_get("alarm_id")?,
        gateway: r.try_get("gateway")?,
        fault_type: record.fault_type,
        fault_name: record.fault_name,
        rule: record.rule,
        message: record.message,
        time: rfc3339(r.try_get("incident_ms")?),
        created: rfc3339(r.try_get("created_ms")?),
        elevator: record.elevator,
        address: record.address,
        using_unit: record.using_unit,
        maintenance_unit: record.maintenance_unit,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status}")))?,
        level: r.try_get("level")?,
        unit: Level {
            name: r.try_get("unit")?,
            phone: r.try_get("unit_phone")?,
        },
        responded_at: r.try_get::<Option<i64>, _>("responded_ms")?.map(rfc3339),
        on_site_at: r.try_get::<Option<i64>, _>("on_site_ms")?.map(rfc3339),
        closed_at: r.try_get::<Option<i64>, _>("closed_ms")?.map(rfc3339),
        next_check: r.try_get::<Option<i64>, _>("next_check_ms")?.map(rfc3339),
        steps: Vec::new(),
    })
}
