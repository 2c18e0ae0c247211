//! The WebSocket listener: NATS and MQTT clients over WebSocket (RFC 6455) on one port, as
//! nats-server serves them. A request for a path ending in `/mqtt` is MQTT over WebSocket
//! (the `mqtt` subprotocol is confirmed when the client offers it); any other path is the
//! NATS protocol.
//!
//! # Layout
//!
//! - [`handshake`]: the HTTP upgrade request, checked (method, headers, key, version,
//!   origin), and the `101` or HTTP error response. Sans-IO.
//! - [`origin`]: `same_origin` and `allowed_origins`.
//! - [`stream`]: an upgraded connection as reader and writer halves (`AsyncRead` /
//!   `AsyncWrite`) over tokio-websockets' framing, so `nats::connection::serve` and
//!   `mqtt::connection::serve` run unchanged.
//! - [`listener`]: accept → TLS (`wss://`, `websocket.tls`) → upgrade → connection task.
//!
//! # Differences from nats-server
//!
//! permessage-deflate (`compression`) is not offered: the option is accepted and ignored
//! with a warning. The `authorization`, `no_auth_user`, cookie, `headers` and `advertise`
//! options are reported as not supported; WebSocket clients authenticate like other clients.

pub mod handshake;
pub mod listener;
pub mod origin;
pub mod stream;

use crate::config::Websocket;

/// Checks that `websocket {}` can start: a listener needs `tls` unless `no_tls` says plain
/// `ws://` is intended (nats-server's rule), and every allowed origin must parse.
pub fn check_settings(settings: &Websocket) -> Result<(), String> {
    if settings.port == 0 {
        return Ok(());
    }
    if settings.tls.is_none() && !settings.no_tls {
        return Err("websocket requires a tls block (or no_tls: true for plain ws://)".into());
    }
    for allowed in &settings.allowed_origins {
        origin::Origin::parse(allowed).map_err(|e| format!("allowed origin {allowed:?}: {e}"))?;
    }
    Ok(())
}

/// The largest WebSocket message accepted: room for several maximal packets, since a client
/// may batch them into one message (nats-server's bound: 8 × max_payload, at most 64 MiB),
/// and never less than one packet with its protocol overhead.
pub fn max_message_len(max_payload: u64) -> usize {
    const OVERHEAD: usize = 64 * 1024;
    const CEILING: usize = 64 * 1024 * 1024;
    let one = usize::try_from(max_payload).unwrap_or(usize::MAX).saturating_add(OVERHEAD);
    one.saturating_mul(8).min(CEILING).max(one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_needs_tls_or_an_explicit_no_tls() {
        let off = Websocket::default();
        assert!(check_settings(&off).is_ok());
        let plain = Websocket { port: 8080, ..Websocket::default() };
        assert!(check_settings(&plain).is_err_and(|e| e.contains("no_tls")));
        assert!(check_settings(&Websocket { no_tls: true, ..plain.clone() }).is_ok());
        let bad_origin = Websocket { no_tls: true, allowed_origins: vec!["example.com".into()], ..plain };
        assert!(check_settings(&bad_origin).is_err_and(|e| e.contains("example.com")));
    }

    #[test]
    fn messages_hold_several_payloads_within_a_ceiling() {
        assert_eq!(max_message_len(1024 * 1024), 8 * (1024 * 1024 + 64 * 1024));
        assert_eq!(max_message_len(64 * 1024 * 1024), 64 * 1024 * 1024 + 64 * 1024);
    }
}
