//! The cylinder register and its history (`central/cylinders.rs` has the rules), and the
//! per-station indicators over the fills.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::Row;

use super::{insert_audit, random_id, rfc3339, Store, StoreError};
use crate::central::cylinders::RegisterRow;
use crate::model::FillRecord;

/// A register entry as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Cylinder {
    pub code: String,
    pub owner: String,
    pub medium: String,
    pub cylinder_type: String,
    pub made: Option<String>,
    pub last_inspection: Option<String>,
    pub next_inspection: Option<String>,
    pub scrapped: bool,
    pub insured: Option<bool>,
    pub updated: String,
    /// `register` (a filling unit declared it) or `fills` (seen only in the fills the gateways
    /// reported: owner, type and dates unknown).
    pub origin: String,
}

/// One change in the register.
#[derive(Debug, Clone, Serialize)]
pub struct CylinderEvent {
    pub at: String,
    /// seen_in_fill, registered, owner_changed, inspected, scrapped.
    pub kind: String,
    pub detail: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub registered: i64,
    pub updated: i64,
    pub unchanged: i64,
}

/// One filling station's indicators over the fills it reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationIndicators {
    pub station: String,
    pub cylinders: i64,
    pub labelled: i64,
    pub labelling_rate: Option<f64>,
    /// Cylinders filled here that no filling unit's register declares.
    pub undeclared: i64,
    pub insured: i64,
    pub insurance_rate: Option<f64>,
    pub fills: i64,
    pub refused: i64,
    /// Refused fills by reason (a fill refused for two reasons counts under both).
    pub refused_by_reason: BTreeMap<String, i64>,
}

fn cylinder(r: &sqlx::any::AnyRow) -> Result<Cylinder, StoreError> {
    Ok(Cylinder {
        code: r.try_get("code")?,
        owner: r.try_get("owner")?,
        medium: r.try_get("medium")?,
        cylinder_type: r.try_get("cylinder_type")?,
        made: r.try_get("made")?,
        last_inspection: r.try_get("last_inspection")?,
        next_inspection: r.try_get("next_inspection")?,
        scrapped: r.try_get::<i64, _>("scrapped")? != 0,
        insured: r.try_get::<Option<i64>, _>("insured")?.map(|v| v != 0),
        updated: rfc3339(r.try_get("updated_ms")?),
        origin: r.try_get("origin")?,
    })
}

