//! The equipment list (`GET /api/v1/equipment`) and its counts (`GET /api/v1/equipment/counts`),
//! for the equipment unit's overview: paged and counted in SQL, on both engines, so that a
//! regulator's city (over 100,000 rows) is never read whole.
//!
//! Equipment comes worst state first ([`WORST_FIRST`]: trapped, alarm, offline, overdue,
//! normal), then by name, gateway and id: keyset pages of `(state_rank, name, gateway, id)`
//! (store/page.rs), the cursor passed as `after`. The state is decided as
//! `equipment_state_from_row` decides it, from the open alarms and the gateways' state. A page
//! reads each state from the cursor's on by itself, in name order off an index
//! (`equipment_name`, or `equipment_unit` for a unit), cut at the page's size: the rare states
//! start from the open alarms and the offline gateways, so a page reads about a page of rows;
//! then only the page's rows are read whole. The counts read the rare states the same way and
//! the totals off indexes ([`counts_sql`]). The state is live: a piece whose state changes
//! while a user pages may show on two pages or on none; the counts and the map are what is
//! true now.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::dashboard::{equipment_state_from_row, EQUIPMENT_STATE_COLUMNS};
use super::page::{bound, Bind, Key, Paging};
use super::{EquipmentState, Store, StoreError};

/// Equipment per page when the request does not say.
pub const DEFAULT_EQUIPMENT_PAGE: i64 = 100;
/// The most equipment one page holds.
pub const MAX_EQUIPMENT_PAGE: i64 = 500;

/// The map's states, worst first (`WORST_FIRST` of map.js): a state's rank is its place here,
/// and a map cluster wears the first of these among its points.
pub const WORST_FIRST: [&str; 5] = ["trapped", "alarm", "offline", "overdue", "normal"];

const PAGING: Paging = Paging {
    key: &[
        Key::Int("state_rank"),
        Key::Text("name"),
        Key::Text("gateway"),
        Key::Text("id"),
    ],
    descending: false,
    default: DEFAULT_EQUIPMENT_PAGE,
    max: MAX_EQUIPMENT_PAGE,
};

/// The query string of `GET /api/v1/equipment`. An empty or absent field accepts everything.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EquipmentFilter {
    /// `overdue`: only equipment past its next inspection date, whatever its state.
    pub inspection: Option<String>,
    /// At most this many (default [`DEFAULT_EQUIPMENT_PAGE`], at most [`MAX_EQUIPMENT_PAGE`]).
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page: only equipment that comes after it.
    pub after: Option<String>,
}

/// One page of the equipment list, and the cursor of the next when more match.
#[derive(Debug, Clone)]
pub struct EquipmentPage {
    pub equipment: Vec<EquipmentState>,
    pub next: Option<String>,
}

/// How many pieces of equipment are in each state; each piece counts in one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StateCounts {
    pub trapped: i64,
    pub alarm: i64,
    pub offline: i64,
    pub overdue: i64,
    pub normal: i64,
}

/// The overview's totals over the equipment a caller sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EquipmentCounts {
    pub equipment: i64,
    pub states: StateCounts,
    /// Past its next inspection date, whatever its state (the `overdue` state is only the
    /// pieces with nothing worse).
    pub inspection_overdue: i64,
    /// Alarms not cleared on this equipment.
    pub open_alarms: i64,
}

/// An open alarm on `e`; and one with a trapped passenger.
const OPEN: &str = "EXISTS (SELECT 1 FROM alarms a
    WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL)";
const TRAPPED: &str = "EXISTS (SELECT 1 FROM alarms a
    WHERE a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL AND a.trapped > 0)";
/// `e`'s gateway is offline.
const OFFLINE: &str =
    "EXISTS (SELECT 1 FROM gateways g WHERE g.id = e.gateway AND g.state = 'offline')";

/// Where each state's equipment is found (after `FROM`, a join that ends with `equipment e`)
/// and what else makes a row that state, in [`WORST_FIRST`] order. The rare states start from
/// what makes them (open alarms, offline gateways); `CROSS JOIN` keeps that order on SQLite.
fn states() -> [(String, String); 5] {
    let open = |trapped: &str| {
        format!(
            "(SELECT DISTINCT gateway, equipment FROM alarms WHERE cleared_ms IS NULL{trapped}) o
             CROSS JOIN equipment e"
        )
    };
    let on_open = "e.gateway = o.gateway AND e.id = o.equipment".to_owned();
    let plain = "equipment e".to_owned();
    [
        (open(" AND trapped > 0"), on_open.clone()),
        (
            open(""),
            format!("{on_open} AND NOT {TRAPPED}"),
        ),
        (
            "gateways g0 CROSS JOIN equipment e".to_owned(),
            format!("g0.state = 'offline' AND e.gateway = g0.id AND NOT {OPEN}"),
        ),
        (
            plain.clone(),
            format!("e.next_inspection < $1 AND NOT {OFFLINE} AND NOT {OPEN}"),
        ),
        (
            plain,
            format!(
                "(e.next_inspection IS NULL OR e.next_inspection >= $1) AND NOT {OFFLINE} AND NOT {OPEN}"
            ),
        ),
    ]
}

