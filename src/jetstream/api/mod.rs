//! The `$JS.API.>` request API.
//!
//! Each JetStream-enabled account has one subscription on `$JS.API.>` (and
//! `$JS.<domain>.API.>` when a domain is set). Its handler only queues the request (bounded,
//! like nats-server's request queue); an API thread takes requests off the queue, dispatches on
//! the subject's tokens to the handler of the endpoint, and publishes the JSON response to the
//! request's reply subject. API work (creating stores, fsyncing folders) thus never runs on a
//! client connection's task. `CONSUMER.MSG.NEXT` is not handled here: each pull consumer has
//! its own subscription for it.

mod consumers;
mod direct;
mod messages;
mod snapshot;
mod streams;

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::account::JsAccount;
use super::errors::ApiError;
use super::json::error_response;
use super::JetStream;
use crate::router::{deliver, InternalHandler, Message, Sink, Subscription};

/// Requests queued before new ones are dropped (nats-server's default request queue limit).
const QUEUE_LIMIT: usize = 10_000;

/// One API request.
pub struct ApiRequest {
    pub account: Weak<JsAccount>,
    /// Subject with any domain prefix removed: `$JS.API.…`.
    pub subject: String,
    pub reply: Option<String>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    /// The connection that asked, if a client did.
    pub client: Option<u64>,
}

/// A response: the body to publish, and whether it is an error (for the API counters).
pub struct ApiResponse {
    pub body: Bytes,
    pub headers: Option<Bytes>,
    pub error: bool,
    /// More messages for the same reply subject, published in order after this one
    /// (batched direct gets): (headers, body).
    pub then: Vec<(Option<Bytes>, Bytes)>,
    /// Work to start once the response is out (a snapshot's chunks follow its reply).
    pub after: Option<Box<dyn FnOnce() + Send>>,
}

impl ApiResponse {
    pub fn json(body: Vec<u8>) -> ApiResponse {
        ApiResponse::raw(None, body.into(), false)
    }

    pub fn error(kind: &str, error: &ApiError) -> ApiResponse {
        ApiResponse::raw(None, error_response(kind, error).into(), true)
    }

    /// A message with optional headers (`error` counts it as a failed request).
    pub fn raw(headers: Option<Bytes>, body: Bytes, error: bool) -> ApiResponse {
        ApiResponse { body, headers, error, then: Vec::new(), after: None }
    }
}

struct ApiHandler {
    account: Weak<JsAccount>,
    queue: SyncSender<ApiRequest>,
    /// `$JS.<domain>.API` when the subscription is the domain one.
    domain_prefix: Option<String>,
}

/// `$JS.API.CONSUMER.MSG.NEXT.` — pull requests, which each pull consumer's own subscription
/// serves.
const NEXT_PREFIX: &str = "$JS.API.CONSUMER.MSG.NEXT.";

impl ApiHandler {
    /// `subject` without the domain prefix: `$JS.API.…`.
    fn api_subject<'a>(&self, subject: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        match &self.domain_prefix {
            Some(prefix) => subject.strip_prefix(prefix.as_str()).map(|rest| format!("$JS.API{rest}").into()),
            None => Some(subject.into()),
        }
    }

    /// The push consumer a pull request names (`MSG.NEXT.<stream>.<consumer>`), which answers
    /// it "409 Consumer is push based" as nats-server's does.
    fn push_consumer(&self, next: &str) -> Option<Arc<crate::jetstream::consumer::Consumer>> {
        let (stream, consumer) = next.split_once('.')?;
        let stream = self.account.upgrade()?.stream(stream).ok()?;
        let consumer = stream.consumers.read().get(consumer).cloned()?;
        (!consumer.is_pull()).then_some(consumer)
    }
}

impl InternalHandler for ApiHandler {
    /// Pull requests are left to the consumers' own subscriptions: one for a consumer that
    /// does not exist then gets no responders, as from nats-server. Push consumers have no such
    /// subscription (it would cost every MQTT session one): their requests are taken here.
    fn takes(&self, msg: &Message<'_>) -> bool {
        match self.api_subject(msg.subject) {
            Some(subject) => match subject.strip_prefix(NEXT_PREFIX) {
                Some(next) => self.push_consumer(next).is_some(),
                None => true,
            },
            None => false,
        }
    }

