//! Sources of readings. Each source turns what devices send into [`crate::model::Reading`]s.

pub mod codes;
pub mod mqtt;

pub mod modbus;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rumqttc::Publish;

use crate::model::Reading;

/// What every source hands the pipeline: the readings of one message (MQTT) or one poll
/// (Modbus), with the publish to acknowledge once they are in the outbox (`None` for Modbus).
pub struct Batch {
    pub readings: Vec<Reading>,
    pub ack: Option<Publish>,
}

/// The time stamped on readings: injected so tests control it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}
