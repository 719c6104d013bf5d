#!/usr/bin/env bash
# Creates the Python venv of the reference pipeline (bench/reference/) under
# var/bench-venv and installs bench/reference/requirements.txt into it, hash
# checked. Idempotent: a venv whose stamp matches the requirements' sha256 is
# left alone; a changed requirements file rebuilds it.
#
# Usage: bench/setup.sh   (then: var/bench-venv/bin/python bench/compare.py)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/var/bench-venv"
req="$root/bench/reference/requirements.txt"
stamp="$venv/requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    echo "[bench] $venv is up to date" >&2
    exit 0
fi

python3 -c 'import ensurepip, venv' 2>/dev/null || {
    echo "[bench] python3 lacks venv/ensurepip: apt-get install python3-venv" >&2
    exit 1
}
echo "[bench] creating $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary=:all: -r "$req"
"$venv/bin/python" -c 'import cv2, onnxruntime, supervision, numpy' >&2
echo "$want" > "$stamp"
echo "[bench] ready: $venv" >&2
