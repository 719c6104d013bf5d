#!/usr/bin/env bash
# Run the aarch64 builds under qemu-aarch64-static on the x86-64 host.
#
#   cross/test.sh vision [quick|full]   wayside-vision's tests, built for aarch64
#   cross/test.sh smoke                 the aarch64 binaries from cross/build.sh
#   cross/test.sh                       vision quick, then smoke
#
# vision quick: every unit test (none runs a model) and two model tests, one
#   detector inference and one face detection; full: every test, models and
#   all (one detector inference takes about 25 s under qemu, ~100x native).
# smoke: `wayside serve` answers /healthz, `wayside-data serve` answers
#   /healthz, and `wayside detect IMAGE` finds what the x86 build finds on the
#   same image (same classes, box IoU >= 0.9, scores within 0.02). The
#   binaries are cross/build.sh's, or $WAYSIDE_CROSS_DAEMON and
#   $WAYSIDE_CROSS_DATA (empty: no data API; cross/ci.sh's way). The x86
#   binary is $WAYSIDE_X86_BIN, else target/debug/wayside (scripts/test.sh
#   builds it), else it is built here. IMAGE is $WAYSIDE_CROSS_IMAGE, else the
#   fetched bus.jpg.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/lib.sh"

vision() {
  local mode="${1:-quick}" started=$SECONDS
  cross_host
  cd "$repo"
  local test=(nice -n 19 "${cargo[@]}" test --locked -p wayside-vision --target "$target")
  case "$mode" in
    quick)
      "${test[@]}" --lib
      "${test[@]}" --test detect_real -- --exact double_decker_bus_in_a_wide_frame
      "${test[@]}" --test faces_real -- --exact one_face_in_the_obama_portrait
      ;;
    full) "${test[@]}" --lib --tests ;;
    *) say "vision: quick or full, not '$mode'"; return 2 ;;
  esac
  say "vision ($mode) under qemu: $((SECONDS - started)) s, build included"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Poll URL until it answers 200 or PID dies; at most $3 seconds.
wait_healthy() {
  local url="$1" pid="$2" limit="$3" t0=$SECONDS
  until curl -fsS "$url" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { say "process $pid exited before $url answered"; return 1; }
    ((SECONDS - t0 < limit)) || { say "$url did not answer within $limit s"; return 1; }
    sleep 1
  done
  echo $((SECONDS - t0))
}

smoke() {
  cross_host
  cross_sysroot
  local out="$CARGO_TARGET_DIR/$target/release-arm"
  local daemon="${WAYSIDE_CROSS_DAEMON:-$out/wayside}" data="${WAYSIDE_CROSS_DATA-$out/wayside-data}"
  if [[ ! -x "$daemon" || (-n "$data" && ! -x "$data") ]]; then
    [[ -z "${WAYSIDE_CROSS_DAEMON:-}" ]] || { say "$daemon is not built"; return 1; }
    "$repo/cross/build.sh"
  fi
  local x86="${WAYSIDE_X86_BIN:-$repo/target/debug/wayside}"
  if [[ ! -x "$x86" ]]; then
    say "building the x86 wayside for the reference detections"
    (cd "$repo" && env -u RUSTC CARGO_TARGET_DIR="$repo/target" nice -n 19 cargo build --locked -p wayside --bin wayside)
  fi
  local image="${WAYSIDE_CROSS_IMAGE:-$repo/models/cache/media/bus.jpg}"
  local qemu=(qemu-aarch64-static -cpu "$qemu_cpu" -L "$sysroot")

  work="$(mktemp -d)"
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

  # The daemon, as tests/src/lib.rs starts it: loopback, a scratch
  # directory, faces off, run from the work tree so models/ is found.
  local port t
  port="$(free_port)"
  cat >"$work/wayside.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
spool_dir = "$work/spool"
[media]
dir = "$work/media"
[faces]
enabled = false
[outbox]
dir = "$work/outbox"
TOML
  (cd "$repo" && exec "${qemu[@]}" "$daemon" --config "$work/wayside.toml" serve) \
    >"$work/wayside.log" 2>&1 &
  pids+=($!)
  t="$(wait_healthy "http://127.0.0.1:$port/healthz" "${pids[-1]}" 900)" || { cat "$work/wayside.log"; return 1; }
  say "wayside serve (aarch64) healthy after $t s: $(curl -fsS "http://127.0.0.1:$port/healthz")"

  if [[ -n "$data" ]]; then
    port="$(free_port)"
    RUST_LOG=error "${qemu[@]}" "$data" serve --listen "127.0.0.1:$port" \
      --data-dir "$work/data" >"$work/wayside-data.log" 2>&1 &
    pids+=($!)
    t="$(wait_healthy "http://127.0.0.1:$port/healthz" "${pids[-1]}" 300)" || { cat "$work/wayside-data.log"; return 1; }
    say "wayside-data serve (aarch64) healthy after $t s: $(curl -fsS "http://127.0.0.1:$port/healthz")"
  fi

  # Both daemons stop on SIGTERM; a hang here is a failure too.
  local p
  for p in "${pids[@]}"; do kill -TERM "$p"; done
  for p in "${pids[@]}"; do wait "$p" || { say "a daemon exited with $? on SIGTERM"; return 1; }; done
  pids=()

  t=$SECONDS
  (cd "$repo" && "${qemu[@]}" "$daemon" detect "$image") >"$work/arm.json"
  say "wayside detect (aarch64, qemu): $((SECONDS - t)) s, inference $(jq_ms "$work/arm.json") ms (first, with the plan: $(jq_ms "$work/arm.json" first_inference_ms) ms)"
  (cd "$repo" && "$x86" detect "$image") >"$work/x86.json"
  say "wayside detect (x86-64): inference $(jq_ms "$work/x86.json") ms"
  python3 "$repo/cross/compare-detections.py" "$work/x86.json" "$work/arm.json"
}

# jq_ms FILE [FIELD]: a duration of `wayside detect`'s JSON, in whole ms.
jq_ms() { python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "${2:-inference_ms}"; }

case "${1:-all}" in
  vision) vision "${2:-quick}" ;;
  smoke) smoke ;;
  all) vision quick && smoke ;;
  *) echo "usage: cross/test.sh [vision [quick|full] | smoke]" >&2; exit 2 ;;
esac
