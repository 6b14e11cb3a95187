#!/usr/bin/env bash
# Cold and warm `make run` to /healthz from a fresh clone (issue 16, item 8). Needs the network
# (PyPI). Usage: bench/cold_start.sh [PORT]   Prints `figure: seconds s` lines and the load.
set -euo pipefail
PORT=${1:-8850}
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/enforce-cold-XXXXXX)
BRANCH=$(git -C "$SRC" rev-parse --abbrev-ref HEAD)
git clone --quiet --branch "$BRANCH" "$SRC" "$WORK/clone"
cd "$WORK/clone"

run_until_healthy() {  # $1: figure name; the rest: environment for make
  local name=$1; shift
  local started; started=$(date +%s.%N)
  env "$@" setsid make run PORT="$PORT" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "make run failed, see $WORK/$name.log" >&2; exit 1; fi
    sleep 0.2
  done
  echo "$name: $(echo "$(date +%s.%N) - $started" | bc) s"
  kill -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
# Cold: no venv, empty pip and uv caches (each its own fresh folder).
run_until_healthy make_run_cold PIP_NO_CACHE_DIR=1 UV_CACHE_DIR="$WORK/uv-cache" UV_NO_CACHE=1
# Warm: the same clone again (venv installed, database migrated, demo loaded).
run_until_healthy make_run_warm
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${KEEP:-}" ] && echo "logs and clone kept in $WORK" || rm -rf "$WORK"
