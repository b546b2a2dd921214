//! A Modbus TCP client for the read requests the poller sends (function codes 1 to 4).
//!
//! Why not tokio-modbus here: its TCP client frames through `tokio_util::codec::Framed`, which
//! gives every connection an 8 KiB read and an 8 KiB write buffer, and offers no way to make
//! them smaller. A gateway polling thousands of devices holds one connection each, so that
//! was most of its memory. This client keeps one frame (at most 260 bytes) inline and answers
//! with tokio-modbus's own types, so the poller treats both alike; RTU and RTU over TCP stay
//! with tokio-modbus.
//!
//! One request is in flight at a time. The answer must carry the request's transaction id and
//! unit id and its function code (or that code + 0x80 with an exception code); otherwise it is a
//! [`ProtocolError`]. A frame that cannot be Modbus TCP (protocol id not 0, a length of 0 or
//! beyond 254, a malformed read answer) or a connection that closes, even in the middle of a
//! frame, is a transport error, as with tokio-modbus. Reads are exact: a frame that arrives in
//! pieces is put together.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_modbus::{
    ExceptionCode, ExceptionResponse, FunctionCode, ProtocolError, Request, Response,
};

/// MBAP header: transaction id, protocol id, length, unit id.
const HEADER_LEN: usize = 7;
/// A PDU is at most 253 bytes (function code and data).
const MAX_PDU_LEN: usize = 253;

pub(super) struct MbapClient {
    stream: TcpStream,
    next_transaction_id: u16,
    /// One answer frame; its size is the whole per-connection buffer.
    frame: [u8; HEADER_LEN + MAX_PDU_LEN],
}

impl MbapClient {
    pub(super) fn new(stream: TcpStream) -> Self {
        MbapClient {
            stream,
            next_transaction_id: 0,
            frame: [0; HEADER_LEN + MAX_PDU_LEN],
        }
    }

    /// Sends one read request to `unit_id` and waits for its answer. The result has the shape
    /// of `tokio_modbus::client::Client::call`: a device exception is the inner error.
    pub(super) async fn call(
        &mut self,
        unit_id: u8,
        request: &Request<'_>,
    ) -> tokio_modbus::Result<Response> {
        let (function, start, count) = match *request {
            Request::ReadCoils(start, count) => (0x01, start, count),
            Request::ReadDiscreteInputs(start, count) => (0x02, start, count),
            Request::ReadHoldingRegisters(start, count) => (0x03, start, count),
            Request::ReadInputRegisters(start, count) => (0x04, start, count),
            ref other => {
                return Err(invalid_input(format!(
                    "the Modbus TCP client sends only reads, not {:?}",
                    other.function_code()
                )))
            }
        };
        let transaction_id = self.next_transaction_id;
        self.next_transaction_id = transaction_id.wrapping_add(1);

        let mut adu = [0u8; HEADER_LEN + 5];
        adu[0..2].copy_from_slice(&transaction_id.to_be_bytes());
        // Protocol id 0, then the length of unit id + PDU.
        adu[4..6].copy_from_slice(&6u16.to_be_bytes());
        adu[6] = unit_id;
        adu[7] = function;
        adu[8..10].copy_from_slice(&start.to_be_bytes());
        adu[10..12].copy_from_slice(&count.to_be_bytes());
        self.stream.write_all(&adu).await?;

        let header = &mut self.frame[..HEADER_LEN];
        self.stream.read_exact(header).await?;
        let answer_transaction_id = u16::from_be_bytes([header[0], header[1]]);
        let protocol_id = u16::from_be_bytes([header[2], header[3]]);
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let answer_unit_id = header[6];
        if protocol_id != 0 {
            return Err(invalid_data(format!(
                "protocol id {protocol_id} in the answer, expected 0"
            ))
            .into());
        }
        if !(2..=MAX_PDU_LEN + 1).contains(&length) {
            return Err(invalid_data(format!(
                "length {length} in the answer's header, expected 2 to {}",
                MAX_PDU_LEN + 1
            ))
            .into());
        }
        let pdu = &mut self.frame[HEADER_LEN..HEADER_LEN + length - 1];
        self.stream.read_exact(pdu).await?;

        let result = decode_answer(pdu)?;
        if (answer_transaction_id, answer_unit_id) != (transaction_id, unit_id) {
            let message = format!(
                "request transaction id {transaction_id} unit {unit_id}, answer transaction id {answer_transaction_id} unit {answer_unit_id}"
            );
            return Err(ProtocolError::HeaderMismatch { message, result }.into());
        }
        let answer_function = match &result {
            Ok(response) => response.function_code(),
            Err(exception) => exception.function,
        };
        if answer_function != FunctionCode::new(function) {
            return Err(ProtocolError::FunctionCodeMismatch {
                request: FunctionCode::new(function),
                result,
            }
            .into());
        }
        Ok(result.map_err(|e| e.exception))
    }
}

