//! Modbus ingest: polls devices over Modbus TCP, RTU on a serial line, and RTU over TCP, and
//! turns their registers into readings.
//!
//! - `config.rs`: device profiles (`firmware-configs/profiles/<model>.toml`: metric, unit, table,
//!   address, type, byte order, scale, poll group) and the site config's `[modbus]` table that
//!   binds devices to profiles and transports; one validation step reports every problem.
//! - `decode.rs`: register words to values for every type and the four byte/word orders. Pure.
//! - `mbap.rs`: a Modbus TCP client for the poller's reads that keeps one frame per connection
//!   (tokio-modbus's TCP client holds 16 KiB of buffers per connection); RTU stays with
//!   tokio-modbus.
//! - `plan.rs`: merges a poll group's points into few read requests, and splits a request
//!   the device refuses, down to single points, into a plan of that device's own. Pure.
//! - `poller.rs`: one task per line (a TCP device, a serial bus, an RTU
//!   converter), timeouts, retries, backoff; `link.rs` its connection (reconnect with backoff)
//!   and one read; `readings.rs` the readings a read becomes, bad-quality ones and the
//!   `device_online` reading.
//!
//! **Invariant:** a Modbus exception, a timeout or an undecodable value becomes a counted,
//! bad-quality reading, never a zero and never a panic. A merged request the device refuses
//! does not make its points bad: only the points it refuses alone are.
//!
//! **Invariant:** one dead slave costs its line at most one timeout per cycle; the other slaves
//! of the line keep their interval, late by at most that timeout.
//!
//! **Invariant:** the poller never gives up: a device, converter or serial port that comes back
//! is polled again without a restart.

pub mod config;
pub mod decode;
mod link;
mod mbap;
pub mod observe;
pub mod plan;
pub mod poller;
mod readings;

pub use config::{
    load_profile, parse_profile, validate, ModbusDevice, Point, PollGroup, Profile, RawModbus,
    SerialLine, Table, Transport,
};
pub use decode::{decode, DataType, DecodeError, Order, Scaling};
pub use plan::{plan_requests, ReadRequest};
pub use poller::{system_clock, Clock, FailReason, ModbusIngest, PollCounters, PollObserver};
