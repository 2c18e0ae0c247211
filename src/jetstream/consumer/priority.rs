//! Priority groups of pull consumers (nats-server 2.11 and 2.12): which waiting pull request a
//! message goes to when the consumer has a `priority_policy`.
//!
//! - `overflow`: a request with `min_pending` / `min_ack_pending` gets messages only while the
//!   consumer has at least that many messages pending / awaiting acks; the others are passed
//!   over (a standby worker that helps only when the main one falls behind).
//! - `pinned_client`: the first request of the group is pinned (a fresh `Nats-Pin-Id`, sent in
//!   every message's headers); only requests carrying that id get messages until the pinned
//!   client stops pulling for `priority_timeout` or an admin unpins it
//!   (`$JS.API.CONSUMER.UNPIN`). A request with another id is refused with `423`.
//! - `prioritized`: requests are served in the order of their `priority` (0 first), round
//!   robin among equal ones.
//!
//! This module holds the rules as plain functions over the waiting queue; the consumer's
//! delivery pass (`engine`) and its request handling (`Consumer::on_next_request`) apply them.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use jetway_protocols::nats::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pull::{PullRequestJson, Waiting};

/// How long a pinned client may go without pulling before it loses its pin (nats-server's
/// default `priority_timeout`).
pub const DEFAULT_PINNED_TTL: i64 = 120 * 1_000_000_000;

/// The rank of a request without priority (a plain batch-size request): after every ranked one.
pub const UNRANKED: u32 = u32::MAX;

/// `priority_policy`; `None` is nats-server's `none` (left out of the JSON, as it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PriorityPolicy {
    #[default]
    None,
    Overflow,
    PinnedClient,
    Prioritized,
}

impl PriorityPolicy {
    pub fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }

    fn as_str(self) -> &'static str {
        match self {
            PriorityPolicy::None => "none",
            PriorityPolicy::Overflow => "overflow",
            PriorityPolicy::PinnedClient => "pinned_client",
            PriorityPolicy::Prioritized => "prioritized",
        }
    }
}

impl Serialize for PriorityPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PriorityPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "none" => PriorityPolicy::None,
            "overflow" => PriorityPolicy::Overflow,
            "pinned_client" => PriorityPolicy::PinnedClient,
            "prioritized" => PriorityPolicy::Prioritized,
            // nats-server's words (its decoder quotes the JSON string).
            _ => return Err(serde::de::Error::custom(format!("unknown priority policy: {text:?}"))),
        })
    }
}

/// nats-server's rule for group names: 1 to 16 of `A-Z a-z 0-9 / _ = -`.
pub fn is_valid_group_name(name: &str) -> bool {
    (1..=16).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// What a pull request asks of a priority consumer (all unset for a plain batch-size request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPriority {
    /// The request's group; `None` for a request that was not JSON.
    pub group: Option<Box<str>>,
    /// The pin id the client holds (`id`).
    pub pin_id: Option<Box<str>>,
    pub min_pending: u64,
    pub min_ack_pending: u64,
    /// 0 (first) to 9, or [`UNRANKED`].
    pub rank: u32,
}

impl RequestPriority {
    pub fn of(req: &PullRequestJson) -> Self {
        if !req.json {
            return RequestPriority { rank: UNRANKED, ..RequestPriority::default() };
        }
        RequestPriority {
            group: req.group.as_deref().filter(|g| !g.is_empty()).map(Box::from),
            pin_id: req.id.as_deref().filter(|id| !id.is_empty()).map(Box::from),
            min_pending: u64::try_from(req.min_pending).unwrap_or(0),
            min_ack_pending: u64::try_from(req.min_ack_pending).unwrap_or(0),
            rank: u32::try_from(req.priority).unwrap_or(0),
        }
    }
}

