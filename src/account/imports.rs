//! Stream and service imports: the deliberate holes between accounts.
//!
//! Both are internal subscriptions, so the router stays per-account:
//! - a **stream import** subscribes in the exporting account and republishes each message
//!   into the importing account (subject optionally prefixed or remapped);
//! - a **service import** subscribes in the importing account on the local subject; a
//!   request is republished into the exporting account with its reply subject replaced by a
//!   reserved `_R_.<import>.<n>` subject, on which a second internal subscription (in the
//!   exporter) waits for the response and republishes it into the importer on the original
//!   reply subject. nats-server does the same with its `_R_` subjects; clients may not use
//!   `_R_.` as their own reply prefix (see `nats::connection`).
//!
//! Exports are checked at startup: an import of something not exported to the importer is a
//! configuration error.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use parking_lot::Mutex;

use super::mappings::Mapped;
use super::{Account, Accounts};
use crate::config::{AccountsConfig, ExportConfig, ImportConfig};
use crate::router::{InternalHandler, Message, Sink, Subscription};
use crate::stats::ServerStats;

/// Reply subjects of service imports start with this; clients may not use it.
pub const SERVICE_REPLY_PREFIX: &str = "_R_.";
/// How long a service import waits for responses to one request (nats-server's default
/// response threshold).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Requests awaiting a response per service import; past this, new requests are dropped
/// (the requester times out) rather than the table growing without bound.
const MAX_PENDING_REQUESTS: usize = 100_000;
/// Imports that feed imports: a message may cross this many accounts, which stops cycles
/// (A imports from B imports from A) from looping forever.
const MAX_HOPS: u32 = 8;

/// A configured import that cannot be installed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("account {importer:?} imports from unknown account {exporter:?}")]
    UnknownAccount { importer: String, exporter: String },
    #[error("account {importer:?} imports {kind} {subject:?} from {exporter:?}, which does not export it to {importer:?}")]
    NotExported { importer: String, exporter: String, kind: &'static str, subject: String },
    #[error("account {importer:?}: an import needs exactly one of `stream` or `service`")]
    Malformed { importer: String },
    #[error("account {importer:?}: invalid import subject mapping {from:?} -> {to:?}")]
    Mapping { importer: String, from: String, to: String },
}

