#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, fetch, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh clone builds once: incremental state would only cost disk.
export CARGO_INCREMENTAL=0
scripts/setup.sh
# The aarch64 check (cross/ci.sh): its toolchain and sysroot now (apt), its
# cold build in the background at idle priority, where it takes the cores
# the x86 side leaves idle; its tests under qemu at the end.
cross/ci.sh prepare
mkdir -p target
# setsid gives the build a session of its own (one kill stops all of it),
# and with it an autogroup: where the kernel groups by session, `nice` ranks
# a process only within its group and the two groups split the cores
# evenly. The group's own nice value makes the build idle against the x86
# side (docs/DEPLOY.md, "How CI affords it").
setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true; exec cross/ci.sh build' \
  >target/cross-ci-build.log 2>&1 &
cross_build=$!
es_started=false
cleanup() {
  kill -- "-$cross_build" 2>/dev/null || true
  if $es_started; then scripts/es-test-server.sh stop; fi
}
trap cleanup EXIT
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The systemd units (verify, exposure budget) and the Yocto layer (lint,
# crate list in step with Cargo.lock).
scripts/check-deploy.sh
# The fetch-time graph rewrites on small graphs of their own, in the models'
# venv (scripts/setup-models.sh made it): what each rewrites and leaves alone,
# and that the check after each refuses a changed function.
PYTHONDONTWRITEBYTECODE=1 "${XDG_CACHE_HOME:-$HOME/.cache}/wayside/venv/bin/python" \
  -m unittest discover -s models -p 'test_*.py'
# The Elasticsearch backend's tests run against an ES 8 API emulator
# (noida-db, pinned); set WAYSIDE_ES_URL yourself to use a real cluster.
if [[ -z "${WAYSIDE_ES_URL:-}" ]]; then
  eval "$(scripts/es-test-server.sh start)"
  es_started=true
fi
# The end-to-end tests run the binaries as a user would.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
if ! wait "$cross_build"; then
  tail -n 60 target/cross-ci-build.log
  echo "the aarch64 build failed (target/cross-ci-build.log)" >&2
  exit 1
fi
cross/ci.sh test
