//! Inspection reports and the hazard ledgers (`central/hazards.rs` has the rules). Every step
//! on a hazard is a compare-and-set on its status, written with its audit entry in one
//! transaction; the overdue alarm is raised once per hazard, by whichever instance sets
//! `overdue_alarm_id` first.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{insert_audit, random_id, rfc3339, Store, StoreError};
use crate::central::hazards::{Correction, HazardRefused, ReportIn, Verdict};
use crate::central::zone::local_date;

/// One item of a ledger.
#[derive(Debug, Clone, Serialize)]
pub struct HazardRow {
    pub id: String,
    pub report_id: String,
    pub report_no: String,
    pub agency: String,
    pub gateway: String,
    pub equipment: String,
    pub equipment_name: String,
    pub address: String,
    pub using_unit: String,
    /// Set when the cause is the product: the item is on this manufacturer's ledger too.
    pub manufacturer: Option<String>,
    pub product_defect: bool,
    pub description: String,
    pub severity: String,
    pub legal_basis: String,
    pub deadline: String,
    /// open, corrected (waiting for verification) or verified (closed).
    pub status: String,
    /// Past its deadline and not verified.
    pub overdue: bool,
    pub cause: Option<String>,
    pub responsibility: Option<String>,
    pub corrective_action: Option<String>,
    pub corrected: Option<String>,
    pub corrected_by: Option<String>,
    pub verified: Option<String>,
    pub verified_by: Option<String>,
    pub review_note: Option<String>,
    pub overdue_alarm_id: Option<String>,
}

/// One report as posted, with its hazards' ids.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: String,
    pub agency: String,
    pub report_no: String,
    pub gateway: String,
    pub equipment: String,
    pub using_unit: String,
    pub conclusion: String,
    pub inspected_on: String,
    pub received: String,
    pub hazards: i64,
    pub open_hazards: i64,
}

/// Whose ledger to read: everything (a regulator), a using unit's, a manufacturer's, or the
/// hazards of one agency's reports.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub using_unit: Option<String>,
    pub manufacturer: Option<String>,
    pub agency: Option<String>,
}

/// How storing a report went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// New, with the ids of its hazards.
    Created { id: String, hazards: Vec<String> },
    /// The agency posted this report number before: nothing changed.
    Duplicate { id: String },
    /// Central knows no such equipment.
    UnknownEquipment,
}

const HAZARD_SQL: &str = "SELECT h.id, h.report_id, r.report_no, r.agency, h.gateway, h.equipment,
    COALESCE(e.name, h.equipment) AS equipment_name, COALESCE(e.address, '') AS address, h.using_unit,
    h.manufacturer, h.product_defect, h.description, h.severity, h.legal_basis, h.deadline, h.status,
    h.cause, h.responsibility, h.corrective_action, h.corrected_ms, h.corrected_by, h.verified_ms,
    h.verified_by, h.review_note, h.overdue_alarm_id
    FROM hazards h JOIN inspection_reports r ON r.id = h.report_id
    LEFT JOIN equipment e ON e.gateway = h.gateway AND e.id = h.equipment";

fn hazard_row(r: &AnyRow, today: &str) -> Result<HazardRow, StoreError> {
    let deadline: String = r.try_get("deadline")?;
    let status: String = r.try_get("status")?;
    let opt_time = |name: &str| -> Result<Option<String>, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(name)?.map(rfc3339))
    };
    Ok(HazardRow {
        id: r.try_get("id")?,
        report_id: r.try_get("report_id")?,
        report_no: r.try_get("report_no")?,
        agency: r.try_get("agency")?,
        gateway: r.try_get("gateway")?,
        equipment: r.try_get("equipment")?,
        equipment_name: r.try_get("equipment_name")?,
        address: r.try_get("address")?,
        using_unit: r.try_get("using_unit")?,
        manufacturer: r.try_get("manufacturer")?,
        product_defect: r.try_get::<i64, _>("product_defect")? != 0,
        description: r.try_get("description")?,
        severity: r.try_get("severity")?,
        legal_basis: r.try_get("legal_basis")?,
        overdue: status != "verified" && deadline.as_str() < today,
        deadline,
        status,
        cause: r.try_get("cause")?,
        responsibility: r.try_get("responsibility")?,
        corrective_action: r.try_get("corrective_action")?,
        corrected: opt_time("corrected_ms")?,
        corrected_by: r.try_get("corrected_by")?,
        verified: opt_time("verified_ms")?,
        verified_by: r.try_get("verified_by")?,
        review_note: r.try_get("review_note")?,
        overdue_alarm_id: r.try_get("overdue_alarm_id")?,
    })
}

