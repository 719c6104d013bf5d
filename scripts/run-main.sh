#!/usr/bin/env bash
# The main job: install, fetch the models, build, start the daemon and the
# data API (embedded store), and process a sample video through POST /video.
# The annotated video and the counts land in var/main-job/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin wayside --bin wayside-data
./target/release/wayside models verify

out=var/main-job
mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

./target/release/wayside-data serve --listen 127.0.0.1:8090 --data-dir var/data >"$out/wayside-data.log" 2>&1 &
pids+=($!)
cat >"$out/wayside.toml" <<TOML
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
spool_dir = "var/spool"
[media]
dir = "var/media"
TOML
./target/release/wayside --config "$out/wayside.toml" serve >"$out/wayside.log" 2>&1 &
pids+=($!)

wait_healthy() {
  for _ in $(seq 1 300); do
    curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "main job: $1 did not come up; see $out/*.log" >&2
  exit 1
}
wait_healthy http://127.0.0.1:8090
wait_healthy http://127.0.0.1:8080

sample=models/cache/media/vtest.avi
echo "main job: POST /video with $sample (79.5 s of pedestrians), interval 1000 ms" >&2
curl -fsS -F "video=@$sample" -F interval=1000 http://127.0.0.1:8080/video >"$out/counts.json"
python3 -m json.tool "$out/counts.json"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["processed_video_url"])' "$out/counts.json")
curl -fsS -o "$out/annotated.mp4" "$url"
echo "main job: counts in $out/counts.json, annotated video in $out/annotated.mp4 (served at $url while the daemon runs)" >&2
