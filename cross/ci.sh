#!/usr/bin/env bash
# CI's aarch64 check (scripts/test.sh runs it):
#
#   cross/ci.sh prepare   Debian's cross toolchain, qemu and the arm64 sysroot
#   cross/ci.sh build     the daemon, wayside-vision's and wayside-arena's
#                         tests for aarch64
#   cross/ci.sh test      under qemu: wayside-vision's quick set (every unit
#                         test, one detector and one face model test), the
#                         tensor arena's tests (atomics on a weaker memory
#                         model than x86's), then the daemon's smoke test
#                         (cross/test.sh smoke)
#   cross/ci.sh           all three
#
# The build uses the ci-arm profile (Cargo.toml): tract-linalg's kernels
# optimised, nothing else, so that a cold build fits beside the x86 suite
# on CI's two cores. scripts/test.sh runs `build` in the background at idle
# priority while the x86 side builds and tests, and `test` at the end. The
# release binaries (fat LTO, sizes) stay a separate step: cross/build.sh,
# then cross/test.sh smoke. docs/DEPLOY.md has the measured times.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/lib.sh"

profile=ci-arm
# Cargo's JSON messages of the build: where each executable landed.
artifacts="$CARGO_TARGET_DIR/$profile-artifacts.json"

prepare() {
  cross_host
  cross_sysroot
}

build() {
  prepare
  local started=$SECONDS
  mkdir -p "$CARGO_TARGET_DIR"
  # One cargo invocation for the daemon and the tests: built apart, the
  # tests' dev-dependencies give shared crates other features, and tract
  # and everything above it compiled a second time.
  (cd "$repo" && nice -n 19 "${cargo[@]}" build --locked --profile "$profile" --target "$target" \
    -p wayside -p wayside-vision -p wayside-arena --bins --tests \
    --message-format=json-render-diagnostics) \
    >"$artifacts"
  say "built the daemon and the vision and arena tests ($profile) in $((SECONDS - started)) s"
}

# "KEY PATH" lines: vision-lib (the unit tests), detect_real, faces_real,
# arena-replay, wayside (the daemon).
executables() {
  python3 - "$artifacts" <<'PY'
import json, sys
keys = {("lib", True, "wayside_vision"): "vision-lib",
        ("test", True, "detect_real"): "detect_real",
        ("test", True, "faces_real"): "faces_real",
        ("test", True, "replay"): "arena-replay",
        ("bin", False, "wayside"): "wayside"}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    key = keys.get((m["target"]["kind"][0], m["profile"]["test"], m["target"]["name"]))
    if key:
        print(key, m["executable"])
PY
}

run_tests() {
  prepare
  local started=$SECONDS key path
  declare -A exe=()
  while read -r key path; do exe[$key]="$path"; done < <(executables)
  for key in vision-lib detect_real faces_real arena-replay wayside; do
    [[ -x "${exe[$key]:-}" ]] || { say "no $key executable in $artifacts: run cross/ci.sh build"; return 1; }
  done
  local qemu=(qemu-aarch64-static -cpu "$qemu_cpu" -L "$qemu_prefix")
  # The daemon's smoke test is mostly one core (loading the models, one
  # inference): it runs beside the vision tests, whose harness takes the
  # other. The data API's aarch64 build is cross/build.sh's: CI smokes the
  # daemon only.
  local smoke_log="$CARGO_TARGET_DIR/cross-ci-smoke.log" status=0
  WAYSIDE_CROSS_DAEMON="${exe[wayside]}" WAYSIDE_CROSS_DATA="" "$repo/cross/test.sh" smoke \
    >"$smoke_log" 2>&1 &
  smoke=$!
  # Stopped midway, this script stops the smoke test, whose own trap stops
  # its daemon under qemu.
  trap 'kill "$smoke" 2>/dev/null || true' EXIT
  # From the crate's directory, as cargo runs tests. Chained with &&:
  # `set -e` does not apply inside the left side of `||`. The counting and
  # tracking properties run 32 random cases each here, not proptest's 256:
  # they test arithmetic the x86 suite has checked on every case, and at
  # 256 they were most of the time under qemu (4 of them 210 s).
  (
    cd "$repo/vision" &&
      PROPTEST_CASES=32 "${qemu[@]}" "${exe[vision-lib]}" &&
      "${qemu[@]}" "${exe[detect_real]}" --exact double_decker_bus_in_a_wide_frame &&
      "${qemu[@]}" "${exe[faces_real]}" --exact one_face_in_the_obama_portrait &&
      cd "$repo/arena" &&
      "${qemu[@]}" "${exe[arena-replay]}"
  ) || status=$?
  say "wayside-vision (quick) under qemu: $((SECONDS - started)) s"
  wait "$smoke" || status=$?
  trap - EXIT
  cat "$smoke_log" >&2
  say "the aarch64 tests under qemu: $((SECONDS - started)) s"
  return "$status"
}

case "${1:-all}" in
  prepare) prepare ;;
  build) build ;;
  test) run_tests ;;
  all) build && run_tests ;;
  *) echo "usage: cross/ci.sh [prepare | build | test]" >&2; exit 2 ;;
esac
