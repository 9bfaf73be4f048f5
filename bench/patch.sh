#!/usr/bin/env bash
# Patch benchmark: freshen patch against the daily-rebuild method (Debian's
# Docker Engine: `FROM stale` + `RUN apt-get update && apt-get -y upgrade`)
# on the same stale bookworm image, in one run. Prints wall times, the new
# layer's uncompressed and compressed bytes for both, and the lower bound
# (bytes of files whose content really changed). Then a fleet: 10 images
# sharing the stale base, each with its own small app layer.
#
# usage: bench/patch.sh        (root; env FRESHEN_BENCH_DIR, default /var/tmp/freshen-bench)
set -euo pipefail
BENCH_NAME=patch-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}

build_freshen
[[ -e "$OUT/oci/index.json" ]] || "$REPO/bench/stale-image.sh" "$OUT"
need_tools
start_dockerd
docker_load "oci:$OUT/oci:stale" stale:latest
upgrade_context stale:latest

log "docker build (apt-get update && apt-get -y upgrade)"
DOCKER_S=$(docker_upgrade up:1)
DOCKER_S2=$(docker_upgrade up:2)
DOCKER_UNCOMP=$(D image inspect up:1 --format '{{json .RootFS.Layers}}' >/dev/null; D history --no-trunc --format '{{.Size}}' up:1 | head -1)
D save -o "$W/up.tar" up:1
mkdir -p "$W/up" && tar -xf "$W/up.tar" -C "$W/up"
TOP=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]))[0]; print(m['Layers'][-1])" "$W/up/manifest.json")
DOCKER_RAW=$(stat -c %s "$W/up/$TOP")
DOCKER_GZ=$(gzip -6 -c "$W/up/$TOP" | wc -c)

log "freshen patch --all, cold caches"
export FRESHEN_CACHE="$W/fcache"
t0=$(now); "$FRESHEN" patch "oci:$OUT/oci:stale" -o "oci:$W/foci:patched" --all --report "$W/cold.json" >&2; FRESHEN_COLD=$(since "$t0")
log "freshen patch --all, warm caches (layers unpacked, indexes and .debs cached; apt runs again)"
rm -rf "$FRESHEN_CACHE/patches"
t0=$(now); "$FRESHEN" patch "oci:$OUT/oci:stale" -o "oci:$W/foci:patched2" --all --report "$W/warm.json" >&2; FRESHEN_WARM=$(since "$t0")
log "freshen patch --all, again: the recorded patch of this base is reused"
t0=$(now); "$FRESHEN" patch "oci:$OUT/oci:stale" -o "oci:$W/foci:patched3" --all >&2; FRESHEN_REUSE=$(since "$t0")
read -r F_RAW F_GZ < <(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['layer']; print(l['uncompressed_bytes'], l['compressed_bytes'])" "$W/warm.json")

log "lower bound: files whose content changed"
umoci unpack --image "$W/foci:patched" "$W/bundle" >/dev/null 2>&1
read -r LOWER LOWER_FILES < <(python3 "$REPO/bench/changed-bytes.py" "$OUT/rootfs" "$W/bundle/rootfs")

log "fleet: 10 images sharing the stale base, each with a small app layer"
for i in $(seq 1 10); do
  mkdir -p "$W/app$i/app"; head -c 200000 /dev/urandom > "$W/app$i/app/app.bin"; echo "app $i" > "$W/app$i/app/name"
done
python3 - "$OUT/oci" "$W" <<'PY'
import json, os, shutil, subprocess, sys
src, w = sys.argv[1], sys.argv[2]
# Each app image: the stale base layer plus a gzip layer of app$i, in its own layout.
idx = json.load(open(f"{src}/index.json"))
man = json.load(open(f"{src}/blobs/sha256/{idx['manifests'][0]['digest'][7:]}"))
cfg = json.load(open(f"{src}/blobs/sha256/{man['config']['digest'][7:]}"))
import hashlib, gzip, io, tarfile
for i in range(1, 11):
    lay = f"{w}/fleet{i}"
    os.makedirs(f"{lay}/blobs/sha256", exist_ok=True)
    for d in [man['config']['digest'], man['layers'][0]['digest']]:
        p = f"{src}/blobs/sha256/{d[7:]}"
        os.link(p, f"{lay}/blobs/sha256/{d[7:]}") if not os.path.exists(f"{lay}/blobs/sha256/{d[7:]}") else None
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(f"{w}/app{i}/app", arcname="app")
    rawb = raw.getvalue()
    gz = gzip.compress(rawb, mtime=0)
    ld = hashlib.sha256(gz).hexdigest()
    open(f"{lay}/blobs/sha256/{ld}", "wb").write(gz)
    c = json.loads(json.dumps(cfg))
    c["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(rawb).hexdigest())
    c.setdefault("history", []).append({"created_by": f"COPY app{i} /app"})
    cb = json.dumps(c).encode(); cd = hashlib.sha256(cb).hexdigest()
    open(f"{lay}/blobs/sha256/{cd}", "wb").write(cb)
    m = json.loads(json.dumps(man))
    m["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(cb)}
    m["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + ld, "size": len(gz)})
    mb = json.dumps(m).encode(); md = hashlib.sha256(mb).hexdigest()
    open(f"{lay}/blobs/sha256/{md}", "wb").write(mb)
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md, "size": len(mb), "annotations": {"org.opencontainers.image.ref.name": "app"}}]}, open(f"{lay}/index.json", "w"))
    open(f"{lay}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
# Both measured with warm layer and index caches but no recorded patch.
rm -rf "$FRESHEN_CACHE/patches"
t0=$(now); "$FRESHEN" patch "oci:$W/fleet1:app" -o "oci:$W/fleet1:patched" >&2; ONE=$(since "$t0")
rm -rf "$FRESHEN_CACHE/patches"
t0=$(now)
for i in $(seq 1 10); do "$FRESHEN" patch "oci:$W/fleet$i:app" -o "oci:$W/fleet$i:patched" >/dev/null; done
TEN=$(since "$t0")

cat <<EOT
| on $(machine) | freshen patch --all | docker build + apt-get upgrade | ratio |
|---|---|---|---|
| wall time, cold caches | ${FRESHEN_COLD} s | ${DOCKER_S} s | $(ratio "$FRESHEN_COLD" "$DOCKER_S") |
| wall time, warm caches | ${FRESHEN_WARM} s | ${DOCKER_S2} s | $(ratio "$FRESHEN_WARM" "$DOCKER_S2") |
| wall time, same base patched before (recorded patch reused) | ${FRESHEN_REUSE} s | ${DOCKER_S2} s | $(ratio "$FRESHEN_REUSE" "$DOCKER_S2") |
| new layer, uncompressed | $(mb "$F_RAW") | $(mb "$DOCKER_RAW") (docker history: ${DOCKER_UNCOMP}) | $(ratio "$F_RAW" "$DOCKER_RAW") |
| new layer, gzip | $(mb "$F_GZ") | $(mb "$DOCKER_GZ") | $(ratio "$F_GZ" "$DOCKER_GZ") |
| lower bound: changed file content | $(mb "$LOWER") in $LOWER_FILES files | | freshen/lower bound $(ratio "$F_RAW" "$LOWER") |
| fleet: 1 image / 10 images sharing the base (each with its own app layer) | ${ONE} s / ${TEN} s | | 10 images take $(ratio "$TEN" "$ONE")x the time of one |
EOT
