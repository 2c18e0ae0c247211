//! The per-connection task.
//!
//! The reader half parses ops out of a `BytesMut` and applies them; the writer half (its own
//! task) drains the outbound queue. A read batch is processed completely before the writers it
//! touched are woken (see [`FlushSet`]). Deadlines: `auth_timeout` until `CONNECT` when
//! authentication is required, PINGs as nats-server sends them (see [`super::ping`]) with at
//! most `ping_max` unanswered, and `write_deadline` on every write.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use foldhash::fast::RandomState;
use jetway_protocols::nats::{encode, ClientOp, ConnectOptions, ParseError, Parser, ParserLimits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::{ClientShared, CloseReason, WriterStop};
use crate::account::auth::Credentials;
use crate::account::grants::ConnectionPermissions;
use crate::account::imports::SERVICE_REPLY_PREFIX;
use crate::account::mappings::Mapped;
use crate::account::permissions::PublishCache;
use crate::account::Account;
use crate::router::deliver::DeliveryScope;
use crate::router::{FlushSet, MatchResult, Message, Sink, Subscription};
use crate::server::Core;

/// Subjects remembered by the per-connection match cache.
const L1_CACHE_MAX: usize = 64;
/// Subjects of JetStream acks (`$JS.ACK.<stream>.<consumer>...`): unique per message.
const JS_ACK_PREFIX: &[u8] = b"$JS.ACK.";
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

/// Whether the connection task still has to send INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    SendInfo,
    /// INFO went out in plain text before the TLS handshake.
    InfoAlreadySent,
}

/// Runs a connection until it closes. The two halves of the byte stream are separate so a TCP
/// socket can be split without a lock (`into_split`).
pub async fn serve<R, W>(core: Arc<Core>, client: Arc<ClientShared>, reader: R, writer: W, greeting: Greeting)
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    let write_task =
        tokio::spawn(write_loop(client.clone(), writer, core.config.write_deadline, WriterStop::OnClose));
    let mut session = Session::new(core.clone(), client.clone());
    if greeting == Greeting::SendInfo {
        session.send_info();
    }
    let reason = session.read_loop(reader).await;
    client.close(reason);
    session.cleanup();
    let _ = write_task.await;
    core.unregister(&client);
}

/// Drains `client`'s outbound queue into `writer` until `stop` is cancelled and everything
/// queued before that is written. NATS connections stop when the client starts closing; the
/// MQTT gateway passes its own token so that it can queue a last packet (a DISCONNECT with a
/// reason) after the close was decided.
pub(crate) async fn write_loop<W: AsyncWrite + Send>(
    client: Arc<ClientShared>,
    writer: W,
    deadline: Duration,
    stop: WriterStop,
) {
    let stop = client.writer_stop(stop);
    tokio::pin!(writer);
    let mut chunks = VecDeque::new();
    'run: loop {
        let closing = stop.is_set();
        if !client.outbound.try_lock_writer() {
            // A direct writer is at work; it wakes this task if it leaves bytes behind.
            if closing {
                tokio::task::yield_now().await;
            } else {
                tokio::select! {
                    _ = client.outbound.wait() => {}
                    _ = stop.wait() => {}
                }
            }
            continue;
        }
        if !client.outbound.take(&mut chunks) {
            if client.outbound.unlock_writer() {
                continue; // queued since the take
            }
            if closing {
                break;
            }
            if chunks.capacity() > 0 && !client.outbound.has_free_chunks() {
                // The connection went idle (its chunks were handed back): so does this.
                chunks = VecDeque::new();
            }
            tokio::select! {
                _ = client.outbound.wait() => {}
                _ = stop.wait() => {}
            }
            continue;
        }
        // Boxed, one allocation per batch: the write's timer and futures then take no room
        // in the task while it waits for output (most connections, most of the time).
        let writing = Box::pin(write_batch(writer.as_mut(), &chunks, deadline, &client));
        match writing.await {
            BatchWritten::All => {}
            BatchWritten::Aborted => break 'run,
            BatchWritten::Failed => {
                client.close(CloseReason::WriteError);
                break 'run;
            }
            BatchWritten::DeadlinePassed => {
                if client.close(CloseReason::SlowConsumerWriteDeadline) {
                    tracing::debug!(cid = client.id, "slow consumer: write deadline exceeded");
                }
                break 'run;
            }
        }
        client.touch();
        client.outbound.recycle(&mut chunks);
        // Whatever is pending now is taken on the next turn of the loop.
        let _ = client.outbound.unlock_writer();
        client.outbound.signal_drained();
    }
    client.clear_direct_writer();
    client.outbound.close();
    let _ = tokio::time::timeout(deadline, writer.shutdown()).await;
}