impl EquipmentFilter {
    /// The query of one page (one row more than the page), its bound values and the page size;
    /// only `using_unit`'s equipment when given. Each state from the cursor's on is read on
    /// its own, ordered by name off an index and cut at the page's size, so a page reads
    /// about a page of rows, not the registry.
    pub fn sql(
        &self,
        using_unit: Option<&str>,
        today: chrono::NaiveDate,
    ) -> Result<(String, Vec<Bind>, i64), StoreError> {
        let mut binds = vec![Bind::Text(today.to_string())];
        let mut common = Vec::new();
        if let Some(u) = using_unit {
            binds.push(Bind::Text(u.to_owned()));
            common.push(format!("e.using_unit = ${}", binds.len()));
        }
        let overdue_only = match self.inspection.as_deref().filter(|v| !v.is_empty()) {
            None => false,
            Some("overdue") => {
                common.push("e.next_inspection < $1".into());
                true
            }
            Some(other) => {
                return Err(StoreError::BadQuery(format!(
                    "unknown inspection `{other}`: use overdue"
                )))
            }
        };
        let bad_cursor = || {
            StoreError::BadQuery(format!(
                "`after` must be the `next` cursor of a previous page, not `{}`",
                self.after.as_deref().unwrap_or_default()
            ))
        };
        let (from_rank, past) = match PAGING.cursor(self.after.as_deref())? {
            None => (0, None),
            Some(mut values) => {
                let Bind::Int(rank) = values.remove(0) else {
                    return Err(bad_cursor());
                };
                if !(0..WORST_FIRST.len() as i64).contains(&rank) {
                    return Err(bad_cursor());
                }
                let columns = ["e.name", "e.gateway", "e.id"];
                (
                    rank as usize,
                    Some(PAGING.past(&columns, values, &mut binds)),
                )
            }
        };
        let limit = PAGING.limit(self.limit)?;
        binds.push(Bind::Int(limit + 1));
        let cut = format!("LIMIT ${}", binds.len());
        let branches: Vec<String> = states()
            .into_iter()
            .enumerate()
            .skip(from_rank)
            // A normal piece is never past its inspection.
            .filter(|(rank, _)| !(overdue_only && WORST_FIRST[*rank] == "normal"))
            .map(|(rank, (from, state))| {
                let mut conditions = vec![state];
                conditions.extend(common.iter().cloned());
                if rank == from_rank {
                    conditions.extend(past.clone());
                }
                format!(
                    "SELECT * FROM (SELECT CAST({rank} AS BIGINT) AS state_rank, e.name, e.gateway, e.id
                     FROM {from} WHERE {} ORDER BY e.name, e.gateway, e.id {cut}) s{rank}",
                    conditions.join(" AND ")
                )
            })
            .collect();
        if branches.is_empty() {
            // Only a normal piece's cursor, with only overdue pieces asked for: not one of ours.
            return Err(bad_cursor());
        }
        // The page's keys first, then only those rows read whole with their alarms.
        let sql = format!(
            "SELECT p.state_rank, {EQUIPMENT_STATE_COLUMNS}
             FROM (SELECT state_rank, name, gateway, id FROM ({}) ranked {} {cut}) p
             JOIN equipment e ON e.gateway = p.gateway AND e.id = p.id
             LEFT JOIN gateways g ON g.id = e.gateway {}",
            branches.join(" UNION ALL "),
            PAGING.order_by(""),
            PAGING.order_by("p.")
        );
        Ok((sql, binds, limit))
    }
}

impl Store {
    /// One page of the equipment that matches `filter`, worst state first on `today`; only
    /// `using_unit`'s when given.
    pub async fn equipment_page(
        &self,
        filter: &EquipmentFilter,
        using_unit: Option<&str>,
        today: chrono::NaiveDate,
    ) -> Result<EquipmentPage, StoreError> {
        let (sql, binds, limit) = filter.sql(using_unit, today)?;
        let (rows, next) = PAGING.fetch(&self.pool, &sql, binds, limit).await?;
        let today = today.to_string();
        let equipment = rows
            .iter()
            .map(|r| equipment_state_from_row(r, &today))
            .collect::<Result<_, _>>()?;
        Ok(EquipmentPage { equipment, next })
    }