/// Gives a code that the register lacks a row marked as seen in fills only (medium from the
/// fill, owner and the rest unknown) and a `seen_in_fill` event naming the station, inside the
/// transaction that stores the fill. A code the register has is left as it is.
pub(super) async fn register_seen_in_fill(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    fill: &FillRecord,
    now: i64,
) -> Result<(), StoreError> {
    let new = sqlx::query(
        "INSERT INTO cylinders (code, owner, medium, cylinder_type, made, last_inspection, next_inspection, scrapped, insured, updated_ms, origin)
         VALUES ($1, '', $2, '', NULL, NULL, NULL, 0, NULL, $3, 'fills') ON CONFLICT (code) DO NOTHING",
    )
    .bind(&fill.cylinder_code)
    .bind(fill.medium.clone().unwrap_or_default())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if new == 1 {
        insert_event(
            tx,
            &fill.cylinder_code,
            fill.time.timestamp_millis(),
            "seen_in_fill",
            &fill.station,
        )
        .await?;
    }
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    code: &str,
    at: i64,
    kind: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cylinder_events (id, code, at_ms, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(random_id())
    .bind(code)
    .bind(at)
    .bind(kind)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Upserts register rows; each new cylinder, owner change, new inspection and scrapping is
    /// an event of its history. A cylinder seen only in fills is registered now: its row takes
    /// the register's details, and its fills and events stay. One transaction: an import is
    /// taken whole or not at all.
    pub async fn import_register(
        &self,
        rows: &[RegisterRow],
        actor: &str,
        role: &str,
        now: i64,
    ) -> Result<Imported, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Imported::default();
        for row in rows {
            let before = sqlx::query("SELECT * FROM cylinders WHERE code = $1")
                .bind(&row.code)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| cylinder(&r))
                .transpose()?;
            let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string());
            let mut events: Vec<(&str, String)> = Vec::new();
            let declared = before.as_ref().filter(|b| b.origin != "fills");
            match declared {
                None => events.push((
                    "registered",
                    format!("{} {} ({})", row.medium, row.cylinder_type, row.owner),
                )),
                Some(b) => {
                    if b.owner != row.owner {
                        events.push(("owner_changed", format!("{} → {}", b.owner, row.owner)));
                    }
                    if b.last_inspection != date(row.last_inspection)
                        && row.last_inspection.is_some()
                    {
                        events.push(("inspected", date(row.last_inspection).unwrap_or_default()));
                    }
                    if !b.scrapped && row.scrapped {
                        events.push(("scrapped", String::new()));
                    }
                }
            }
            let same = declared.is_some_and(|b| {
                b.owner == row.owner
                    && b.medium == row.medium
                    && b.cylinder_type == row.cylinder_type
                    && b.made == date(row.made)
                    && b.last_inspection == date(row.last_inspection)
                    && b.next_inspection == date(row.next_inspection)
                    && b.scrapped == row.scrapped
                    && b.insured == row.insured
            });
            if same {
                out.unchanged += 1;
                continue;
            }
            if declared.is_none() {
                out.registered += 1;
            } else {
                out.updated += 1;
            }
            sqlx::query(
                "INSERT INTO cylinders (code, owner, medium, cylinder_type, made, last_inspection, next_inspection, scrapped, insured, updated_ms, origin)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'register')
                 ON CONFLICT (code) DO UPDATE SET owner = excluded.owner, medium = excluded.medium,
                 cylinder_type = excluded.cylinder_type, made = excluded.made, last_inspection = excluded.last_inspection,
                 next_inspection = excluded.next_inspection, scrapped = excluded.scrapped, insured = excluded.insured,
                 updated_ms = excluded.updated_ms, origin = excluded.origin",
            )
            .bind(&row.code)
            .bind(&row.owner)
            .bind(&row.medium)
            .bind(&row.cylinder_type)
            .bind(date(row.made))
            .bind(date(row.last_inspection))
            .bind(date(row.next_inspection))
            .bind(i64::from(row.scrapped))
            .bind(row.insured.map(i64::from))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (kind, detail) in events {
                insert_event(&mut tx, &row.code, now, kind, &detail).await?;
            }
        }
        let detail = format!(
            "{} registered, {} updated, {} unchanged",
            out.registered, out.updated, out.unchanged
        );
        insert_audit(
            &mut tx,
            now,
            actor,
            role,
            "cylinders.import",
            "register",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn cylinder(&self, code: &str) -> Result<Option<Cylinder>, StoreError> {
        sqlx::query("SELECT * FROM cylinders WHERE code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| cylinder(&r))
            .transpose()
    }

    /// The register changes of one cylinder, oldest first.
    pub async fn cylinder_events(&self, code: &str) -> Result<Vec<CylinderEvent>, StoreError> {
        sqlx::query(
            "SELECT at_ms, kind, detail FROM cylinder_events WHERE code = $1 ORDER BY at_ms, kind",
        )
        .bind(code)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CylinderEvent {
                at: rfc3339(r.try_get(0)?),
                kind: r.try_get(1)?,
                detail: r.try_get(2)?,
            })
        })
        .collect()
    }

    /// Labelling and insurance rates per filling station, and its refused fills by reason. A
    /// cylinder is labelled at a station when a fill there found its code registered; a code
    /// the register holds only from fills is counted among the cylinders, as undeclared, and
    /// never as labelled or insured for that.
    pub async fn cylinder_indicators(&self) -> Result<Vec<StationIndicators>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.station, f.cylinder_code, f.labelled, f.record, c.insured, c.origin
             FROM fill_records f LEFT JOIN cylinders c ON c.code = f.cylinder_code ORDER BY f.station",
        )
        .fetch_all(&self.pool)
        .await?;
        #[derive(Default)]
        struct Acc {
            seen: BTreeSet<String>,
            labelled: BTreeSet<String>,
            undeclared: BTreeSet<String>,
            insured: BTreeSet<String>,
            fills: i64,
            refused: i64,
            reasons: BTreeMap<String, i64>,
        }
        let mut by_station: BTreeMap<String, Acc> = BTreeMap::new();
        for r in &rows {
            let acc = by_station.entry(r.try_get("station")?).or_default();
            let code: String = r.try_get("cylinder_code")?;
            if r.try_get::<i64, _>("labelled")? != 0 {
                acc.labelled.insert(code.clone());
            }
            if r.try_get::<Option<String>, _>("origin")?.as_deref() != Some("register") {
                acc.undeclared.insert(code.clone());
            }
            if r.try_get::<Option<i64>, _>("insured")? == Some(1) {
                acc.insured.insert(code.clone());
            }
            acc.seen.insert(code);
            let record: String = r.try_get("record")?;
            let fill: FillRecord =
                serde_json::from_str(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            acc.fills += 1;
            if !fill.accepted {
                acc.refused += 1;
                for reason in &fill.rejections {
                    *acc.reasons.entry(reason.as_str().to_owned()).or_default() += 1;
                }
            }
        }
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        Ok(by_station
            .into_iter()
            .map(|(station, a)| StationIndicators {
                station,
                cylinders: a.seen.len() as i64,
                labelled: a.labelled.len() as i64,
                labelling_rate: ratio(a.labelled.len(), a.seen.len()),
                undeclared: a.undeclared.len() as i64,
                insured: a.insured.len() as i64,
                insurance_rate: ratio(a.insured.len(), a.seen.len()),
                fills: a.fills,
                refused: a.refused,
                refused_by_reason: a.reasons,
            })
            .collect())
    }
}
