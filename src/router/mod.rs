//! Subject router: who receives a published message.
//!
//! - [`sublist`]: the subscription trie (`*`, `>`), with a match-result cache checked by a
//!   generation counter, and queue-group selection (one member per group per message).
//! - [`subscription`]: a subscription and its sink (a NATS client, or an internal handler such
//!   as a stream's ingest).
//! - [`deliver`]: fan-out of one message to a match result, with write coalescing.

pub mod deliver;
pub mod sublist;
pub mod subscription;

pub use deliver::{FlushSet, Message};
pub use sublist::{MatchResult, Sublist, SublistStats};
pub use subscription::{InternalHandler, Sink, Subscription};
