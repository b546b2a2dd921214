//! The signature that proves a message to central comes from its gateway, on any broker.
//!
//! A gateway and central share one key per gateway (`signing_key` in `[uplink.central]` and in
//! central's `[[gateway]]`). Every message on `{prefix}/{gateway}/{kind}` travels sealed:
//!
//! ```text
//! {"sig":"<64 hex digits>","msg":<the message JSON, byte for byte>}
//! ```
//!
//! where `sig` is HMAC-SHA256 over `kind`, a newline, and the exact bytes of `msg`. The kind
//! (`incidents`, `fills`, `status`, `registry`, `rejections`) is signed so that a message
//! cannot be replayed on another kind's topic. Central reads `msg` as the raw bytes it
//! received (no re-serialisation), so no canonical JSON form is needed.
//!
//! **Invariant:** only a holder of the gateway's key can make a message central accepts as
//! that gateway's; a key shorter than [`MIN_KEY_BYTES`] is refused by the config check.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

/// The shortest key a config may hold: 32 bytes, the size of the HMAC-SHA256 output.
pub const MIN_KEY_BYTES: usize = 32;

/// Why a payload is not a message signed with the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("not a signed message (expected {{\"sig\": …, \"msg\": …}}): {0}")]
    Unsigned(String),
    #[error("the signature does not match the gateway's key")]
    BadSignature,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], kind: &str, message: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(kind.as_bytes());
    mac.update(b"\n");
    mac.update(message);
    mac
}

/// Seals the JSON `message` (serialized bytes) for the topic kind `kind`.
pub fn seal(key: &[u8], kind: &str, message: &[u8]) -> Vec<u8> {
    let sig = hex::encode(mac(key, kind, message).finalize().into_bytes());
    let mut out = Vec::with_capacity(message.len() + 84);
    out.extend_from_slice(b"{\"sig\":\"");
    out.extend_from_slice(sig.as_bytes());
    out.extend_from_slice(b"\",\"msg\":");
    out.extend_from_slice(message);
    out.push(b'}');
    out
}

#[derive(Deserialize)]
struct Sealed<'a> {
    sig: &'a str,
    #[serde(borrow)]
    msg: &'a RawValue,
}

/// A sealed payload, opened but not yet verified.
#[derive(Debug)]
pub struct Opened<'a> {
    sig: Vec<u8>,
    /// The message bytes exactly as they were signed.
    pub message: &'a [u8],
}

/// Splits a sealed payload into its signature and message.
pub fn open(payload: &[u8]) -> Result<Opened<'_>, SignError> {
    let sealed: Sealed<'_> =
        serde_json::from_slice(payload).map_err(|e| SignError::Unsigned(e.to_string()))?;
    let sig =
        hex::decode(sealed.sig).map_err(|_| SignError::Unsigned("`sig` is not hex".into()))?;
    // The raw value borrows from `payload`, so its bytes are the ones the gateway signed.
    let text = sealed.msg.get();
    let start = (text.as_ptr() as usize)
        .checked_sub(payload.as_ptr() as usize)
        .filter(|start| start + text.len() <= payload.len())
        .ok_or_else(|| SignError::Unsigned("`msg` is not part of the payload".into()))?;
    Ok(Opened {
        sig,
        message: &payload[start..start + text.len()],
    })
}

impl Opened<'_> {
    /// Checks the signature in constant time.
    pub fn verify(&self, key: &[u8], kind: &str) -> Result<(), SignError> {
        mac(key, kind, self.message)
            .verify_slice(&self.sig)
            .map_err(|_| SignError::BadSignature)
    }
}

/// Opens and verifies in one step: the message bytes when `payload` is sealed with `key`.
pub fn verified<'a>(key: &[u8], kind: &str, payload: &'a [u8]) -> Result<&'a [u8], SignError> {
    let opened = open(payload)?;
    opened.verify(key, kind)?;
    Ok(opened.message)
}

/// A fresh random key in hex (64 characters), for generated configs (`seguard demo`).
pub fn random_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_message_opens_to_its_exact_bytes_and_verifies() {
        let message = br#"{"schema":"seguard.incident.v1", "n": 1.50, "t":"\u0041"}"#;
        let sealed = seal(KEY, "incidents", message);
        assert_eq!(verified(KEY, "incidents", &sealed), Ok(&message[..]));
    }

    #[test]
    fn each_forgery_is_refused() {
        let message = br#"{"gateway":"gw1"}"#;
        let sealed = seal(KEY, "incidents", message);
        let other_key = b"another key of thirty-two bytes!";
        let tampered = String::from_utf8(sealed.clone())
            .unwrap()
            .replace("gw1", "gw2");
        let cases: [(&[u8], &str, &[u8], SignError); 4] = [
            (other_key, "incidents", &sealed, SignError::BadSignature),
            (KEY, "registry", &sealed, SignError::BadSignature),
            (
                KEY,
                "incidents",
                tampered.as_bytes(),
                SignError::BadSignature,
            ),
            (
                KEY,
                "incidents",
                message,
                SignError::Unsigned("missing field `sig` at line 1 column 17".into()),
            ),
        ];
        for (key, kind, payload, expected) in cases {
            assert_eq!(verified(key, kind, payload), Err(expected));
        }
    }

    /// RFC 4231 test case 2, through the same MAC with an empty kind prefix removed: checks
    /// that the HMAC is the standard one.
    #[test]
    fn the_mac_is_standard_hmac_sha256() {
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
