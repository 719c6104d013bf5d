#!/usr/bin/env bash
# Re-pin the cross route: write cross/packages.lock from the versions Debian
# serves now. Run it (and commit the lock) when cross/build.sh says a pinned
# version is gone, which happens when bookworm's security archive moves on.
#
# host    packages apt-get installs on the build machine (toolchain, qemu);
# sysroot the arm64 GStreamer/GLib -dev packages and everything they pull
#         in, resolved as if installing into an empty arm64 system, then
#         unpacked (never installed) into a private sysroot.
set -euo pipefail
cd "$(dirname "$0")/.."

host=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
  gcc-12-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
sysroot_roots=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)

dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -qq

empty="$(mktemp -d)"
trap 'rm -rf "$empty"' EXIT
: >"$empty/status"

{
  echo "# Written by cross/lock.sh; read by cross/lib.sh. kind name[:arch] version"
  for p in "${host[@]}"; do
    v="$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')"
    [[ -n "$v" && "$v" != "(none)" ]] || { echo "lock: no candidate for $p" >&2; exit 1; }
    echo "host $p $v"
  done
  # An empty dpkg status and arm64 as the only architecture: apt resolves the
  # whole closure, alternatives and virtual packages included.
  apt-get -s -o Dir::State::status="$empty/status" -o APT::Architecture=arm64 \
    -o APT::Architectures::=arm64 -o APT::Install-Recommends=false \
    install "${sysroot_roots[@]}" |
    sed -nE 's/^Inst ([^ ]+) \(([^ ]+) .*\[([a-z0-9]+)\]\).*/sysroot \1:\3 \2/p' |
    sed 's/:all / /' | sort
} >cross/packages.lock.new
mv cross/packages.lock.new cross/packages.lock
echo "lock: $(grep -c '^host ' cross/packages.lock) host and $(grep -c '^sysroot ' cross/packages.lock) sysroot packages pinned"
