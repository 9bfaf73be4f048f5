#!/usr/bin/env bash
# The corpus's `big` image (bench/big-image.sh: a bookworm minbase with
# Python, a C toolchain, git and curl, from bookworm main only), in one run:
# `freshen scan` with a warm index cache (median of 3) and `freshen patch
# --all` with cold and warm caches, against the daily rebuild on Debian's
# Docker Engine (`FROM big` + `RUN apt-get update && apt-get -y upgrade`,
# built with --no-cache). Prints a markdown table of wall times and ratios.
#
# usage: bench/corpus.sh        (root; env FRESHEN_BENCH_BIG_DIR, default /var/tmp/freshen-bench-big)
set -euo pipefail
BENCH_NAME=corpus-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${FRESHEN_BENCH_BIG_DIR:-/var/tmp/freshen-bench-big}
# Only the table goes to stdout.
exec 3>&1 1>&2

build_freshen
[[ -e "$OUT/oci/index.json" ]] || "$REPO/bench/big-image.sh" "$OUT"
IMAGE="oci:$OUT/oci:big"
need_tools
start_dockerd
export FRESHEN_CACHE="$W/fcache"

log "freshen scan, warm index cache (median of 3)"
"$FRESHEN" scan "$IMAGE" --format json > "$W/scan.json" || [[ $? == 3 ]]
SCANS=()
for _ in 1 2 3; do
  t0=$(now); "$FRESHEN" scan "$IMAGE" --format json >/dev/null || [[ $? == 3 ]]
  SCANS+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(now)")")
done
SCAN=$(median "${SCANS[@]}")
read -r PACKAGES PENDING SECURITY < <(python3 -c "import json,sys; v=json.load(open(sys.argv[1])); s=v['summary']; print(v['installed_packages'], s['pending'], s['security'])" "$W/scan.json")

log "freshen patch --all, cold caches"
rm -rf "$FRESHEN_CACHE"
t0=$(now); "$FRESHEN" patch "$IMAGE" -o "oci:$W/foci:patched" --all --report "$W/cold.json" >&2; COLD=$(since "$t0")
log "freshen patch --all, warm caches (layers unpacked, indexes and .debs cached; apt runs again)"
rm -rf "$FRESHEN_CACHE/patches"
t0=$(now); "$FRESHEN" patch "$IMAGE" -o "oci:$W/foci:patched2" --all --report "$W/warm.json" >&2; WARM=$(since "$t0")
UPGRADED=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['upgraded']))" "$W/warm.json")

log "docker build (apt-get update && apt-get -y upgrade), twice"
docker_load "$IMAGE" big:latest
upgrade_context big:latest
DOCKER_COLD=$(docker_upgrade up:1)
DOCKER_WARM=$(docker_upgrade up:2)

cat >&3 <<EOT
| big image: $PACKAGES packages, $PENDING updates pending ($SECURITY security); on $(machine) | freshen | docker build + apt-get upgrade | ratio |
|---|---|---|---|
| scan, warm index cache (median of 3: ${SCANS[*]} s) | ${SCAN} s | | |
| patch --all ($UPGRADED packages), cold caches | ${COLD} s | ${DOCKER_COLD} s | $(ratio "$COLD" "$DOCKER_COLD") |
| patch --all, warm caches | ${WARM} s | ${DOCKER_WARM} s | $(ratio "$WARM" "$DOCKER_WARM") |
EOT
