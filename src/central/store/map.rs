//! The map's points: every piece of equipment with a position, held in memory as a compact
//! index (gateway, id, name, kind, using unit, position, next inspection: about 100 bytes a
//! point, interned where many share a value), and its state read fresh on every request from
//! the open alarms and the offline gateways (two small queries). `api/map.rs` filters the
//! points by the visible box and clusters them by zoom.
//!
//! The index is rebuilt when the number of pieces of equipment changed (a new one arrived, on
//! this instance or another) or when it is older than [`REGISTRY_MAX_AGE`] (a moved position);
//! the state is never cached, so a trapped passenger reaches the map on the next request.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::Row;

use super::{Store, StoreError};

/// How long a registry index serves before it is read again (positions change rarely).
pub const REGISTRY_MAX_AGE: Duration = Duration::from_secs(30);
/// Registry rows read per query while the index is built.
const INDEX_PAGE: i64 = 10_000;

/// One piece of equipment with a WGS-84 position.
#[derive(Debug)]
pub struct MapPoint {
    pub gateway: Arc<str>,
    pub id: Box<str>,
    pub name: Box<str>,
    pub kind: Arc<str>,
    pub using_unit: Arc<str>,
    pub lat: f64,
    pub lon: f64,
    pub next_inspection: Option<NaiveDate>,
}

/// The registry index as last read.
#[derive(Default)]
pub struct MapIndex {
    read: Option<(Instant, i64, Arc<Vec<MapPoint>>)>,
}

/// The points with what decides their state now.
pub struct MapView {
    pub points: Arc<Vec<MapPoint>>,
    /// Open alarms by gateway and equipment: whether one of them is a trapped passenger.
    open: HashMap<String, HashMap<String, bool>>,
    offline: HashSet<String>,
    today: NaiveDate,
}

impl MapView {
    /// normal, alarm, trapped, offline or overdue, as `equipment_state_from_row` decides it.
    pub fn state(&self, p: &MapPoint) -> &'static str {
        match self.open.get(&*p.gateway).and_then(|m| m.get(&*p.id)) {
            Some(true) => "trapped",
            Some(false) => "alarm",
            None if self.offline.contains(&*p.gateway) => "offline",
            None if p.next_inspection.is_some_and(|d| d < self.today) => "overdue",
            None => "normal",
        }
    }
}

/// One shared copy of each repeated text (gateways, kinds, using units).
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: String) -> Arc<str> {
        self.0
            .entry(s)
            .or_insert_with_key(|k| Arc::from(k.as_str()))
            .clone()
    }
}

impl Store {
    /// The map's points and their state on `today`.
    pub async fn map_view(&self, today: NaiveDate) -> Result<MapView, StoreError> {
        let points = self.map_points().await?;
        let mut open: HashMap<String, HashMap<String, bool>> = HashMap::new();
        for r in sqlx::query(
            "SELECT gateway, equipment, MAX(trapped) AS trapped FROM alarms WHERE cleared_ms IS NULL
             GROUP BY gateway, equipment",
        )
        .fetch_all(&self.pool)
        .await?
        {
            open.entry(r.try_get("gateway")?)
                .or_default()
                .insert(r.try_get("equipment")?, r.try_get::<i64, _>("trapped")? > 0);
        }
        let offline = sqlx::query_scalar("SELECT id FROM gateways WHERE state = 'offline'")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        Ok(MapView {
            points,
            open,
            offline,
            today,
        })
    }

    /// The registry index, read again when stale.
    async fn map_points(&self) -> Result<Arc<Vec<MapPoint>>, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM equipment")
            .fetch_one(&self.pool)
            .await?;
        let mut index = self.map_index.lock().await;
        if let Some((at, n, points)) = &index.read {
            if *n == count && at.elapsed() < REGISTRY_MAX_AGE {
                return Ok(points.clone());
            }
        }
        // Read in pages by key, so that a city's rows are never all in memory at once.
        let mut interner = Interner::default();
        let mut points = Vec::with_capacity(count.max(0) as usize);
        let mut after = (String::new(), String::new());
        loop {
            let rows = sqlx::query(
                "SELECT gateway, id, name, kind, using_unit, lat, lon, next_inspection FROM equipment
                 WHERE (gateway, id) > ($1, $2) ORDER BY gateway, id LIMIT $3",
            )
            .bind(&after.0)
            .bind(&after.1)
            .bind(INDEX_PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get("gateway")?, last.try_get("id")?);
            for r in &rows {
                let (Some(lat), Some(lon)) = (r.try_get("lat")?, r.try_get("lon")?) else {
                    continue;
                };
                let next: Option<String> = r.try_get("next_inspection")?;
                points.push(MapPoint {
                    gateway: interner.get(r.try_get("gateway")?),
                    id: r.try_get::<String, _>("id")?.into(),
                    name: r.try_get::<String, _>("name")?.into(),
                    kind: interner.get(r.try_get("kind")?),
                    using_unit: interner.get(r.try_get("using_unit")?),
                    lat,
                    lon,
                    next_inspection: next.and_then(|d| d.parse().ok()),
                });
            }
        }
        points.shrink_to_fit();
        let points = Arc::new(points);
        index.read = Some((Instant::now(), count, points.clone()));
        Ok(points)
    }
}
