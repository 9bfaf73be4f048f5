#!/usr/bin/env bash
# Exposure benchmark: the window from a security archive publishing a fix to
# every affected container running it, patched and healthy, with `freshen
# watch` (poll interval 10 s) on Debian's Docker Engine; against the daily
# rebuild (`docker build` FROM each app + `apt-get update && apt-get -y
# upgrade`, then every container recreated), whose window is the wait for
# its cron (up to 24 h) plus the time measured here.
#
# Five app images on two bases (the stale bookworm minbase with `websrv`
# installed from a signed security archive on 127.0.0.1, made by
# crates/freshen/tests/fixtures/live-repo.sh); every container has a
# HEALTHCHECK. Rounds with 1, 5, 20 and 50 containers, each publishing a
# new websrv version.
#
# usage: bench/exposure.sh [SIZES...]   (root; default sizes: 1 5 20 50;
#        env FRESHEN_BENCH_DIR, default /var/tmp/freshen-bench)
set -euo pipefail
BENCH_NAME=exposure-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}
SIZES=${*:-1 5 20 50}
PKG=websrv
APPS=5

build_freshen
[[ -e "$OUT/oci/index.json" ]] || "$REPO/bench/stale-image.sh" "$OUT"
need_tools
start_dockerd
docker_load "oci:$OUT/oci:stale" stale:latest

# The live archive: a throwaway signing key, websrv 1.0, served on 127.0.0.1.
export GNUPGHOME="$W/gnupg"
mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'freshen test archive <test@example.invalid>' ed25519 sign never 2>/dev/null
publish() { bash "$REPO/crates/freshen/tests/fixtures/live-repo.sh" "$W/live" "$GNUPGHOME" "$PKG" "$1"; }
publish 1.0
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$W/live" && exec python3 -m http.server --bind 127.0.0.1 "$PORT" >/dev/null 2>&1) &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; stop_dockerd' EXIT

# Two bases (websrv 1.0 installed as dpkg records it, the archive as the
# only source), five apps on them.
mkdir -p "$W/ctx"
gpg --batch --export test@example.invalid > "$W/ctx/live.gpg"
echo "deb http://127.0.0.1:$PORT ./" > "$W/ctx/sources.list"
cat > "$W/ctx/Dockerfile" <<EOF
FROM stale:latest
COPY sources.list /etc/apt/sources.list
COPY live.gpg /etc/apt/trusted.gpg.d/live.gpg
RUN printf 'Package: $PKG\nStatus: install ok installed\nPriority: optional\nArchitecture: all\nVersion: 1.0\nDescription: test\n\n' >> /var/lib/dpkg/status \\
 && mkdir -p /usr/share/$PKG && echo "$PKG 1.0" > /usr/share/$PKG/version
ARG FLAVOUR
RUN echo "\$FLAVOUR" > /etc/flavour
EOF
for b in a b; do D build -q --network none --build-arg FLAVOUR=$b -t base-$b:1 "$W/ctx" >&2; done
for i in $(seq 1 $APPS); do
  base=$([[ $((i % 2)) == 1 ]] && echo a || echo b)
  mkdir -p "$W/app$i"
  printf 'FROM base-%s:1\nRUN echo app %s > /app\nHEALTHCHECK --interval=1s --start-period=1s CMD test ! -e /usr/share/%s/broken\nCMD ["sleep", "infinity"]\n' "$base" "$i" "$PKG" > "$W/app$i/Dockerfile"
  D build -q --network none -t "app$i:1" "$W/app$i" >&2
done

export FRESHEN_CACHE="$W/fcache"
STATE="$W/state"
cat > "$W/freshen.toml" <<EOF
interval = "10s"
settle = "10s"
health_timeout = "60s"
EOF

