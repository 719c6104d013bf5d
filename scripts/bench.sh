#!/usr/bin/env bash
# Model latency, tract vs onnxruntime, per model at 1 and 2 threads, with peak
# RSS: builds vision/benches/models.rs in release mode and prints a markdown
# report to stdout (progress and cargo output go to stderr). Needs the model
# cache and the Python venv from scripts/setup-models.sh.
#
#   scripts/bench.sh                          # every model, 30 runs, 1 and 2 threads
#   scripts/bench.sh --runs 50 detector       # one model
#   scripts/bench.sh --tract-only --threads 2 --panel-threshold 16
#   WAYSIDE_BENCH_RUNS=10 scripts/bench.sh
#
# Both runtimes share the machine with whatever else is running: check
# `uptime` first, as the report does.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p wayside-vision --bench models -- "$@"
