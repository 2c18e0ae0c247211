//! The shared face of a client connection: what publishers, the monitor and shutdown use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use foldhash::fast::RandomState;
use parking_lot::Mutex;

use super::direct::SharedTcpWriter;
use super::outbound::{Outbound, Pushed};
use crate::account::users::ConnectionKind;
use crate::latch::Latch;
use crate::router::{Message, Subscription};
use crate::stats::ServerStats;
use crate::tls::NegotiatedTls;

/// Why a connection ended (nats-server's closed-connection reasons, as shown in `/connz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CloseReason {
    #[serde(rename = "Client Closed")]
    ClientClosed,
    #[serde(rename = "Write Error")]
    WriteError,
    #[serde(rename = "Read Error")]
    ReadError,
    #[serde(rename = "Slow Consumer (Pending Bytes)")]
    SlowConsumerPendingBytes,
    #[serde(rename = "Slow Consumer (Write Deadline)")]
    SlowConsumerWriteDeadline,
    #[serde(rename = "Stale Connection")]
    StaleConnection,
    #[serde(rename = "Protocol Violation")]
    ProtocolViolation,
    #[serde(rename = "Authentication Timeout")]
    AuthenticationTimeout,
    #[serde(rename = "Authentication Failure")]
    AuthenticationViolation,
    #[serde(rename = "Maximum Connections Exceeded")]
    MaxConnectionsExceeded,
    #[serde(rename = "Maximum Payload Exceeded")]
    MaxPayloadExceeded,
    #[serde(rename = "Maximum Control Line Exceeded")]
    MaxControlLineExceeded,
    #[serde(rename = "Server Shutdown")]
    ServerShutdown,
    #[serde(rename = "TLS Handshake Failure")]
    TlsHandshakeError,
    /// MQTT: another connection took over the client identifier.
    #[serde(rename = "Duplicate Client ID")]
    DuplicateClientId,
    /// MQTT: no packet within 1.5 times the keep alive.
    #[serde(rename = "Keep Alive Timeout")]
    KeepAliveTimeout,
}

/// Per-connection traffic counters.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
}

/// Identity details filled in from `CONNECT`, for monitoring.
#[derive(Debug, Default, Clone)]
pub struct ClientIdentity {
    // Boxed strings, not `String`s: two words each keep `ClientShared` within a smaller
    // allocation size (one per connection, one per idle MQTT session).
    pub name: Option<Box<str>>,
    pub lang: Option<Box<str>>,
    pub version: Option<Box<str>>,
    pub user: Option<Box<str>>,
    /// Who the client logged in as, and into which account; `None` until CONNECT. A
    /// configuration reload checks it against the new users.
    pub login: Option<crate::account::auth::Login>,
}

impl ClientIdentity {
    /// The account joined at CONNECT.
    pub fn account(&self) -> Option<&Arc<str>> {
        self.login.as_ref().map(|l| &l.account.name)
    }
}

/// An identity field as monitoring shows it: absent when empty.
pub fn shown(field: Option<Box<str>>) -> Option<String> {
    field.filter(|s| !s.is_empty()).map(String::from)
}

/// What ends a connection's writer task (once everything queued before it is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterStop {
    /// The connection starting to close (NATS clients).
    OnClose,
    /// [`ClientShared::stop_writer`].
    Explicit,
}

/// What the rest of the server holds of a connection.
pub struct ClientShared {
    pub id: u64,
    pub addr: SocketAddr,
    pub started: SystemTime,
    pub outbound: Outbound,
    pub counters: ClientCounters,
    pub identity: Mutex<ClientIdentity>,
    /// Version, cipher suite and client-certificate names, once the TLS handshake is done
    /// (boxed, like `permissions`: most connections have neither, and an idle MQTT session
    /// should not carry their space).
    pub tls: OnceLock<Box<NegotiatedTls>>,
    /// The logged-in user's permissions, when it has any (set at CONNECT). Publishers check
    /// it on delivery: one atomic load for clients without permissions.
    pub permissions: OnceLock<Box<crate::account::grants::ConnectionPermissions>>,
    /// Last read or write, in nanoseconds since the Unix epoch (`/connz` `last_activity`, `idle`).
    last_activity: AtomicU64,
    /// Round-trip time of the last answered server PING, in nanoseconds; 0 until measured.
    rtt_nanos: AtomicU64,
    server_stats: Arc<ServerStats>,
    /// Subscriptions by sid; shared so auto-unsubscribe on delivery can drop its entry.
    subs: Mutex<HashMap<Bytes, Arc<Subscription>, RandomState>>,
    /// What [`ClientShared::take_subs`] removed at the end, for the closed-connection record
    /// (`/connz?state=closed&subs=1`).
    subs_at_close: Mutex<Box<[Arc<Subscription>]>>,
    close_reason: Mutex<Option<CloseReason>>,
    closing: Latch,
    /// Cancelled when pending output must be dropped rather than flushed (slow consumer).
    abort_writes: Latch,
    /// Stops the writer task of a connection that queues a last packet after the close was
    /// decided (the MQTT gateway's DISCONNECT with a reason).
    writer_stop: Latch,
    /// The socket for direct writes (see `super::direct`); `None` for TLS and once closed.
    direct: Mutex<Option<SharedTcpWriter>>,
    /// The listener and protocol (the gateway's connections share this type with NATS
    /// clients); `Standard` until a listener says otherwise.
    kind: OnceLock<ConnectionKind>,
}

