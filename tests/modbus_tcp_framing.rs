//! Modbus TCP framing edge cases of the gateway's own MBAP client, against pymodbus.
//!
//! The answers come from pymodbus (an independent implementation); `FaultyProxy`, a mock in
//! this file, sits between the poller and pymodbus and passes each answer on whole, byte by
//! byte, with a wrong transaction id, with an impossible length, or cut in the middle of the
//! frame with the connection closed. No real server does these on demand.

#[path = "common/modbus.rs"]
mod harness;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{devices, small_spec, tcp_site, Poller, PyModbus, SMALL_PROFILE};
use seguard::ingest::modbus::FailReason;
use seguard::model::{Quality, Reading, Value};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Every byte of the answer in its own write, so the client sees short reads.
    ByteByByte,
    WrongTransactionId,
    /// The header's length field says 300 bytes follow (a PDU is at most 253).
    OversizedLength,
    /// The header and part of the PDU, then the connection closes.
    CloseMidFrame,
}

/// A mock Modbus TCP relay that mangles the answers of the real server behind it.
struct FaultyProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    async fn start(upstream: u16) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = fault.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, shared.clone()));
            }
        });
        FaultyProxy { port, fault, task }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 7];
    stream.read_exact(&mut frame).await?;
    let length = usize::from(u16::from_be_bytes([frame[4], frame[5]]));
    frame.resize(6 + length.max(1), 0);
    stream.read_exact(&mut frame[7..]).await?;
    Ok(frame)
}

async fn relay(mut client: TcpStream, upstream: u16, fault: Arc<Mutex<Fault>>) -> io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    client.set_nodelay(true)?;
    loop {
        let request = read_frame(&mut client).await?;
        server.write_all(&request).await?;
        let mut answer = read_frame(&mut server).await?;
        let fault = *fault.lock().unwrap();
        match fault {
            Fault::None => client.write_all(&answer).await?,
            Fault::ByteByByte => {
                for byte in &answer {
                    client.write_all(&[*byte]).await?;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Fault::WrongTransactionId => {
                answer[1] = answer[1].wrapping_add(1);
                client.write_all(&answer).await?;
            }
            Fault::OversizedLength => {
                answer[4..6].copy_from_slice(&300u16.to_be_bytes());
                client.write_all(&answer).await?;
            }
            Fault::CloseMidFrame => {
                client.write_all(&answer[..answer.len() - 2]).await?;
                return Ok(());
            }
        }
    }
}

fn last<'a>(readings: &'a [Reading], metric: &str) -> &'a Reading {
    readings
        .iter()
        .rev()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("{metric} missing"))
}

fn good_a(r: &Reading) -> bool {
    r.metric == "a" && r.quality == Quality::Good
}

#[tokio::test]
async fn answers_and_exceptions_that_arrive_byte_by_byte_are_put_together() {
    let server = PyModbus::tcp(&small_spec());
    let proxy = FaultyProxy::start(server.port.expect("port")).await;
    proxy.set(Fault::ByteByByte);
    let (_dir, devices) = devices(
        &tcp_site("tcp", proxy.port, ""),
        &[("p", SMALL_PROFILE)],
        &["eq-1"],
    );
    let mut poller = Poller::start(devices);

    let readings = poller
        .until(Duration::from_secs(10), |r| r.metric == "c")
        .await
        .unwrap_or_else(|| panic!("no readings; server log:\n{}", server.log()));
    for (metric, want) in [("a", 11.0), ("b", 12.0), ("c", 13.0)] {
        let r = last(&readings, metric);
        assert_eq!((r.quality, &r.value), (Quality::Good, &Value::Number(want)));
    }

    server.set_control(&json!({"exceptions": {"1": {"holding": [1]}}}));
    let readings = poller
        .until(Duration::from_secs(10), |r| {
            r.metric == "b" && r.quality == Quality::Bad
        })
        .await
        .expect("an exception answer");
    // The merged request of a and b is refused and split: b, read alone, is refused too.
    match &last(&readings, "b").value {
        Value::Text(reason) => assert!(reason.contains("exception 0x02"), "{reason}"),
        other => panic!("a bad reading carries its reason, not {other:?}"),
    }
    assert!(poller.counters.failures("eq-1", FailReason::Exception) >= 1);
    for reason in [FailReason::Transport, FailReason::Protocol] {
        assert_eq!(poller.counters.failures("eq-1", reason), 0, "{reason}");
    }
    poller.stop().await;
}

#[tokio::test]
async fn a_broken_frame_is_a_counted_bad_reading_and_the_poller_recovers() {
    // (fault, counted reason, text in the bad reading)
    let cases = [
        (
            Fault::WrongTransactionId,
            FailReason::Protocol,
            "mismatching headers",
        ),
        (Fault::OversizedLength, FailReason::Transport, "length 300"),
        (Fault::CloseMidFrame, FailReason::Transport, "transport"),
    ];
    let server = PyModbus::tcp(&small_spec());
    let proxy = FaultyProxy::start(server.port.expect("port")).await;
    let (_dir, devices) = devices(
        &tcp_site("tcp", proxy.port, ""),
        &[("p", SMALL_PROFILE)],
        &["eq-1"],
    );
    let mut poller = Poller::start(devices);
    poller
        .until(Duration::from_secs(10), good_a)
        .await
        .unwrap_or_else(|| panic!("no readings; server log:\n{}", server.log()));

    for (fault, reason, text) in cases {
        let before = poller.counters.failures("eq-1", reason);
        proxy.set(fault);
        let readings = poller
            .until(Duration::from_secs(10), |r| {
                r.metric == "a" && r.quality == Quality::Bad
            })
            .await
            .unwrap_or_else(|| panic!("{fault:?}: no bad reading"));
        match &last(&readings, "a").value {
            Value::Text(got) => assert!(got.contains(text), "{fault:?}: {got}"),
            other => panic!("{fault:?}: a bad reading carries its reason, not {other:?}"),
        }
        assert!(
            poller.counters.failures("eq-1", reason) > before,
            "{fault:?} counted as {reason}"
        );

        proxy.set(Fault::None);
        let readings = poller
            .until(Duration::from_secs(10), good_a)
            .await
            .unwrap_or_else(|| panic!("{fault:?}: no recovery"));
        assert_eq!(last(&readings, "a").value, Value::Number(11.0), "{fault:?}");
    }
    poller.stop().await;
}
