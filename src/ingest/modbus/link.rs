//! The connection of one Modbus line and one read over it: opened when a request needs it,
//! reconnected after an outage with backoff (logged once per outage), a read with its timeout,
//! and what a failed read means for the cycle (`Failure`). The poller (`poller.rs`) decides
//! what to read and when.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use super::config::{Parity, Table, Transport};
use super::mbap::MbapClient;
use super::observe::FailReason;
use super::plan::ReadRequest;
use crate::backoff::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {target}: {source}")]
    Io {
        target: String,
        source: std::io::Error,
    },
    #[error("no connection to {target} within {timeout_ms} ms")]
    Timeout { target: String, timeout_ms: u64 },
    #[error("cannot open serial port {path}: {source}")]
    Serial {
        path: String,
        source: tokio_serial::Error,
    },
}

pub(super) enum Payload {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

#[derive(Debug)]
pub(super) enum Failure {
    Timeout,
    Exception(ExceptionCode),
    Transport(String),
    Protocol(String),
    Disconnected(String),
}

impl Failure {
    pub(super) fn reason(&self) -> FailReason {
        match self {
            Failure::Timeout => FailReason::Timeout,
            Failure::Exception(_) => FailReason::Exception,
            Failure::Transport(_) => FailReason::Transport,
            Failure::Protocol(_) => FailReason::Protocol,
            Failure::Disconnected(_) => FailReason::Disconnected,
        }
    }

    /// Whether the device answered: an exception is an answer from a live device.
    pub(super) fn answered(&self) -> bool {
        matches!(self, Failure::Exception(_))
    }

    /// Whether the device refused the request's range (exception 02, illegal data address, or
    /// 03, illegal data value), which a smaller request may not be.
    pub(super) fn refused(&self) -> bool {
        matches!(
            self,
            Failure::Exception(ExceptionCode::IllegalDataAddress | ExceptionCode::IllegalDataValue)
        )
    }

    /// Whether the rest of the device's cycle is skipped: after a timeout, so a dead slave
    /// costs its line one timeout per cycle, or when the connection is gone.
    pub(super) fn ends_cycle(&self) -> bool {
        matches!(
            self,
            Failure::Timeout | Failure::Disconnected(_) | Failure::Transport(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timeout"),
            Failure::Exception(code) => write!(f, "exception 0x{:02x}: {code}", u8::from(*code)),
            Failure::Transport(e) => write!(f, "transport: {e}"),
            Failure::Protocol(e) => write!(f, "protocol: {e}"),
            Failure::Disconnected(e) => write!(f, "disconnected: {e}"),
        }
    }
}

/// An open connection: Modbus TCP through the small [`MbapClient`], RTU framing (serial or
/// over TCP) through tokio-modbus. The TCP client's frame buffer stays inline: that is the
/// variant of nearly every line.
#[allow(clippy::large_enum_variant)]
pub(super) enum Link {
    Tcp(MbapClient),
    Rtu(Context),
}

impl Link {
    pub(super) async fn call(
        &mut self,
        unit_id: u8,
        request: Request<'_>,
    ) -> tokio_modbus::Result<Response> {
        match self {
            Link::Tcp(client) => client.call(unit_id, &request).await,
            Link::Rtu(context) => {
                context.set_slave(Slave(unit_id));
                context.call(request).await
            }
        }
    }
}

/// The connection of one line, opened when a request needs it.
pub(super) struct Connection {
    pub(super) transport: Transport,
    pub(super) link: Option<Link>,
    pub(super) connect_timeout: Duration,
    pub(super) backoff: Backoff,
    /// After a failed connect, no new attempt before this instant.
    pub(super) retry_at: Option<Instant>,
    /// Logged once per outage, not once per attempt.
    pub(super) reported_down: bool,
}

impl Connection {
    pub(super) async fn get(&mut self) -> Result<&mut Link, Failure> {
        if self.link.is_none() {
            if let Some(at) = self.retry_at {
                if Instant::now() < at {
                    return Err(Failure::Disconnected("waiting to reconnect".to_owned()));
                }
            }
            match connect(&self.transport, self.connect_timeout).await {
                Ok(link) => {
                    if self.reported_down {
                        tracing::info!("modbus line connected again");
                    }
                    self.link = Some(link);
                    self.backoff.reset();
                    self.retry_at = None;
                    self.reported_down = false;
                }
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    if !self.reported_down {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "modbus line down");
                        self.reported_down = true;
                    }
                    self.retry_at = Some(Instant::now() + delay);
                    return Err(match e {
                        ConnectError::Timeout { .. } => Failure::Timeout,
                        other => Failure::Disconnected(other.to_string()),
                    });
                }
            }
        }
        self.link
            .as_mut()
            .ok_or_else(|| Failure::Disconnected("no connection".to_owned()))
    }

