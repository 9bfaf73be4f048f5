#!/usr/bin/env bash
# Builds the corpus test's `big` image (crates/freshen/tests/corpus.rs): the
# stale bookworm minbase plus Python, a C toolchain, git, curl and OpenSSL's
# headers, all from bookworm main only, packed as the OCI layout OUTDIR/oci
# tagged "big".
#
# usage: bench/big-image.sh [OUTDIR]   (default /var/tmp/freshen-bench-big)
set -euo pipefail
FRESHEN_BENCH_INCLUDE=python3,curl,openssl,ca-certificates,libxml2,git,build-essential,python3-pip,libssl-dev \
  exec "$(dirname "${BASH_SOURCE[0]}")/stale-image.sh" "${1:-/var/tmp/freshen-bench-big}" big
