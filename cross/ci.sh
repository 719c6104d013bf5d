#!/usr/bin/env bash
# The aarch64 check that fits in CI (scripts/test.sh can call it): build
# wayside-vision and its tests for aarch64 with Debian's toolchain and run
# the quick set under qemu (every unit test, one detector and one face model
# test). It needs no GStreamer sysroot.
#
# The full cross build of both binaries (fat LTO) takes far longer than CI's
# budget on 2 cores and stays a separate step: cross/build.sh, then
# cross/test.sh smoke. docs/DEPLOY.md has the measured times.
set -euo pipefail
exec "$(dirname "$0")/test.sh" vision quick
