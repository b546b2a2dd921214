//! Site-config pieces the gateway tests share, so that one site is written once: the site
//! broker table and the elevator `lift-1` most tests watch. A test adds keys of its own right
//! after a piece (TOML keys belong to the table above them) and appends its other tables.

/// `[mqtt]`: the test's mosquitto on `port`, with quick reconnects.
pub fn mqtt(port: u16) -> String {
    format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n")
}

/// The elevator `lift-1` with its registry record (registration and rescue codes, using and
/// maintenance units, address).
pub const LIFT_1: &str = r#"[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31103101002016010001"
rescue_code = "02417"
using_unit = "Tower Property Co."
maintenance_unit = { name = "Shenlong Elevator Service", phone = "+86-21-5555-0101" }
address = "1 Test Road, core A"
"#;
