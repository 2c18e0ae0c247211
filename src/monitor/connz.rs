//! `/connz`: open and recently closed client connections, with nats-server's filters
//! (`cid`, `state`, `acc`, `user`, `mqtt_client`), sorting, paging and subscription lists
//! (closed connections keep theirs from the moment they closed, as in nats-server).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::response::{self, rfc3339, uptime, Params, RequestError};
use crate::nats::client::{shown, ClientShared};
use crate::router::{Sink, Subscription};
use crate::server::Core;
use crate::time::go_duration;

/// nats-server's default page size for connections and subscriptions.
pub const DEFAULT_LIMIT: usize = 1024;

/// One connection as `/connz` shows it (nats-server's `ConnInfo`). Closed connections are kept
/// as these snapshots, so their values are those at close.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    pub cid: u64,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub conn_type: &'static str,
    /// The MQTT client identifier, for MQTT connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_client: Option<String>,
    pub ip: String,
    pub port: u16,
    pub start: String,
    pub last_activity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<String>,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The account's name tag (its name here, there are no JWT accounts), with `auth=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions_list: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions_list_detail: Option<Vec<SubDetail>>,
    /// Kept for filtering and sorting; shown only when asked for (`auth=1`), as nats-server does.
    #[serde(skip)]
    pub user: Option<String>,
    /// The connection's account, for filtering; shown (as `account`) only with `auth=1` and when
    /// it is not the global account, as nats-server does.
    #[serde(skip)]
    pub account_name: Option<String>,
    /// A closed connection's subscriptions at close, shown with `subs=1` / `subs=detail`.
    #[serde(skip)]
    closed_subs: Vec<SubDetail>,
    #[serde(skip)]
    times: Times,
}

/// Raw times behind the formatted fields, for sorting.
#[derive(Debug, Clone, Copy)]
struct Times {
    start: SystemTime,
    last: SystemTime,
    stop: Option<SystemTime>,
    rtt_nanos: u128,
}

/// One subscription in `subscriptions_list_detail` and `/subsz?subs=1` (nats-server's
/// `SubDetail`).
#[derive(Debug, Clone, Serialize)]
pub struct SubDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub subject: String,
    #[serde(rename = "qgroup", skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    pub sid: String,
    pub msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub cid: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SubDetail {
    /// Details of a client's subscription; `None` for internal ones (no connection to show).
    pub fn of(sub: &Subscription, account: Option<&str>) -> Option<Self> {
        let Sink::Client { client, sid } = &sub.sink else { return None };
        Some(SubDetail {
            account: account.map(Into::into),
            subject: sub.subject.to_string(),
            queue: sub.queue.as_ref().map(|q| q.to_string()),
            sid: String::from_utf8_lossy(sid).into_owned(),
            msgs: sub.delivered(),
            max: sub.max_msgs(),
            cid: client.id,
        })
    }
}

impl ConnInfo {
    /// A connection as it is now.
    pub fn open(client: &ClientShared, now: SystemTime) -> Self {
        Self::snapshot(client, now, None)
    }

    /// A connection that just ended, for the closed ring.
    pub fn closed(client: &ClientShared, stop: SystemTime) -> Self {
        Self::snapshot(client, stop, Some(stop))
    }

