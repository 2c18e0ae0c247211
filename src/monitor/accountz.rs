//! `/accountz` (the account list, or one account's details with `acc=NAME`) and `/accstatz`
//! (per-account connection and traffic figures).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::response::{self, rfc3339, Params, RequestError};
use crate::account::Account;
use crate::router::SublistStats;
use crate::server::Core;

#[derive(Debug, Serialize)]
pub(super) struct Accountz {
    server_id: String,
    now: String,
    system_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

/// nats-server's `AccountInfo`, without what needs JWTs, imports or exports (not there yet).
#[derive(Debug, Serialize)]
struct AccountInfo {
    account_name: String,
    update_time: String,
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: usize,
    client_connections: usize,
    subscriptions: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    mappings: BTreeMap<String, Vec<MapDestination>>,
    sublist_stats: SublistStats,
}

/// One destination of a subject mapping, with its cumulative weight (nats-server's `MapDest`
/// as `/accountz` shows it).
#[derive(Debug, Serialize)]
struct MapDestination {
    subject: String,
    weight: u8,
}

/// The account's subject mappings by source, as nats-server's `/accountz` lists them.
fn mappings_of(account: &Account) -> BTreeMap<String, Vec<MapDestination>> {
    let Some(mappings) = account.mappings() else { return BTreeMap::new() };
    mappings
        .describe()
        .map(|(source, dests)| {
            let dests =
                dests.into_iter().map(|(subject, weight)| MapDestination { subject: subject.into(), weight });
            (source.to_string(), dests.collect())
        })
        .collect()
}

pub async fn accountz(
    State(core): State<Arc<Core>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match build(&core, &Params(query)) {
        Ok(body) => response::ok(&body),
        Err(e) => e.into_response(),
    }
}

/// The `/accountz` document (also `$SYS.REQ.SERVER.PING.ACCOUNTZ`).
pub(super) fn build(core: &Core, params: &Params) -> Result<Accountz, RequestError> {
    let mut body = Accountz {
        server_id: core.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        system_account: core.system_account.name.to_string(),
        accounts: None,
        account_detail: None,
    };
    match params.text("acc") {
        None => body.accounts = Some(core.accounts.all().iter().map(|a| a.name.to_string()).collect()),
        Some(name) => {
            let Some(account) = core.accounts.get(name) else {
                return Err(RequestError::NoSuchAccount(name.into()));
            };
            body.account_detail = Some(AccountInfo {
                account_name: account.name.to_string(),
                // Accounts come from the config only, so they last changed at start.
                update_time: rfc3339(core.started),
                is_system: Arc::ptr_eq(&account, &core.system_account),
                expired: false,
                complete: true,
                jetstream_enabled: false,
                leafnode_connections: 0,
                client_connections: account.num_connections(),
                subscriptions: account.sublist.count(),
                mappings: mappings_of(&account),
                sublist_stats: account.sublist.stats(),
            });
        }
    }
    Ok(body)
}

#[derive(Debug, Serialize)]
struct AccountStat {
    acc: String,
    name: String,
    conns: usize,
    leafnodes: usize,
    total_conns: usize,
    num_subscriptions: u64,
    sent: DataStats,
    received: DataStats,
    slow_consumers: u64,
}

/// nats-server's `DataStats` as `/accstatz` shows it: the totals, and what of them crossed
/// routes, gateways and leaf nodes (nothing: Jetway has none of them).
#[derive(Debug, Default, Serialize)]
struct DataStats {
    #[serde(flatten)]
    total: MsgBytes,
    gateways: MsgBytes,
    routes: MsgBytes,
    leafs: MsgBytes,
}

/// `{msgs, bytes}`, as in nats-server's `DataStats`.
#[derive(Debug, Default, Serialize)]
pub struct MsgBytes {
    pub msgs: u64,
    pub bytes: u64,
}

pub async fn accstatz(
    State(core): State<Arc<Core>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let include_unused = match Params(query).flag("unused") {
        Ok(flag) => flag,
        Err(e) => return e.into_response(),
    };
    let clients = core.clients();
    let stats: Vec<AccountStat> = core
        .accounts
        .all()
        .iter()
        .filter(|a| include_unused || a.num_connections() > 0)
        .map(|a| account_stat(a, &clients))
        .collect();
    response::ok(&serde_json::json!({
        "server_id": core.server_id,
        "now": rfc3339(SystemTime::now()),
        "account_statz": stats,
    }))
}

/// Traffic is summed over the account's open connections: per-account counters that survive
/// disconnects come with the accounts issue.
fn account_stat(account: &Account, clients: &[Arc<crate::nats::client::ClientShared>]) -> AccountStat {
    let (mut sent, mut received) = (MsgBytes::default(), MsgBytes::default());
    for client in clients {
        if client.identity.lock().account().map(|a| &**a) != Some(&*account.name) {
            continue;
        }
        // From the account's side: what it sent to its clients, what it received from them.
        sent.msgs += client.counters.out_msgs.load(Ordering::Relaxed);
        sent.bytes += client.counters.out_bytes.load(Ordering::Relaxed);
        received.msgs += client.counters.in_msgs.load(Ordering::Relaxed);
        received.bytes += client.counters.in_bytes.load(Ordering::Relaxed);
    }
    let conns = account.num_connections();
    AccountStat {
        acc: account.name.to_string(),
        name: account.name.to_string(),
        conns,
        leafnodes: 0,
        total_conns: conns,
        num_subscriptions: account.sublist.count(),
        sent: DataStats { total: sent, ..DataStats::default() },
        received: DataStats { total: received, ..DataStats::default() },
        slow_consumers: 0,
    }
}
