//! Sources of readings. Each source turns what devices send into [`crate::model::Reading`]s.

pub mod codes;
pub mod mqtt;

pub mod modbus;

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The time stamped on readings: injected so tests control it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}
