//! NATS subject grammar, shared by the protocol parsers, the router and the stores.
//!
//! A subject is a sequence of non-empty tokens separated by `.`. In a *filter* (what a
//! subscription or a stream listens on) a token may be `*` (exactly one token) or, as the last
//! token only, `>` (one or more tokens). A *literal* subject (what is published) has no
//! wildcards. Tokens never contain space, tab, CR, LF or FF (nats-server `isValidSubject`).
//!
//! Everything here is allocation-free and works on `&str`; a `.` split is the only tokenizer.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod filter_map;
mod filter_set;
mod matching;
#[cfg(test)]
mod test_strategies;
pub mod transform;
mod tree;
mod validate;

pub use filter_map::FilterMap;
pub use filter_set::FilterSet;
pub use matching::{filter_is_subset, filters_overlap, matches, matches_any};
pub use transform::{validate_mapping, Transform, TransformError};
pub use tree::SubjectTree;
pub use validate::{
    is_literal, is_valid_filter, is_valid_literal, is_valid_token, validate_filter, validate_literal,
    SubjectError,
};

/// Token separator.
pub const SEP: char = '.';
/// Wildcard for exactly one token.
pub const PWC: &str = "*";
/// Wildcard for one or more trailing tokens.
pub const FWC: &str = ">";

/// Splits a subject into its tokens.
#[inline]
pub fn tokens(subject: &str) -> std::str::Split<'_, char> {
    subject.split(SEP)
}

/// Number of tokens in a subject.
#[inline]
pub fn num_tokens(subject: &str) -> usize {
    subject.bytes().filter(|b| *b == b'.').count() + 1
}
