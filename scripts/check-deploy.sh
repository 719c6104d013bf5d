#!/usr/bin/env bash
# Deployment checks: the systemd units verify and stay at or below the exposure
# budget, the Yocto layer lints clean, its crate list matches Cargo.lock, and
# (when the models are fetched) the model cache matches what the models recipe
# installs. Installs what it needs on first run (apt systemd if systemd-analyze
# is missing; oelint-adv, pinned, in a venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/wayside/deploy-venv); later runs take seconds.
# Every check runs even after one fails; the last line is the summary.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layer="$repo/yocto/meta-wayside"
units=(wayside.service wayside-data.service)
# systemd-analyze's --threshold is on its 0-100 scale: 20 is an exposure of 2.0.
max_exposure=2.0
venv="${XDG_CACHE_HOME:-$HOME/.cache}/wayside/deploy-venv"
# oelint-adv and everything it pulls in, pinned like models/requirements.txt.
pins="anytree==2.13.0
argcomplete==3.7.2
colorama==0.4.6
Deprecated==1.3.1
oelint-adv==9.11.2
oelint-data==1.5.26
oelint-parser==8.13.2
regex==2026.9.29
urllib3==2.8.0
wrapt==2.5.2"

say() { echo "[deploy] $*" >&2; }
started=$SECONDS

need_apt=()
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]} with apt-get"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# tomllib (the crate list and model manifest readers) is Python 3.11+.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { say "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); 3.11 or newer is needed"; exit 1; }

stamp="$venv/requirements.sha256"
want="$(printf '%s\n' "$pins" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/oelint-adv" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    say "creating venv $venv (oelint-adv)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    printf '%s\n' "$pins" >"$venv/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$venv/requirements.txt"
    echo "$want" >"$stamp"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=()
notes=()

# (a) systemd-analyze verify, offline. It wants every ExecStart binary to exist
# and every unit it references to load, so it runs against a scratch root: the
# host's unit directory, the units as written, and a stub at each ExecStart path.
mkdir -p "$tmp/root/etc/systemd/system" "$tmp/root/usr/lib/systemd"
cp -a "$(realpath /lib/systemd/system)" "$tmp/root/usr/lib/systemd/system"
for u in "${units[@]}"; do
    cp "$repo/systemd/$u" "$tmp/root/etc/systemd/system/"
    exe="$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$repo/systemd/$u")"
    mkdir -p "$tmp/root$(dirname "$exe")"
    cp "$(type -P true)" "$tmp/root$exe"
done
if systemd-analyze verify --root="$tmp/root" "${units[@]}" >"$tmp/verify.log" 2>&1 && [[ ! -s "$tmp/verify.log" ]]; then
    notes+=("verify ${#units[@]} units ok")
else
    # Unknown keys are only warnings to verify: any output fails the check.
    sed 's/^/  /' "$tmp/verify.log" >&2
    failed+=("systemd-analyze verify")
fi

# (b) exposure, offline, against the budget.
scores=()
for u in "${units[@]}"; do
    rc=0
    SYSTEMD_COLORS=0 systemd-analyze security --offline=true --no-pager \
        --threshold="$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 }')" \
        "$repo/systemd/$u" >"$tmp/security.log" 2>&1 || rc=$?
    score="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/security.log")"
    if [[ -z "$score" ]]; then
        sed 's/^/  /' "$tmp/security.log" >&2
        failed+=("security $u (no score)")
        continue
    fi
    scores+=("${u%.service} $score")
    if ((rc != 0)) || awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
        grep '✗' "$tmp/security.log" | sed 's/^/  /' >&2 || true
        failed+=("exposure $u $score > $max_exposure")
    fi
done
notes+=("exposure $(IFS=,; echo "${scores[*]}" | sed 's/,/, /g') (max $max_exposure)")

# (c) oelint-adv over every recipe, include and config of the layer; the
# suppressions and their reasons are in the layer's .oelint.cfg.
mapfile -t lint_files < <(find "$layer" -type f \( -name '*.bb' -o -name '*.bbappend' -o -name '*.inc' \
    -o -name '*.bbclass' -o -name '*.conf' \) | sort)
rc=0
(cd "$layer" && OELINT_CONFIG="$layer/.oelint.cfg" "$venv/bin/oelint-adv" --quiet --relpaths \
    --jobs 2 "${lint_files[@]}") >"$tmp/oelint.log" 2>&1 || rc=$?
if ((rc == 0)) && [[ ! -s "$tmp/oelint.log" ]]; then
    notes+=("oelint-adv $("$venv/bin/oelint-adv" --version | awk '{print $2}') clean on ${#lint_files[@]} files")
else
    sed 's/^/  /' "$tmp/oelint.log" >&2
    failed+=("oelint-adv: $(grep -c . "$tmp/oelint.log") finding(s)")
fi

# (d) the committed crate list is the one Cargo.lock gives.
if "$venv/bin/python" "$repo/yocto/scripts/gen-crates-inc.py" --check >"$tmp/crates.log" 2>&1; then
    notes+=("$(grep -o '[0-9]* crates' "$tmp/crates.log") in wayside-crates.inc match Cargo.lock")
else
    sed 's/^/  /' "$tmp/crates.log" >&2
    failed+=("wayside-crates.inc stale")
fi

# (e) what the models recipe would install, when the models are fetched.
cache="${WAYSIDE_MODELS_DIR:-$repo/models/cache}"
if [[ -d "$cache" ]]; then
    if "$venv/bin/python" "$layer/recipes-wayside/wayside-models/files/install-models.py" \
        --manifest "$repo/models/manifest.toml" --from "$cache" --check >"$tmp/models.log" 2>&1; then
        notes+=("models $(grep -o '[0-9]* files' "$tmp/models.log") match the manifest")
    else
        sed 's/^/  /' "$tmp/models.log" >&2
        failed+=("model cache vs manifest")
    fi
else
    notes+=("models not fetched, not checked")
fi

# The example configs the recipes install are TOML.
for f in "$layer"/recipes-wayside/wayside/files/*.toml; do
    "$venv/bin/python" -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$f" 2>"$tmp/toml.log" \
        || { sed 's/^/  /' "$tmp/toml.log" >&2; failed+=("$(basename "$f") is not TOML"); }
done

summary="$(IFS=';'; echo "${notes[*]}" | sed 's/;/; /g')"
if ((${#failed[@]})); then
    echo "check-deploy: FAILED: $(IFS=';'; echo "${failed[*]}" | sed 's/;/; /g') ($summary; $((SECONDS - started)) s)"
    exit 1
fi
echo "check-deploy: OK: $summary ($((SECONDS - started)) s)"
