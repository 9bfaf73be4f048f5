#!/usr/bin/env bash
# Status page and metrics benchmark: a state database of TARGETS targets
# with DAYS days of history (one pass a day; windows opened and closed,
# rollbacks and failures), filled through the State API by
# crates/freshen-host/examples/fill-state.rs, served by `freshen watch
# --listen` (release build; its own pass cannot reach an Engine and
# records nothing). Each of `/` and `/metrics` is asked for ROUNDS times
# by curl, one request at a time; medians of curl's total time.
#
# usage: bench/web.sh [TARGETS [DAYS [ROUNDS]]]   (default 200 30 50)
set -euo pipefail
BENCH_NAME=web-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TARGETS=${1:-200}
DAYS=${2:-30}
ROUNDS=${3:-50}

build_freshen
(cd "$REPO" && cargo build --release -j2 -p freshen-host --example fill-state >&2)
W=$(mktemp -d /var/tmp/freshen-web-bench.XXXXXX)
WATCH=
cleanup() {
  [[ -n "$WATCH" ]] && kill "$WATCH" 2>/dev/null && wait "$WATCH" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

start=$(now)
"$REPO/target/release/examples/fill-state" "$W/state" "$TARGETS" "$DAYS"
log "filled $TARGETS targets, $DAYS days in $(since "$start") s ($(du -sh "$W/state" | cut -f1))"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo 'interval = "1h"' > "$W/freshen.toml"
"$FRESHEN" watch --listen "127.0.0.1:$PORT" --config "$W/freshen.toml" --state "$W/state" --cache "$W/cache" \
  --docker-host "unix://$W/no-engine.sock" > "$W/watch.log" 2>&1 &
WATCH=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

measure() {
  local path=$1 times=() size
  size=$(curl -sf -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT$path")
  for _ in $(seq "$ROUNDS"); do
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT$path")")
  done
  python3 -c "import sys; print(f'{sys.argv[1]}: median {float(sys.argv[2]) * 1000:.1f} ms, min {float(sys.argv[3]) * 1000:.1f} ms over {sys.argv[4]} requests, {int(sys.argv[5]) / 1000:.0f} kB')" \
    "$path" "$(median "${times[@]}")" "$(printf '%s\n' "${times[@]}" | sort -g | head -1)" "$ROUNDS" "$size"
}

echo "machine: $(machine)"
echo "state: $TARGETS targets, $DAYS days of history"
measure /
measure /metrics
measure /api/status