# Seconds until every running container runs websrv $1 and is healthy.
wait_fresh() {
  python3 - "$HOST" "$PKG" "$1" <<'PY'
import json, subprocess, sys, time
host, pkg, want = sys.argv[1:4]
d = lambda *a: subprocess.run(["docker", "--host", host, *a], capture_output=True, text=True).stdout
versions = {}
t0 = time.time()
while time.time() - t0 < 1800:
    ids = d("ps", "-q").split()
    ok = bool(ids)
    for c in json.loads(d("inspect", *ids)) if ids else []:
        img = c["Image"]
        if img not in versions:
            versions[img] = d("run", "--rm", "--entrypoint", "cat", img, f"/usr/share/{pkg}/version").strip()
        health = (c["State"].get("Health") or {}).get("Status")
        if versions[img] != f"{pkg} {want}" or health != "healthy":
            ok = False
            break
    if ok:
        print(f"{time.time() - t0:.1f}")
        sys.exit(0)
    time.sleep(0.5)
sys.exit("timed out")
PY
}

start_containers() {
  D rm -f $(D ps -aq) >/dev/null 2>&1 || true
  for n in $(seq 1 "$1"); do
    D run -d --name "c$n" "app$(( (n - 1) % APPS + 1 )):1" >/dev/null
  done
}

log "freshen watch --interval 10s"
"$FRESHEN" watch --config "$W/freshen.toml" --state "$STATE" --docker-host "$HOST" --log-format json 2> "${EXPOSURE_LOG:-$W/watch.log}" &
WATCH=$!
trap 'kill $WATCH 2>/dev/null; kill $SERVER 2>/dev/null; stop_dockerd' EXIT

version=0
RESULTS=()
for n in $SIZES; do
  version=$((version + 1))
  start_containers "$n"
  # Let the watch see the new containers (and patch nothing: all current).
  wait_fresh "1.$((version - 1))" >/dev/null
  [[ $version == 1 ]] || sleep 12
  log "$n containers: publishing $PKG 1.$version"
  publish "1.$version"
  s=$(wait_fresh "1.$version")
  log "$n containers: all patched and healthy after $s s"
  RESULTS+=("$n:$s")
done
kill -TERM $WATCH; wait $WATCH || true

# A pass with nothing pending over the last round's containers (all patched):
# the recorded scans are reused, one conditional request per Release file.
NOOP=()
for _ in 1 2 3 4 5; do
  t0=$(now)
  "$FRESHEN" run --config "$W/freshen.toml" --state "$STATE" --docker-host "$HOST" >/dev/null 2>>"$W/noop.log" || { log "run exited $?"; tail -5 "$W/noop.log" >&2; }
  NOOP+=("$(since "$t0")")
done
log "no-op passes: ${NOOP[*]} s"

log "daily rebuild of the same 5 apps + recreate of 20 containers"
start_containers 20
version=$((version + 1))
publish "1.$version"
t0=$(now)
for i in $(seq 1 $APPS); do
  printf 'FROM app%s:1\nRUN apt-get update && apt-get -y upgrade\n' "$i" > "$W/app$i/Dockerfile.up"
  D build -q --no-cache --network host -t "app$i:1" -f "$W/app$i/Dockerfile.up" "$W/app$i" >&2
done
for n in $(seq 1 20); do
  D rm -f "c$n" >/dev/null
  D run -d --name "c$n" "app$(( (n - 1) % APPS + 1 )):1" >/dev/null
done
REBUILD_WAIT=$(wait_fresh "1.$version")
REBUILD=$(since "$t0")

echo
echo "exposure on $(machine): publish -> every container patched and healthy"
for r in "${RESULTS[@]}"; do echo "  freshen watch (10 s poll), ${r%%:*} containers: ${r#*:} s"; done
echo "  daily rebuild of 5 apps + recreate of 20 containers, once started: $REBUILD s (plus the wait for the cron: up to 86400 s)"
echo "  freshen run with nothing pending over the last round's containers: $(median "${NOOP[@]}") s (median of 5)"
grep -c '"patched in place"' "${EXPOSURE_LOG:-$W/watch.log}" | sed 's/^/  images patched in place by the watch: /'
