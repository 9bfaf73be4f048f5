#!/usr/bin/env bash
# Measures the host automation on this machine's own dockerd (started here,
# on its own socket and data root): a pass over CONTAINERS containers of two
# images of the stale bookworm minbase (bench/stale-image.sh), the first
# (scans) and then passes with nothing pending and no archive change (the
# scans are reused: one conditional request per apt source), and an idle
# `freshen watch`: resident memory (VmRSS) and CPU time (utime + stime from
# /proc/PID/stat) over IDLE seconds, and how long SIGTERM takes to end it.
# Prints a markdown table to stdout; progress goes to stderr.
#
# usage: bench/watch.sh
#
# environment:
#   FRESHEN_BENCH_DIR  where the stale image lives (default /var/tmp/freshen-bench)
#   CONTAINERS         containers started (default 50)
#   IDLE               seconds the idle watch is measured (default 60)
#   INTERVAL           the watch's --interval (default 5m; try 10s for the probe cost)
#   BENCH_RUNS         timed no-op passes (default 5)
#
# Needs root, docker.io, and network access to deb.debian.org.
set -euo pipefail
BENCH_NAME=watch
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUTDIR=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}
CONTAINERS=${CONTAINERS:-50}
IDLE=${IDLE:-60}
INTERVAL=${INTERVAL:-5m}
RUNS=${BENCH_RUNS:-5}
for v in CONTAINERS IDLE RUNS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { log "error: $v must be a positive integer, not '${!v}'"; exit 1; }
done

[[ -e "$OUTDIR/oci/index.json" ]] || "$REPO/bench/stale-image.sh" "$OUTDIR"
build_freshen
need_tools
start_dockerd
export FRESHEN_CACHE="$W/cache"
STATE="$W/state"
touch "$W/freshen.toml"
F() { "$FRESHEN" "$@" --config "$W/freshen.toml" --state "$STATE" --docker-host "$HOST"; }

log "loading two images"
"$FRESHEN" copy "oci:$OUTDIR/oci:stale" docker-daemon:stale:1 --docker-host "$HOST" >&2
D run --name mk --network none stale:1 /bin/touch /marker >&2
D commit mk stale:2 >/dev/null && D rm mk >/dev/null
log "starting $CONTAINERS containers"
for i in $(seq "$CONTAINERS"); do
  D run -d --network none --name "c$i" "stale:$(( i % 2 + 1 ))" sleep infinity >/dev/null
done

# One pass: wall seconds (the exit code says updates are pending: 3).
pass() { local t0; t0=$(now); F run --dry-run --log-format json >"$W/run.out" 2>"$W/run.log" || [[ $? == 3 ]]; since "$t0"; }
first=$(pass)
log "first pass: ${first}s, $(grep -c '"message":"scanned"' "$W/run.log" || true) images scanned"
times=()
for _ in $(seq "$RUNS"); do times+=("$(pass)"); done
grep -q '"message":"reused"' "$W/run.log" || { log "error: the no-op pass did not reuse the scans"; cat "$W/run.log" >&2; exit 1; }
if grep -q '"message":"scanned"' "$W/run.log"; then log "error: the no-op pass scanned again"; exit 1; fi
noop=$(median "${times[@]}")
log "no-op passes: ${times[*]} s"

log "idle watch (--interval $INTERVAL) for ${IDLE}s"
"$FRESHEN" watch --dry-run --log-format json --interval "$INTERVAL" --config "$W/freshen.toml" --state "$STATE" --docker-host "$HOST" 2>"$W/watch.log" &
WPID=$!
for _ in $(seq 600); do grep -q '"message":"pass done"' "$W/watch.log" && break; sleep 0.1; done
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$WPID/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$WPID/status"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(now); peak=$(rss_kib)
for _ in $(seq "$IDLE"); do sleep 1; r=$(rss_kib); (( r > peak )) && peak=$r; done
cpu=$(python3 -c "import sys; t, h, s = map(float, sys.argv[1:]); print(f'{100 * t / h / s:.3f}')" "$(( $(ticks) - t0 ))" "$hz" "$(since "$s0")")
stop0=$(now)
kill -TERM "$WPID"
wait "$WPID" && code=0 || code=$?
stopped=$(since "$stop0")
log "watch exited $code after SIGTERM in ${stopped}s"

cat <<TABLE
| measure ($(machine)) | value |
|---|---|
| first pass, $CONTAINERS containers of 2 images (2 scans) | ${first} s |
| pass with nothing new, $CONTAINERS containers (median of $RUNS) | ${noop} s |
| idle \`watch --interval $INTERVAL\`: peak VmRSS over ${IDLE} s | $(( peak / 1024 )) MiB |
| idle \`watch\`: CPU over ${IDLE} s | ${cpu} % of one core |
| SIGTERM to exit (code $code) | ${stopped} s |
TABLE