impl ClientShared {
    pub fn new(id: u64, addr: SocketAddr, max_pending: usize, server_stats: Arc<ServerStats>) -> Self {
        let started = SystemTime::now();
        ClientShared {
            id,
            addr,
            started,
            last_activity: AtomicU64::new(unix_nanos(started)),
            rtt_nanos: AtomicU64::new(0),
            outbound: Outbound::new(max_pending),
            counters: ClientCounters::default(),
            identity: Mutex::new(ClientIdentity::default()),
            tls: OnceLock::new(),
            permissions: OnceLock::new(),
            server_stats,
            subs: Mutex::new(HashMap::default()),
            subs_at_close: Mutex::new(Box::default()),
            close_reason: Mutex::new(None),
            closing: Latch::new(),
            abort_writes: Latch::new(),
            writer_stop: Latch::new(),
            direct: Mutex::new(None),
            kind: OnceLock::new(),
        }
    }

    /// Appends a `MSG`/`HMSG` for subscription `sid`.
    /// Past `max_pending` the client is closed as a slow consumer and the message dropped.
    pub fn push_msg(&self, msg: &Message<'_>, sid: &Bytes) -> Pushed {
        let size = msg.size();
        let hint = size + msg.subject.len() + msg.reply.map_or(0, str::len) + sid.len() + 32;
        let pushed = self.outbound.push(hint, |buf| {
            jetway_protocols::nats::encode::msg(
                buf,
                msg.subject.as_bytes(),
                sid,
                msg.reply.map(str::as_bytes),
                msg.headers.map(|h| &h[..]),
                msg.payload,
            );
            // This runs under the outbound lock, which serializes every writer of these
            // counters: a plain load and store is exact and avoids two locked read-modify-writes
            // per delivery (measured: a fifth of the server's time in a 1→4 fan-out).
            let c = &self.counters;
            c.out_msgs.store(c.out_msgs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            c.out_bytes.store(c.out_bytes.load(Ordering::Relaxed) + size as u64, Ordering::Relaxed);
        });
        match pushed {
            // The server-wide counters are added once per batch by the publisher's FlushSet.
            Ok(wake) => wake,
            Err(_) => {
                self.close_slow_consumer("pending bytes over limit");
                Pushed::default()
            }
        }
    }

    /// Closes the connection as a slow consumer (counted once, when this closes it).
    pub fn close_slow_consumer(&self, why: &str) {
        if self.close(CloseReason::SlowConsumerPendingBytes) {
            self.server_stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cid = self.id, why, "slow consumer");
        }
    }

    /// Appends raw protocol bytes (INFO, PONG, -ERR, …) and wakes the writer.
    pub fn send_raw(&self, bytes: &[u8]) {
        if let Ok(Pushed { wake: true, .. }) =
            self.outbound.push(bytes.len(), |buf| buf.extend_from_slice(bytes))
        {
            self.flush_now();
        }
    }

    pub fn wake_writer(&self) {
        self.outbound.wake();
    }

    /// Records the finished TLS handshake (for monitoring and certificate logins).
    pub fn set_tls(&self, negotiated: NegotiatedTls) {
        tracing::debug!(
            cid = self.id,
            version = %negotiated.version,
            cipher = %negotiated.cipher_suite,
            "TLS handshake complete"
        );
        let _ = self.tls.set(Box::new(negotiated));
    }

    /// Records which listener and protocol this connection uses (once, before it is
    /// registered): authentication checks it against `allowed_connection_types`, and
    /// monitoring tells the protocols apart.
    pub fn set_kind(&self, kind: ConnectionKind) {
        let _ = self.kind.set(kind);
    }

    pub fn kind(&self) -> ConnectionKind {
        self.kind.get().copied().unwrap_or(ConnectionKind::Standard)
    }

    /// An MQTT client, over TCP or WebSocket.
    pub fn is_mqtt(&self) -> bool {
        matches!(self.kind(), ConnectionKind::Mqtt | ConnectionKind::MqttWebsocket)
    }