    /// How many pieces of equipment are in each state on `today`, past their inspection, and
    /// their open alarms; only `using_unit`'s when given. See [`counts_sql`].
    pub async fn equipment_counts(
        &self,
        using_unit: Option<&str>,
        today: chrono::NaiveDate,
    ) -> Result<EquipmentCounts, StoreError> {
        let (rare, totals, binds) = counts_sql(using_unit, today);
        let mut by_rank = [0; RARE_STATES];
        let mut rare_overdue = 0;
        for r in bound(&rare, binds.clone()).fetch_all(&self.pool).await? {
            let rank: i64 = r.try_get("state_rank")?;
            *by_rank
                .get_mut(rank as usize)
                .ok_or_else(|| StoreError::Corrupt(format!("state rank {rank}")))? =
                r.try_get("n")?;
            rare_overdue += r
                .try_get::<Option<i64>, _>("inspection_overdue")?
                .unwrap_or(0);
        }
        let r = bound(&totals, binds).fetch_one(&self.pool).await?;
        let equipment: i64 = r.try_get("equipment")?;
        let inspection_overdue: i64 = r.try_get("inspection_overdue")?;
        let [trapped, alarm, offline] = by_rank;
        let overdue = inspection_overdue - rare_overdue;
        Ok(EquipmentCounts {
            equipment,
            states: StateCounts {
                trapped,
                alarm,
                offline,
                overdue,
                normal: equipment - trapped - alarm - offline - overdue,
            },
            inspection_overdue,
            open_alarms: r.try_get("open_alarms")?,
        })
    }
}

/// The states worse than `overdue` (trapped, alarm, offline): few pieces, found from what
/// makes them (open alarms, offline gateways).
const RARE_STATES: usize = 3;

/// The counts' two queries and their bound values (`$1` today, `$2` the using unit): the rare
/// states, each with how many of its pieces are past inspection, read from their sources as a
/// page reads them ([`states`]); and the totals (equipment, past inspection, open alarms), each
/// a count off an index (`equipment_inspection`, `equipment_unit`, `alarms_open_list`). The
/// `overdue` state is then the pieces past inspection that no rare state holds, and `normal`
/// the rest, so the counts never read the city's registry row by row.
pub fn counts_sql(
    using_unit: Option<&str>,
    today: chrono::NaiveDate,
) -> (String, String, Vec<Bind>) {
    let mut binds = vec![Bind::Text(today.to_string())];
    let (unit_e, unit_a) = match using_unit {
        Some(u) => {
            binds.push(Bind::Text(u.to_owned()));
            (" AND e.using_unit = $2", " AND using_unit = $2")
        }
        None => ("", ""),
    };
    let rare = states()
        .into_iter()
        .take(RARE_STATES)
        .enumerate()
        .map(|(rank, (from, on))| {
            format!(
                "SELECT CAST({rank} AS BIGINT) AS state_rank, COUNT(*) AS n,
                    SUM(CASE WHEN e.next_inspection < $1 THEN 1 ELSE 0 END) AS inspection_overdue
                 FROM {from} WHERE {on}{unit_e}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let totals = format!(
        "SELECT (SELECT COUNT(*) FROM equipment e WHERE 1 = 1{unit_e}) AS equipment,
            (SELECT COUNT(*) FROM equipment e WHERE e.next_inspection < $1{unit_e}) AS inspection_overdue,
            (SELECT COUNT(*) FROM alarms WHERE cleared_ms IS NULL{unit_a}) AS open_alarms"
    );
    (rare, totals, binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_page_past_a_cursor_reads_only_the_page_whole() {
        let filter = EquipmentFilter {
            inspection: Some("overdue".into()),
            limit: Some(20),
            after: Some("3_Lift 1_gw1_lift-1".into()),
        };
        let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        let (sql, binds, limit) = filter.sql(Some("Tower Property Co."), today).unwrap();
        // Past an overdue piece, with only overdue pieces asked for: the overdue state alone,
        // from the cursor on, off the unit's rows.
        assert!(!sql.contains(") s0") && !sql.contains(") s4"), "{sql}");
        assert!(
            sql.contains(
                "WHERE e.next_inspection < $1 AND NOT EXISTS (SELECT 1 FROM gateways g \
                 WHERE g.id = e.gateway AND g.state = 'offline') AND NOT EXISTS"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "AND e.using_unit = $2 AND e.next_inspection < $1 \
                 AND (e.name, e.gateway, e.id) > ($3, $4, $5) \
                 ORDER BY e.name, e.gateway, e.id LIMIT $6) s3"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY p.state_rank, p.name, p.gateway, p.id"),
            "{sql}"
        );
        assert_eq!(
            binds,
            [
                Bind::Text("2026-05-01".into()),
                Bind::Text("Tower Property Co.".into()),
                Bind::Text("Lift 1".into()),
                Bind::Text("gw1".into()),
                Bind::Text("lift-1".into()),
                Bind::Int(21),
            ]
        );
        assert_eq!(limit, 20);
        for (filter, expected) in [
            (
                EquipmentFilter {
                    inspection: Some("soon".into()),
                    ..Default::default()
                },
                "unknown inspection `soon`",
            ),
            (
                EquipmentFilter {
                    limit: Some(MAX_EQUIPMENT_PAGE + 1),
                    ..Default::default()
                },
                "limit must be between 1 and 500",
            ),
            (
                EquipmentFilter {
                    after: Some("7_Lift 1_gw1_lift-1".into()),
                    ..Default::default()
                },
                "`after` must be the `next` cursor",
            ),
            (
                EquipmentFilter {
                    inspection: Some("overdue".into()),
                    after: Some("4_Lift 1_gw1_lift-1".into()),
                    ..Default::default()
                },
                "`after` must be the `next` cursor",
            ),
        ] {
            let error = filter.sql(None, today).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
