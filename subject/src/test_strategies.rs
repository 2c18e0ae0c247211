//! Random filters for the property tests of the filter tries.

use proptest::prelude::*;

/// Filters of one to three tokens from `a`, `b` and `*`, perhaps ending in `>`.
pub fn filter() -> impl Strategy<Value = String> {
    let token = prop_oneof![Just("a"), Just("b"), Just("*")];
    (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(tokens, fwc)| {
        let mut tokens: Vec<&str> = tokens;
        if fwc {
            tokens.push(">");
        }
        tokens.join(".")
    })
}
