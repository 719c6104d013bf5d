#!/usr/bin/env bash
# Starts an Elasticsearch-API emulator (noida-db 0.2.3, "the ES 8 API as
# emulated") for wayside-data's backend tests, on a free port on 127.0.0.1.
#
#   eval "$(scripts/es-test-server.sh start)"   # exports WAYSIDE_ES_URL, WAYSIDE_ES_PID
#   scripts/es-test-server.sh stop              # stops the one started from this checkout
#
# Idempotent: installs noida-db (pip, pinned) into .venv/ only when missing;
# `start` reuses a running instance if its URL still answers.
# Prints shell assignments on stdout; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="0.2.3"
STATE="$ROOT/var/es-test"
VENV="$ROOT/.venv/noida"
BIN="$VENV/bin/noida-db"

log() { echo "es-test-server: $*" >&2; }

install() {
  if [[ -x "$BIN" ]] && "$VENV/bin/pip" show noida-db 2>/dev/null | grep -q "^Version: $VERSION\$"; then
    return
  fi
  log "installing noida-db==$VERSION into $VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet "noida-db==$VERSION" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$1" >/dev/null 2>&1
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" >/dev/null 2>&1
  fi
}

start() {
  install
  mkdir -p "$STATE"
  if [[ -f "$STATE/pid" && -f "$STATE/url" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null \
     && answers "$(cat "$STATE/url")"; then
    log "already running"
  else
    local port
    port="$(free_port)"
    rm -rf "$STATE/data"
    mkdir -p "$STATE/data"
    setsid "$BIN" start --only elasticsearch --elasticsearch-port "$port" --data-dir "$STATE/data" \
      >"$STATE/log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    echo "http://127.0.0.1:$port" >"$STATE/url"
    for _ in $(seq 1 100); do
      answers "http://127.0.0.1:$port" && break
      kill -0 "$(cat "$STATE/pid")" 2>/dev/null || { log "noida-db exited:"; cat "$STATE/log" >&2; exit 1; }
      sleep 0.1
    done
    answers "http://127.0.0.1:$port" || { log "no answer on port $port"; cat "$STATE/log" >&2; exit 1; }
    log "started on http://127.0.0.1:$port (log: $STATE/log)"
  fi
  echo "export WAYSIDE_ES_URL=$(cat "$STATE/url")"
  echo "export WAYSIDE_ES_PID=$(cat "$STATE/pid")"
}

stop() {
  if [[ -f "$STATE/pid" ]]; then
    local pid
    pid="$(cat "$STATE/pid")"
    # setsid made it a group leader: the pip entry point starts the real
    # server as a child, so the whole group is stopped.
    if kill -0 "$pid" 2>/dev/null; then
      kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 -- -"$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/pid" "$STATE/url"
    log "stopped"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  url) cat "$STATE/url" ;;
  *) echo "usage: $0 [start|stop|install|url]" >&2; exit 2 ;;
esac