/// The PDU of an answer: a read response, an exception, or an error for anything else.
fn decode_answer(pdu: &[u8]) -> io::Result<Result<Response, ExceptionResponse>> {
    let function = pdu[0];
    if function >= 0x80 {
        let &[_, code] = pdu else {
            return Err(invalid_data(format!(
                "exception answer of {} bytes, expected 2",
                pdu.len()
            )));
        };
        return Ok(Err(ExceptionResponse {
            function: FunctionCode::new(function - 0x80),
            exception: ExceptionCode::new(code),
        }));
    }
    let (byte_count, data) = match pdu {
        [_, byte_count, data @ ..] if data.len() == usize::from(*byte_count) => (*byte_count, data),
        _ => {
            return Err(invalid_data(format!(
                "answer of function 0x{function:02x} is {} bytes, its byte count does not match",
                pdu.len()
            )))
        }
    };
    let bits = || {
        (0..usize::from(byte_count) * 8)
            .map(|i| data[i / 8] >> (i % 8) & 1 == 1)
            .collect()
    };
    let words = || {
        if byte_count % 2 == 1 {
            return Err(invalid_data(format!(
                "odd byte count {byte_count} in a register answer"
            )));
        }
        Ok(data
            .chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect())
    };
    Ok(Ok(match function {
        0x01 => Response::ReadCoils(bits()),
        0x02 => Response::ReadDiscreteInputs(bits()),
        0x03 => Response::ReadHoldingRegisters(words()?),
        0x04 => Response::ReadInputRegisters(words()?),
        other => {
            return Err(invalid_data(format!(
                "answer with function code 0x{other:02x}, not a read"
            )))
        }
    }))
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn invalid_input(message: String) -> tokio_modbus::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded answer, or the text of the error.
    type Decoded = Result<Result<Response, ExceptionCode>, String>;

    #[test]
    fn answers_decode_or_fail_clearly() {
        use Response::*;
        let ok = |r: Response| Ok::<_, String>(Ok(r));
        // (name, PDU, expected answer or a fragment of the error)
        let cases: Vec<(&str, &[u8], Decoded)> = vec![
            (
                "two holding registers",
                &[0x03, 4, 0, 11, 1, 2],
                ok(ReadHoldingRegisters(vec![11, 258])),
            ),
            (
                "input registers",
                &[0x04, 2, 0xff, 0xfe],
                ok(ReadInputRegisters(vec![0xfffe])),
            ),
            (
                "coils, low bit first, whole bytes",
                &[0x01, 1, 0b0000_0101],
                ok(ReadCoils(vec![
                    true, false, true, false, false, false, false, false,
                ])),
            ),
            (
                "discrete inputs",
                &[0x02, 1, 0x80],
                ok(ReadDiscreteInputs(vec![
                    false, false, false, false, false, false, false, true,
                ])),
            ),
            ("no registers", &[0x03, 0], ok(ReadHoldingRegisters(vec![]))),
            (
                "an exception",
                &[0x83, 0x02],
                Ok(Err(ExceptionCode::IllegalDataAddress)),
            ),
            (
                "an unknown exception code",
                &[0x83, 0x42],
                Ok(Err(ExceptionCode::Custom(0x42))),
            ),
            (
                "an exception without its code",
                &[0x83],
                Err("exception answer of 1 bytes".into()),
            ),
            (
                "byte count beyond the frame",
                &[0x03, 4, 0, 11],
                Err("byte count does not match".into()),
            ),
            (
                "byte count short of the frame",
                &[0x03, 2, 0, 11, 0, 12],
                Err("byte count does not match".into()),
            ),
            (
                "odd register bytes",
                &[0x03, 3, 0, 11, 0],
                Err("odd byte count 3".into()),
            ),
            (
                "not a read",
                &[0x06, 2, 0, 1],
                Err("function code 0x06, not a read".into()),
            ),
        ];
        for (name, pdu, expected) in cases {
            let got = decode_answer(pdu)
                .map(|r| r.map_err(|e| e.exception))
                .map_err(|e| e.to_string());
            match (&got, &expected) {
                (Err(got), Err(fragment)) => {
                    assert!(got.contains(fragment.as_str()), "{name}: {got}")
                }
                _ => assert_eq!(got, expected, "{name}"),
            }
        }
    }
}
