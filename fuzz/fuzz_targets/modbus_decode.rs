//! Modbus register decoding: any register words, data type, byte/word order and scaling.
//!
//! Input: byte 0 picks the data type (and the bit index or the text length), byte 1 the order,
//! byte 2 the scaling (one of a table of real ones; 255 reads scale and offset from the next 16
//! bytes), then the register words, big-endian.
//! Properties: never panics; a number is finite; a wrong word count is `WrongLength`; integers
//! and floats encoded with `encode_u64` decode to themselves; text encoded with `encode_text`
//! decodes to itself; `label` never panics and only names configured codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seguard::ingest::modbus::decode::{
    decode, encode_text, encode_u64, label, DataType, DecodeError, Order, Scaling,
};
use seguard::model::Value;

/// Scalings seen in the shipped profiles and a few extremes.
const SCALINGS: [(f64, f64); 8] = [
    (1.0, 0.0),
    (0.1, 0.0),
    (0.01, -2.0),
    (1e-6, 0.0),
    (0.1, -40.0),
    (10.0, 0.0),
    (-1.0, 0.0),
    (1e300, 0.0),
];

fn data_type(byte: u8) -> DataType {
    let param = byte / 11;
    match byte % 11 {
        0 => DataType::Bool,
        1 => DataType::Bit(param),
        2 => DataType::U16,
        3 => DataType::I16,
        4 => DataType::U32,
        5 => DataType::I32,
        6 => DataType::U64,
        7 => DataType::I64,
        8 => DataType::F32,
        9 => DataType::F64,
        _ => DataType::Text(u16::from(param)),
    }
}

fn f64_at(bytes: &[u8]) -> Option<f64> {
    Some(f64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fuzz_target!(|data: &[u8]| {
    let [type_byte, order_byte, scaling_byte, rest @ ..] = data else {
        return;
    };
    let data_type = data_type(*type_byte);
    let order = Order::ALL[usize::from(order_byte % 4)];
    let (scaling, rest) = match SCALINGS.get(usize::from(*scaling_byte)) {
        Some(&(scale, offset)) => (Scaling { scale, offset }, rest),
        None => match (f64_at(rest), rest.get(8..).and_then(f64_at)) {
            (Some(scale), Some(offset)) => (Scaling { scale, offset }, &rest[16..]),
            _ => return,
        },
    };
    let words: Vec<u16> = rest
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();

    let decoded = decode(&words, data_type, order, scaling);
    let expected_len = usize::from(data_type.register_count());
    if words.len() != expected_len {
        assert_eq!(
            decoded,
            Err(DecodeError::WrongLength {
                expected: expected_len,
                got: words.len()
            })
        );
        return;
    }
    match &decoded {
        Ok(Value::Number(n)) => assert!(n.is_finite(), "{data_type:?} {order} gave {n}"),
        Ok(Value::Bool(_)) => assert!(!data_type.is_numeric()),
        Ok(Value::Text(t)) => {
            assert!(matches!(data_type, DataType::Text(_)));
            assert!(t.len() <= 2 * words.len());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // Labels: codes sorted as the profile loader keeps them.
    let labels = vec![
        (0, "none".to_owned()),
        (1, "up".to_owned()),
        (2, "down".to_owned()),
    ];
    if let Ok(value) = decoded.clone() {
        match label(value.clone(), &labels) {
            Ok(Value::Text(t)) if !matches!(value, Value::Text(_)) => {
                assert!(labels.iter().any(|(_, l)| *l == t))
            }
            Ok(other) => assert_eq!(other, value, "only codes become labels"),
            Err(DecodeError::UnknownCode(code)) => {
                assert!(!labels.iter().any(|(c, _)| *c == code))
            }
            Err(e) => panic!("label gave {e}"),
        }
    }

    // Round trips, without scaling: what a device encodes is what we decode.
    let raw = words.iter().fold(0u64, |acc, w| acc << 16 | u64::from(*w));
    let n_words = words.len();
    let round_trip = |bits: u64| {
        decode(
            &encode_u64(bits, n_words, order),
            data_type,
            order,
            Scaling::IDENTITY,
        )
    };
    match data_type {
        DataType::U16 | DataType::U32 | DataType::U64 => {
            assert_eq!(
                round_trip(raw),
                Ok(Value::Number(raw as f64)),
                "{data_type:?} {order}"
            );
        }
        DataType::I16 => assert_eq!(
            round_trip(raw),
            Ok(Value::Number(f64::from(raw as u16 as i16)))
        ),
        DataType::I32 => assert_eq!(
            round_trip(raw),
            Ok(Value::Number(f64::from(raw as u32 as i32)))
        ),
        DataType::I64 => assert_eq!(round_trip(raw), Ok(Value::Number(raw as i64 as f64))),
        DataType::F32 => {
            let f = f64::from(f32::from_bits(raw as u32));
            let expected = if f.is_finite() {
                Ok(Value::Number(f))
            } else {
                Err(DecodeError::NotFinite)
            };
            assert_eq!(round_trip(raw), expected);
        }
        DataType::F64 => {
            let f = f64::from_bits(raw);
            let expected = if f.is_finite() {
                Ok(Value::Number(f))
            } else {
                Err(DecodeError::NotFinite)
            };
            assert_eq!(round_trip(raw), expected);
        }
        DataType::Text(_) if matches!(order, Order::Abcd | Order::Badc) => {
            if let Ok(Value::Text(t)) = &decoded {
                let again = decode(
                    &encode_text(t, n_words, order),
                    data_type,
                    order,
                    Scaling::IDENTITY,
                );
                assert_eq!(
                    again.as_ref(),
                    Ok(&Value::Text(t.clone())),
                    "text {t:?} {order}"
                );
            }
        }
        _ => {}
    }
});
