//! Register words to values: pure functions, no I/O, table-tested.
//!
//! Modbus carries every register as a big-endian 16-bit word. A value wider than one register
//! is spread over several words, and devices disagree on the order of those bytes. We name the
//! four orders by where the bytes of the value `0xAABBCCDD` land on the wire, for a 32-bit value
//! in two registers (64-bit values extend the same pattern to four registers):
//!
//! | order  | words on the wire      | meaning                                        |
//! |--------|------------------------|------------------------------------------------|
//! | `ABCD` | `AABB CCDD`            | big-endian bytes and words (the Modbus default) |
//! | `CDAB` | `CCDD AABB`            | word-swapped: words little-endian, bytes big    |
//! | `BADC` | `BBAA DDCC`            | byte-swapped within each word, words big-endian |
//! | `DCBA` | `DDCC BBAA`            | fully little-endian                            |
//!
//! For one-register types (`u16`, `i16`, `bit`, `bool`) only the byte swap matters: `BADC` and
//! `DCBA` swap the two bytes. Strings are read word by word in wire order, two characters per
//! register, high byte first; `BADC` puts the low byte first. The word-swapping orders make no
//! sense for text and the config check rejects them there.
//!
//! Scale and offset apply to numbers as `raw * scale + offset`. Integers wider than 53 bits lose
//! precision in the `f64` a [`Value::Number`] holds. A value that is not finite after decoding or
//! scaling (a NaN or infinity from a float register) is an error, which the poller turns into a
//! bad-quality reading: never a panic, never a made-up number.

use std::fmt;

use serde::Deserialize;

use crate::model::Value;

/// Byte and word order of a multi-register value. See the module doc for the exact layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Order {
    #[serde(rename = "ABCD")]
    Abcd,
    #[serde(rename = "CDAB")]
    Cdab,
    #[serde(rename = "BADC")]
    Badc,
    #[serde(rename = "DCBA")]
    Dcba,
}

impl Order {
    pub const ALL: [Order; 4] = [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba];

    fn swaps_words(self) -> bool {
        matches!(self, Order::Cdab | Order::Dcba)
    }

    fn swaps_bytes(self) -> bool {
        matches!(self, Order::Badc | Order::Dcba)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Abcd => "ABCD",
            Order::Cdab => "CDAB",
            Order::Badc => "BADC",
            Order::Dcba => "DCBA",
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the registers of one point hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil or discrete input; on a register table, true when the register is not zero.
    Bool,
    /// Bit `n` (0 = least significant) of one register, after the byte order is applied.
    Bit(u8),
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Text in this many registers (two bytes each), NUL and space padding trimmed.
    Text(u16),
}

impl DataType {
    /// How many registers (or bits, on a bit table) the value occupies.
    pub fn register_count(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit(_) | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::Text(n) => n,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Bit(_) => "bit",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Text(_) => "string",
        }
    }

    pub fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::Bit(_) | DataType::Text(_))
    }
}

/// Why words could not become a value. The poller makes a bad-quality reading of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} registers, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("value is not finite (NaN or infinity)")]
    NotFinite,
    #[error("text registers are not valid UTF-8")]
    NotText,
    #[error("code {0} is not among the profile's values")]
    UnknownCode(i64),
}

/// The scaling of a numeric point: `raw * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
}

impl Scaling {
    pub const IDENTITY: Scaling = Scaling {
        scale: 1.0,
        offset: 0.0,
    };

    fn is_identity(self) -> bool {
        self.scale == 1.0 && self.offset == 0.0
    }
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling::IDENTITY
    }
}