    fn deliver(&self, msg: &Message<'_>) {
        let Some(subject) = self.api_subject(msg.subject) else { return };
        if let Some(next) = subject.strip_prefix(NEXT_PREFIX) {
            if let (Some(consumer), Some(reply)) = (self.push_consumer(next), msg.reply) {
                consumer.on_next_request(reply, msg.payload);
            }
            return;
        }
        let subject = subject.into_owned();
        let request = ApiRequest {
            account: self.account.clone(),
            subject,
            reply: msg.reply.map(str::to_string),
            headers: msg.headers.cloned(),
            payload: msg.payload.clone(),
            client: msg.origin,
        };
        if let Err(TrySendError::Full(_)) = self.queue.try_send(request) {
            tracing::warn!("JetStream API queue limit reached, dropping request");
        }
    }
}

/// Subscribes `account`'s API subjects and starts its API thread.
pub fn subscribe(js: &Arc<JetStream>, account: &Arc<JsAccount>) {
    let (tx, rx) = sync_channel(QUEUE_LIMIT);
    let mut subjects = vec![("$JS.API.>".to_string(), None)];
    if let Some(domain) = &js.domain {
        subjects.push((format!("$JS.{domain}.API.>"), Some(format!("$JS.{domain}.API"))));
    }
    for (subject, domain_prefix) in subjects {
        let handler = ApiHandler { account: Arc::downgrade(account), queue: tx.clone(), domain_prefix };
        let sub = Subscription::new(subject.as_str().into(), None, Sink::Internal(Arc::new(handler)));
        account.account.sublist.insert(sub);
    }
    let js = Arc::downgrade(js);
    let spawned = std::thread::Builder::new().name("jetstream-api".into()).spawn(move || serve(js, rx));
    if let Err(e) = spawned {
        tracing::error!("can't start the JetStream API thread: {e}");
    }
}

