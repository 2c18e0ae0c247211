//! The `$JS.API.>` responder of accounts without JetStream: every request is answered with
//! 10039 "JetStream not enabled for account", as nats-server does, so clients fail fast
//! instead of waiting for a timeout.

use std::sync::Arc;

use bytes::Bytes;

use super::errors::ApiError;
use crate::account::Account;
use crate::router::{InternalHandler, Message, Sink, Subscription};
use crate::stats::ServerStats;

struct NotEnabled {
    account: Arc<Account>,
    stats: Arc<ServerStats>,
    answer: Bytes,
}

impl InternalHandler for NotEnabled {
    fn deliver(&self, msg: &Message<'_>) {
        let Some(reply) = msg.reply else {
            return;
        };
        let answer = Message::internal(reply, None, None, &self.answer);
        crate::router::deliver::publish(&self.account, &self.stats, &answer);
    }
}

/// Subscribes the responder in `account`.
pub fn subscribe(account: &Arc<Account>, stats: &Arc<ServerStats>) {
    let body = serde_json::json!({ "error": ApiError::not_enabled_for_account() });
    let handler =
        NotEnabled { account: account.clone(), stats: stats.clone(), answer: Bytes::from(body.to_string()) };
    let sub = Subscription::new("$JS.API.>".into(), None, Sink::Internal(Arc::new(handler)));
    account.sublist.insert(sub);
}
