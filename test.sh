#!/usr/bin/env bash
# Runs every check and test Jetway has, installing what they need. This is the README's test
# command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test (unit, property and end-to-end tests)"
cargo test --workspace

echo "== interop (clients from other ecosystems against the release binary)"
cargo build --release -p jetway
interop/run.sh target/release/jetway
