#!/usr/bin/env python3
"""Writes seed inputs for the layer_scan, layer_unpack and image_json fuzz
targets into corpus/TARGET/ (python3's standard library only)."""
import gzip
import io
import json
import os
import tarfile

R, D, S, L = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
C, B, F = tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE


def layer(fmt, entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, kind, data, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = kind, 0o644, 1600000000
            for k, v in extra.items():
                setattr(ti, k, v)
            ti.size = len(data) if kind == R else 0
            t.addfile(ti, io.BytesIO(data) if kind == R else None)
    return out.getvalue()


BASE = [
    ("etc/", D, b"", {}),
    ("etc/apt/", D, b"", {}),
    ("etc/apt/sources.list", R, b"deb http://deb.debian.org/debian bookworm main\n", {}),
    ("etc/os-release", S, b"", {"linkname": "../usr/lib/os-release"}),
    ("usr/lib/os-release", R, b"ID=debian\nVERSION_ID=12\n", {}),
    ("var/lib/dpkg/status", R, b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n", {}),
    ("var/lib/dpkg/status.d/x", L, b"", {"linkname": "var/lib/dpkg/status"}),
    ("dev/null", C, b"", {"devmajor": 1, "devminor": 3}),
    ("dev/sda", B, b"", {"devmajor": 8, "devminor": 0}),
    ("run/initctl", F, b"", {}),
    ("usr/bin/su", R, b"x", {"mode": 0o4755}),
    ("etc/apt/.wh.old", R, b"", {}),
    ("var/.wh..wh..opq", R, b"", {}),
]
LONG = [("etc/apt/" + "a" * 150, R, b"long\n", {}), ("etc/apt/l", S, b"", {"linkname": "b" * 200})]
PAX = [("etc/apt/p", R, b"pax\n", {"pax_headers": {"SCHILY.xattr.user.a": "1", "mtime": "1.5"}})]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    tars = [layer(tarfile.GNU_FORMAT, BASE), layer(tarfile.GNU_FORMAT, LONG), layer(tarfile.PAX_FORMAT, PAX + LONG)]
    seeds = {"layer_scan": tars + [gzip.compress(tars[0])], "layer_unpack": tars}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
                         "history": [{"created_by": "x"}, {"empty_layer": True}]})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@C", "size": 1},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "b" * 64, "size": 10}]})
    manifest = manifest.replace('"size": 1}', '"size": @c}')
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@M", "size": 1,
                        "annotations": {"org.opencontainers.image.ref.name": "latest"}, "platform": {"architecture": "amd64", "os": "linux"}}]})
    index = index.replace('"size": 1,', '"size": @m,')
    docker = manifest.replace("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
    nested = index.replace("manifest.v1", "index.v1")
    seeds["image_json"] = [(d + "\n--\n" + m + "\n--\n" + config).encode() for d, m in
                           [(index, manifest), (index, docker), (nested, index.replace("@M", "sha256:" + "c" * 64))]]
    for target, inputs in seeds.items():
        os.makedirs(os.path.join(here, "corpus", target), exist_ok=True)
        for i, data in enumerate(inputs):
            with open(os.path.join(here, "corpus", target, f"seed{i}"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