    pub(super) fn close(&mut self) {
        // Dropping the link closes the socket or port; there is nothing to flush on a read.
        self.link = None;
    }

    /// A timeout on a Modbus TCP connection leaves a late answer in flight; start afresh. On a
    /// shared line a silent slave says nothing about the line, so it stays open.
    pub(super) fn close_after_timeout(&self) -> bool {
        matches!(self.transport, Transport::Tcp { .. })
    }
}

async fn connect(transport: &Transport, timeout: Duration) -> Result<Link, ConnectError> {
    match transport {
        Transport::Tcp { host, port } => {
            let stream = tcp_stream(host, *port, timeout).await?;
            Ok(Link::Tcp(MbapClient::new(stream)))
        }
        Transport::RtuOverTcp { host, port } => {
            let stream = tcp_stream(host, *port, timeout).await?;
            Ok(Link::Rtu(tokio_modbus::client::rtu::attach_slave(
                stream,
                Slave(1),
            )))
        }
        Transport::Rtu(line) => {
            let builder = tokio_serial::new(&line.path, line.baud)
                .parity(match line.parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                })
                .data_bits(match line.data_bits {
                    5 => tokio_serial::DataBits::Five,
                    6 => tokio_serial::DataBits::Six,
                    7 => tokio_serial::DataBits::Seven,
                    _ => tokio_serial::DataBits::Eight,
                })
                .stop_bits(if line.stop_bits == 2 {
                    tokio_serial::StopBits::Two
                } else {
                    tokio_serial::StopBits::One
                });
            let port = tokio_serial::SerialStream::open(&builder).map_err(|source| {
                ConnectError::Serial {
                    path: line.path.clone(),
                    source,
                }
            })?;
            Ok(Link::Rtu(tokio_modbus::client::rtu::attach_slave(
                port,
                Slave(1),
            )))
        }
    }
}

async fn tcp_stream(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let target = || format!("{host}:{port}");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Err(_) => Err(ConnectError::Timeout {
            target: target(),
            timeout_ms: timeout.as_millis() as u64,
        }),
        Ok(Err(source)) => Err(ConnectError::Io {
            target: target(),
            source,
        }),
        Ok(Ok(stream)) => {
            // Requests are small and answered one at a time: do not wait for Nagle.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

pub(super) async fn read_once(
    link: &mut Link,
    unit_id: u8,
    request: &ReadRequest,
    timeout: Duration,
) -> Result<Payload, Failure> {
    let (start, count) = (request.start, request.count);
    let call = match request.table {
        Table::Coil => Request::ReadCoils(start, count),
        Table::DiscreteInput => Request::ReadDiscreteInputs(start, count),
        Table::Holding => Request::ReadHoldingRegisters(start, count),
        Table::Input => Request::ReadInputRegisters(start, count),
    };
    let response = match tokio::time::timeout(timeout, link.call(unit_id, call)).await {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(tokio_modbus::Error::Transport(e))) => {
            return Err(Failure::Transport(e.to_string()))
        }
        Ok(Err(tokio_modbus::Error::Protocol(e))) => return Err(Failure::Protocol(e.to_string())),
        Ok(Ok(Err(code))) => return Err(Failure::Exception(code)),
        Ok(Ok(Ok(response))) => response,
    };
    let n = usize::from(count);
    match response {
        Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) if bits.len() >= n => {
            Ok(Payload::Bits(bits))
        }
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)
            if words.len() == n =>
        {
            Ok(Payload::Words(words))
        }
        other => Err(Failure::Protocol(format!(
            "{count} values requested, answer does not match: {other:?}"
        ))),
    }
}
