//! `/subsz` (alias `/subscriptionsz`): sublist statistics over all accounts (or `acc`), and with
//! `subs=1` the subscriptions themselves, filtered by `test=<subject>` and paged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::connz::{SubDetail, DEFAULT_LIMIT};
use super::response::{self, rfc3339, Params, RequestError};
use crate::account::Account;
use crate::router::SublistStats;
use crate::server::Core;

#[derive(Debug, Serialize)]
pub(super) struct Subsz {
    server_id: String,
    now: String,
    #[serde(flatten)]
    stats: SublistStats,
    total: usize,
    offset: usize,
    limit: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<SubDetail>>,
}

pub async fn subsz(State(core): State<Arc<Core>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match build(&core, &Params(query)) {
        Ok(subsz) => response::ok(&subsz),
        Err(e) => e.into_response(),
    }
}

/// The `/subsz` document (also `$SYS.REQ.SERVER.PING.SUBSZ`).
pub(super) fn build(core: &Core, params: &Params) -> Result<Subsz, RequestError> {
    let list = params.flag("subs")?;
    let offset = params.number("offset")?;
    let limit = match params.number("limit")? {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    let test = params.text("test");
    if let Some(subject) = test {
        if !jetway_subject::is_valid_literal(subject) {
            return Err(RequestError::BadTestSubject(subject.into()));
        }
    }
    let accounts: Vec<Arc<Account>> = match params.text("acc") {
        Some(name) => core.accounts.get(name).into_iter().collect(),
        None => core.accounts.all(),
    };
    let stats = combined(accounts.iter().map(|a| a.sublist.stats()));
    let mut total = 0;
    let mut subscriptions_list = None;
    if list {
        let mut details: Vec<SubDetail> = accounts
            .iter()
            .flat_map(|a| {
                let subs = a.sublist.all();
                subs.iter()
                    .filter(|s| test.is_none_or(|t| jetway_subject::matches(&s.subject, t)))
                    .filter_map(|s| SubDetail::of(s, Some(&a.name)))
                    .collect::<Vec<_>>()
            })
            .collect();
        // The trie's order is a hash order; sort so paging is stable between requests.
        details.sort_by(|a, b| (a.cid, &a.sid).cmp(&(b.cid, &b.sid)));
        total = details.len();
        subscriptions_list = Some(response::page(details, offset, limit));
    }
    Ok(Subsz {
        server_id: core.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        stats,
        total,
        offset,
        limit,
        subscriptions_list,
    })
}

/// Sums per-account statistics the way nats-server does: counts add up, the hit rate and the
/// mean fanout are weighted by matches and cached results.
pub fn combined(all: impl Iterator<Item = SublistStats>) -> SublistStats {
    let mut sum = SublistStats::default();
    let (mut hits, mut fanout) = (0.0, 0.0);
    for s in all {
        sum.num_subscriptions += s.num_subscriptions;
        sum.num_cache += s.num_cache;
        sum.num_inserts += s.num_inserts;
        sum.num_removes += s.num_removes;
        sum.num_matches += s.num_matches;
        sum.max_fanout = sum.max_fanout.max(s.max_fanout);
        hits += s.cache_hit_rate * s.num_matches as f64;
        fanout += s.avg_fanout * s.num_cache as f64;
    }
    if sum.num_matches > 0 {
        sum.cache_hit_rate = hits / sum.num_matches as f64;
    }
    if sum.num_cache > 0 {
        sum.avg_fanout = fanout / sum.num_cache as f64;
    }
    sum
}