/// Decodes the registers of one point and scales numbers. `words` must hold exactly
/// `data_type.register_count()` words.
pub fn decode(
    words: &[u16],
    data_type: DataType,
    order: Order,
    scaling: Scaling,
) -> Result<Value, DecodeError> {
    let expected = usize::from(data_type.register_count());
    if words.len() != expected {
        return Err(DecodeError::WrongLength {
            expected,
            got: words.len(),
        });
    }
    let number = match data_type {
        DataType::Bool => return Ok(Value::Bool(words[0] != 0)),
        DataType::Bit(n) => {
            let word = one_word(words[0], order);
            return Ok(Value::Bool(word >> (n & 15) & 1 == 1));
        }
        DataType::Text(_) => return text(words, order).map(Value::Text),
        DataType::U16 => f64::from(one_word(words[0], order)),
        DataType::I16 => f64::from(one_word(words[0], order) as i16),
        DataType::U32 => f64::from(be_u64(words, order) as u32),
        DataType::I32 => f64::from(be_u64(words, order) as u32 as i32),
        DataType::F32 => f64::from(f32::from_bits(be_u64(words, order) as u32)),
        DataType::U64 => be_u64(words, order) as f64,
        DataType::I64 => be_u64(words, order) as i64 as f64,
        DataType::F64 => f64::from_bits(be_u64(words, order)),
    };
    let scaled = if scaling.is_identity() {
        number
    } else {
        number * scaling.scale + scaling.offset
    };
    if scaled.is_finite() {
        Ok(Value::Number(scaled))
    } else {
        Err(DecodeError::NotFinite)
    }
}

/// Maps a decoded integer or bool to its label (`values` of a profile entry), such as a
/// direction code to "up". `labels` is sorted by code; bools are the codes 0 and 1.
pub fn label(value: Value, labels: &[(i64, String)]) -> Result<Value, DecodeError> {
    if labels.is_empty() {
        return Ok(value);
    }
    let code = match value {
        Value::Bool(b) => i64::from(b),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => n as i64,
        other => return Ok(other),
    };
    match labels.binary_search_by_key(&code, |(c, _)| *c) {
        Ok(i) => Ok(Value::Text(labels[i].1.clone())),
        Err(_) => Err(DecodeError::UnknownCode(code)),
    }
}

fn one_word(word: u16, order: Order) -> u16 {
    if order.swaps_bytes() {
        word.swap_bytes()
    } else {
        word
    }
}

/// Puts up to four words back into the value's big-endian byte order and reads them as one
/// unsigned integer of `16 * words.len()` bits.
fn be_u64(words: &[u16], order: Order) -> u64 {
    let n = words.len();
    let mut value = 0u64;
    for i in 0..n {
        let word = if order.swaps_words() {
            words[n - 1 - i]
        } else {
            words[i]
        };
        value = value << 16 | u64::from(one_word(word, order));
    }
    value
}

fn text(words: &[u16], order: Order) -> Result<String, DecodeError> {
    let mut bytes = Vec::with_capacity(words.len() * 2);
    for &word in words {
        bytes.extend_from_slice(&one_word(word, order).to_be_bytes());
    }
    let padding = |b: &u8| *b == 0 || *b == b' ';
    let end = bytes.iter().rposition(|b| !padding(b)).map_or(0, |i| i + 1);
    let start = bytes[..end].iter().position(|b| !padding(b)).unwrap_or(end);
    bytes.truncate(end);
    bytes.drain(..start);
    String::from_utf8(bytes).map_err(|_| DecodeError::NotText)
}

/// The words a device would send for `value`: the inverse of [`decode`] for raw integers and
/// floats, used by tests and by the simulator to set registers.
pub fn encode_u64(value: u64, n_words: usize, order: Order) -> Vec<u16> {
    let mut be: Vec<u16> = (0..n_words)
        .map(|i| (value >> (16 * (n_words - 1 - i))) as u16)
        .collect();
    if order.swaps_words() {
        be.reverse();
    }
    be.into_iter().map(|w| one_word(w, order)).collect()
}

