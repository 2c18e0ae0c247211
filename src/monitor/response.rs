//! What every endpoint shares: JSON responses (with nats-server's headers), typed query errors,
//! query-parameter parsing with Go's spellings, and nats-server's time and duration formats.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON response with `Content-Type: application/json` and `Access-Control-Allow-Origin: *`
/// (browser dashboards on other origins read these endpoints, as with nats-server).
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("monitoring response not serializable: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub fn ok(body: &impl Serialize) -> Response {
    json(StatusCode::OK, body)
}

/// A request the endpoint can't answer; sent as 400 with `{"error": …}`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("Error decoding {kind} for '{param}': invalid value {value:?}")]
    BadValue { param: &'static str, kind: &'static str, value: String },
    #[error("invalid sorting option: {0}")]
    BadSort(String),
    #[error("sort by {0} only valid on closed connections")]
    SortNeedsClosed(&'static str),
    #[error("invalid test subject, must be valid publish subject: {0}")]
    BadTestSubject(String),
    #[error("Account {0} does not exist")]
    NoSuchAccount(String),
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": self.to_string() }))
    }
}

/// 404 for paths that are not endpoints, as JSON like everything else here.
pub async fn not_found(uri: Uri) -> Response {
    json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": format!("no endpoint at {}", uri.path()) }))
}

/// Query parameters, parsed the way nats-server's handlers parse them.
pub struct Params(pub HashMap<String, String>);

impl Params {
    /// The parameter's text; absent and empty are the same, as with Go's `Query().Get`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean in Go's `strconv.ParseBool` spellings; absent is false.
    pub fn flag(&self, name: &'static str) -> Result<bool, RequestError> {
        match self.text(name) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(RequestError::BadValue { param: name, kind: "boolean", value: other.into() }),
        }
    }

    /// A non-negative integer; absent is 0 (negative offsets and limits mean "default" anyway).
    pub fn number(&self, name: &'static str) -> Result<usize, RequestError> {
        let Some(text) = self.text(name) else { return Ok(0) };
        match text.parse::<i64>() {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            Err(_) => Err(RequestError::BadValue { param: name, kind: "int", value: text.into() }),
        }
    }

    pub fn id(&self, name: &'static str) -> Result<u64, RequestError> {
        let Some(text) = self.text(name) else { return Ok(0) };
        text.parse().map_err(|_| RequestError::BadValue { param: name, kind: "uint64", value: text.into() })
    }
}

/// `offset`/`limit` paging over an already filtered and sorted list.
pub fn page<T>(items: Vec<T>, offset: usize, limit: usize) -> Vec<T> {
    items.into_iter().skip(offset).take(limit).collect()
}

/// RFC 3339 with nanoseconds, UTC, as Go marshals a `time.Time`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    crate::time::format_rfc3339_parts(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos())
}

/// nats-server's uptime format: whole seconds with years and days (`1d2h3m4s`, `5s`).
pub fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let years = days / 365;
    if years > 0 {
        format!("{years}y{}d{}h{}m{}s", days % 365, hours % 24, mins % 60, secs % 60)
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hours % 24, mins % 60, secs % 60)
    } else if hours > 0 {
        format!("{hours}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_matches_nats_server_format() {
        assert_eq!(uptime(Duration::from_secs(0)), "0s");
        assert_eq!(uptime(Duration::from_secs(59)), "59s");
        assert_eq!(uptime(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(uptime(Duration::from_secs(86_400 + 61)), "1d0h1m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn flags_accept_go_spellings_and_reject_others() {
        let p = Params([("a", "1"), ("b", "False"), ("c", "yes")].map(|(k, v)| (k.into(), v.into())).into());
        assert!(p.flag("a").unwrap_or(false));
        assert!(!p.flag("b").unwrap_or(true));
        assert!(!p.flag("absent").unwrap_or(true));
        assert!(p.flag("c").is_err());
    }
}
