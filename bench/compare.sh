#!/usr/bin/env bash
# Two freshen binaries on the same patch, in one run: `patch --all` of the
# stale bookworm minbase with warm caches (layers unpacked, indexes and
# .debs cached; the recorded patches removed before every run, so apt runs
# each time), ROUNDS runs of each, alternating. Prints each binary's median
# wall time and the median of the apt phase (the sandbox run) from the
# report's timings, and the ratio of the second to the first.
#
# usage: bench/compare.sh OLD_BINARY NEW_BINARY [ROUNDS]   (root; default 5;
#        env FRESHEN_BENCH_DIR, default /var/tmp/freshen-bench)
set -euo pipefail
BENCH_NAME=compare-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}
OLD=$1
NEW=$2
ROUNDS=${3:-5}

[[ -e "$OUT/oci/index.json" ]] || "$REPO/bench/stale-image.sh" "$OUT"
W=$(mktemp -d /var/tmp/freshen-compare.XXXXXX)
trap 'rm -rf "$W"' EXIT
export FRESHEN_CACHE="$W/cache"

one() { # BINARY NAME: one timed patch, prints "SECONDS APT_MS"
  rm -rf "$FRESHEN_CACHE/patches" "$W/out"
  local t0; t0=$(now)
  "$1" patch "oci:$OUT/oci:stale" -o "oci:$W/out:patched" --all --report "$W/$2.json" -q >/dev/null
  local s; s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$t0" "$(now)")
  echo "$s $(python3 -c "import json,sys; t=json.load(open(sys.argv[1])).get('timings_ms', {}); print(t.get('apt', t.get('sandbox', 0)))" "$W/$2.json")"
}

log "warming the cache with both binaries"
one "$OLD" warm-old >/dev/null
one "$NEW" warm-new >/dev/null
: > "$W/old"; : > "$W/new"
for i in $(seq "$ROUNDS"); do
  one "$OLD" old >> "$W/old"
  one "$NEW" new >> "$W/new"
  log "round $i: old $(tail -1 "$W/old"), new $(tail -1 "$W/new")"
done
python3 - "$W/old" "$W/new" <<'EOF'
import statistics, sys
rows = [[list(map(float, l.split())) for l in open(p) if l.strip()] for p in sys.argv[1:3]]
med = [(statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for rs in rows]
for name, (s, apt) in zip(("old", "new"), med):
    print(f"{name}: median {s:.2f} s, apt phase {apt:.0f} ms")
print(f"new/old: {med[1][0] / med[0][0]:.3f} (apt phase {med[1][1] / max(med[0][1], 1):.3f})")
EOF