impl Store {
    /// Stores an agency's report and one ledger item per hazard, idempotently by (agency,
    /// report number).
    pub async fn insert_report(
        &self,
        agency: &str,
        actor: &str,
        report: &ReportIn,
        now: i64,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.pool.begin().await?;
        let stored = insert_report_in(&mut tx, agency, actor, report, now).await?;
        if matches!(stored, Stored::Created { .. }) {
            tx.commit().await?;
        }
        Ok(stored)
    }

    /// Stores a batch of reports whole: each as [`Store::insert_report`] would, in one
    /// transaction; when any names equipment central does not know, nothing is stored and the
    /// answer is the indexes of those reports.
    pub async fn insert_reports(
        &self,
        agency: &str,
        actor: &str,
        reports: &[&ReportIn],
        now: i64,
    ) -> Result<Result<Vec<Stored>, Vec<usize>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for (i, report) in reports.iter().enumerate() {
            let stored = insert_report_in(&mut tx, agency, actor, report, now).await?;
            if stored == Stored::UnknownEquipment {
                unknown.push(i);
            }
            out.push(stored);
        }
        if !unknown.is_empty() {
            tx.rollback().await?;
            return Ok(Err(unknown));
        }
        tx.commit().await?;
        Ok(Ok(out))
    }

    /// The items of `ledger`, overdue first, then by deadline; verified ones only when
    /// `closed` is true (after the open ones).
    pub async fn hazards(
        &self,
        ledger: &Ledger,
        closed: bool,
        now: i64,
        zone: chrono_tz::Tz,
    ) -> Result<Vec<HazardRow>, StoreError> {
        let today = local_date(now, zone).to_string();
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        for (column, value) in [
            ("h.using_unit", &ledger.using_unit),
            ("h.manufacturer", &ledger.manufacturer),
            ("r.agency", &ledger.agency),
        ] {
            if let Some(v) = value {
                binds.push(v.clone());
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        if !closed {
            conditions.push("h.status <> 'verified'".into());
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!("{HAZARD_SQL}{filter} ORDER BY h.deadline, h.created_ms, h.seq");
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let mut rows = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| hazard_row(r, &today))
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|h| (h.status == "verified", !h.overdue));
        Ok(rows)
    }

    pub async fn hazard(
        &self,
        id: &str,
        now: i64,
        zone: chrono_tz::Tz,
    ) -> Result<Option<HazardRow>, StoreError> {
        let today = local_date(now, zone).to_string();
        sqlx::query(&format!("{HAZARD_SQL} WHERE h.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| hazard_row(&r, &today))
            .transpose()
    }

    /// The reports an agency posted (all agencies' when `agency` is None), newest first.
    pub async fn reports(&self, agency: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        let sql = "SELECT r.id, r.agency, r.report_no, r.gateway, r.equipment, r.using_unit, r.conclusion,
            r.inspected_on, r.received_ms,
            (SELECT COUNT(*) FROM hazards h WHERE h.report_id = r.id) AS n,
            (SELECT COUNT(*) FROM hazards h WHERE h.report_id = r.id AND h.status <> 'verified') AS open_n
            FROM inspection_reports r WHERE ($1 = '' OR r.agency = $1) ORDER BY r.received_ms DESC, r.id LIMIT 500";
        sqlx::query(sql)
            .bind(agency.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ReportRow {
                    id: r.try_get(0)?,
                    agency: r.try_get(1)?,
                    report_no: r.try_get(2)?,
                    gateway: r.try_get(3)?,
                    equipment: r.try_get(4)?,
                    using_unit: r.try_get(5)?,
                    conclusion: r.try_get(6)?,
                    inspected_on: r.try_get(7)?,
                    received: rfc3339(r.try_get(8)?),
                    hazards: r.try_get(9)?,
                    open_hazards: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// The using unit records cause, responsibility and corrective action: open → corrected.
    pub async fn correct_hazard(
        &self,
        id: &str,
        correction: &Correction,
        actor: &str,
        role: &str,
        now: i64,
    ) -> Result<Result<(), HazardRefused>, StoreError> {
        let missing = correction.missing();
        if !missing.is_empty() {
            return Ok(Err(HazardRefused::Unclear(missing)));
        }
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE hazards SET status = 'corrected', cause = $1, responsibility = $2, corrective_action = $3,
             corrected_ms = $4, corrected_by = $5 WHERE id = $6 AND status = 'open'",
        )
        .bind(correction.cause.trim())
        .bind(correction.responsibility.trim())
        .bind(correction.corrective_action.trim())
        .bind(now)
        .bind(actor)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(Err(self
                .refusal(&mut tx, id, "only an open hazard takes a correction")
                .await?));
        }
        let detail = format!(
            "cause: {}; action: {}",
            correction.cause.trim(),
            correction.corrective_action.trim()
        );
        insert_audit(&mut tx, now, actor, role, "hazard.correct", id, &detail).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A regulator or the agency decides on a recorded correction: accepted closes the item
    /// (and clears its overdue alarm), refused sends it back open with the note.
    pub async fn verify_hazard(
        &self,
        id: &str,
        verdict: &Verdict,
        actor: &str,
        role: &str,
        now: i64,
    ) -> Result<Result<(), HazardRefused>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = if verdict.accepted {
            sqlx::query(
                "UPDATE hazards SET status = 'verified', verified_ms = $1, verified_by = $2, review_note = $3
                 WHERE id = $4 AND status = 'corrected' AND cause IS NOT NULL AND responsibility IS NOT NULL
                 AND corrective_action IS NOT NULL",
            )
            .bind(now)
            .bind(actor)
            .bind(verdict.note.trim())
            .bind(id)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE hazards SET status = 'open', verified_ms = NULL, verified_by = $1, review_note = $2
                 WHERE id = $3 AND status = 'corrected'",
            )
            .bind(actor)
            .bind(verdict.note.trim())
            .bind(id)
            .execute(&mut *tx)
            .await?
        }
        .rows_affected();
        if n == 0 {
            return Ok(Err(self
                .refusal(&mut tx, id, "only a corrected hazard can be verified")
                .await?));
        }
        if verdict.accepted {
            sqlx::query(
                "UPDATE alarms SET cleared_ms = $1 WHERE cleared_ms IS NULL
                 AND id = (SELECT overdue_alarm_id FROM hazards WHERE id = $2)",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let action = if verdict.accepted {
            "hazard.verify"
        } else {
            "hazard.send_back"
        };
        insert_audit(&mut tx, now, actor, role, action, id, verdict.note.trim()).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn refusal(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        why: &'static str,
    ) -> Result<HazardRefused, StoreError> {
        let status: Option<String> = sqlx::query("SELECT status FROM hazards WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(match status {
            None => HazardRefused::NotFound(id.to_owned()),
            Some(s) => HazardRefused::WrongState(s, why),
        })
    }

    /// Raises one `hazard_overdue` alarm per hazard past its deadline and not verified;
    /// returns how many this call raised.
    pub async fn raise_overdue_hazards(
        &self,
        now: i64,
        zone: chrono_tz::Tz,
    ) -> Result<usize, StoreError> {
        let today = local_date(now, zone).to_string();
        let due = sqlx::query(
            "SELECT h.id, h.gateway, h.equipment, h.using_unit, h.description, h.deadline,
             COALESCE(e.kind, 'elevator'), COALESCE(e.address, '')
             FROM hazards h LEFT JOIN equipment e ON e.gateway = h.gateway AND e.id = h.equipment
             WHERE h.status <> 'verified' AND h.overdue_alarm_id IS NULL AND h.deadline < $1",
        )
        .bind(&today)
        .fetch_all(&self.pool)
        .await?;
        let mut raised = 0;
        for r in &due {
            let hazard: String = r.try_get(0)?;
            let alarm = random_id();
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(
                "UPDATE hazards SET overdue_alarm_id = $1 WHERE id = $2 AND overdue_alarm_id IS NULL",
            )
            .bind(&alarm)
            .bind(&hazard)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                continue;
            }
            let equipment: String = r.try_get(2)?;
            let description: String = r.try_get(4)?;
            let deadline: String = r.try_get(5)?;
            sqlx::query(
                "INSERT INTO alarms (id, gateway, equipment, rule, severity, kind, using_unit, address, trapped, message, raised_ms, area)
                 VALUES ($1, $2, $3, $4, 'high', $5, $6, $7, 0, $8, $9, $10)",
            )
            .bind(&alarm)
            .bind(r.try_get::<String, _>(1)?)
            .bind(&equipment)
            .bind(format!("{equipment}.hazard_overdue"))
            .bind(r.try_get::<String, _>(6)?)
            .bind(r.try_get::<String, _>(3)?)
            .bind(r.try_get::<String, _>(7)?)
            .bind(format!("inspection hazard not corrected by {deadline}: {description}"))
            .bind(now)
            .bind(super::alarms::area_key(&r.try_get::<String, _>(7)?))
            .execute(&mut *tx)
            .await?;
            insert_audit(
                &mut tx,
                now,
                "central",
                "central",
                "hazard.overdue",
                &hazard,
                &alarm,
            )
            .await?;
            tx.commit().await?;
            raised += 1;
        }
        Ok(raised)
    }
}

/// Stores one report and its hazards inside `tx` (which the caller commits): Created, or
/// Duplicate / UnknownEquipment having written nothing.
async fn insert_report_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    agency: &str,
    actor: &str,
    report: &ReportIn,
    now: i64,
) -> Result<Stored, StoreError> {
    let Some(using_unit) =
        sqlx::query("SELECT using_unit FROM equipment WHERE gateway = $1 AND id = $2")
            .bind(&report.gateway)
            .bind(&report.equipment)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
    else {
        return Ok(Stored::UnknownEquipment);
    };
    let id = random_id();
    let inserted = sqlx::query(
            "INSERT INTO inspection_reports (id, agency, report_no, gateway, equipment, using_unit, manufacturer,
             conclusion, inspected_on, received_ms, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (agency, report_no) DO NOTHING",
        )
        .bind(&id)
        .bind(agency)
        .bind(&report.report_no)
        .bind(&report.gateway)
        .bind(&report.equipment)
        .bind(&using_unit)
        .bind(&report.manufacturer)
        .bind(report.conclusion.as_str())
        .bind(report.inspected_on.to_string())
        .bind(now)
        .bind(serde_json::to_string(report).expect("a report serializes"))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if inserted == 0 {
        let existing: String =
            sqlx::query("SELECT id FROM inspection_reports WHERE agency = $1 AND report_no = $2")
                .bind(agency)
                .bind(&report.report_no)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        return Ok(Stored::Duplicate { id: existing });
    }
    let mut hazards = Vec::new();
    for (seq, h) in report.hazards.iter().enumerate() {
        let hazard_id = random_id();
        sqlx::query(
                "INSERT INTO hazards (id, report_id, seq, gateway, equipment, using_unit, manufacturer, product_defect,
                 description, severity, legal_basis, deadline, status, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', $13)",
            )
            .bind(&hazard_id)
            .bind(&id)
            .bind(seq as i64)
            .bind(&report.gateway)
            .bind(&report.equipment)
            .bind(&using_unit)
            .bind(h.product_defect.then(|| report.manufacturer.clone()).flatten())
            .bind(i64::from(h.product_defect))
            .bind(h.description.trim())
            .bind(h.severity.as_str())
            .bind(h.legal_basis.trim())
            .bind(h.deadline.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        hazards.push(hazard_id);
    }
    let detail = format!(
        "{} hazards on {}/{}",
        hazards.len(),
        report.gateway,
        report.equipment
    );
    insert_audit(
        tx,
        now,
        actor,
        "inspection_agency",
        "inspection.report",
        &id,
        &detail,
    )
    .await?;
    Ok(Stored::Created { id, hazards })
}
