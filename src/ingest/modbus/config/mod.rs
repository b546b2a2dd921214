//! Modbus config: device profiles (one TOML file per device model) and the site config's
//! `[modbus]` table that binds devices to profiles and transports. Raw serde structs mirror the
//! TOML and reject unknown fields; [`validate`] turns them into [`ModbusDevice`]s, reporting every
//! problem at once. `profile.rs` reads and checks the profiles, `site.rs` the `[modbus]` table,
//! and `plan.rs` (beside this directory) plans the read requests.
//!
//! A profile, `firmware-configs/profiles/<name>.toml`:
//! ```toml
//! description = "pressure transmitter, 4-20 mA to Modbus RTU"
//! one_based = false        # addresses as the device manual writes them (default 0-based)
//! order = "ABCD"           # default byte/word order of the registers below
//! [groups.slow]            # optional poll groups, with a default interval
//! interval_ms = 10000
//! [[register]]
//! metric = "pressure"
//! unit = "MPa"
//! table = "holding"        # coil | discrete_input | holding | input
//! address = 0
//! type = "f32"             # bool | bit (+ bit = n) | u16 | i16 | u32 | i32 | u64 | i64 | f32 | f64 | string (+ registers = n)
//! order = "CDAB"           # optional, overrides the profile's order
//! scale = 1.0              # value = raw * scale + offset
//! offset = 0.0
//! group = "slow"           # optional
//! ```
//!
//! The site config:
//! ```toml
//! [modbus]
//! profiles = "profiles"          # directory, relative to this config file
//! request_timeout_ms = 1000      # defaults below apply to every device; a device may override
//! retries = 1                    # re-sends after a transport or protocol error (not after a timeout)
//! max_gap = 8                    # unused registers a merged request may read across
//! max_count = 100                # registers (or bits) per request, at most 125
//! merge_retry_s = 3600           # a device that refused merged reads (they were split) tries them again after this
//! offline_after_cycles = 3
//! backoff_max_ms = 30000
//!
//! [[modbus.bus]]                 # a serial line shared by its slaves
//! name = "rs485-1"
//! port = "/dev/ttyUSB0"
//! baud = 9600                    # parity = "none" | "even" | "odd"; data_bits 5..8; stop_bits 1 | 2
//!
//! [[modbus.device]]
//! name = "ac-01-plc"             # default: the equipment id
//! equipment = "ac-01"
//! profile = "autoclave-controller"
//! transport = "tcp"              # tcp {host, port} | rtu {bus} | rtu_over_tcp {host, port}
//! host = "10.0.0.21"
//! port = 502
//! unit_id = 1
//! interval_ms = 1000
//! group_interval_ms = { slow = 5000 }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::decode::{DataType, Order, Scaling};
use super::plan::ReadRequest;

/// Registers per read request allowed by the protocol (function codes 3 and 4).
pub const MAX_REGISTERS_PER_REQUEST: u16 = 125;
/// Bits per read request allowed by the protocol (function codes 1 and 2).
pub const MAX_BITS_PER_REQUEST: u16 = 2000;

const DEFAULT_PROFILES_DIR: &str = "profiles";
const DEFAULT_TIMEOUT_MS: u64 = 1000;
const DEFAULT_RETRIES: u32 = 1;
const DEFAULT_MAX_GAP: u16 = 8;
const DEFAULT_MAX_COUNT: u16 = 100;
const DEFAULT_OFFLINE_AFTER: u32 = 3;
const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;
const DEFAULT_MERGE_RETRY_S: u64 = 3600;
const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 10;

mod profile;
mod site;

pub use profile::{
    load_profile, parse_profile, ProfileErrors, RawGroup, RawProfile, RawRegister, RawType,
};
pub use site::{validate, RawBus, RawDevice, RawModbus, TransportKind};

// ---------------------------------------------------------------------------------------------
// Typed config.

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    DiscreteInput,
    Holding,
    Input,
}

impl Table {
    /// Coils and discrete inputs are read as bits, holding and input registers as words.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }

    pub fn max_per_request(self) -> u16 {
        if self.is_bits() {
            MAX_BITS_PER_REQUEST
        } else {
            MAX_REGISTERS_PER_REQUEST
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// One value a profile defines: where it is and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub unit: Option<String>,
    pub table: Table,
    /// 0-based protocol address (a 1-based profile is converted when loaded).
    pub address: u16,
    pub data_type: DataType,
    pub order: Order,
    pub scaling: Scaling,
    pub group: Option<String>,
    /// Code → text labels, sorted by code; empty when the value is used as it is.
    pub labels: Vec<(i64, String)>,
}

impl Point {
    /// Registers (or bits) the point occupies, end exclusive, as `u32` so 65535 + 4 cannot wrap.
    pub fn span(&self) -> Range<u32> {
        let start = u32::from(self.address);
        start..start + u32::from(self.data_type.register_count())
    }
}

/// A device model, loaded from `<profiles>/<name>.toml`.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub points: Vec<Point>,
    /// Declared poll groups and their default interval, if the profile gives one.
    pub groups: BTreeMap<String, Option<Duration>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The bus name from the config, used in logs and metrics.
    pub name: String,
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Modbus TCP (MBAP framing), one connection per device.
    Tcp { host: String, port: u16 },
    /// RTU framing on a serial line shared by its slaves.
    Rtu(SerialLine),
    /// RTU framing through a serial-to-Ethernet converter; the slaves behind one host:port share
    /// its serial line.
    RtuOverTcp { host: String, port: u16 },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Transport::Rtu(line) => write!(f, "rtu {} ({})", line.name, line.path),
            Transport::RtuOverTcp { host, port } => write!(f, "rtu over tcp {host}:{port}"),
        }
    }
}

/// Points polled together at one interval, with the merged read requests that fetch them.
#[derive(Debug, Clone, PartialEq)]
pub struct PollGroup {
    /// `None` for the device's default group.
    pub name: Option<String>,
    pub interval: Duration,
    /// Shared by every device of the profile with the same merge limits, so thousands of
    /// devices of one model hold one copy.
    pub points: Arc<[Point]>,
    /// Planned once at startup by [`plan_requests`]; the poller sends exactly these. Shared
    /// like `points`.
    pub requests: Arc<[ReadRequest]>,
}

/// A validated device: everything the poller needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusDevice {
    /// Unique among devices; the label of its metrics and logs.
    pub name: String,
    pub equipment: String,
    pub profile: String,
    pub transport: Transport,
    pub unit_id: u8,
    pub groups: Vec<PollGroup>,
    pub timeout: Duration,
    /// Re-sends of a request after a transport or protocol error. A timeout is not retried
    /// in the same cycle, so a dead device costs at most one timeout per cycle.
    pub retries: u32,
    pub offline_after_cycles: u32,
    /// Upper bound of the wait between polls of a device that stopped answering.
    pub backoff_max: Duration,
    /// How long a device whose merged requests had to be split keeps its own plan before it
    /// tries the merged one again (a firmware update may have filled its holes).
    pub merge_retry: Duration,
    /// The metric of the `Value::Bool` reading that says whether the device answers:
    /// `device_online`, or `device_online_<name>` when the equipment has several devices.
    pub online_metric: String,
}
