//! Regional alarm floods in the store (`central/flood.rs` decides): joining a raised alarm to
//! the open situation around it or opening one, ending quiet ones, and reading them for the
//! dispatch board.
//!
//! **Invariant:** two instances never open two situations for one flood: on PostgreSQL the
//! opening is serialised by a transaction-scoped advisory lock and the open situations are
//! read again under it; SQLite has one writer.

use serde::Serialize;
use sqlx::Row;

use super::board::{dispatch_from_row, DISPATCH_COLUMNS};
use super::{random_id, rfc3339, Backend, Store, StoreError};
use crate::central::config::FloodSettings;
use crate::central::dispatch::Dispatch;
use crate::central::flood;

/// A situation as the board shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Situation {
    pub id: String,
    pub started: String,
    pub ended: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub radius_km: f64,
    /// Alarms raised in the situation (every stopped lift, with or without people inside).
    pub alarms: i64,
    /// Its dispatches: open ones first, then people trapped outside the door zone (critical)
    /// before those at a landing, then the longest trapped first.
    pub dispatches: Vec<Dispatch>,
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Store {
    /// Inside the ingest transaction, after alarm `alarm_id` was raised at `at` (WGS-84) and
    /// before its dispatch is made (`create_dispatch` reads the situation off the alarm): joins
    /// it to the open situation within `radius_km`, or opens one when more than `count` alarms
    /// were raised around it within the window (attaching those too, with their dispatches).
    /// Returns the situation.
    pub(super) async fn join_situation(
        &self,
        tx: &mut Tx<'_>,
        flood: &FloodSettings,
        alarm_id: &str,
        at: (f64, f64),
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(id) = open_situation_near(tx, flood, at).await? {
            attach_raised(tx, &id, alarm_id).await?;
            return Ok(Some(id));
        }
        let since = now - flood.window.as_millis() as i64;
        let (a, b, c, d) = flood::bounding_box(at, flood.radius_km);
        let nearby: Vec<(String, f64, f64)> = sqlx::query(
            "SELECT a.id, e.lat, e.lon FROM alarms a JOIN equipment e ON e.gateway = a.gateway AND e.id = a.equipment
             WHERE a.raised_ms >= $1 AND a.situation_id IS NULL
             AND e.lat BETWEEN $2 AND $3 AND e.lon BETWEEN $4 AND $5",
        )
        .bind(since)
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(d)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, StoreError>>()?;
        let members: Vec<&str> = nearby
            .iter()
            .filter(|(_, lat, lon)| flood::distance_km(at, (*lat, *lon)) <= flood.radius_km)
            .map(|(id, _, _)| id.as_str())
            .collect();
        if !flood::is_flood(flood, members.len() as i64) {
            return Ok(None);
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7370617066)")
                .execute(&mut **tx)
                .await?;
            // Another instance may have opened it while we waited.
            if let Some(id) = open_situation_near(tx, flood, at).await? {
                attach_raised(tx, &id, alarm_id).await?;
                return Ok(Some(id));
            }
        }
        let id = random_id();
        sqlx::query(
            "INSERT INTO situations (id, lat, lon, radius_km, started_ms, ended_ms) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&id)
        .bind(at.0)
        .bind(at.1)
        .bind(flood.radius_km)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        for alarm in &members {
            attach_alarm(tx, &id, alarm).await?;
        }
        attach_raised(tx, &id, alarm_id).await?;
        tracing::warn!(situation = %id, alarms = members.len(), lat = at.0, lon = at.1, "alarm flood: a situation opened");
        Ok(Some(id))
    }

    /// The timer loop's care of open situations: an alarm raised near one while it was being
    /// opened by another instance (so neither saw the other's uncommitted rows) joins it now;
    /// a situation that fewer than `end_count` alarms joined within the last window (and that
    /// is at least a window old) ends. Returns (alarms joined, situations ended).
    pub async fn sweep_situations(
        &self,
        flood: &FloodSettings,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        let since = now - flood.window.as_millis() as i64;
        let open =
            sqlx::query("SELECT id, lat, lon, started_ms FROM situations WHERE ended_ms IS NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut joined = 0;
        for r in open {
            let id: String = r.try_get(0)?;
            let centre: (f64, f64) = (r.try_get(1)?, r.try_get(2)?);
            let started: i64 = r.try_get(3)?;
            let (a, b, c, d) = flood::bounding_box(centre, flood.radius_km);
            let strays: Vec<String> = sqlx::query(
                "SELECT a.id, e.lat, e.lon FROM alarms a JOIN equipment e ON e.gateway = a.gateway AND e.id = a.equipment
                 WHERE a.raised_ms >= $1 AND a.situation_id IS NULL
                 AND e.lat BETWEEN $2 AND $3 AND e.lon BETWEEN $4 AND $5",
            )
            .bind(started - flood.window.as_millis() as i64)
            .bind(a)
            .bind(b)
            .bind(c)
            .bind(d)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .filter_map(|r| {
                let at: (f64, f64) = (r.try_get(1).ok()?, r.try_get(2).ok()?);
                (flood::distance_km(centre, at) <= flood.radius_km)
                    .then(|| r.try_get(0).ok())
                    .flatten()
            })
            .collect();
            if strays.is_empty() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for alarm in &strays {
                attach_alarm(&mut tx, &id, alarm).await?;
            }
            tx.commit().await?;
            joined += strays.len() as u64;
        }
        let ended = sqlx::query(
            "UPDATE situations SET ended_ms = $1 WHERE ended_ms IS NULL AND started_ms < $2
             AND (SELECT COUNT(*) FROM alarms a WHERE a.situation_id = situations.id AND a.raised_ms >= $2) < $3",
        )
        .bind(now)
        .bind(since)
        .bind(flood.end_count)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if ended > 0 {
            tracing::info!(ended, "alarm flood over: situations ended");
        }
        Ok((joined, ended))
    }

    /// Open situations, and those ended since `since`, newest first, with their dispatches in
    /// rescue order.
    pub async fn situations(&self, since: i64) -> Result<Vec<Situation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, lat, lon, radius_km, started_ms, ended_ms,
                (SELECT COUNT(*) FROM alarms a WHERE a.situation_id = situations.id) AS alarms
             FROM situations WHERE ended_ms IS NULL OR ended_ms >= $1 ORDER BY started_ms DESC LIMIT 20",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let columns = DISPATCH_COLUMNS
            .split(',')
            .map(|c| format!("d.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let dispatches = sqlx::query(&format!(
                "SELECT {columns} FROM dispatches d JOIN alarms a ON a.id = d.alarm_id
                 WHERE d.situation_id = $1
                 ORDER BY CASE WHEN d.closed_ms IS NULL THEN 0 ELSE 1 END,
                    CASE WHEN a.severity = 'critical' THEN 0 ELSE 1 END, d.incident_ms, d.id"
            ))
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(dispatch_from_row)
            .collect::<Result<_, _>>()?;
            out.push(Situation {
                started: rfc3339(r.try_get("started_ms")?),
                ended: r.try_get::<Option<i64>, _>("ended_ms")?.map(rfc3339),
                lat: r.try_get("lat")?,
                lon: r.try_get("lon")?,
                radius_km: r.try_get("radius_km")?,
                alarms: r.try_get("alarms")?,
                dispatches,
                id,
            });
        }
        Ok(out)
    }
}