/// How [`write_batch`] ended.
enum BatchWritten {
    All,
    /// Pending output is to be dropped (`abort_writes`).
    Aborted,
    Failed,
    /// A chunk took longer than the write deadline.
    DeadlinePassed,
}

/// Writes `chunks` in order, each within `deadline`, unless the client's writes are aborted.
async fn write_batch<W: AsyncWrite>(
    mut writer: std::pin::Pin<&mut W>,
    chunks: &VecDeque<BytesMut>,
    deadline: Duration,
    client: &ClientShared,
) -> BatchWritten {
    for chunk in chunks {
        let write = tokio::select! {
            w = tokio::time::timeout(deadline, writer.write_all(chunk)) => w,
            _ = client.abort_writes().wait() => return BatchWritten::Aborted,
        };
        match write {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return BatchWritten::Failed,
            Err(_) => return BatchWritten::DeadlinePassed,
        }
    }
    BatchWritten::All
}

struct Session {
    core: Arc<Core>,
    /// The account this client publishes and subscribes in (set at CONNECT).
    account: Arc<Account>,
    /// Publish permission answers per subject (used only when the user has permissions).
    pub_cache: PublishCache,
    client: Arc<ClientShared>,
    parser: Parser,
    opts: ConnectOptions,
    connected: bool,
    pings_out: u32,
    ping: super::ping::PingSchedule,
    /// When the oldest unanswered server PING was sent, to measure RTT on its PONG.
    ping_sent: Option<tokio::time::Instant>,
    /// Per-connection match cache in front of the sublist's, valid for one generation.
    l1: HashMap<Bytes, Arc<MatchResult>, RandomState>,
    l1_generation: u64,
    flush: FlushSet,
    /// Inbound traffic of the current read batch, added to the shared counters once per batch.
    batch_in_msgs: u64,
    batch_in_bytes: u64,
}

/// What to do after an op.
enum Next {
    Continue,
    Close(CloseReason),
}

impl Session {
    fn new(core: Arc<Core>, client: Arc<ClientShared>) -> Self {
        let limits = ParserLimits {
            max_payload: core.config.max_payload as usize,
            max_control_line: core.config.max_control_line as usize,
            headers: false,
        };
        let stats = core.stats.clone();
        let ping_interval = core.config.ping_interval.max(Duration::from_millis(10));
        let ping = super::ping::PingSchedule::new(ping_interval, tokio::time::Instant::now());
        // Counted in its account at CONNECT, once the account is known.
        let account = core.accounts.global().clone();
        Session {
            account,
            pub_cache: PublishCache::default(),
            core,
            client,
            parser: Parser::new(limits),
            opts: ConnectOptions::default(),
            connected: false,
            pings_out: 0,
            ping,
            ping_sent: None,
            l1: HashMap::default(),
            l1_generation: 0,
            flush: FlushSet::new(stats),
            batch_in_msgs: 0,
            batch_in_bytes: 0,
        }
    }

    fn send_info(&self) {
        let mut buf = BytesMut::new();
        encode::info(&mut buf, &self.core.client_info_for(&self.client));
        self.client.send_raw(&buf);
    }

