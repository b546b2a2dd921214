//! Sources of readings. Each source turns what devices send into [`crate::model::Reading`]s.

pub mod codes;
pub mod mqtt;

pub mod modbus;
