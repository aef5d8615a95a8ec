//! JSON in and out the way upstream's Go server does it.
//!
//! In: the first JSON value of the body (trailing bytes ignored), object keys matched
//! case-insensitively, unknown keys ignored. Out: `<`, `>` and `&` escaped as `\u003c`,
//! `\u003e`, `\u0026`, as Go's encoder does.

use std::io;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::{Map, Value};

/// Decodes a request body leniently into `T`; the error is the decoder's message
/// (`EOF` for an empty body).
///
/// # Errors
/// The message to append to the endpoint's prefix.
pub fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    let value = match serde_json::Deserializer::from_slice(body).into_iter::<Value>().next() {
        None => return Err("EOF".into()),
        Some(Err(e)) if e.is_eof() => return Err("unexpected EOF".into()),
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(v)) => v,
    };
    let obj = match value {
        Value::Null => return Ok(T::default()),
        Value::Object(o) => o,
        other => return Err(format!("json: cannot unmarshal {} into an object", kind(&other))),
    };
    serde_json::from_value(Value::Object(fold_keys(obj))).map_err(|e| format!("json: {e}"))
}

/// For `#[serde(deserialize_with)]`: a JSON `null` leaves the field at its default, as
/// Go's decoder leaves a `null` field untouched.
///
/// # Errors
/// The value is neither `null` nor a `T`.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Lower-cases top-level keys; an exactly lower-case key wins over a folded one.
fn fold_keys(obj: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut exact = Vec::new();
    for (k, v) in obj {
        let lower = k.to_lowercase();
        if lower == k {
            exact.push(lower.clone());
            out.insert(lower, v);
        } else if !exact.contains(&lower) {
            out.insert(lower, v);
        }
    }
    out
}

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, b) in fragment.bytes().enumerate() {
            let esc: &[u8] = match b {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                b'&' => b"\\u0026",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc)?;
            start = i + 1;
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serialises with Go's escaping.
#[must_use]
pub fn to_go_json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, GoFormatter);
    if v.serialize(&mut ser).is_err() {
        return b"{}".to_vec();
    }
    buf
}

/// A JSON response body (`Content-Type: application/json`).
#[derive(Debug)]
pub struct GoJson(pub Vec<u8>);

/// Wraps a value as a JSON response.
pub fn go_json<T: Serialize + ?Sized>(v: &T) -> GoJson {
    GoJson(to_go_json(v))
}

impl IntoResponse for GoJson {
    fn into_response(self) -> Response {
        let mut r = self.0.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(default)]
    struct P {
        email: String,
        data: Option<Map<String, Value>>,
    }

    #[test]
    fn lenient_decoding_like_go() {
        assert_eq!(decode::<P>(b"").unwrap_err(), "EOF");
        let p: P = decode(br#"{"EMAIL":"a@b.c","extra":1} trailing}"#).unwrap();
        assert_eq!(p.email, "a@b.c");
        let p: P = decode(br#"{"Email":"x","email":"y"}"#).unwrap();
        assert_eq!(p.email, "y");
        assert_eq!(decode::<P>(b"null").unwrap(), P::default());
        assert!(decode::<P>(br#"{"email":5}"#).is_err());
        assert!(decode::<P>(b"[1]").is_err());
        assert!(decode::<P>(b"{\"email\":").is_err());
    }

    #[test]
    fn escapes_html_characters() {
        let out = to_go_json(&serde_json::json!({"a": "<b>&</b>"}));
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":"\u003cb\u003e\u0026\u003c/b\u003e"}"#);
    }
}
