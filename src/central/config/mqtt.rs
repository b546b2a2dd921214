//! `[mqtt]`: the broker the gateways publish to, a [`Broker`] like the gateway's own (same keys,
//! validation and client options, `src/broker.rs`), plus the topics central subscribes under.

use std::time::Duration;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::broker::{Broker, RawBroker};
use crate::diag::{Check, Problem};

#[derive(Debug, Clone)]
pub struct CentralMqtt {
    /// Host, credentials, TLS and keep-alive; its payload limit is `[central] max_body_bytes`.
    pub broker: Broker,
    /// Topic prefix the gateways publish under (`seguard/v1`).
    pub prefix: String,
    /// The shared-subscription group all central instances join.
    pub share_group: String,
}

/// `[mqtt]` as written: a broker's keys, refused when unknown as `RawBroker` refuses them, and
/// central's two own keys.
#[derive(Debug)]
pub struct RawMqtt {
    broker: RawBroker,
    prefix: Option<Spanned<String>>,
    share_group: Option<Spanned<String>>,
}

impl Check {
    /// The broker of `instance`, whose client id derives from the instance name by default.
    /// MQTT payloads are held to `max_body_bytes`, as HTTP bodies are.
    pub(crate) fn central_mqtt(
        &mut self,
        m: RawMqtt,
        instance: &str,
        max_body_bytes: usize,
    ) -> CentralMqtt {
        if let Some(max) = &m.broker.max_payload_bytes {
            self.push(
                Problem::new(max.span(), "central takes max_payload_bytes from [central]").hint(
                    "set max_body_bytes in [central]: it limits MQTT payloads and HTTP bodies",
                ),
            );
        }
        let mut broker = self.broker(&m.broker, &format!("seguard-central-{instance}"));
        broker.max_payload_bytes = max_body_bytes;
        // Central's own reconnect pace unless the file sets one.
        if m.broker.reconnect_min_ms.is_none() {
            broker.reconnect_min = Duration::from_millis(100);
        }
        if m.broker.reconnect_max_ms.is_none() {
            broker.reconnect_max = Duration::from_secs(10).max(broker.reconnect_min);
        }
        let prefix = m.prefix.map_or_else(
            || "seguard/v1".to_owned(),
            |p| {
                if p.get_ref().contains(['+', '#']) || p.get_ref().ends_with('/') {
                    self.push(Problem::new(
                        p.span(),
                        "prefix must be a plain topic without wildcards or a trailing `/`",
                    ));
                }
                p.into_inner()
            },
        );
        let share_group = m.share_group.map_or_else(
            || "seguard-central".to_owned(),
            |g| {
                if g.get_ref().is_empty() || g.get_ref().contains(['/', '+', '#']) {
                    self.push(Problem::new(
                        g.span(),
                        "share_group must be one topic level",
                    ));
                }
                g.into_inner()
            },
        );
        CentralMqtt {
            broker,
            prefix,
            share_group,
        }
    }
}

/// Reads the table's keys once: `prefix` and `share_group` here, every other key handed to
/// `RawBroker`'s own deserializer, so that its spans, types and unknown-key errors (placed at
/// the key) hold as in the gateway's `[mqtt]`.
impl<'de> Deserialize<'de> for RawMqtt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawMqttVisitor)
    }
}

struct RawMqttVisitor;

impl<'de> Visitor<'de> for RawMqttVisitor {
    type Value = RawMqtt;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the [mqtt] table")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMqtt, A::Error> {
        let mut keys = CentralKeys {
            map,
            prefix: None,
            share_group: None,
        };
        let broker = RawBroker::deserialize(de::value::MapAccessDeserializer::new(&mut keys))?;
        Ok(RawMqtt {
            broker,
            prefix: keys.prefix,
            share_group: keys.share_group,
        })
    }
}

/// The table's entries with central's own keys taken out.
struct CentralKeys<A> {
    map: A,
    prefix: Option<Spanned<String>>,
    share_group: Option<Spanned<String>>,
}

enum Key<K> {
    Prefix,
    ShareGroup,
    Broker(K),
}

/// Reads a key: central's own, or the broker's through the broker's key seed (taken only then,
/// so that it is still there for the next key after one of central's).
struct KeySeed<'a, S>(&'a mut Option<S>);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, S> {
    type Value = Key<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "prefix" => Ok(Key::Prefix),
            "share_group" => Ok(Key::ShareGroup),
            _ => {
                let seed = self.0.take().expect("one broker key per call");
                let name: de::value::StringDeserializer<D::Error> = name.into_deserializer();
                seed.deserialize(name).map(Key::Broker)
            }
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CentralKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(KeySeed(&mut seed))? {
                None => return Ok(None),
                Some(Key::Broker(key)) => return Ok(Some(key)),
                Some(Key::Prefix) => self.prefix = Some(self.map.next_value()?),
                Some(Key::ShareGroup) => self.share_group = Some(self.map.next_value()?),
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}
