//! The HTTP/1.1 upgrade request (RFC 6455 §4.2), checked the way nats-server checks it, and
//! the responses: `101 Switching Protocols` or an HTTP error that says why.
//!
//! Sans-IO: [`parse`] takes the bytes received so far and answers "need more", an
//! [`Upgrade`], or a [`HandshakeError`] with its HTTP status.

use base64::Engine;

use super::origin::OriginPolicy;

/// Upper bound on the request line and headers; a longer request is refused with 431.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Headers read from one request.
const MAX_HEADERS: usize = 64;
/// RFC 6455 §1.3.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// nats-server serves MQTT on any path ending with this.
const MQTT_PATH_SUFFIX: &str = "/mqtt";
/// The subprotocol MQTT clients offer (MQTT 3.1.1 §6, MQTT 5 §6).
const MQTT_SUBPROTOCOL: &str = "mqtt";

/// Which protocol the upgraded connection speaks, chosen by the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Nats,
    Mqtt,
}

/// An accepted upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub endpoint: Endpoint,
    /// `Sec-WebSocket-Key`, answered in `Sec-WebSocket-Accept`.
    key: String,
    /// The subprotocol to confirm: `mqtt` when an MQTT client offered it.
    pub subprotocol: Option<&'static str>,
    /// `User-Agent`, for the debug log.
    pub user_agent: Option<String>,
}

/// What the listener knows that the request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Whether the MQTT gateway is on (`/mqtt` is refused with 404 otherwise).
    pub mqtt_enabled: bool,
    /// Whether the connection is TLS (the listener's own scheme, for `same_origin`).
    pub tls: bool,
    pub origins: &'a OriginPolicy,
}

/// Why an upgrade was refused. The texts are nats-server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error("request headers larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("client sent data before handshake is complete")]
    EarlyData,
    #[error("mqtt websocket endpoint not enabled")]
    MqttDisabled,
    #[error("request method must be GET")]
    Method,
    #[error("'Host' missing in request")]
    NoHost,
    #[error("invalid value for header 'Upgrade'")]
    UpgradeHeader,
    #[error("invalid value for header 'Connection'")]
    ConnectionHeader,
    #[error("key missing")]
    NoKey,
    #[error("invalid websocket key")]
    Key,
    #[error("invalid version")]
    Version,
    #[error("origin not allowed: {0}")]
    Origin(String),
}

impl HandshakeError {
    /// The HTTP status answered.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HandshakeError::MqttDisabled => (404, "Not Found"),
            HandshakeError::Method => (405, "Method Not Allowed"),
            HandshakeError::Origin(_) => (403, "Forbidden"),
            HandshakeError::TooLarge => (431, "Request Header Fields Too Large"),
            _ => (400, "Bad Request"),
        }
    }
}

/// Parses and checks the request in `buf`. `Ok(None)`: incomplete, read more.
pub fn parse(buf: &[u8], rules: Rules<'_>) -> Result<Option<Upgrade>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_BYTES => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    // The client must wait for 101 before sending frames; bytes after the request would be
    // lost in the switch, so refuse them (nats-server does the same).
    if consumed < buf.len() {
        return Err(HandshakeError::EarlyData);
    }
    let headers = Headers(request.headers);
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let endpoint = if path.ends_with(MQTT_PATH_SUFFIX) { Endpoint::Mqtt } else { Endpoint::Nats };
    // RFC 6455 §4.2.1, in its order.
    if endpoint == Endpoint::Mqtt && !rules.mqtt_enabled {
        return Err(HandshakeError::MqttDisabled);
    }
    if request.method != Some("GET") {
        return Err(HandshakeError::Method);
    }
    let host = headers.get("host").filter(|h| !h.is_empty()).ok_or(HandshakeError::NoHost)?;
    if !headers.contains_token("upgrade", "websocket") {
        return Err(HandshakeError::UpgradeHeader);
    }
    if !headers.contains_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    let key = headers.get("sec-websocket-key").filter(|k| !k.is_empty()).ok_or(HandshakeError::NoKey)?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::Key),
    }
    if !headers.contains_token("sec-websocket-version", "13") {
        return Err(HandshakeError::Version);
    }
    let origin = headers.get("origin").or_else(|| headers.get("sec-websocket-origin"));
    rules.origins.check(origin, host, rules.tls).map_err(|e| HandshakeError::Origin(e.to_string()))?;
    let subprotocol = (endpoint == Endpoint::Mqtt
        && headers.contains_token("sec-websocket-protocol", MQTT_SUBPROTOCOL))
    .then_some(MQTT_SUBPROTOCOL);
    Ok(Some(Upgrade {
        endpoint,
        key: key.to_string(),
        subprotocol,
        user_agent: headers.get("user-agent").map(str::to_string),
    }))
}

/// The request's headers, looked up case-insensitively; values that are not UTF-8 are
/// treated as absent.
struct Headers<'h, 'b>(&'h [httparse::Header<'b>]);

