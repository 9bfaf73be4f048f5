#!/usr/bin/env python3
"""The lower bound of a patch layer: total size of regular files whose
content changed (or that are new) between two root filesystems, leaving out
apt's lists, caches and logs. usage: changed-bytes.py BEFORE AFTER"""
import hashlib, os, sys

NOISE = ("var/lib/apt/lists/", "var/cache/apt/", "var/log/", "tmp/", "var/cache/ldconfig/", "dev/", "proc/", "sys/", "run/")

def digest(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()

def main(before, after):
    total = files = 0
    seen = set()
    for root, dirs, names in os.walk(after):
        for n in names:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, after)
            if rel.startswith(NOISE) or rel.endswith("-old") or not os.path.isfile(p) or os.path.islink(p):
                continue
            q = os.path.join(before, rel)
            if os.path.isfile(q) and not os.path.islink(q):
                if os.path.getsize(q) == os.path.getsize(p) and digest(q) == digest(p):
                    continue
            st = os.stat(p)
            if (st.st_dev, st.st_ino) in seen:
                continue  # a hardlink: the layer stores its content once
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            files += 1
    print(f"{total} {files}")

main(sys.argv[1], sys.argv[2])
