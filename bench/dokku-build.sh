#!/usr/bin/env bash
# Dokku build benchmark: the time the freshen plugin's `pre-release-builder`
# trigger adds to a deploy, against the `docker build` of the app itself in
# the same run, on Debian's Docker Engine (release build of freshen).
#
# The app: `FROM BASE` + a COPY of its code + labels, env, user and command;
# each round changes the code (a build argument), so Docker rebuilds the
# app's own steps as a push does. The trigger is the plugin's script, run
# as plugn runs it (`pre-release-builder dockerfile APP IMAGE`), with
# freshen's index cache warm (one untimed scan first).
#   nothing pending  BASE is the stale bookworm minbase patched once by
#                    `freshen patch` (no security fix pending): the trigger
#                    scans the build and leaves it.
#   backlog          BASE is the stale minbase (the last point release,
#                    without bookworm-security): the trigger patches the
#                    build in place (packages from deb.debian.org). Round 1
#                    with freshen's patch cache empty, later rounds with it
#                    warm (the same base's patch, as for every later deploy
#                    on that base).
# Also timed, for comparison: `freshen scan docker-daemon:IMAGE` (exports
# the whole image) on the same builds.
#
# usage: bench/dokku-build.sh [ROUNDS]   (root; default 5 rounds;
#        env FRESHEN_BENCH_DIR, default /var/tmp/freshen-bench)
set -euo pipefail
BENCH_NAME=dokku-build-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}
ROUNDS=${1:-5}

build_freshen
[[ -e "$OUT/oci/index.json" ]] || "$REPO/bench/stale-image.sh" "$OUT"
need_tools
start_dockerd
docker_load "oci:$OUT/oci:stale" stale:latest
export FRESHEN_CACHE="$W/fcache"
export DOCKER_HOST="$HOST"

# freshen as the plugin finds it: FRESHEN_BIN, reading a configuration
# with the bench's state and cache.
printf 'state_dir = "%s"\ncache_dir = "%s"\n' "$W/state" "$FRESHEN_CACHE" > "$W/freshen.toml"
printf '#!/bin/sh\nexec %s "$@" --config %s\n' "$FRESHEN" "$W/freshen.toml" > "$W/freshen"
chmod 755 "$W/freshen"
export FRESHEN_BIN="$W/freshen"
TRIGGER="$REPO/dokku-plugin/pre-release-builder"

log "patching the stale base once for the current one"
"$FRESHEN" patch -q docker-daemon:stale:latest -o docker-daemon:current:latest >&2 || true
D image inspect current:latest >/dev/null

mkdir -p "$W/app"
echo 'echo hello' > "$W/app/app.sh"
printf '%s\n' 'ARG BASE' 'FROM $BASE' 'LABEL org.example.team=shop' 'ENV GREETING=hello' 'ARG CODE' \
  'COPY app.sh /app/app.sh' 'RUN echo "$CODE" > /app/version' 'USER 1000' 'CMD ["sleep", "infinity"]' > "$W/app/Dockerfile"

secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
# build BASE TAG ROUND: the app's docker build; prints its seconds.
build() {
  local t0; t0=$(now)
  D build -q --network none --build-arg BASE="$1" --build-arg CODE="$3-$RANDOM" -t "$2" "$W/app" >/dev/null
  secs "$t0"
}
# trigger IMAGE: the plugin's trigger; prints its seconds.
trigger() {
  local t0; t0=$(now)
  "$TRIGGER" dockerfile shop "$1" > "$W/trigger.out" 2>&1 || { cat "$W/trigger.out" >&2; exit 1; }
  secs "$t0"
}
# scan IMAGE: `freshen scan docker-daemon:IMAGE`; prints its seconds.
scan() {
  local t0; t0=$(now)
  "$FRESHEN" scan -q "docker-daemon:$1" >/dev/null || true
  secs "$t0"
}

log "warming the index cache"
build current:latest dokku/shop:warm 0 >/dev/null
"$FRESHEN" scan -q docker-daemon:dokku/shop:warm >/dev/null || true

declare -a B0 T0 S0 B1 T1 S1
for r in $(seq 1 "$ROUNDS"); do
  B0+=("$(build current:latest dokku/shop:latest "$r")")
  S0+=("$(scan dokku/shop:latest)")
  T0+=("$(trigger dokku/shop:latest)")
  grep -q "no security update pending" "$W/trigger.out" || { cat "$W/trigger.out" >&2; exit 1; }
  log "nothing pending, round $r: build ${B0[-1]} s, trigger ${T0[-1]} s, scan by export ${S0[-1]} s"
done
rm -rf "$FRESHEN_CACHE/patches"
for r in $(seq 1 "$ROUNDS"); do
  B1+=("$(build stale:latest dokku/shop:latest "$r")")
  S1+=("$(scan dokku/shop:latest)")
  T1+=("$(trigger dokku/shop:latest)")
  grep -q "freshen: patched" "$W/trigger.out" || { cat "$W/trigger.out" >&2; exit 1; }
  log "backlog, round $r: build ${B1[-1]} s, trigger ${T1[-1]} s ($(grep -c '^       ' "$W/trigger.out") packages), scan by export ${S1[-1]} s"
done

echo "# dokku-build: $(machine), $ROUNDS rounds"
echo "nothing pending: docker build median $(median "${B0[@]}") s; trigger added median $(median "${T0[@]}") s (min $(printf '%s\n' "${T0[@]}" | sort -g | head -1), max $(printf '%s\n' "${T0[@]}" | sort -g | tail -1)); freshen scan docker-daemon: median $(median "${S0[@]}") s"
echo "backlog: docker build median $(median "${B1[@]}") s; trigger added: round 1 (patch cache empty) ${T1[0]} s, median of all $(median "${T1[@]}") s, median of rounds 2+ $(median "${T1[@]:1}") s; freshen scan docker-daemon: median $(median "${S1[@]}") s"
