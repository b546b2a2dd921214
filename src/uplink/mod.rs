//! Where readings and incidents leave the gateway: InfluxDB for time series, the central
//! service for incidents.

pub mod central;
pub mod influx;
pub mod linefile;
pub mod refused;
