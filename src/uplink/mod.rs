//! Where readings and incidents leave the gateway: InfluxDB or line-protocol files for time
//! series, the central service for incidents and fill records.
//!
//! Every uplink has one shape: a struct built with `new(settings, lane, …)` from its settings,
//! the outbox lane it drains and what it reports to, then `run(self, stop)` until the
//! gateway's [`crate::shutdown::Stop`] says flush or stop.

pub mod central;
pub mod influx;
pub mod linefile;
pub mod refused;
