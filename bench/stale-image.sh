#!/usr/bin/env bash
# Builds a "stale" Debian bookworm minbase root filesystem (bookworm main only,
# i.e. the last point release, without bookworm-security or bookworm-updates)
# whose apt sources nonetheless name security and updates, and packs it as a
# one-layer OCI image layout tagged TAG (default "stale") with the project's
# pack_rootfs. FRESHEN_BENCH_INCLUDE (comma-separated) adds packages
# (mmdebstrap --include), all from bookworm main too.
#
# usage: bench/stale-image.sh [OUTDIR [TAG]]   (default: $FRESHEN_BENCH_DIR or /var/tmp/freshen-bench)
#
# Needs root, mmdebstrap and network access to deb.debian.org.
# Idempotent: the mmdebstrap step is skipped when OUTDIR/rootfs/etc/debian_version exists.
set -euo pipefail

OUTDIR=${1:-${FRESHEN_BENCH_DIR:-/var/tmp/freshen-bench}}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${2:-stale}
MIRROR=http://deb.debian.org/debian

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

if [[ -e "$OUTDIR/rootfs/etc/debian_version" ]]; then
    echo "stale-image: $OUTDIR/rootfs exists, skipping mmdebstrap" >&2
else
    command -v mmdebstrap >/dev/null || { echo "stale-image: mmdebstrap not found (apt-get install mmdebstrap)" >&2; exit 1; }
    rm -rf "$OUTDIR/rootfs"
    echo "stale-image: mmdebstrap bookworm -> $OUTDIR/rootfs" >&2
    # The customize hook runs on the host with the rootfs path as "$1".
    mmdebstrap --variant=minbase --mode=root ${FRESHEN_BENCH_INCLUDE:+--include="$FRESHEN_BENCH_INCLUDE"} \
        --customize-hook='rm -f "$1"/etc/apt/sources.list.d/*.list "$1"/etc/apt/sources.list.d/*.sources' \
        --customize-hook='printf "%s\n" \
            "deb http://deb.debian.org/debian bookworm main" \
            "deb http://deb.debian.org/debian bookworm-updates main" \
            "deb http://deb.debian.org/debian-security bookworm-security main" \
            > "$1"/etc/apt/sources.list' \
        bookworm "$OUTDIR/rootfs" "$MIRROR"
fi

PACK="$REPO/target/release/examples/pack_rootfs"
if [[ ! -x "$PACK" ]]; then
    echo "stale-image: building pack_rootfs" >&2
    (cd "$REPO" && cargo build --release -j2 -p freshen-image --features testing --example pack_rootfs)
fi

# Re-pack from scratch each time so the layout holds exactly one image.
rm -rf "$OUTDIR/oci"
echo "stale-image: packing $OUTDIR/rootfs -> $OUTDIR/oci (tag: $TAG)" >&2
"$PACK" "$OUTDIR/rootfs" "$OUTDIR/oci" "$TAG" mmdebstrap
echo "stale-image: done: oci:$OUTDIR/oci:$TAG" >&2
