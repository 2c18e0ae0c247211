//! `$SYS` advisories for client connects and disconnects, in nats-server's JSON shape
//! (`ConnectEventMsg`, `DisconnectEventMsg`), published into the system account on
//! `$SYS.ACCOUNT.<account>.CONNECT` and `.DISCONNECT`.
//!
//! The JSON is built only when someone listens: the subject's match result (cached by the
//! sublist) is checked first, so a server nobody monitors pays one cache lookup per connect.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use super::accountz::MsgBytes;
use super::connz::ConnInfo;
use super::response::rfc3339;
use crate::nats::client::{shown, ClientShared};
use crate::router::Message;
use crate::server::{Core, NATS_COMPAT_VERSION};

pub const CONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_connect";
pub const DISCONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_disconnect";

/// The publishing server (nats-server's `ServerInfo` in events and system replies).
#[derive(Debug, Serialize)]
pub(super) struct ServerInfo<'a> {
    name: &'a str,
    host: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    ver: &'static str,
    jetstream: bool,
    /// nats-server's capability bits: 1 is "JetStream enabled".
    flags: u64,
    seq: u64,
    time: String,
}

/// The client (nats-server's `ClientInfo`, the fields that apply).
#[derive(Debug, Serialize)]
pub(crate) struct ClientInfo {
    start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    host: String,
    id: u64,
    acc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ver: Option<String>,
    /// Go marshals the RTT as integer nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt: Option<u64>,
    server: String,
    kind: &'static str,
    client_type: &'static str,
}

/// What every advisory carries (nats-server's `TypedEvent` plus server and client); a connect
/// event is exactly this.
#[derive(Debug, Serialize)]
struct Advisory<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    id: String,
    timestamp: String,
    server: ServerInfo<'a>,
    client: ClientInfo,
}

#[derive(Debug, Serialize)]
struct DisconnectEvent<'a> {
    #[serde(flatten)]
    advisory: Advisory<'a>,
    /// What the client sent (its inbound traffic), as nats-server counts it.
    sent: MsgBytes,
    received: MsgBytes,
    reason: String,
}

/// After a client's CONNECT was accepted.
pub fn client_connected(core: &Core, client: &ClientShared) {
    let Some(subject) = subject_with_interest(core, client, "CONNECT") else { return };
    publish(core, &subject, &advisory(core, client, CONNECT_TYPE, false));
}

/// When a client is gone; `info` is its closed-connection record. Clients that never sent
/// CONNECT announced nothing, so they announce no disconnect either.
pub fn client_disconnected(core: &Core, client: &ClientShared, info: &ConnInfo) {
    let Some(subject) = subject_with_interest(core, client, "DISCONNECT") else { return };
    let c = &client.counters;
    let event = DisconnectEvent {
        advisory: advisory(core, client, DISCONNECT_TYPE, true),
        sent: MsgBytes { msgs: c.in_msgs.load(Ordering::Relaxed), bytes: c.in_bytes.load(Ordering::Relaxed) },
        received: MsgBytes {
            msgs: c.out_msgs.load(Ordering::Relaxed),
            bytes: c.out_bytes.load(Ordering::Relaxed),
        },
        reason: info.reason.clone().unwrap_or_default(),
    };
    publish(core, &subject, &event);
}

/// `$SYS.ACCOUNT.<account>.<what>` when the client joined an account and someone listens.
fn subject_with_interest(core: &Core, client: &ClientShared, what: &str) -> Option<String> {
    let account = client.identity.lock().account()?.clone();
    let subject = format!("$SYS.ACCOUNT.{account}.{what}");
    has_interest(core, &subject).then_some(subject)
}

fn advisory<'a>(
    core: &'a Core,
    client: &ClientShared,
    event_type: &'static str,
    stopped: bool,
) -> Advisory<'a> {
    let now = SystemTime::now();
    Advisory {
        event_type,
        id: event_id(),
        timestamp: rfc3339(now),
        server: server_info(core, now),
        client: client_info(core, client, stopped.then_some(now)),
    }
}

fn has_interest(core: &Core, subject: &str) -> bool {
    !core.system_account.sublist.matches(subject).is_empty()
}

fn publish(core: &Core, subject: &str, event: &impl Serialize) {
    match serde_json::to_vec(event) {
        Ok(json) => {
            core.publish(&core.system_account, &Message::internal(subject, None, None, &Bytes::from(json)));
        }
        Err(e) => tracing::error!("event for {subject} not serializable: {e}"),
    }
}

pub(super) fn server_info(core: &Core, now: SystemTime) -> ServerInfo<'_> {
    let jetstream = core.jetstream.is_some();
    ServerInfo {
        name: &core.server_name,
        host: &core.config.host,
        id: &core.server_id,
        domain: core.jetstream.as_ref().and_then(|js| js.domain.as_deref()),
        ver: NATS_COMPAT_VERSION,
        jetstream,
        flags: u64::from(jetstream),
        seq: core.monitor.next_event_seq(),
        time: rfc3339(now),
    }
}

pub(crate) fn client_info(core: &Core, client: &ClientShared, stop: Option<SystemTime>) -> ClientInfo {
    let identity = client.identity.lock().clone();
    ClientInfo {
        start: rfc3339(client.started),
        stop: stop.map(rfc3339),
        host: client.addr.ip().to_string(),
        id: client.id,
        acc: identity.account().map(|a| a.to_string()).unwrap_or_default(),
        user: shown(identity.user),
        name: shown(identity.name),
        lang: shown(identity.lang),
        ver: shown(identity.version),
        rtt: client.rtt().map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        server: core.server_name.clone(),
        kind: "Client",
        client_type: "nats",
    }
}

/// A unique event id: 22 random base62 characters, the length of nats-server's NUIDs.
fn event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET.get(rand::random_range(0..ALPHABET.len())).copied().unwrap_or(b'0')))
        .collect()
}
