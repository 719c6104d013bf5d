#!/usr/bin/env bash
# Install everything Wayside needs on Debian bookworm (as root), then fetch and
# verify the models. Idempotent: a second run installs nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  # building
  build-essential pkg-config libssl-dev ca-certificates curl git
  # the test CA of the TLS tests
  openssl
  # decoding, encoding and live sources (the video and camera work)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav gstreamer1.0-rtsp
  # MQTT broker for telemetry tests, ffmpeg to make test media
  mosquitto mosquitto-clients ffmpeg
  # the fault tests: SQLite's shell checks stores after a crash or a full
  # disk, libfaketime makes a camera's wall clock jump
  sqlite3 faketime
  # the browser the web page's tests drive (WebDriver)
  chromium chromium-driver
  # real test media (vtest.avi, photos); the CJK font the synthetic plates
  # of the plate tests are drawn with
  opencv-doc fonts-wqy-microhei
  # the model tooling (onnxruntime reference, conversion)
  python3 python3-venv python3-pip
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: the rustup toolchain pinned in rust-toolchain.toml when rustup is
# there, Debian's rustc-web otherwise (bookworm ships it recent enough).
if ! command -v cargo >/dev/null; then
  echo "setup: no cargo found, installing Debian's rustc-web"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web >/dev/null
fi

scripts/setup-models.sh
