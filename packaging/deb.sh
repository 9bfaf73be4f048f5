#!/usr/bin/env bash
# Builds the Debian package of freshen, TARGET/debian/freshen_VERSION-1_ARCH.deb,
# with Debian's own tools (dpkg-deb, dpkg-shlibdeps, dpkg-architecture):
#   /usr/bin/freshen                        the binary, stripped
#   /lib/systemd/system/freshen.service     dist/freshen.service, shipped but not
#                                           enabled (`freshen host install` does that)
#   /usr/share/freshen/dokku-plugin/        dokku-plugin/, modes kept
#   /usr/share/man/man1/freshen*.1.gz       from the clap definitions
#   bash, zsh and fish completions          from the clap definitions
#   /usr/share/doc/freshen/                 copyright (machine-readable), changelog.Debian.gz
# Reproducible: every time is SOURCE_DATE_EPOCH (default: the last commit's),
# files sorted, owned by root.
#
# usage: packaging/deb.sh [--binary PATH] [--out DIR]   (prints the .deb's path)
#   --binary PATH  package this binary (default: `cargo build --release -p freshen`)
#   --out DIR      write the .deb here (default: the cargo target dir's debian/)
set -euo pipefail

die() { echo "deb.sh: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
binary= out=
while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture strip gzip md5sum; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils)"
done
target=${CARGO_TARGET_DIR:-$repo/target}
if [ -z "$binary" ]; then
  (cd "$repo" && cargo build --release -j2 -p freshen)
  binary=$target/release/freshen
fi
[ -x "$binary" ] || die "$binary: not an executable"
out=${out:-$target/debian}

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null) || die "$repo is not a git checkout: set SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH
export LC_ALL=C TZ=UTC
umask 022
upstream=$("$binary" --version | awk '{print $2}')
[ -n "$upstream" ] || die "$binary --version printed no version"
# Debian revision 1: the packaging is not part of the upstream version.
version=$upstream-1
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
# The Maintainer field: DEB_MAINTAINER, else the last commit's author.
maintainer=${DEB_MAINTAINER:-$(git -C "$repo" log -1 --format='%an <%ae>' 2>/dev/null || true)}
[ -n "$maintainer" ] || die "set DEB_MAINTAINER (\"Name <email>\") outside a git checkout"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg

# The binary, stripped as dh_strip does.
install -D -m 0755 "$binary" "$pkg/usr/bin/freshen"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/freshen"

# The systemd unit and the Dokku plugin, as the repository has them.
install -D -m 0644 "$repo/dist/freshen.service" "$pkg/lib/systemd/system/freshen.service"
mkdir -p "$pkg/usr/share/freshen"
cp -R "$repo/dokku-plugin" "$pkg/usr/share/freshen/dokku-plugin"
# Modes kept, normalised: executables 0755, other files 0644 (whatever the checkout's umask).
find "$pkg/usr/share/freshen" -type d -exec chmod 0755 {} +
find "$pkg/usr/share/freshen" -type f -perm /111 -exec chmod 0755 {} +
find "$pkg/usr/share/freshen" -type f ! -perm /111 -exec chmod 0644 {} +

# Man pages and completions, from the clap definitions.
"$binary" manpages "$work/man"
mkdir -p "$pkg/usr/share/man/man1"
for page in "$work"/man/*.1; do
  gzip -9n < "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"
done
completion() { mkdir -p "$(dirname "$pkg/$2")"; "$binary" completions "$1" > "$pkg/$2"; }
completion bash usr/share/bash-completion/completions/freshen
completion zsh usr/share/zsh/vendor-completions/_freshen
completion fish usr/share/fish/vendor_completions.d/freshen.fish

# Documentation: the copyright file (machine-readable) and the changelog.
doc=$pkg/usr/share/doc/freshen
mkdir -p "$doc"
year=$(date -d "@$SOURCE_DATE_EPOCH" +%Y)
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: freshen

Files: *
Copyright: $year freshen developers
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
COPYRIGHT
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || true)
{
  echo "freshen ($version) unstable; urgency=medium"
  echo
  echo "  * Built from the freshen sources${commit:+ at commit $commit}."
  echo
  echo " -- $maintainer  $(date -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.Debian.gz"

# Control: Depends as dpkg-shlibdeps computes it for the binary, plus an
# OCI runtime for `freshen patch`; the Docker Engine the host automation
# (run, watch, the unit) drives is recommended.
mkdir -p "$work/shlibs/debian" "$pkg/DEBIAN"
: > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$pkg/usr/bin/freshen" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no shared library dependencies for $binary"
size=$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: freshen
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $shlibs, runc | crun
Recommends: docker.io | docker-ce
Suggests: dokku
Section: admin
Priority: optional
Description: find and patch stale OS packages in container images
 freshen scans Debian and Ubuntu container images for pending apt updates
 against each image's own signed apt sources, and patches them: the image's
 own apt runs in an overlayfs and runc sandbox and the result is written as
 one thin layer on the original image.
 .
 On a Docker or Dokku host, \`freshen watch\` (the freshen systemd unit, not
 enabled until \`freshen host install\`) patches running containers and app
 images as soon as their archives publish security fixes. The Dokku plugin
 is in /usr/share/freshen/dokku-plugin.
CONTROL
install -m 0755 /dev/stdin "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
# The binary goes: stop the service and, if `freshen host install` enabled
# it (with systemctl, so deb-systemd-helper does not know its links),
# disable it, so that no link is left pointing at a removed unit.
set -e
if [ "$1" = remove ]; then
  if [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop freshen.service >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl --quiet is-enabled freshen.service 2>/dev/null; then
    systemctl --no-reload disable freshen.service
  fi
fi
exit 0
PRERM
install -m 0755 /dev/stdin "$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
# remove keeps the state, cache and configuration; purge removes them.
set -e
if [ "$1" = purge ]; then
  rm -rf /var/lib/freshen /var/cache/freshen /etc/freshen
fi
if { [ "$1" = remove ] || [ "$1" = purge ]; } && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
POSTRM
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"

find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/freshen_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
