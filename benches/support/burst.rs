//! The burst workload of issue "Bursts without loss" (the one Node-RED users run): QoS1 JSON
//! messages round-robin over equipment ids on `site/sNN/pv-NNNN/telemetry`, each with a
//! nanosecond `ts`, ten numeric fields and a sequence number (about 250 bytes), and a
//! hysteresis alarm at 1.6 / 1.5 MPa on the pressure field. Shared by `benches/burst.rs` and
//! `tests/outbox_burst.rs`.

use std::fmt::Write;

/// Equipment ids the messages go round-robin over.
pub const EQUIPMENT: usize = 1000;
/// Fields of a message: ten numbers and the sequence number.
pub const FIELDS: [&str; 11] = [
    "p", "t", "level", "flow", "v1", "v2", "v3", "v4", "v5", "v6", "seq",
];
/// Nanoseconds of the first message's `ts`; each message is 1 µs later.
pub const T0_NS: u64 = 1_790_000_000_000_000_000;

pub fn equipment_id(i: usize) -> String {
    format!("pv-{:04}", i % EQUIPMENT)
}

/// The topic of message `i`: ten sites of 100 vessels.
pub fn topic(i: usize) -> String {
    let e = i % EQUIPMENT;
    format!("site/s{:02}/{}/telemetry", e / 100, equipment_id(e))
}

/// The pressure of message `i`: each vessel crosses 1.6 MPa and falls back under 1.5 MPa
/// every 100 of its messages.
pub fn pressure(i: usize) -> f64 {
    if (i / EQUIPMENT) % 100 < 50 {
        1.45
    } else {
        1.65
    }
}

/// Message `i`, about 250 bytes of JSON.
pub fn payload(i: usize) -> Vec<u8> {
    let mut s = format!(
        "{{\"ts\":{},\"p\":{},\"t\":{:.2},\"level\":{:.3},\"flow\":{:.3}",
        T0_NS + i as u64 * 1000,
        pressure(i),
        20.0 + (i % 97) as f64 * 0.11,
        0.5 + (i % 89) as f64 * 0.004,
        12.0 + (i % 83) as f64 * 0.05,
    );
    for v in 1..=6 {
        let _ = write!(
            s,
            ",\"v{v}\":{:.4}",
            (i % (50 + v)) as f64 * 0.0123 + v as f64
        );
    }
    let _ = write!(s, ",\"seq\":{i}}}");
    s.into_bytes()
}

/// Publishes messages `0..n` at QoS1 as fast as the broker acknowledges them (1,000 in flight);
/// returns when every PUBACK arrived.
pub async fn publish(port: u16, n: usize) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new("burst-publisher", "127.0.0.1", port);
    options
        .set_inflight(1000)
        .set_keep_alive(std::time::Duration::from_secs(60));
    let (client, mut event_loop) = AsyncClient::new(options, 10_000);
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher connection failed: {e}"),
            }
        }
    });
    for i in 0..n {
        client
            .publish(topic(i), QoS::AtLeastOnce, false, payload(i))
            .await
            .expect("publish");
    }
    acks.await.expect("publisher event loop");
}

/// The gateway's site config for the workload, without `[outbox]` and uplinks (`extra` adds
/// them).
pub fn site_toml(http_listen: &str, broker_port: u16, extra: &str) -> String {
    let mut text = format!(
        "[site]\nid = \"burst\"\nname = \"burst\"\n[gateway]\nid = \"gw-burst\"\nhttp_listen = \"{http_listen}\"\n\
         shutdown_flush_s = 10\n[mqtt]\nhost = \"127.0.0.1\"\nport = {broker_port}\nclient_id = \"burst-gateway\"\n"
    );
    for e in 0..EQUIPMENT {
        let _ = write!(
            text,
            "[[equipment]]\nid = \"{}\"\nkind = \"pressure_vessel\"\nregistration_code = \"R{e}\"\n\
             nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}\n",
            equipment_id(e)
        );
    }
    text.push_str(
        "[[ingest.mqtt]]\ntopic = \"site/+/{equipment}/telemetry\"\ntime_pointer = \"/ts\"\ntime_format = \"unix_ns\"\nfields = [\n",
    );
    for f in FIELDS {
        let _ = writeln!(text, "  {{ pointer = \"/{f}\", metric = \"{f}\" }},");
    }
    text.push_str(
        "]\n[rules.lifecycle]\nchatter_count = 1000000\n[[rules.threshold]]\nid = \"pressure\"\n\
         kind = \"pressure_vessel\"\nmetric = \"p\"\nhigh = { limit = 1.6 }\ndeadband = 0.1\n",
    );
    text.push_str(extra);
    text
}