impl<'b> Headers<'_, 'b> {
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b str> + 's {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    }

    fn get(&self, name: &str) -> Option<&'b str> {
        self.all(name).next()
    }

    /// Whether any `name` header holds `token` in its comma-separated list.
    fn contains_token(&self, name: &str, token: &str) -> bool {
        self.all(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2 item 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(key.as_bytes());
    sha1.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finish())
}

/// The `101 Switching Protocols` response.
pub fn accept_response(upgrade: &Upgrade) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(&upgrade.key)
    );
    if let Some(protocol) = upgrade.subprotocol {
        response.push_str("Sec-WebSocket-Protocol: ");
        response.push_str(protocol);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// An HTTP error response that closes the connection; the body is the status text, as Go's
/// `http.Error` writes it.
pub fn error_response(status: u16, reason: &str) -> Vec<u8> {
    let body = format!("{reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    fn check(text: &str) -> Result<Option<Upgrade>, HandshakeError> {
        let origins = OriginPolicy::new(true, &[]).unwrap_or_else(|e| panic!("{e}"));
        parse(text.as_bytes(), Rules { mqtt_enabled: true, tls: false, origins: &origins })
    }

    fn upgrade(text: &str) -> Upgrade {
        check(text).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("incomplete"))
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn the_path_chooses_the_protocol_and_mqtt_gets_its_subprotocol_only_when_offered() {
        assert_eq!(upgrade(&request("/", "")).endpoint, Endpoint::Nats);
        assert_eq!(upgrade(&request("/anything?x=/mqtt", "")).endpoint, Endpoint::Nats);
        let mqtt = upgrade(&request("/mqtt", "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n"));
        assert_eq!((mqtt.endpoint, mqtt.subprotocol), (Endpoint::Mqtt, Some("mqtt")));
        let silent = upgrade(&request("/mqtt", ""));
        assert_eq!((silent.endpoint, silent.subprotocol), (Endpoint::Mqtt, None));
        let nats = upgrade(&request("/", "Sec-WebSocket-Protocol: mqtt\r\n"));
        assert_eq!(nats.subprotocol, None);
        let response = String::from_utf8(accept_response(&mqtt)).unwrap_or_default();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{response}");
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.ends_with("Sec-WebSocket-Protocol: mqtt\r\n\r\n"), "{response}");
    }

    #[test]
    fn a_partial_request_asks_for_more_and_an_endless_one_is_refused() {
        let full = request("/", "");
        assert_eq!(check(&full[..full.len() - 2]), Ok(None));
        let endless = format!("GET / HTTP/1.1\r\nX-Filler: {}", "a".repeat(MAX_REQUEST_BYTES));
        assert_eq!(check(&endless), Err(HandshakeError::TooLarge));
    }

    #[test]
    fn each_missing_or_wrong_header_is_named() {
        let cases = [
            (request("/", "").replacen("GET", "POST", 1), HandshakeError::Method),
            (request("/", "").replace("Host: localhost:8080\r\n", ""), HandshakeError::NoHost),
            (request("/", "").replace("Upgrade: websocket", "Upgrade: h2c"), HandshakeError::UpgradeHeader),
            (request("/", "").replace("keep-alive, Upgrade", "close"), HandshakeError::ConnectionHeader),
            (request("/", "").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""), HandshakeError::NoKey),
            (request("/", "").replace(KEY, "c2hvcnQ="), HandshakeError::Key),
            (request("/", "").replace("Version: 13", "Version: 8"), HandshakeError::Version),
        ];
        for (text, want) in cases {
            assert_eq!(check(&text), Err(want.clone()), "{text}");
            assert_eq!(want.status().0, if want == HandshakeError::Method { 405 } else { 400 });
        }
    }

    #[test]
    fn garbage_early_data_and_foreign_origins_are_refused() {
        assert!(matches!(check("\x16\x03\x01garbage\r\n\r\n"), Err(HandshakeError::Malformed(_))));
        let early = format!("{}\u{82}\u{80}", request("/", ""));
        assert_eq!(check(&early), Err(HandshakeError::EarlyData));
        let foreign = check(&request("/", "Origin: http://evil.example\r\n"));
        assert_eq!(foreign.as_ref().map_err(HandshakeError::status), Err((403, "Forbidden")));
        assert!(check(&request("/", "Origin: http://localhost:8080\r\n")).is_ok());
    }

    #[test]
    fn mqtt_is_not_found_when_the_gateway_is_off() {
        let origins = OriginPolicy::default();
        let rules = Rules { mqtt_enabled: false, tls: false, origins: &origins };
        assert_eq!(parse(request("/mqtt", "").as_bytes(), rules), Err(HandshakeError::MqttDisabled));
        let response = String::from_utf8(error_response(404, "Not Found")).unwrap_or_default();
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n") && response.ends_with("\r\n\r\nNot Found\n")
        );
    }
}
