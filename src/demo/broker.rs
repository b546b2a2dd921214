//! The embedded MQTT broker of `seguard demo` (rumqttd), so a new user installs nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker config: {0}")]
    Config(#[from] toml::de::Error),
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the embedded broker did not listen on {0} within 5 s (is the port taken?)")]
    NotListening(SocketAddr),
}

/// Starts rumqttd on `listen` in its own threads and waits until it accepts connections.
/// It runs until the process exits.
pub fn start(listen: SocketAddr) -> Result<(), BrokerError> {
    // rumqttd's Config has no Default; the smallest complete config, as its serde form.
    let config: rumqttd::Config = toml::from_str(&format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.demo]
name = "demo"
listen = "{listen}"
next_connection_delay_ms = 1
[v4.demo.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#
    ))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(listen).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(listen))
}