fn serve(js: Weak<JetStream>, rx: Receiver<ApiRequest>) {
    while let Ok(request) = rx.recv() {
        let (Some(js), Some(account)) = (js.upgrade(), request.account.upgrade()) else { return };
        let Some(reply) = request.reply.clone() else { continue };
        let _runtime = js.runtime.enter();
        js.count_request();
        account.api_stats.total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = dispatch(&js, &account, &request);
        if response.error {
            js.count_error();
            account.api_stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let msg = Message::internal(&reply, None, response.headers.as_ref(), &response.body);
        deliver::publish_reply(&account.account, &js.stats, &msg);
        for (headers, body) in &response.then {
            deliver::publish_reply(
                &account.account,
                &js.stats,
                &Message::internal(&reply, None, headers.as_ref(), body),
            );
        }
        audit(&js, &account, &request, &response);
        if let Some(after) = response.after {
            after();
        }
    }
}

/// nats-server's API audit advisory on `$JS.EVENT.ADVISORY.API`: who asked what and the
/// answer, built only when someone listens. Direct gets are not audited (nor by nats-server).
fn audit(js: &JetStream, account: &JsAccount, request: &ApiRequest, response: &ApiResponse) {
    const SUBJECT: &str = "$JS.EVENT.ADVISORY.API";
    if request.subject.starts_with("$JS.API.DIRECT.GET")
        || account.account.sublist.matches(SUBJECT).is_empty()
    {
        return;
    }
    let core = js.core.get().and_then(std::sync::Weak::upgrade);
    let client = match (&core, request.client) {
        (Some(core), Some(id)) => {
            core.client(id).map(|c| crate::monitor::events::client_info(core, &c, None))
        }
        _ => None,
    };
    let mut body = serde_json::json!({
        "type": "io.nats.jetstream.advisory.v1.api_audit",
        "id": crate::jetstream::new_id(),
        "timestamp": super::json::time_text(crate::time::now_nanos()),
        "server": js.server_name,
        "client": client,
        "subject": request.subject,
        "response": String::from_utf8_lossy(&response.body),
    });
    if !request.payload.is_empty() {
        body["request"] = String::from_utf8_lossy(&request.payload).into();
    }
    if let Some(domain) = &js.domain {
        body["domain"] = domain.as_str().into();
    }
    let payload = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    deliver::publish(&account.account, &js.stats, &Message::internal(SUBJECT, None, None, &payload));
}

fn dispatch(js: &Arc<JetStream>, account: &Arc<JsAccount>, req: &ApiRequest) -> ApiResponse {
    let tokens: Vec<&str> = req.subject.split('.').collect();
    let rest = tokens.get(2..).unwrap_or_default();
    match rest {
        ["INFO"] => streams::account_info(js, account),
        ["STREAM", "CREATE", name] => streams::create(account, name, &req.payload),
        ["STREAM", "UPDATE", name] => streams::update(account, name, &req.payload),
        ["STREAM", "DELETE", name] => streams::delete(account, name),
        ["STREAM", "INFO", name] => streams::info(account, name, &req.payload),
        ["STREAM", "NAMES"] => streams::names(account, &req.payload),
        ["STREAM", "LIST"] => streams::list(account, &req.payload),
        ["STREAM", "PURGE", name] => streams::purge(account, name, &req.payload),
        ["STREAM", "SNAPSHOT", name] => snapshot::snapshot(account, name, &req.payload),
        ["STREAM", "RESTORE", name] => snapshot::restore(account, name, &req.payload),
        ["STREAM", "MSG", "GET", name] => messages::get(account, name, &req.payload),
        ["STREAM", "MSG", "DELETE", name] => messages::delete(account, name, &req.payload),
        ["DIRECT", "GET", name] => direct::get(account, name, None, &req.payload),
        ["DIRECT", "GET", name, subject @ ..] => {
            direct::get(account, name, Some(&subject.join(".")), &req.payload)
        }
        ["CONSUMER", "CREATE", stream] => consumers::create(account, stream, None, None, &req.payload, false),
        ["CONSUMER", "CREATE", stream, name] => {
            consumers::create(account, stream, Some(name), None, &req.payload, false)
        }
        ["CONSUMER", "CREATE", stream, name, filter @ ..] => {
            consumers::create(account, stream, Some(name), Some(&filter.join(".")), &req.payload, false)
        }
        ["CONSUMER", "DURABLE", "CREATE", stream, name] => {
            consumers::create(account, stream, Some(name), None, &req.payload, true)
        }
        ["CONSUMER", "INFO", stream, name] => consumers::info(account, stream, name),
        ["CONSUMER", "DELETE", stream, name] => consumers::delete(account, stream, name),
        ["CONSUMER", "NAMES", stream] => consumers::names(account, stream, &req.payload),
        ["CONSUMER", "LIST", stream] => consumers::list(account, stream, &req.payload),
        ["CONSUMER", "PAUSE", stream, name] => consumers::pause(account, stream, name, &req.payload),
        ["CONSUMER", "UNPIN", stream, name] => consumers::unpin(account, stream, name, &req.payload),
        ["CONSUMER", "RESET", stream, name] => consumers::reset(account, stream, name, &req.payload),
        // Cluster operations: refused as by a nats-server that is not clustered.
        ["STREAM", "LEADER", "STEPDOWN", _] => cluster_required("stream_leader_stepdown"),
        ["CONSUMER", "LEADER", "STEPDOWN", _, _] => cluster_required("consumer_leader_stepdown"),
        ["STREAM", "PEER", "REMOVE", _] => cluster_required("stream_remove_peer"),
        // A subject no API serves: nats-server's dispatcher answers a bad request as a system
        // response (2.15.1 then drops it, so its clients wait for a timeout; Jetway's get it).
        _ => ApiResponse::error("system", &ApiError::bad_request()),
    }
}

/// The answer to a cluster operation on a server that is not clustered.
fn cluster_required(kind: &str) -> ApiResponse {
    ApiResponse::error(kind, &ApiError::cluster_required())
}

/// A handler's outcome as a response of `kind`: its JSON body, or the error.
pub fn respond<T: serde::Serialize>(kind: &str, result: Result<T, ApiError>) -> ApiResponse {
    match result {
        Ok(body) => ApiResponse::json(super::json::response(kind, &body)),
        Err(e) => ApiResponse::error(kind, &e),
    }
}

/// Paging request body shared by NAMES and LIST.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagedRequest {
    pub offset: usize,
    pub subject: Option<String>,
}
