//! JSON bodies of `INFO` (server → client) and `CONNECT` (client → server), with nats-server's
//! field names.

use serde::{Deserialize, Serialize};

/// The `INFO` body. Optional fields are omitted when unset, as nats-server does.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    /// The nats-server version whose behaviour is implemented (clients gate features on it).
    pub version: String,
    pub proto: u32,
    /// nats-server reports its Go version; we report the Rust toolchain family.
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tls_available: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub jetstream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub ldm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_lvl: Option<u32>,
    /// Jetway's own version (an extra field; clients ignore unknown fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetway_version: Option<String>,
}

/// The `CONNECT` body. Unknown fields are ignored (clients send many we do not use); missing
/// ones take nats-server's defaults (see `Default`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ConnectOptions {
    pub verbose: bool,
    pub pedantic: bool,
    pub tls_required: bool,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub protocol: u32,
    /// Receive own publishes.
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub jwt: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
}

impl Default for ConnectOptions {
    /// nats-server's defaults: verbose, pedantic and echo on. Real clients send all three; a
    /// hand-typed `CONNECT {}` (and anything before CONNECT) gets `+OK`s and subject checks.
    fn default() -> Self {
        ConnectOptions {
            verbose: true,
            pedantic: true,
            tls_required: false,
            user: None,
            pass: None,
            auth_token: None,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            echo: true,
            headers: false,
            no_responders: false,
            jwt: None,
            nkey: None,
            sig: None,
        }
    }
}

impl ConnectOptions {
    /// Decodes the JSON of a `CONNECT`.
    pub fn decode(json: &[u8]) -> Result<ConnectOptions, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_echo_on_and_ignores_unknown_fields() {
        let c = ConnectOptions::decode(br#"{"verbose":true,"lang":"rust","x":1}"#).unwrap();
        assert!(c.verbose && c.echo && !c.headers);
        assert_eq!(c.lang.as_deref(), Some("rust"));
        let c = ConnectOptions::decode(br#"{"echo":false,"headers":true,"no_responders":true}"#).unwrap();
        assert!(!c.echo && c.headers && c.no_responders);
        let c = ConnectOptions::decode(b"{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo, "nats-server's defaults");
    }

    #[test]
    fn info_omits_unset_optional_fields() {
        let json = serde_json::to_string(&ServerInfo::default()).unwrap();
        assert!(!json.contains("auth_required") && !json.contains("client_id"));
    }
}