/// Why a pull request is refused before it waits: nats-server's `400` texts.
pub fn check_request(
    policy: PriorityPolicy,
    groups: &[String],
    req: &PullRequestJson,
) -> Result<(), &'static str> {
    if !req.json {
        return Ok(());
    }
    if (req.min_pending != 0 || req.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
        return Err("Bad Request - Not a Overflow Priority consumer");
    }
    if req.id.as_deref().is_some_and(|id| !id.is_empty()) && policy != PriorityPolicy::PinnedClient {
        return Err("Bad Request - Not a Pinned Client Priority consumer");
    }
    if !(0..=9).contains(&req.priority) {
        return Err("Bad Request - Priority must be between 0 and 9");
    }
    if policy != PriorityPolicy::None {
        match req.group.as_deref() {
            None | Some("") => return Err("Bad Request - Priority Group missing"),
            Some(group) if !groups.iter().any(|g| g == group) => {
                return Err("Bad Request - Invalid Priority Group")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The client pinned to a `pinned_client` consumer's group.
#[derive(Debug, Clone)]
pub struct Pin {
    pub id: String,
    pub group: String,
    /// When it was pinned (Unix nanoseconds, for `ConsumerInfo`).
    pub since_ns: i64,
    /// When it loses the pin unless it pulls again.
    pub expires: Instant,
}

/// Queues a request: by rank under `prioritized` (behind the requests of its own rank),
/// at the end otherwise.
pub fn enqueue(waiting: &mut VecDeque<Waiting>, policy: PriorityPolicy, request: Waiting) {
    if policy == PriorityPolicy::Prioritized {
        let at =
            waiting.iter().position(|w| w.priority.rank > request.priority.rank).unwrap_or(waiting.len());
        waiting.insert(at, request);
    } else {
        waiting.push_back(request);
    }
}

/// After a delivery to the request at the front: one still wanting more goes behind the others
/// (of its rank, under `prioritized`), so that waiting requests take turns message by message
/// as in nats-server; a finished one (`done`) leaves.
pub fn after_delivery(waiting: &mut VecDeque<Waiting>, policy: PriorityPolicy, done: bool) {
    if !done && waiting.len() < 2 {
        return; // alone: it stays where it is
    }
    let Some(front) = waiting.pop_front() else { return };
    if !done {
        enqueue(waiting, policy, front);
    }
}

/// What [`choose`] decided about the request at the front.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Deliver to the front request (now holding `pin`, if it was just pinned).
    Deliver { newly_pinned: bool },
    /// No request may take a message now.
    Nobody,
}

/// Brings the request the next message goes to to the front of `waiting`, passing over (to
/// the back) the ones that may not take it, and removing those holding a stale pin
/// (returned in `refused`). `pending` counts the messages pending including the one about to
/// be delivered, `ack_pending` those awaiting acks; `new_pin` makes a pin id when one is
/// assigned. nats-server's `nextWaiting`.
pub fn choose(
    waiting: &mut VecDeque<Waiting>,
    policy: PriorityPolicy,
    pin: &mut Option<Box<Pin>>,
    pending: u64,
    ack_pending: u64,
    new_pin: impl FnOnce(&Waiting) -> Pin,
    refused: &mut Vec<Waiting>,
) -> Choice {
    let mut new_pin = Some(new_pin);
    let mut passed_over = 0;
    while let Some(front) = waiting.front_mut() {
        let mut newly_pinned = false;
        if policy == PriorityPolicy::PinnedClient {
            match (pin.as_ref(), front.priority.pin_id.as_deref()) {
                (None, None) => {
                    // The first request of the group gets the pin; one outside any group
                    // (a plain batch-size request) is served unpinned.
                    if front.priority.group.is_some() {
                        if let Some(make) = new_pin.take() {
                            let given = make(front);
                            // The request holds the pin from now on (its later messages too).
                            front.priority.pin_id = Some(given.id.as_str().into());
                            *pin = Some(Box::new(given));
                            newly_pinned = true;
                        }
                    }
                }
                (Some(current), Some(id)) if current.id == id => {}
                (Some(_), None) => {
                    waiting.rotate_left(1);
                    passed_over += 1;
                    if passed_over >= waiting.len() {
                        return Choice::Nobody;
                    }
                    continue;
                }
                // A pin the server no longer knows.
                (_, Some(_)) => {
                    if let Some(stale) = waiting.pop_front() {
                        refused.push(stale);
                    }
                    continue;
                }
            }
        }
        if policy == PriorityPolicy::Overflow {
            let p = &front.priority;
            let wanted = p.min_pending > 0 || p.min_ack_pending > 0;
            if wanted
                && !((p.min_pending > 0 && p.min_pending <= pending)
                    || (p.min_ack_pending > 0 && p.min_ack_pending <= ack_pending))
            {
                waiting.rotate_left(1);
                passed_over += 1;
                if passed_over >= waiting.len() {
                    return Choice::Nobody;
                }
                continue;
            }
        }
        return Choice::Deliver { newly_pinned };
    }
    Choice::Nobody
}

/// `headers` with `Nats-Pin-Id: id` added (a message to a `pinned_client` consumer's request;
/// the id is empty while nobody is pinned, as from nats-server).
pub fn with_pin_id(headers: Option<&Bytes>, id: &str) -> Bytes {
    let mut map = headers.and_then(|raw| HeaderMap::decode(raw).ok()).unwrap_or_default();
    map.insert(PIN_ID_HEADER, id.to_string());
    map.encode()
}

/// The header carrying a pinned client's id, in messages and in its pull requests' answers.
pub const PIN_ID_HEADER: &str = "Nats-Pin-Id";

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Waiting {
        let req = super::super::pull::parse_request(body.as_bytes()).unwrap_or_default();
        Waiting::new(body.into(), &req, Instant::now())
    }

    fn replies(waiting: &VecDeque<Waiting>) -> Vec<String> {
        waiting.iter().map(|w| w.reply.to_string()).collect()
    }

    fn pin_for(w: &Waiting) -> Pin {
        Pin {
            id: "PIN".into(),
            group: w.priority.group.as_deref().unwrap_or("").into(),
            since_ns: 1,
            expires: Instant::now(),
        }
    }

    #[test]
    fn pin_ids_join_the_message_headers() {
        let plain = with_pin_id(None, "P1");
        assert_eq!(&plain[..], b"NATS/1.0\r\nNats-Pin-Id: P1\r\n\r\n");
        let mut existing = HeaderMap::default();
        existing.insert("A", "1".to_string());
        let both = HeaderMap::decode(&with_pin_id(Some(&existing.encode()), "")).unwrap_or_default();
        assert_eq!(both.get("A"), Some("1"));
        assert_eq!(both.get(PIN_ID_HEADER), Some(""));
    }

    #[test]
    fn group_names_follow_nats_server() {
        assert!(is_valid_group_name("A"));
        assert!(is_valid_group_name("a-b_c/d=e0123456"));
        assert!(!is_valid_group_name(""));
        assert!(!is_valid_group_name("a.b"));
        assert!(!is_valid_group_name(&"a".repeat(17)));
        assert!(!is_valid_group_name("a b"));
    }

    #[test]
    fn requests_are_checked_against_the_policy() {
        let parse = |b: &str| super::super::pull::parse_request(b.as_bytes()).unwrap_or_default();
        let groups = vec!["A".to_string()];
        let none = PriorityPolicy::None;
        assert_eq!(check_request(none, &[], &parse("5")), Ok(()));
        assert_eq!(check_request(none, &[], &parse(r#"{"group":"X"}"#)), Ok(()));
        assert_eq!(
            check_request(none, &[], &parse(r#"{"min_pending":1}"#)),
            Err("Bad Request - Not a Overflow Priority consumer")
        );
        assert_eq!(
            check_request(PriorityPolicy::Overflow, &groups, &parse(r#"{"group":"A","id":"x"}"#)),
            Err("Bad Request - Not a Pinned Client Priority consumer")
        );
        assert_eq!(
            check_request(none, &[], &parse(r#"{"priority":10}"#)),
            Err("Bad Request - Priority must be between 0 and 9")
        );
        let pinned = PriorityPolicy::PinnedClient;
        assert_eq!(
            check_request(pinned, &groups, &parse(r#"{"batch":1}"#)),
            Err("Bad Request - Priority Group missing")
        );
        assert_eq!(
            check_request(pinned, &groups, &parse(r#"{"group":"B"}"#)),
            Err("Bad Request - Invalid Priority Group")
        );
        assert_eq!(check_request(pinned, &groups, &parse(r#"{"group":"A","id":"x"}"#)), Ok(()));
        // A plain batch-size request carries no group and is not checked.
        assert_eq!(check_request(pinned, &groups, &parse("1")), Ok(()));
    }

    #[test]
    fn prioritized_requests_queue_by_rank_and_take_turns_within_it() {
        let mut waiting = VecDeque::new();
        let policy = PriorityPolicy::Prioritized;
        for body in [
            r#"{"group":"A","priority":5}"#,
            r#"{"group":"A","priority":1}"#,
            "1",
            r#"{"group":"A","priority":1,"batch":2}"#,
        ] {
            enqueue(&mut waiting, policy, request(body));
        }
        assert_eq!(
            replies(&waiting),
            [
                r#"{"group":"A","priority":1}"#,
                r#"{"group":"A","priority":1,"batch":2}"#,
                r#"{"group":"A","priority":5}"#,
                "1"
            ]
        );
        // The first rank-1 request, not done, goes behind the other rank-1 one only.
        after_delivery(&mut waiting, policy, false);
        assert_eq!(waiting.front().map(|w| &*w.reply), Some(r#"{"group":"A","priority":1,"batch":2}"#));
        assert_eq!(waiting.get(1).map(|w| &*w.reply), Some(r#"{"group":"A","priority":1}"#));
        after_delivery(&mut waiting, policy, true);
        assert_eq!(
            replies(&waiting),
            [r#"{"group":"A","priority":1}"#, r#"{"group":"A","priority":5}"#, "1"]
        );
    }

    #[test]
    fn requests_take_turns_without_a_policy() {
        let mut waiting: VecDeque<Waiting> = ["a", "b"].into_iter().map(request).collect();
        after_delivery(&mut waiting, PriorityPolicy::None, false);
        assert_eq!(replies(&waiting), ["b", "a"]);
        after_delivery(&mut waiting, PriorityPolicy::None, true);
        assert_eq!(replies(&waiting), ["a"]);
    }

    #[test]
    fn pinning_serves_only_the_pinned_client() {
        let policy = PriorityPolicy::PinnedClient;
        let mut pin = None;
        let mut refused = Vec::new();
        let mut waiting: VecDeque<Waiting> =
            [r#"{"group":"A","id":"OLD"}"#, r#"{"group":"A"}"#, r#"{"group":"A","batch":2}"#]
                .into_iter()
                .map(request)
                .collect();
        // No pin yet: a request holding an old pin is refused, the next one is pinned.
        let choice = choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused);
        assert_eq!(choice, Choice::Deliver { newly_pinned: true });
        assert_eq!(refused.len(), 1);
        assert_eq!(waiting.front().map(|w| &*w.reply), Some(r#"{"group":"A"}"#));
        assert_eq!(pin.as_ref().map(|p| p.group.as_str()), Some("A"));
        // The pinned request keeps taking messages.
        let choice = choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused);
        assert_eq!(choice, Choice::Deliver { newly_pinned: false });
        assert_eq!(waiting.front().map(|w| &*w.reply), Some(r#"{"group":"A"}"#));
        // Pinned: requests without the pin are passed over; none holds it, so nobody gets it.
        waiting.pop_front();
        let choice = choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused);
        assert_eq!(choice, Choice::Nobody);
        waiting.push_back(request(r#"{"group":"A","id":"PIN"}"#));
        let choice = choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused);
        assert_eq!(choice, Choice::Deliver { newly_pinned: false });
        assert_eq!(waiting.front().map(|w| &*w.reply), Some(r#"{"group":"A","id":"PIN"}"#));
        // Another pin is refused.
        waiting.push_front(request(r#"{"group":"A","id":"OTHER"}"#));
        choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused);
        assert_eq!(refused.len(), 2);
    }

    #[test]
    fn unpinned_plain_requests_are_served_without_a_pin() {
        let mut pin = None;
        let mut waiting: VecDeque<Waiting> = ["1"].into_iter().map(request).collect();
        let choice =
            choose(&mut waiting, PriorityPolicy::PinnedClient, &mut pin, 0, 0, pin_for, &mut Vec::new());
        assert_eq!(choice, Choice::Deliver { newly_pinned: false });
        assert!(pin.is_none());
    }

    #[test]
    fn overflow_requests_wait_for_their_thresholds() {
        let policy = PriorityPolicy::Overflow;
        let mut waiting: VecDeque<Waiting> =
            [r#"{"group":"A","min_pending":5}"#, r#"{"group":"A","min_ack_pending":2}"#]
                .into_iter()
                .map(request)
                .collect();
        let mut pin = None;
        let mut refused = Vec::new();
        assert_eq!(choose(&mut waiting, policy, &mut pin, 4, 1, pin_for, &mut refused), Choice::Nobody);
        assert_eq!(
            choose(&mut waiting, policy, &mut pin, 5, 1, pin_for, &mut refused),
            Choice::Deliver { newly_pinned: false }
        );
        assert_eq!(waiting.front().map(|w| w.priority.min_pending), Some(5));
        assert_eq!(
            choose(&mut waiting, policy, &mut pin, 0, 2, pin_for, &mut refused),
            Choice::Deliver { newly_pinned: false }
        );
        assert_eq!(waiting.front().map(|w| w.priority.min_ack_pending), Some(2));
        // A request without thresholds always takes messages.
        waiting.push_front(request(r#"{"group":"A"}"#));
        assert_eq!(
            choose(&mut waiting, policy, &mut pin, 0, 0, pin_for, &mut refused),
            Choice::Deliver { newly_pinned: false }
        );
        assert!(refused.is_empty());
    }
}
