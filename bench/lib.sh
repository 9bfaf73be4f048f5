# Shared by the benchmark scripts (sourced, not run). Set BENCH_NAME first;
# it prefixes the progress lines on stderr.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "${BENCH_NAME:-bench}: $*" >&2; }
now() { date +%s.%N; }
# Seconds since $1 (a `now`), one decimal.
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6:.1f} MB')" "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
machine() { echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"; }

# Builds freshen in release mode; sets FRESHEN.
build_freshen() {
  (cd "$REPO" && cargo build --release -j2 >&2)
  FRESHEN="$REPO/target/release/freshen"
}

# Installs Debian's Docker Engine, skopeo, umoci and runc when one is missing.
need_tools() {
  for t in docker dockerd skopeo umoci runc; do
    command -v $t >/dev/null || { log "installing $t"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io skopeo umoci runc >&2; break; }
  done
}

# Makes the work directory W (removed on exit, with whatever is mounted
# below it) and starts dockerd in it on its own socket and data root
# (overlay2, no iptables, no bridge); `D` runs the docker client against it.
start_dockerd() {
  W=$(mktemp -d "/var/tmp/freshen-$BENCH_NAME.XXXXXX")
  trap stop_dockerd EXIT
  HOST="unix://$W/docker.sock"
  dockerd --host "$HOST" --data-root "$W/docker" --exec-root "$W/exec" --pidfile "$W/docker.pid" \
    --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none > "$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do docker --host "$HOST" version >/dev/null 2>&1 && break; sleep 0.2; done
}
stop_dockerd() {
  # Containers first (a `sleep infinity` ignores SIGTERM: the Engine would
  # wait for each), then the Engine, waited for; anything of it left is
  # killed, so no container or shim outlives the benchmark.
  docker --host "$HOST" rm -f $(docker --host "$HOST" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  if [[ -f "$W/docker.pid" ]]; then
    local pid; pid=$(cat "$W/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  pkill -9 -f -- "$W/" 2>/dev/null || true
  grep -o " $W/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$W"
}
D() { docker --host "$HOST" "$@"; }

# Loads the OCI image $1 (`oci:DIR:TAG`) into the engine as $2 (`NAME:TAG`).
docker_load() {
  skopeo copy -q "$1" "docker-archive:$W/load.tar:$2" >&2
  D load -q -i "$W/load.tar" >&2
  rm -f "$W/load.tar"
}

# The daily rebuild: writes a context whose Dockerfile is `FROM $1` +
# `RUN apt-get update && apt-get -y upgrade`.
upgrade_context() {
  mkdir -p "$W/ctx"
  printf 'FROM %s\nRUN apt-get update && apt-get -y upgrade\n' "$1" > "$W/ctx/Dockerfile"
}

# Builds that context without Docker's cache as $1; prints the seconds taken.
docker_upgrade() {
  local t0; t0=$(now)
  D build -q --no-cache --network host -t "$1" "$W/ctx" >&2
  since "$t0"
}