thread_local! {
    static HOPS: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` one import hop deeper; skips it past [`MAX_HOPS`].
fn hop(f: impl FnOnce()) {
    HOPS.with(|hops| {
        let depth = hops.get();
        if depth >= MAX_HOPS {
            return;
        }
        hops.set(depth + 1);
        f();
        hops.set(depth);
    });
}

/// Installs every import of `config` into `accounts` (which hold every configured account).
pub fn install(
    config: &AccountsConfig,
    accounts: &Accounts,
    stats: &Arc<ServerStats>,
) -> Result<(), ImportError> {
    for (importer_name, block) in config {
        let importer = accounts.get_or_create(importer_name);
        for import in &block.imports {
            install_one(config, accounts, stats, &importer, import)?;
        }
    }
    Ok(())
}

fn install_one(
    config: &AccountsConfig,
    accounts: &Accounts,
    stats: &Arc<ServerStats>,
    importer: &Arc<Account>,
    import: &ImportConfig,
) -> Result<(), ImportError> {
    let importer_name = importer.name.to_string();
    let (source, kind) = match (&import.stream, &import.service) {
        (Some(s), None) => (s, "stream"),
        (None, Some(s)) => (s, "service"),
        _ => return Err(ImportError::Malformed { importer: importer_name }),
    };
    let unknown =
        || ImportError::UnknownAccount { importer: importer_name.clone(), exporter: source.account.clone() };
    let exporter_cfg = config.get(&source.account).ok_or_else(unknown)?;
    let exporter = accounts.get(&source.account).ok_or_else(unknown)?;
    let export =
        exporter_cfg.exports.iter().find(|e| exports(e, kind, &source.subject, &importer_name)).ok_or_else(
            || ImportError::NotExported {
                importer: importer_name.clone(),
                exporter: source.account.clone(),
                kind,
                subject: source.subject.clone(),
            },
        )?;
    let bad_mapping = |to: &str| ImportError::Mapping {
        importer: importer_name.clone(),
        from: source.subject.clone(),
        to: to.to_string(),
    };
    if kind == "stream" {
        let to = match (&import.prefix, &import.to) {
            (Some(prefix), _) => Some(format!("{prefix}.{}", source.subject)),
            (None, to) => to.clone(),
        };
        let map = SubjectMap::new(&source.subject, to.as_deref())
            .ok_or_else(|| bad_mapping(to.as_deref().unwrap_or("")))?;
        importer.imports.write().push(ImportRoute {
            kind: ImportKind::Stream,
            exporter: Arc::downgrade(&exporter),
            map: map.clone(),
        });
        let handler = Arc::new(StreamImport { target: importer.clone(), map, stats: stats.clone() });
        exporter.sublist.insert(Subscription::new(
            source.subject.as_str().into(),
            None,
            Sink::Internal(handler),
        ));
        return Ok(());
    }
    // Service: the importer's clients request on `to` (default: the exported subject).
    let local = import.to.clone().unwrap_or_else(|| source.subject.clone());
    let map = SubjectMap::new(&local, Some(&source.subject)).ok_or_else(|| bad_mapping(&local))?;
    importer.imports.write().push(ImportRoute {
        kind: ImportKind::Service,
        exporter: Arc::downgrade(&exporter),
        map: map.clone(),
    });
    let multiple = export.response_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("singleton"));
    let prefix = format!("{SERVICE_REPLY_PREFIX}{}.", crate::jetstream::new_id());
    let service = Arc::new(ServiceImport {
        importer: importer.clone(),
        exporter: exporter.clone(),
        map,
        reply_prefix: prefix.clone(),
        multiple_responses: multiple,
        next: AtomicU64::new(1),
        pending: Mutex::default(),
        stats: stats.clone(),
    });
    let responses = Arc::new(ServiceResponses(service.clone()));
    exporter.sublist.insert(Subscription::new(format!("{prefix}*").into(), None, Sink::Internal(responses)));
    importer.sublist.insert(Subscription::new(local.into(), None, Sink::Internal(service)));
    Ok(())
}

/// An installed import as its importer keeps it, for questions about where subjects lead.
pub(crate) struct ImportRoute {
    kind: ImportKind,
    exporter: Weak<Account>,
    /// Service: from the importer's subject to the exporter's. Stream: from the exporter's
    /// subject to the importer's.
    map: SubjectMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportKind {
    Stream,
    Service,
}

/// Where a request published on `subject` in `account` is served, by the account's service
/// imports: the exporting account and the subject there (one hop: an exporter's own imports
/// are not followed).
pub fn service_target(account: &Account, subject: &str) -> Option<(Arc<Account>, String)> {
    let imports = account.imports.read();
    let route = imports
        .iter()
        .find(|r| r.kind == ImportKind::Service && jetway_subject::matches(&r.map.from, subject))?;
    Some((route.exporter.upgrade()?, route.map.apply(subject).into_owned()))
}

/// The subject under which a message published on `subject` in `exporter` reaches
/// `account` by one of its stream imports, if one takes it.
pub fn stream_import_subject(account: &Account, exporter: &Account, subject: &str) -> Option<String> {
    let imports = account.imports.read();
    imports
        .iter()
        .filter(|r| r.kind == ImportKind::Stream && jetway_subject::matches(&r.map.from, subject))
        .find(|r| r.exporter.upgrade().is_some_and(|e| std::ptr::eq(&*e, exporter)))
        .map(|r| r.map.apply(subject).into_owned())
}

/// Whether `export` offers `kind` `subject` to `importer`.
fn exports(export: &ExportConfig, kind: &str, subject: &str, importer: &str) -> bool {
    let offered = if kind == "stream" { &export.stream } else { &export.service };
    offered.as_deref().is_some_and(|o| jetway_subject::filter_is_subset(subject, o))
        && export.accounts.as_ref().is_none_or(|list| list.iter().any(|a| a == importer))
}

/// Rewrites subjects matched by a filter: wildcards in `to` take the tokens the filter's
/// wildcards matched, in order; a literal `to` replaces a literal filter.
#[derive(Debug, Clone)]
struct SubjectMap {
    from: String,
    to: Option<String>,
}

impl SubjectMap {
    fn new(from: &str, to: Option<&str>) -> Option<SubjectMap> {
        if let Some(to) = to {
            let wild = |s: &str| s.split('.').filter(|t| *t == "*" || *t == ">").count();
            let valid = jetway_subject::is_valid_filter(to)
                && (wild(to) == wild(from)
                    || (jetway_subject::is_literal(from) && jetway_subject::is_literal(to)));
            if !valid {
                return None;
            }
        }
        Some(SubjectMap { from: from.to_string(), to: to.filter(|t| *t != from).map(str::to_string) })
    }

    fn apply<'a>(&self, subject: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(to) = &self.to else {
            return subject.into();
        };
        if jetway_subject::is_literal(to) {
            return to.clone().into();
        }
        let mut captured: Vec<String> = Vec::new();
        let mut tokens = subject.split('.');
        for f in self.from.split('.') {
            match f {
                ">" => captured.push(tokens.by_ref().collect::<Vec<_>>().join(".")),
                "*" => captured.push(tokens.next().unwrap_or_default().to_string()),
                _ => {
                    tokens.next();
                }
            }
        }
        let mut captured = captured.into_iter();
        let out: Vec<String> = to
            .split('.')
            .map(|t| match t {
                "*" | ">" => captured.next().unwrap_or_default(),
                lit => lit.to_string(),
            })
            .collect();
        out.join(".").into()
    }
}

/// Republishes an exporter's messages into the importer.
struct StreamImport {
    target: Arc<Account>,
    map: SubjectMap,
    stats: Arc<ServerStats>,
}

impl InternalHandler for StreamImport {
    fn deliver(&self, msg: &Message<'_>) {
        let subject = self.map.apply(msg.subject);
        let routed = Message::internal(&subject, msg.reply, msg.headers, msg.payload);
        hop(|| {
            crate::router::deliver::publish(&self.target, &self.stats, &routed);
        });
    }
}

/// A request awaiting its response(s).
struct Pending {
    reply: Box<str>,
    sent: Instant,
}

/// Forwards the importer's requests to the exporter.
struct ServiceImport {
    importer: Arc<Account>,
    exporter: Arc<Account>,
    map: SubjectMap,
    /// `_R_.<id>.`; the request number follows.
    reply_prefix: String,
    /// `response_type: stream | chunked`: keep the mapping until it expires.
    multiple_responses: bool,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Pending, RandomState>>,
    stats: Arc<ServerStats>,
}

impl InternalHandler for ServiceImport {
    fn deliver(&self, msg: &Message<'_>) {
        let subject = self.map.apply(msg.subject);
        // The exporter's subject mappings apply to what its service is asked (nats-server).
        let subject = match self.exporter.map_subject(&subject) {
            Mapped::Unchanged => subject,
            Mapped::To(mapped) => mapped.into(),
            Mapped::Dropped => return,
        };
        let reply = msg.reply.and_then(|reply| {
            let mut pending = self.pending.lock();
            if pending.len() >= MAX_PENDING_REQUESTS {
                pending.retain(|_, p| p.sent.elapsed() < RESPONSE_TIMEOUT);
                if pending.len() >= MAX_PENDING_REQUESTS {
                    return None;
                }
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            pending.insert(n, Pending { reply: reply.into(), sent: Instant::now() });
            Some(format!("{}{n}", self.reply_prefix))
        });
        if msg.reply.is_some() && reply.is_none() {
            return;
        }
        let routed = Message::internal(&subject, reply.as_deref(), msg.headers, msg.payload);
        hop(|| {
            crate::router::deliver::publish(&self.exporter, &self.stats, &routed);
        });
    }
}

/// Routes responses on the import's `_R_` subjects back to the requester.
struct ServiceResponses(Arc<ServiceImport>);

impl InternalHandler for ServiceResponses {
    fn deliver(&self, msg: &Message<'_>) {
        let service = &self.0;
        let Some(n) =
            msg.subject.strip_prefix(service.reply_prefix.as_str()).and_then(|n| n.parse::<u64>().ok())
        else {
            return;
        };
        let reply = {
            let mut pending = service.pending.lock();
            let expired = pending.get(&n).is_some_and(|p| p.sent.elapsed() >= RESPONSE_TIMEOUT);
            if expired || !service.multiple_responses {
                pending.remove(&n).filter(|_| !expired).map(|p| p.reply)
            } else {
                pending.get(&n).map(|p| p.reply.clone())
            }
        };
        let Some(reply) = reply else {
            return;
        };
        let routed = Message::internal(&reply, None, msg.headers, msg.payload);
        hop(|| {
            crate::router::deliver::publish(&service.importer, &service.stats, &routed);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_maps_prefix_rename_and_move_wildcards() {
        let same = SubjectMap::new("a.>", None).unwrap_or_else(|| panic!("valid"));
        assert_eq!(same.apply("a.b.c"), "a.b.c");
        let prefixed = SubjectMap::new("a.>", Some("p.a.>")).unwrap_or_else(|| panic!("valid"));
        assert_eq!(prefixed.apply("a.b.c"), "p.a.b.c");
        let renamed = SubjectMap::new("time", Some("clock")).unwrap_or_else(|| panic!("valid"));
        assert_eq!(renamed.apply("time"), "clock");
        let moved = SubjectMap::new("dev.*.temp", Some("sensors.*")).unwrap_or_else(|| panic!("valid"));
        assert_eq!(moved.apply("dev.d1.temp"), "sensors.d1");
        assert!(SubjectMap::new("a.*", Some("b")).is_none());
    }

    #[test]
    fn imports_say_where_requests_go_and_what_messages_arrive_as() {
        use crate::config::{AccountConfig, AccountsConfig, ExportConfig, ImportConfig, ImportSource};
        let source = |account: &str, subject: &str| {
            Some(ImportSource { account: account.into(), subject: subject.into() })
        };
        let mut config = AccountsConfig::new();
        config.insert(
            "A".into(),
            AccountConfig {
                exports: vec![
                    ExportConfig { service: Some("$JS.API.>".into()), ..Default::default() },
                    ExportConfig { stream: Some("deliver.b.>".into()), ..Default::default() },
                ],
                ..Default::default()
            },
        );
        config.insert(
            "B".into(),
            AccountConfig {
                imports: vec![
                    ImportConfig {
                        service: source("A", "$JS.API.>"),
                        to: Some("$JS.a.API.>".into()),
                        ..Default::default()
                    },
                    ImportConfig { stream: source("A", "deliver.b.>"), ..Default::default() },
                ],
                ..Default::default()
            },
        );
        let accounts = Accounts::default();
        install(&config, &accounts, &Arc::new(ServerStats::default())).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (
            accounts.get("A").unwrap_or_else(|| panic!("A")),
            accounts.get("B").unwrap_or_else(|| panic!("B")),
        );
        let (exporter, subject) =
            service_target(&b, "$JS.a.API.CONSUMER.CREATE.ORDERS").unwrap_or_else(|| panic!("served by A"));
        assert_eq!((exporter.name.as_ref(), subject.as_str()), ("A", "$JS.API.CONSUMER.CREATE.ORDERS"));
        assert!(
            service_target(&b, "$JS.API.CONSUMER.CREATE.ORDERS").is_none(),
            "not imported under that name"
        );
        assert!(service_target(&a, "$JS.a.API.INFO").is_none(), "A imports nothing");
        assert_eq!(stream_import_subject(&b, &a, "deliver.b.S.x").as_deref(), Some("deliver.b.S.x"));
        assert_eq!(stream_import_subject(&b, &a, "deliver.c.S.x"), None, "not exported");
        assert_eq!(stream_import_subject(&b, &b, "deliver.b.S.x"), None, "from A only");
    }
}
