//! JSON conventions of the JetStream API: nanosecond durations, RFC 3339 times (Go's zero time
//! for "unset"), base64 byte fields, and the response envelope.

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::errors::ApiError;

/// Go's zero `time.Time`, which nats-server emits for unset times.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 text for `nanos` since the epoch; Go's zero time for 0.
pub fn time_text(nanos: i64) -> String {
    if nanos == 0 {
        ZERO_TIME.to_string()
    } else {
        crate::time::format_nanos(nanos)
    }
}

/// Parses an RFC 3339 time; Go's zero time is 0.
pub fn parse_time(text: &str) -> Option<i64> {
    if text.starts_with("0001-01-01T00:00:00") {
        return Some(0);
    }
    crate::time::parse_rfc3339(text)
}

pub fn is_false(b: &bool) -> bool {
    !*b
}

pub fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

pub fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A response body: `{"type": "io.nats.jetstream.api.v1.<kind>_response", ...fields}` or the
/// same with `"error"`.
pub fn response<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    let mut value = serde_json::to_value(body).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), Value::String(format!("io.nats.jetstream.api.v1.{kind}_response")));
        return serde_json::to_vec(&value).unwrap_or_default();
    }
    error_response(kind, &ApiError::stream_general("response encoding failed"))
}

/// An error response of `kind`.
pub fn error_response(kind: &str, error: &ApiError) -> Vec<u8> {
    let body = serde_json::json!({
        "type": format!("io.nats.jetstream.api.v1.{kind}_response"),
        "error": error,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Base64 (standard, padded) for `[]byte` fields.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Serializes `Option<Bytes>` as base64, omitting it when absent.
pub fn serialize_b64<S: Serializer>(bytes: &Option<bytes::Bytes>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&base64(b)),
        None => s.serialize_none(),
    }
}

/// Decodes a request body strictly (unknown fields refused, as nats-server does since 2.12).
/// An empty body decodes as `T::default()`.
pub fn decode_request<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    decode_json(body)
}

/// Decodes JSON the way Go does for these structs: a `null` field means "unset" (the zero
/// value), so clients that send `"consumer_limits": null` are accepted.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    strip_nulls(&mut value);
    serde_json::from_value(value).map_err(|e| invalid_field(&e))
}

/// The 10025 error for a request that parsed but does not fit its struct; an unknown field
/// is named in Go's words (`json: unknown field "x"`), which clients show as they get it.
pub fn invalid_field(e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    match text.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')) {
        Some((name, _)) => ApiError::invalid_json(format!("json: unknown field {name:?}")),
        None => ApiError::invalid_json(text),
    }
}

/// Removes object members whose value is `null`, recursively.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
