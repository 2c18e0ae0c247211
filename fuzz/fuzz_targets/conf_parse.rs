//! The `.conf` reader must turn any text into a config or an error, never a panic or a hang.
//!
//! Run: `cargo fuzz run conf_parse -- -max_total_time=60` from the repository root.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // A folder that does not exist, so relative includes fail fast instead of reading files.
    let _ = jetway::config::Config::from_conf_str(text, Path::new("/nonexistent/fuzz/input.conf"));
});