async fn open_situation_near(
    tx: &mut Tx<'_>,
    flood: &FloodSettings,
    at: (f64, f64),
) -> Result<Option<String>, StoreError> {
    let open = sqlx::query(
        "SELECT id, lat, lon FROM situations WHERE ended_ms IS NULL ORDER BY started_ms",
    )
    .fetch_all(&mut **tx)
    .await?;
    for r in open {
        let centre: (f64, f64) = (r.try_get(1)?, r.try_get(2)?);
        if flood::distance_km(at, centre) <= flood.radius_km {
            return Ok(Some(r.try_get(0)?));
        }
    }
    Ok(None)
}

/// Puts the alarm being raised into a situation: it has no dispatch yet.
async fn attach_raised(tx: &mut Tx<'_>, situation: &str, alarm_id: &str) -> Result<(), StoreError> {
    attach(tx, situation, alarm_id, &[ALARM_JOINS]).await
}

/// Puts an alarm, and its dispatch if it has one, into a situation.
async fn attach_alarm(tx: &mut Tx<'_>, situation: &str, alarm_id: &str) -> Result<(), StoreError> {
    attach(tx, situation, alarm_id, &[ALARM_JOINS, DISPATCH_JOINS]).await
}

const ALARM_JOINS: &str = "UPDATE alarms SET situation_id = $1 WHERE id = $2";
const DISPATCH_JOINS: &str = "UPDATE dispatches SET situation_id = $1 WHERE alarm_id = $2";

/// Runs each of `updates` with the situation as `$1` and the alarm as `$2`.
async fn attach(
    tx: &mut Tx<'_>,
    situation: &str,
    alarm_id: &str,
    updates: &[&str],
) -> Result<(), StoreError> {
    for update in updates {
        sqlx::query(update)
            .bind(situation)
            .bind(alarm_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
