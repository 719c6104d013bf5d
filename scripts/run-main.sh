#!/usr/bin/env bash
# The main job: install, fetch the models, build, and run Wayside on real media.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin wayside --bin wayside-data
mkdir -p var
./target/release/wayside models verify
./target/release/wayside detect models/cache/media/bus.jpg --out var/bus-annotated.jpg
echo "main job: annotated image written to var/bus-annotated.jpg"