    fn send_err(&self, text: &str) {
        let mut buf = BytesMut::new();
        encode::err(&mut buf, text);
        self.client.send_raw(&buf);
    }

    async fn read_loop<R: AsyncRead>(&mut self, reader: R) -> CloseReason {
        tokio::pin!(reader);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let auth_required = self.core.auth().required();
        let auth_deadline = tokio::time::sleep(self.core.config.authorization.timeout);
        tokio::pin!(auth_deadline);
        let ping = tokio::time::sleep_until(self.ping.due());
        tokio::pin!(ping);
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) => return CloseReason::ClientClosed,
                    Ok(_) => {
                        self.client.touch();
                        self.ping.received(tokio::time::Instant::now());
                        let next = {
                            // Stream writes that need no fsync are done by this task when the
                            // batch ends, not handed to a storage thread (see `WriteBatch`).
                            // Declared first, dropped last: the acks the batch's writes complete
                            // are written to their sockets directly when it ends, not by waking
                            // this client's writer task for bytes `end_batch` sends anyway.
                            let _deliveries = DeliveryScope::begin(&self.core.stats);
                            let _writes = jetway_storage::WriteBatch::begin();
                            self.process(&mut buf)
                        };
                        self.end_batch();
                        if ping.deadline() != self.ping.due() {
                            ping.as_mut().reset(self.ping.due()); // CONNECT moved it
                        }
                        self.flush.wait_stalled().await;
                        if let Next::Close(reason) = next {
                            return reason;
                        }
                    }
                    Err(_) => return CloseReason::ReadError,
                },
                _ = &mut ping => {
                    let now = tokio::time::Instant::now();
                    if self.ping.ping_now(now, self.client.rtt().is_some()) {
                        if self.pings_out + 1 > self.core.config.ping_max {
                            self.send_err("Stale Connection");
                            self.core.stats.stale_connections.fetch_add(1, Ordering::Relaxed);
                            return CloseReason::StaleConnection;
                        }
                        self.pings_out += 1;
                        self.ping_sent.get_or_insert(now);
                        self.client.send_raw(encode::PING);
                    }
                    ping.as_mut().reset(self.ping.due());
                }
                _ = &mut auth_deadline, if auth_required && !self.connected => {
                    self.send_err("Authentication Timeout");
                    return CloseReason::AuthenticationTimeout;
                }
                _ = self.client.closing().wait() => {
                    return self.client.close_reason().unwrap_or(CloseReason::ServerShutdown);
                }
            }
        }
    }

    /// Applies every complete op in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Next {
        loop {
            let op = match self.parser.parse(buf) {
                Ok(Some(op)) => op,
                Ok(None) => return Next::Continue,
                Err(e) => return Next::Close(self.parse_error(e)),
            };
            if !self.connected && self.core.auth().required() && !matches!(op, ClientOp::Connect(_)) {
                self.send_err("Authorization Violation");
                return Next::Close(CloseReason::AuthenticationViolation);
            }
            // Verbose mode acknowledges CONNECT, SUB and UNSUB here, as nats-server does;
            // PUB before its delivery (in on_pub); PING, PONG and a refused SUB never.
            let (next, acknowledged) = match op {
                ClientOp::Pub { subject, reply, headers, payload } => {
                    self.on_pub(&subject, reply.as_ref(), headers.as_ref(), &payload);
                    (Next::Continue, false)
                }
                ClientOp::Sub { subject, queue, sid } => (Next::Continue, self.on_sub(subject, queue, sid)),
                ClientOp::Unsub { sid, max_msgs } => {
                    self.on_unsub(&sid, max_msgs);
                    (Next::Continue, true)
                }
                ClientOp::Ping => {
                    self.client.send_raw(encode::PONG);
                    (Next::Continue, false)
                }
                ClientOp::Pong => {
                    self.pings_out = 0;
                    if let Some(sent) = self.ping_sent.take() {
                        self.client.set_rtt(sent.elapsed());
                    }
                    (Next::Continue, false)
                }
                ClientOp::Connect(json) => (self.on_connect(&json), true),
                ClientOp::Ok | ClientOp::Err => (Next::Continue, false),
            };
            if let Next::Close(_) = next {
                return next;
            }
            if self.opts.verbose && acknowledged {
                self.client.send_raw(encode::OK);
            }
        }
    }

    fn parse_error(&self, e: ParseError) -> CloseReason {
        match e {
            // A payload running into what follows it reads, as for nats-server's parser, as an
            // unknown operation.
            ParseError::UnknownOp | ParseError::BadPayloadTerminator => {
                self.send_err("Unknown Protocol Operation");
                CloseReason::ProtocolViolation
            }
            ParseError::MaxControlLine { max, len } => {
                tracing::debug!(cid = self.client.id, max, len, "maximum control line exceeded");
                self.send_err("maximum control line exceeded");
                CloseReason::MaxControlLineExceeded
            }
            ParseError::MaxPayload { .. } => {
                self.send_err("Maximum Payload Violation");
                CloseReason::MaxPayloadExceeded
            }
            // nats-server closes on malformed arguments without an -ERR.
            other => {
                tracing::debug!(cid = self.client.id, error = %other, "protocol violation");
                CloseReason::ProtocolViolation
            }
        }
    }

    fn on_connect(&mut self, json: &[u8]) -> Next {
        let opts = match ConnectOptions::decode(json) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(cid = self.client.id, error = %e, "bad CONNECT");
                return Next::Close(CloseReason::ProtocolViolation);
            }
        };
        let nonce = self.core.nonce_of(&self.client);
        let creds = Credentials {
            user: opts.user.as_deref(),
            pass: opts.pass.as_deref(),
            token: opts.auth_token.as_deref(),
            cert: self.client.tls.get().and_then(|t| t.peer.as_ref()),
            nkey: opts.nkey.as_deref(),
            sig: opts.sig.as_deref(),
            nonce: nonce.as_deref().map(str::as_bytes),
            kind: self.client.kind(),
        };
        let Some(login) = self.core.log_in(&self.client, &creds) else {
            tracing::debug!(cid = self.client.id, user = ?opts.user, "authorization violation");
            self.send_err("Authorization Violation");
            return Next::Close(CloseReason::AuthenticationViolation);
        };
        // A repeated CONNECT keeps the login of the first.
        if !self.connected {
            if !login.account.try_connection_opened() {
                self.send_err("maximum account active connections exceeded");
                return Next::Close(CloseReason::MaxConnectionsExceeded);
            }
            self.account = login.account.clone();
            if let Some(perms) = login.permissions() {
                let _ = self.client.permissions.set(Box::new(ConnectionPermissions::new(perms.clone())));
            }
            // A first RTT estimate, as nats-server makes: from accept to CONNECT (server PINGs
            // measure it properly later).
            if self.client.rtt().is_none() {
                let since_accept = std::time::SystemTime::now().duration_since(self.client.started);
                self.client.set_rtt(since_accept.unwrap_or_default());
            }
        }
        let headers = opts.headers && !self.core.config.no_header_support;
        if opts.no_responders && !headers {
            self.send_err("no responders requires headers support");
            return Next::Close(CloseReason::ProtocolViolation);
        }
        self.parser.limits.headers = headers;
        {
            let mut id = self.client.identity.lock();
            id.name = opts.name.as_deref().map(Into::into);
            id.lang = opts.lang.as_deref().map(Into::into);
            id.version = opts.version.as_deref().map(Into::into);
            id.user = login.user_name().or(opts.user.as_deref()).map(Into::into);
        }
        self.opts = opts;
        if !self.connected {
            crate::monitor::events::client_connected(&self.core, &self.client);
            self.ping.connected(tokio::time::Instant::now(), rand::random::<f64>());
        }
        self.connected = true;
        Next::Continue
    }

    fn on_pub(&mut self, subject: &Bytes, reply: Option<&Bytes>, headers: Option<&Bytes>, payload: &Bytes) {
        let size = payload.len() + headers.map_or(0, Bytes::len);
        self.client.counters.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.client.counters.in_bytes.fetch_add(size as u64, Ordering::Relaxed);
        self.core.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.core.stats.in_bytes.fetch_add(size as u64, Ordering::Relaxed);
        let (Ok(subject_str), Ok(reply_str)) =
            (std::str::from_utf8(subject), reply.map(|r| std::str::from_utf8(r)).transpose())
        else {
            if self.opts.pedantic {
                self.send_err("Invalid Publish Subject");
            }
            return;
        };
        // As nats-server: pedantic mode reports a wildcard subject, then publishes anyway.
        if self.opts.pedantic && !jetway_subject::is_valid_literal(subject_str) {
            self.send_err("Invalid Publish Subject");
        }
        // A subject mapping decides the subject before permissions and routing see it.
        let mapped = match self.account.map_subject(subject_str) {
            Mapped::Unchanged => None,
            Mapped::To(to) => Some((Bytes::copy_from_slice(to.as_bytes()), to)),
            Mapped::Dropped => {
                if self.opts.verbose {
                    self.client.send_raw(encode::OK);
                }
                return;
            }
        };
        let (subject, subject_str) = match &mapped {
            Some((bytes, text)) => (bytes, text.as_str()),
            None => (subject, subject_str),
        };
        if let Some(perms) = self.client.permissions.get() {
            if !self.pub_cache.allowed(&perms.rules, subject) && !perms.use_response_grant(subject_str) {
                tracing::debug!(cid = self.client.id, subject = subject_str, "publish violation");
                self.send_err(&format!("Permissions Violation for Publish to {subject_str:?}"));
                return;
            }
        }
        // Service-import replies are minted by the server; a client must not forge them.
        if let Some(reply) = reply_str.filter(|r| r.starts_with(SERVICE_REPLY_PREFIX)) {
            self.send_err(&format!("Permissions Violation for Publish with Reply of {reply:?}"));
            return;
        }
        if self.opts.verbose {
            self.client.send_raw(encode::OK);
        }
        let result = self.lookup(subject);
        let msg = Message {
            subject: subject_str,
            reply: reply_str,
            headers,
            payload,
            origin: Some(self.client.id),
            echo: self.opts.echo,
        };
        let delivered =
            crate::router::deliver::deliver(&self.account.sublist, &result, &msg, &mut self.flush);
        if delivered == 0 && self.opts.no_responders {
            if let Some(reply) = reply_str {
                self.no_responders(subject_str, reply);
            }
        }
    }

    /// Sends the `NATS/1.0 503` status to this client's own subscription matching `reply`.
    fn no_responders(&mut self, subject: &str, reply: &str) {
        let result = self.account.sublist.matches(reply);
        let Some(sub) = result.plain.iter().find(|s| s.client_id() == Some(self.client.id)) else {
            return;
        };
        let Sink::Client { sid, .. } = &sub.sink else {
            return;
        };
        let headers = Bytes::from(format!("NATS/1.0 503\r\nNats-Subject: {subject}\r\n\r\n"));
        let empty = Bytes::new();
        let msg = Message {
            subject: reply,
            reply: None,
            headers: Some(&headers),
            payload: &empty,
            origin: None,
            echo: true,
        };
        if self.client.push_msg(&msg, sid).wake {
            self.flush.add(&self.client);
        }
    }

    /// The routes of a published subject, through the connection's and the account's caches.
    fn lookup(&mut self, subject: &Bytes) -> Arc<MatchResult> {
        let generation = self.account.sublist.generation();
        if generation != self.l1_generation {
            self.l1.clear();
            self.l1_generation = generation;
        } else if let Some(hit) = self.l1.get(subject) {
            return hit.clone();
        }
        let Ok(subject_str) = std::str::from_utf8(subject) else {
            return Arc::new(MatchResult::default());
        };
        if subject.starts_with(JS_ACK_PREFIX) {
            // Every ack subject is unique: caching it would only evict entries that repeat.
            return self.account.sublist.matches_transient(subject_str);
        }
        let result = self.account.sublist.matches(subject_str);
        if self.l1.len() >= L1_CACHE_MAX {
            self.l1.clear();
        }
        self.l1.insert(subject.clone(), result.clone());
        result
    }

    /// Subscribes; false when the subscription was refused (with an -ERR, and no `+OK`).
    fn on_sub(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) -> bool {
        let (Ok(subject), Ok(queue)) =
            (std::str::from_utf8(&subject), queue.as_deref().map(std::str::from_utf8).transpose())
        else {
            self.send_err("Invalid Subject");
            return false;
        };
        if !jetway_subject::is_valid_filter(subject)
            || queue.is_some_and(|q| !jetway_subject::is_valid_token(q))
        {
            self.send_err("Invalid Subject");
            return false;
        }
        if let Some(perms) = self.client.permissions.get() {
            if !perms.rules.subscribe_allowed(subject, queue) {
                tracing::debug!(cid = self.client.id, subject, ?queue, "subscription violation");
                self.send_err(&match queue {
                    Some(q) => {
                        format!("Permissions Violation for Subscription to {subject:?} using queue {q:?}")
                    }
                    None => format!("Permissions Violation for Subscription to {subject:?}"),
                });
                return false;
            }
        }
        let max = self.core.config.max_subscriptions as usize;
        if max > 0 && self.client.num_subs() >= max {
            self.send_err("maximum subscriptions exceeded");
            return false;
        }
        let sink = Sink::Client { client: self.client.clone(), sid: sid.clone() };
        let sub = Subscription::new(subject.into(), queue.map(Into::into), sink);
        // A repeated sid is ignored, as nats-server does.
        if self.client.add_sub(sid, sub.clone()) {
            self.account.sublist.insert(sub);
        }
        true
    }

    fn on_unsub(&mut self, sid: &[u8], max_msgs: Option<u64>) {
        let Some(sub) = self.client.get_sub(sid) else {
            return;
        };
        if let Some(max) = max_msgs.filter(|m| *m > 0) {
            if !sub.set_max_msgs(max) {
                return;
            }
        }
        self.client.forget_sub(sid);
        self.account.sublist.remove(&sub);
    }

    /// Wakes the writers this batch touched and publishes its counters.
    fn end_batch(&mut self) {
        // Replies to this client made during the batch (publish acks completed by the batch's
        // writes, PONGs) go out with it, written directly like deliveries to others.
        if self.client.outbound.pending_bytes() > 0 {
            self.flush.add(&self.client);
        }
        self.flush.flush();
        if self.batch_in_msgs > 0 {
            let (msgs, bytes) = (self.batch_in_msgs, self.batch_in_bytes);
            self.client.counters.in_msgs.fetch_add(msgs, Ordering::Relaxed);
            self.client.counters.in_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.core.stats.in_msgs.fetch_add(msgs, Ordering::Relaxed);
            self.core.stats.in_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.batch_in_msgs = 0;
            self.batch_in_bytes = 0;
        }
    }

    fn cleanup(&mut self) {
        if self.connected {
            self.account.connection_closed();
        }
        for sub in self.client.take_subs() {
            self.account.sublist.remove(&sub);
        }
        self.l1.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::nats::client::{ClientShared, WriterStop};

    /// Every connection's task holds its writer while it waits for output: the timer and the
    /// write of a batch are boxed per batch so that they do not size it (392 bytes before).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_idle_writer_stays_small() {
        let stats = Arc::new(crate::stats::ServerStats::default());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let client = Arc::new(ClientShared::new(1, addr, 1024, stats));
        let writer = super::write_loop(
            client,
            tokio::io::sink(),
            std::time::Duration::from_secs(1),
            WriterStop::Explicit,
        );
        assert!(std::mem::size_of_val(&writer) <= 320, "{} bytes", std::mem::size_of_val(&writer));
    }
}