    /// nats-server's `/connz` `type`: `nats`, `websocket` (NATS over WebSocket) or `mqtt`.
    pub fn type_name(&self) -> &'static str {
        match self.kind() {
            ConnectionKind::Standard => "nats",
            ConnectionKind::Websocket => "websocket",
            ConnectionKind::Mqtt | ConnectionKind::MqttWebsocket => "mqtt",
        }
    }

    /// Gives the socket to direct writers (plain TCP connections only).
    pub fn set_direct_writer(&self, writer: SharedTcpWriter) {
        *self.direct.lock() = Some(writer);
    }

    /// Drops the direct-write handle (the writer task's own handle then closes the socket).
    pub fn clear_direct_writer(&self) {
        *self.direct.lock() = None;
    }

    /// Sends what is queued now, from the calling task, if the socket takes it at once and
    /// nobody else is writing; otherwise (or for what is left) wakes the writer task.
    pub fn flush_now(&self) {
        let writer = self.direct.lock().clone();
        if let Some(writer) = writer {
            if self.outbound.try_lock_writer() {
                let result = self.outbound.write_now(|buf| writer.try_write(buf));
                // Bytes queued meanwhile by producers that found the lock taken count too.
                let pending = self.outbound.unlock_writer();
                match result {
                    Ok((_, written)) => {
                        if written > 0 {
                            self.outbound.signal_drained();
                        }
                        if !pending {
                            return;
                        }
                    }
                    Err(_) => {
                        self.close(CloseReason::WriteError);
                    }
                }
            }
        }
        self.outbound.wake();
    }

    /// Starts closing. Returns true for the call that decided the reason.
    pub fn close(&self, reason: CloseReason) -> bool {
        let mut current = self.close_reason.lock();
        if current.is_some() {
            return false;
        }
        *current = Some(reason);
        drop(current);
        if reason == CloseReason::SlowConsumerPendingBytes {
            // Nothing more will be read by this client: don't wait on its socket.
            self.abort_writes.set();
        }
        self.closing.set();
        self.outbound.wake();
        true
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.close_reason.lock()
    }

    pub fn closing(&self) -> &Latch {
        &self.closing
    }

    pub fn abort_writes(&self) -> &Latch {
        &self.abort_writes
    }

    /// Lets the writer task of a connection that stops it explicitly (see [`WriterStop`])
    /// finish, once it has written what is queued.
    pub fn stop_writer(&self) {
        self.writer_stop.set();
    }

    /// What stops this connection's writer task.
    pub fn writer_stop(&self, stop: WriterStop) -> &Latch {
        match stop {
            WriterStop::OnClose => &self.closing,
            WriterStop::Explicit => &self.writer_stop,
        }
    }

    pub fn add_sub(&self, sid: Bytes, sub: Arc<Subscription>) -> bool {
        let mut subs = self.subs.lock();
        if subs.contains_key(&sid) {
            return false;
        }
        subs.insert(sid, sub);
        true
    }

    pub fn get_sub(&self, sid: &[u8]) -> Option<Arc<Subscription>> {
        self.subs.lock().get(sid).cloned()
    }

    pub fn forget_sub(&self, sid: &[u8]) -> Option<Arc<Subscription>> {
        self.subs.lock().remove(sid)
    }

    pub fn num_subs(&self) -> usize {
        self.subs.lock().len()
    }

    /// Removes every subscription (the connection is ending); they are remembered for
    /// [`ClientShared::subs_at_close`].
    pub fn take_subs(&self) -> Vec<Arc<Subscription>> {
        let taken: Vec<_> = self.subs.lock().drain().map(|(_, s)| s).collect();
        let mut at_close = self.subs_at_close.lock();
        // A boxed slice (two words, not three): it is filled once, as the connection ends.
        let mut all = std::mem::take(&mut *at_close).into_vec();
        all.extend(taken.iter().cloned());
        *at_close = all.into_boxed_slice();
        drop(at_close);
        taken
    }

    /// The subscriptions the connection had when it ended: those [`ClientShared::take_subs`]
    /// removed and any still held.
    pub fn subs_at_close(&self) -> Vec<Arc<Subscription>> {
        let mut subs = self.subscriptions();
        subs.extend(self.subs_at_close.lock().iter().cloned());
        subs
    }

    pub fn sub_subjects(&self) -> Vec<String> {
        self.subs.lock().values().map(|s| s.subject.to_string()).collect()
    }

    pub fn subscriptions(&self) -> Vec<Arc<Subscription>> {
        self.subs.lock().values().cloned().collect()
    }

    /// Records activity now (called once per read batch and per write, not per message).
    pub fn touch(&self) {
        self.last_activity.store(unix_nanos(SystemTime::now()), Ordering::Relaxed);
    }

    /// Time since the last read or write.
    pub fn idle_for(&self) -> Duration {
        SystemTime::now().duration_since(self.last_activity()).unwrap_or_default()
    }

    pub fn last_activity(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.last_activity.load(Ordering::Relaxed))
    }

    pub fn set_rtt(&self, rtt: Duration) {
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.rtt_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The last measured round-trip time, if a server PING was ever answered.
    pub fn rtt(&self) -> Option<Duration> {
        match self.rtt_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    /// Every connection (and every idle MQTT session) holds one `Arc<ClientShared>`: it must
    /// stay within the allocator's 640-byte size class (the next one is 768).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn client_shared_fits_a_640_byte_allocation() {
        let arc_counts = 2 * std::mem::size_of::<usize>();
        assert!(std::mem::size_of::<super::ClientShared>() + arc_counts <= 640);
    }
}