/// Text as registers of `n_words`, padded with NULs (the inverse of the text decoding).
pub fn encode_text(text: &str, n_words: usize, order: Order) -> Vec<u16> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(n_words * 2, 0);
    bytes
        .chunks(2)
        .map(|pair| one_word(u16::from_be_bytes([pair[0], pair[1]]), order))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;
    use Order::*;

    fn num(words: &[u16], t: DataType, o: Order) -> f64 {
        match decode(words, t, o, Scaling::IDENTITY) {
            Ok(Value::Number(n)) => n,
            other => panic!("{words:04x?} as {t:?} {o}: {other:?}"),
        }
    }

    #[test]
    fn f32_123_456_in_all_four_orders() {
        // 123.456f32 = 0x42F6E979.
        let cases: [(Order, [u16; 2]); 4] = [
            (Abcd, [0x42F6, 0xE979]),
            (Cdab, [0xE979, 0x42F6]),
            (Badc, [0xF642, 0x79E9]),
            (Dcba, [0x79E9, 0xF642]),
        ];
        for (order, words) in cases {
            assert_eq!(num(&words, F32, order), f64::from(123.456f32), "{order}");
            assert_eq!(encode_u64(0x42F6_E979, 2, order), words, "{order}");
        }
    }

    #[test]
    fn table_of_known_patterns() {
        let cases: Vec<(&[u16], DataType, Order, f64)> = vec![
            (&[0x0001], U16, Abcd, 1.0),
            (&[0x0100], U16, Badc, 1.0),
            (&[0x0100], U16, Dcba, 1.0),
            (&[0x0100], U16, Cdab, 256.0),
            (&[0xFFFF], U16, Abcd, 65535.0),
            (&[0xFFFE], I16, Abcd, -2.0),
            (&[0xFEFF], I16, Badc, -2.0),
            (&[0x8000], I16, Abcd, -32768.0),
            (&[0x0001, 0x0000], U32, Abcd, 65536.0),
            (&[0x0000, 0x0001], U32, Cdab, 65536.0),
            (&[0xFFFF, 0xFFFF], U32, Abcd, 4_294_967_295.0),
            // -123456 = 0xFFFE1DC0
            (&[0xFFFE, 0x1DC0], I32, Abcd, -123_456.0),
            (&[0x1DC0, 0xFFFE], I32, Cdab, -123_456.0),
            (&[0xFEFF, 0xC01D], I32, Badc, -123_456.0),
            (&[0xC01D, 0xFEFF], I32, Dcba, -123_456.0),
            // 0x0123456789ABCDEF
            (
                &[0x0123, 0x4567, 0x89AB, 0xCDEF],
                U64,
                Abcd,
                81_985_529_216_486_895.0,
            ),
            (
                &[0xCDEF, 0x89AB, 0x4567, 0x0123],
                U64,
                Cdab,
                81_985_529_216_486_895.0,
            ),
            (
                &[0x2301, 0x6745, 0xAB89, 0xEFCD],
                U64,
                Badc,
                81_985_529_216_486_895.0,
            ),
            (
                &[0xEFCD, 0xAB89, 0x6745, 0x2301],
                U64,
                Dcba,
                81_985_529_216_486_895.0,
            ),
            (&[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], I64, Abcd, -1.0),
            (&[0xFFFF, 0xFFFF, 0xFFFF, 0xFF85], I64, Abcd, -123.0),
            (&[0x85FF, 0xFFFF, 0xFFFF, 0xFFFF], I64, Dcba, -123.0),
            // -2.5f64 = 0xC004000000000000
            (&[0xC004, 0, 0, 0], F64, Abcd, -2.5),
            (&[0, 0, 0, 0xC004], F64, Cdab, -2.5),
            (&[0x04C0, 0, 0, 0], F64, Badc, -2.5),
            (&[0, 0, 0, 0x04C0], F64, Dcba, -2.5),
            // 1.5f32 = 0x3FC00000
            (&[0x3FC0, 0x0000], F32, Abcd, 1.5),
        ];
        for (words, t, order, expected) in cases {
            assert_eq!(num(words, t, order), expected, "{words:04x?} {t:?} {order}");
        }
    }

    #[test]
    fn encode_is_the_inverse_of_decode_for_every_width_and_order() {
        for order in Order::ALL {
            for (t, raw) in [
                (U16, 0xBEEFu64),
                (U32, 0xDEAD_BEEF),
                (U64, 0x0102_0304_0506_0708),
            ] {
                let words = encode_u64(raw, usize::from(t.register_count()), order);
                assert_eq!(num(&words, t, order), raw as f64, "{t:?} {order}");
            }
        }
    }

    #[test]
    fn bits_and_bools() {
        let bit = |w: u16, n: u8, o: Order| decode(&[w], Bit(n), o, Scaling::IDENTITY);
        assert_eq!(bit(0b0000_0000_0000_0100, 2, Abcd), Ok(Value::Bool(true)));
        assert_eq!(bit(0b0000_0000_0000_0100, 1, Abcd), Ok(Value::Bool(false)));
        assert_eq!(bit(0x8000, 15, Abcd), Ok(Value::Bool(true)));
        // Byte-swapped: the wire word 0x0100 is the value 0x0001.
        assert_eq!(bit(0x0100, 0, Badc), Ok(Value::Bool(true)));
        assert_eq!(bit(0x0100, 8, Abcd), Ok(Value::Bool(true)));
        assert_eq!(
            decode(&[0x0000], Bool, Abcd, Scaling::IDENTITY),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            decode(&[0x0200], Bool, Abcd, Scaling::IDENTITY),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn strings_with_padding() {
        let t =
            |words: &[u16], o: Order| decode(words, Text(words.len() as u16), o, Scaling::IDENTITY);
        // "CY12345" padded with NUL.
        let words = [0x4359, 0x3132, 0x3334, 0x3500, 0x0000];
        assert_eq!(t(&words, Abcd), Ok(Value::Text("CY12345".into())));
        // Space padding, both ends.
        let words = [0x2042, 0x3220, 0x2020];
        assert_eq!(t(&words, Abcd), Ok(Value::Text("B2".into())));
        // Byte-swapped text: "AB" arrives as 0x4241.
        assert_eq!(t(&[0x4241, 0x0043], Badc), Ok(Value::Text("ABC".into())));
        // All padding is an empty string, not an error.
        assert_eq!(t(&[0, 0], Abcd), Ok(Value::Text(String::new())));
        assert_eq!(t(&[0xFFFE], Abcd), Err(DecodeError::NotText));
        for order in [Abcd, Badc] {
            let words = encode_text("LPG-0042", 6, order);
            assert_eq!(t(&words, order), Ok(Value::Text("LPG-0042".into())));
        }
    }

    #[test]
    fn scale_and_offset() {
        let scaled = decode(
            &[0x04D2],
            U16,
            Abcd,
            Scaling {
                scale: 0.01,
                offset: -2.0,
            },
        );
        assert_eq!(scaled, Ok(Value::Number(1234.0 * 0.01 - 2.0)));
        // Negative raw with a scale: -40.0 °C from 0xFE70 (-400) and 0.1.
        let scaled = decode(
            &[0xFE70],
            I16,
            Abcd,
            Scaling {
                scale: 0.1,
                offset: 0.0,
            },
        );
        assert_eq!(scaled, Ok(Value::Number(-400.0 * 0.1)));
    }

    #[test]
    fn non_finite_floats_are_errors_not_panics() {
        let nan32 = [0x7FC0, 0x0000];
        let inf32 = [0x7F80, 0x0000];
        let neg_inf64 = [0xFFF0, 0, 0, 0];
        assert_eq!(
            decode(&nan32, F32, Abcd, Scaling::IDENTITY),
            Err(DecodeError::NotFinite)
        );
        assert_eq!(
            decode(&inf32, F32, Abcd, Scaling::IDENTITY),
            Err(DecodeError::NotFinite)
        );
        assert_eq!(
            decode(&neg_inf64, F64, Abcd, Scaling::IDENTITY),
            Err(DecodeError::NotFinite)
        );
        // Finite raw value overflowing through the scale.
        let big = encode_u64(f32::MAX.to_bits().into(), 2, Abcd);
        assert_eq!(
            decode(
                &big,
                F32,
                Abcd,
                Scaling {
                    scale: 1e300,
                    offset: 0.0
                }
            ),
            Err(DecodeError::NotFinite)
        );
    }

    #[test]
    fn labels_map_codes_and_reject_unknown_ones() {
        let labels = vec![
            (0, "none".to_owned()),
            (1, "up".to_owned()),
            (2, "down".to_owned()),
        ];
        assert_eq!(
            label(Value::Number(2.0), &labels),
            Ok(Value::Text("down".into()))
        );
        assert_eq!(
            label(Value::Bool(true), &labels),
            Ok(Value::Text("up".into()))
        );
        assert_eq!(
            label(Value::Number(7.0), &labels),
            Err(DecodeError::UnknownCode(7))
        );
        assert_eq!(label(Value::Number(7.0), &[]), Ok(Value::Number(7.0)));
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert_eq!(
            decode(&[1], F32, Abcd, Scaling::IDENTITY),
            Err(DecodeError::WrongLength {
                expected: 2,
                got: 1
            })
        );
    }
}
