#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, integration and end-to-end tests (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/host-prep.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads=4
