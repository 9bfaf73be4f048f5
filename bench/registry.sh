#!/usr/bin/env bash
# Push and pull throughput against a local distribution registry (Debian's
# docker-registry on 127.0.0.1, plain HTTP, filesystem storage): `freshen
# copy` against `skopeo copy` of the same image in the same run, with median
# wall time and peak RSS, and the throughput in MB/s of layer data. The
# image has one gzip layer of BENCH_MB megabytes of random data (1024 by
# default, so peak memory while moving a 1 GB layer is measured).
#
# usage: bench/registry.sh          (prints a markdown table on stdout)
#
# environment:
#   BENCH_MB    size of the random file in the layer (default 1024)
#   BENCH_RUNS  timed runs of each tool and direction (default 3)
#   BENCH_DIR   scratch directory (default /var/tmp/freshen-bench-registry)
#
# Needs docker-registry, skopeo and GNU time (installed with apt-get if missing).
set -euo pipefail

MB=${BENCH_MB:-1024}
RUNS=${BENCH_RUNS:-3}
WORK=${BENCH_DIR:-/var/tmp/freshen-bench-registry}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { echo "registry-bench: $*" >&2; }
die() { log "error: $*"; exit 1; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ "$MB" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MB must be a positive integer"

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

log "building freshen (release)"
(cd "$REPO" && cargo build --release -j2 >&2)
FRESHEN="$REPO/target/release/freshen"

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LAYOUT="$WORK/oci"

# --- the image: one gzip layer of random data -------------------------------
if [[ ! -e "$LAYOUT/index.json" || "$(cat "$WORK/size" 2>/dev/null)" != "$MB" ]]; then
    log "making an image with a ${MB} MB layer"
    rm -rf "$LAYOUT" "$WORK/src"
    mkdir -p "$WORK/src/data" "$LAYOUT/blobs/sha256"
    head -c "${MB}M" /dev/urandom > "$WORK/src/data/random"
    tar -C "$WORK/src" --owner=0 --group=0 --numeric-owner -cf "$WORK/layer.tar" data
    gzip -1 -n -c "$WORK/layer.tar" > "$WORK/layer.tar.gz"
    python3 - "$WORK" "$LAYOUT" <<'EOF'
import hashlib, json, os, shutil, sys
work, layout = sys.argv[1], sys.argv[2]
def digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f'{layout}/blobs/sha256/{d}', 'wb').write(data)
    return d, len(data)
diff_id = digest(f'{work}/layer.tar')
blob = digest(f'{work}/layer.tar.gz')
size = os.path.getsize(f'{work}/layer.tar.gz')
shutil.move(f'{work}/layer.tar.gz', f'{layout}/blobs/sha256/{blob}')
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
                     "history": [{"created_by": "bench: random data"}]}).encode()
cd, cs = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{cd}", "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{blob}", "size": size}]}).encode()
md, ms = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": f"sha256:{md}", "size": ms, "annotations": {"org.opencontainers.image.ref.name": "big"}}]},
    open(f'{layout}/index.json', 'w'))
open(f'{layout}/oci-layout', 'w').write('{"imageLayoutVersion":"1.0.0"}')
EOF
    rm -rf "$WORK/src" "$WORK/layer.tar"
    echo "$MB" > "$WORK/size"
fi
LAYER_BYTES=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]+'/index.json'))['manifests'][0]['digest'].split(':')[1]; print(json.load(open(sys.argv[1]+'/blobs/sha256/'+m))['layers'][0]['size'])" "$LAYOUT")

# --- the registry ------------------------------------------------------------
# Each push goes to a registry started afresh on empty storage and a new
# port, and skopeo's blob info cache is removed, so that neither tool can
# skip or mount the layer from an earlier run: both upload it.
REG_PID=
start_registry() {
    [[ -n "$REG_PID" ]] && { kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; }
    rm -rf "$WORK/registry" /var/lib/containers/cache/blob-info-cache-v1.boltdb "${XDG_DATA_HOME:-$HOME/.local/share}/containers/cache/blob-info-cache-v1.boltdb"
    mkdir -p "$WORK/registry"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $WORK/registry}
http: {addr: 127.0.0.1:$PORT}
EOF
    docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
    REG_PID=$!
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
    REG="127.0.0.1:$PORT"
}
trap '[[ -n "$REG_PID" ]] && kill $REG_PID 2>/dev/null || true' EXIT
LAYER_DIGEST=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]+'/index.json'))['manifests'][0]['digest'].split(':')[1]; print(json.load(open(sys.argv[1]+'/blobs/sha256/'+m))['layers'][0]['digest'].split(':')[1])" "$LAYOUT")

# timed NAME CMD...: appends "seconds maxrss_kb" to $WORK/NAME.times
timed() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" > "$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; die "$name failed"; }
    cat "$WORK/time.out" >> "$WORK/$name.times"
}
rm -f "$WORK"/*.times
for r in $(seq "$RUNS"); do
    log "run $r/$RUNS"
    # The order alternates so neither tool always runs second.
    tools=(skopeo freshen)
    ((r % 2 == 0)) && tools=(freshen skopeo)
    for tool in "${tools[@]}"; do
        start_registry
        rm -rf "$WORK/pull"
        case $tool in
            skopeo)
                timed push-skopeo skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:big" "docker://$REG/app:1"
                timed pull-skopeo skopeo copy -q --src-tls-verify=false "docker://$REG/app:1" "oci:$WORK/pull:big" ;;
            freshen)
                timed push-freshen "$FRESHEN" copy -q --tls-verify=false "oci:$LAYOUT:big" "docker://$REG/app:1"
                timed pull-freshen "$FRESHEN" copy -q --tls-verify=false "docker://$REG/app:1" "oci:$WORK/pull:big" ;;
        esac
        # The registry received the layer, and the pull wrote it back.
        [[ -s "$WORK/registry/docker/registry/v2/blobs/sha256/${LAYER_DIGEST:0:2}/$LAYER_DIGEST/data" ]] || die "$tool push stored no layer"
        [[ -s "$WORK/pull/blobs/sha256/$LAYER_DIGEST" ]] || die "$tool pull wrote no layer"
    done
done
rm -rf "$WORK/pull" "$WORK/registry"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1.times" | median; }
echo "| ${MB} MB random data, gzip layer of $((LAYER_BYTES / 1000000)) MB; median of $RUNS | freshen copy | skopeo copy 1.9.3 | freshen/skopeo |"
echo "|---|---|---|---|"
for dir in push pull; do
    fs=$(col "$dir-freshen" 1); ss=$(col "$dir-skopeo" 1)
    fm=$(col "$dir-freshen" 2); sm=$(col "$dir-skopeo" 2)
    awk -v d="$dir" -v fs="$fs" -v ss="$ss" -v fm="$fm" -v sm="$sm" -v b="$LAYER_BYTES" 'BEGIN {
        printf "| %s: wall time | %.2f s (%.0f MB/s) | %.2f s (%.0f MB/s) | %.2f |\n", d, fs, b/1e6/fs, ss, b/1e6/ss, fs/ss
        printf "| %s: peak RSS | %.1f MiB | %.1f MiB | %.2f |\n", d, fm/1024, sm/1024, fm/sm }'
done
