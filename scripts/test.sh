#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, fetch, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# the end-to-end tests run the binaries as a user would
cargo build --workspace --bins
cargo test --workspace
