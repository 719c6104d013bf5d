#!/usr/bin/env bash
# Build `wayside` and `wayside-data` for aarch64-unknown-linux-gnu (Raspberry
# Pi 5, Jetson) on an x86-64 Debian bookworm host, in the `release-arm`
# profile (fat LTO, one codegen unit, stripped), and print their sizes.
#
#   cross/build.sh            install what is missing, build, print sizes
#
# Installs its own toolchain and sysroot (cross/lib.sh says what and where);
# compiles under `nice -n 19` so a shared machine stays usable. Binaries land
# in target/cross/aarch64-unknown-linux-gnu/release-arm/ (or under
# $WAYSIDE_CROSS_TARGET_DIR). Issue 9's budget: each at most 25 MB stripped.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/lib.sh"

budget=$((25 * 1000 * 1000))

cross_host
cross_sysroot

started=$SECONDS
say "building wayside and wayside-data for $target (profile release-arm)"
# One cargo per package, as the Yocto recipes build them: in one invocation
# cargo unifies the two packages' dependency features, and the daemon linked
# wayside-data's HTTP/2, gzip and catch-panic code (0.6 MB, docs/DEPLOY.md).
for pkg in wayside wayside-data; do
  (cd "$repo" && nice -n 19 "${cargo[@]}" build --locked --profile release-arm --target "$target" \
    -p "$pkg" --bins)
done
say "built in $((SECONDS - started)) s"

out="$CARGO_TARGET_DIR/$target/release-arm"
status=0
for bin in wayside wayside-data; do
  # The profile strips already; strip --strip-all again to measure what a
  # package would ship, whatever the profile says.
  aarch64-linux-gnu-strip --strip-all -o "$out/$bin.stripped" "$out/$bin"
  size="$(stat -c %s "$out/$bin.stripped")"
  verdict="within"
  ((size <= budget)) || { verdict="OVER"; status=1; }
  awk -v b="$bin" -v s="$size" -v v="$verdict" -v p="${out#"$repo"/}/$bin" \
    'BEGIN { printf "%-13s %5.1f MB stripped (%d bytes, %s the 25 MB budget)  %s\n", b, s / 1e6, s, v, p }'
done
exit "$status"
