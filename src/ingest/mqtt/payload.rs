//! A message's JSON payload as the mapping reads it: JSON pointers (RFC 6901) split into tokens
//! once, and an object payload parsed into its members' names and raw values, each value parsed
//! only when a pointer reaches it (no `serde_json::Value` tree per message). It finds what
//! `serde_json::Value::pointer` finds in the payload parsed whole.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value as Json;

/// A JSON pointer (RFC 6901) split into its unescaped tokens; `None` for a pointer that does
/// not start with `/` (it finds nothing, as in `serde_json::Value::pointer`). Looking one up in
/// a payload then costs no string work per message.
pub type Tokens = Option<Vec<String>>;

pub fn tokens(pointer: &str) -> Tokens {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// The value `tokens` points at, as `serde_json::Value::pointer` finds it.
#[cfg(test)]
fn lookup<'a>(json: &'a Json, tokens: &Tokens) -> Option<&'a Json> {
    lookup_tokens(json, tokens.as_ref()?)
}

fn lookup_tokens<'a>(json: &'a Json, tokens: &[String]) -> Option<&'a Json> {
    tokens.iter().try_fold(json, |target, token| match target {
        Json::Object(map) => map.get(token.as_str()),
        Json::Array(list) => array_index(token).and_then(|i| list.get(i)),
        _ => None,
    })
}

/// A payload, parsed only as far as the mapping needs: a JSON object (what terminals send) as
/// its members' names and their values' text, each value parsed when a pointer reaches it;
/// anything else parsed whole.
pub enum Payload<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Other(Json),
}

impl<'a> Payload<'a> {
    pub fn parse(payload: &'a [u8]) -> Result<Payload<'a>, serde_json::Error> {
        match serde_json::from_slice::<Members<'a>>(payload) {
            Ok(members) => Ok(Payload::Object(members.0)),
            // Not an object, or not JSON: parsed whole, for its value or its error.
            Err(_) => serde_json::from_slice(payload).map(Payload::Other),
        }
    }

    /// The value `tokens` points at, as `serde_json::Value::pointer` finds it in the payload.
    /// A value the parser refuses when it gets there (a number out of range) is malformed.
    pub fn find(&self, tokens: &Tokens) -> Result<Option<Json>, serde_json::Error> {
        let Some(tokens) = tokens else {
            return Ok(None);
        };
        let members = match self {
            Payload::Other(json) => return Ok(lookup_tokens(json, tokens).cloned()),
            Payload::Object(members) => members,
        };
        let Some((first, rest)) = tokens.split_first() else {
            let mut whole = serde_json::Map::new();
            for (name, raw) in members {
                whole.insert(name.to_string(), parse_raw(raw)?);
            }
            return Ok(Some(Json::Object(whole)));
        };
        // The last member of a name, as a parse into a map keeps it.
        let Some((_, raw)) = members.iter().rev().find(|(name, _)| name == first) else {
            return Ok(None);
        };
        let value = parse_raw(raw)?;
        if rest.is_empty() {
            return Ok(Some(value));
        }
        Ok(lookup_tokens(&value, rest).cloned())
    }
}

fn parse_raw(raw: &RawValue) -> Result<Json, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// The members of a JSON object, their names borrowed from the payload where no escape
/// forbids it and their values left as text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Name(name), value)) =
                    map.next_entry::<Name<'de>, &'de RawValue>()?
                {
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// An array index in a pointer: digits without a sign or a leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens found once at start find what `Value::pointer` finds on every message.
    #[test]
    fn pointer_tokens_find_what_value_pointer_finds() {
        let json: Json = serde_json::from_str(
            r#"{"a":{"b~c":1,"d/e":[10,[20,21]],"":{"x":2}},"ts":5,"l":[0,1,2,3,4,5,6,7,8,9,10]}"#,
        )
        .unwrap();
        let text = json.to_string();
        let object = Payload::parse(text.as_bytes()).unwrap();
        assert!(matches!(object, Payload::Object(_)));
        let array = Payload::parse(br#"[{"a":1},2]"#).unwrap();
        let array_json: Json = serde_json::from_str(r#"[{"a":1},2]"#).unwrap();
        for pointer in [
            "",
            "/a",
            "/a/b~0c",
            "/a/d~1e/1/0",
            "/a/d~1e/01",
            "/a/d~1e/+1",
            "/a/d~1e/2",
            "/a//x",
            "/a/",
            "/ts",
            "/ts/0",
            "/l/10",
            "/l/-",
            "a",
            "/missing",
            "/a/b~c",
            "/0/a",
            "/1",
        ] {
            let tokens = tokens(pointer);
            assert_eq!(lookup(&json, &tokens), json.pointer(pointer), "{pointer:?}");
            assert_eq!(
                object.find(&tokens).unwrap().as_ref(),
                json.pointer(pointer),
                "{pointer:?}"
            );
            assert_eq!(
                array.find(&tokens).unwrap().as_ref(),
                array_json.pointer(pointer),
                "{pointer:?} in an array"
            );
        }
        // An escaped member name, and the last of two members of one name, as a map keeps it.
        let twice = Payload::parse(br#"{"p\u0031":1,"p1":2}"#).unwrap();
        assert_eq!(twice.find(&tokens("/p1")).unwrap(), Some(Json::from(2)));
        // A mapped number out of range is malformed, as when the whole payload was parsed.
        let huge = Payload::parse(br#"{"p":1e999,"q":1}"#).unwrap();
        assert!(huge.find(&tokens("/p")).is_err());
        assert_eq!(huge.find(&tokens("/q")).unwrap(), Some(Json::from(1)));
    }
}