    fn snapshot(client: &ClientShared, now: SystemTime, stop: Option<SystemTime>) -> Self {
        let identity = client.identity.lock().clone();
        let account_name = identity.account().map(|a| a.to_string());
        let mut closed_subs: Vec<SubDetail> = match stop {
            Some(_) => client.subs_at_close().iter().filter_map(|s| SubDetail::of(s, None)).collect(),
            None => Vec::new(),
        };
        closed_subs.sort_by(|a, b| (&a.subject, &a.sid).cmp(&(&b.subject, &b.sid)));
        let last = client.last_activity();
        let rtt = client.rtt();
        let reason = stop
            .map(|_| client.close_reason().map_or_else(|| "Client Closed".to_string(), |r| reason_text(&r)));
        let c = &client.counters;
        ConnInfo {
            cid: client.id,
            kind: "Client",
            conn_type: client.type_name(),
            mqtt_client: client.is_mqtt().then(|| identity.name.as_deref().map(str::to_owned)).flatten(),
            ip: client.addr.ip().to_string(),
            port: client.addr.port(),
            start: rfc3339(client.started),
            last_activity: rfc3339(last),
            stop: stop.map(rfc3339),
            reason,
            rtt: rtt.map(go_duration),
            uptime: uptime(now.duration_since(client.started).unwrap_or_default()),
            idle: uptime(now.duration_since(last).unwrap_or_default()),
            pending_bytes: if stop.is_some() { 0 } else { client.outbound.pending_bytes() },
            in_msgs: c.in_msgs.load(Ordering::Relaxed),
            out_msgs: c.out_msgs.load(Ordering::Relaxed),
            in_bytes: c.in_bytes.load(Ordering::Relaxed),
            out_bytes: c.out_bytes.load(Ordering::Relaxed),
            subscriptions: if stop.is_some() { closed_subs.len() } else { client.num_subs() },
            name: shown(identity.name),
            lang: shown(identity.lang),
            version: shown(identity.version),
            authorized_user: None,
            account: None,
            name_tag: None,
            account_name,
            subscriptions_list: None,
            subscriptions_list_detail: None,
            user: shown(identity.user),
            closed_subs,
            times: Times { start: client.started, last, stop, rtt_nanos: rtt.map_or(0, |d| d.as_nanos()) },
        }
    }
}

/// The close reason's nats-server text (the serde name of [`CloseReason`]).
///
/// [`CloseReason`]: crate::nats::client::CloseReason
pub fn reason_text(reason: &crate::nats::client::CloseReason) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{reason:?}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Open,
    Closed,
    Any,
}

/// nats-server's `SortOpt` values. Only `cid`/`start`, `uptime` and `reason` ascend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Cid,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
    Rtt,
}

impl SortBy {
    fn parse(text: Option<&str>) -> Result<Self, RequestError> {
        Ok(match text {
            None | Some("cid" | "start") => SortBy::Cid,
            Some("subs") => SortBy::Subs,
            Some("pending") => SortBy::Pending,
            Some("msgs_to") => SortBy::MsgsTo,
            Some("msgs_from") => SortBy::MsgsFrom,
            Some("bytes_to") => SortBy::BytesTo,
            Some("bytes_from") => SortBy::BytesFrom,
            Some("last") => SortBy::Last,
            Some("idle") => SortBy::Idle,
            Some("uptime") => SortBy::Uptime,
            Some("stop") => SortBy::Stop,
            Some("reason") => SortBy::Reason,
            Some("rtt") => SortBy::Rtt,
            Some(other) => return Err(RequestError::BadSort(other.into())),
        })
    }

