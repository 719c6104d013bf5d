#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, fetch, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh clone builds once: incremental state would only cost disk.
export CARGO_INCREMENTAL=0
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The systemd units (verify, exposure budget) and the Yocto layer (lint,
# crate list in step with Cargo.lock).
scripts/check-deploy.sh
# The Elasticsearch backend's tests run against an ES 8 API emulator
# (noida-db, pinned); set WAYSIDE_ES_URL yourself to use a real cluster.
if [[ -z "${WAYSIDE_ES_URL:-}" ]]; then
  eval "$(scripts/es-test-server.sh start)"
  trap 'scripts/es-test-server.sh stop' EXIT
fi
# The end-to-end tests run the binaries as a user would.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