    fn sort(self, conns: &mut [ConnInfo], now: SystemTime) {
        let lifetime =
            |c: &ConnInfo| c.times.stop.unwrap_or(now).duration_since(c.times.start).unwrap_or_default();
        match self {
            SortBy::Cid => conns.sort_by_key(|c| c.cid),
            SortBy::Subs => conns.sort_by_key(|c| Reverse(c.subscriptions)),
            SortBy::Pending => conns.sort_by_key(|c| Reverse(c.pending_bytes)),
            SortBy::MsgsTo => conns.sort_by_key(|c| Reverse(c.out_msgs)),
            SortBy::MsgsFrom => conns.sort_by_key(|c| Reverse(c.in_msgs)),
            SortBy::BytesTo => conns.sort_by_key(|c| Reverse(c.out_bytes)),
            SortBy::BytesFrom => conns.sort_by_key(|c| Reverse(c.in_bytes)),
            // Most recent activity first; the longest idle first.
            SortBy::Last => conns.sort_by_key(|c| Reverse(c.times.last)),
            SortBy::Idle => conns.sort_by_key(|c| c.times.last),
            SortBy::Uptime => conns.sort_by_key(lifetime),
            SortBy::Stop => conns.sort_by_key(|c| Reverse(c.times.stop)),
            SortBy::Reason => conns.sort_by(|a, b| a.reason.cmp(&b.reason)),
            SortBy::Rtt => conns.sort_by_key(|c| Reverse(c.times.rtt_nanos)),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Connz {
    server_id: String,
    now: String,
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    connections: Vec<ConnInfo>,
}

pub async fn connz(State(core): State<Arc<Core>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match build(&core, &Params(query)) {
        Ok(connz) => response::ok(&connz),
        Err(e) => e.into_response(),
    }
}

/// The `/connz` document (also `$SYS.REQ.SERVER.PING.CONNZ`).
pub(super) fn build(core: &Core, params: &Params) -> Result<Connz, RequestError> {
    let sort = SortBy::parse(params.text("sort"))?;
    let auth = params.flag("auth")?;
    let subs_detail = params.text("subs").is_some_and(|s| s.eq_ignore_ascii_case("detail"));
    let subs = !subs_detail && params.flag("subs")?;
    let offset = params.number("offset")?;
    let cid = params.id("cid")?;
    let mut limit = match params.number("limit")? {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    let state = match params.text("state").map(str::to_ascii_lowercase).as_deref() {
        None | Some("open") => ConnState::Open,
        Some("closed") => ConnState::Closed,
        Some("any" | "all") => ConnState::Any,
        Some(other) => {
            return Err(RequestError::BadValue { param: "state", kind: "state", value: other.into() })
        }
    };
    match sort {
        SortBy::Stop if state != ConnState::Closed => return Err(RequestError::SortNeedsClosed("stop")),
        SortBy::Reason if state != ConnState::Closed => return Err(RequestError::SortNeedsClosed("reason")),
        _ => {}
    }
    if cid > 0 {
        limit = 1;
    }
    let user = params.text("user");
    let account = params.text("acc");
    let mqtt_client = params.text("mqtt_client");
    let keep = |c: &ConnInfo| {
        (cid == 0 || c.cid == cid)
            && user.is_none_or(|u| c.user.as_deref() == Some(u))
            && account.is_none_or(|a| c.account_name.as_deref() == Some(a))
            && mqtt_client.is_none_or(|m| c.mqtt_client.as_deref() == Some(m))
    };

    let now = SystemTime::now();
    let mut conns = Vec::new();
    // MQTT subscriptions are the gateway's, not the connection's: counted from the sessions.
    let mqtt_subscriptions: HashMap<u64, usize> = match core.monitor.mqtt() {
        Some((gateway, _)) if state != ConnState::Closed => gateway.subscriptions_by_cid(),
        _ => HashMap::new(),
    };
    if state != ConnState::Closed {
        for client in core.clients() {
            if cid != 0 && client.id != cid {
                continue;
            }
            let mut info = ConnInfo::open(&client, now);
            if let Some(count) = mqtt_subscriptions.get(&client.id) {
                info.subscriptions = *count;
            }
            if !keep(&info) {
                continue;
            }
            let subscriptions = client.subscriptions();
            if subs_detail && !subscriptions.is_empty() {
                let details = subscriptions.iter().filter_map(|s| SubDetail::of(s, None)).collect();
                info.subscriptions_list_detail = Some(details);
            } else if subs && !subscriptions.is_empty() {
                info.subscriptions_list = Some(subscriptions.iter().map(|s| s.subject.to_string()).collect());
            }
            conns.push(info);
        }
    }
    // With `cid`, a matching open connection means no closed record is looked for.
    let found_open_cid = cid != 0 && !conns.is_empty();
    if state != ConnState::Open && !found_open_cid {
        for closed in core.monitor.closed.snapshot().into_iter().filter(|c| keep(c)) {
            let mut info = Arc::unwrap_or_clone(closed);
            if subs_detail && !info.closed_subs.is_empty() {
                info.subscriptions_list_detail = Some(info.closed_subs.clone());
            } else if subs && !info.closed_subs.is_empty() {
                info.subscriptions_list = Some(info.closed_subs.iter().map(|s| s.subject.clone()).collect());
            }
            conns.push(info);
        }
    }
    if auth {
        for c in &mut conns {
            c.authorized_user = c.user.clone();
            c.account = c.account_name.clone().filter(|a| a != crate::account::GLOBAL_ACCOUNT);
            // nats-server names the global account's tag for open connections only.
            c.name_tag = if c.stop.is_some() { c.account.clone() } else { c.account_name.clone() };
        }
    }
    sort.sort(&mut conns, now);
    let total = conns.len();
    let connections = response::page(conns, offset, limit);
    Ok(Connz {
        server_id: core.server_id.clone(),
        now: rfc3339(now),
        num_connections: connections.len(),
        total,
        offset,
        limit,
        connections,
    })
}
