#!/usr/bin/env python3
"""Layer fixtures for the unpack tests, and an independent reference
unpacker to compare hull's snapshots with. Stdlib only.

usage:
  layers.py build OUTDIR        OCI layouts of images whose layers use every
                                tar feature (features, features-child) and
                                hostile layers (one layout per attack)
  layers.py unpack LAYOUT DEST  apply LAYOUT's layers (linux/amd64) in order
                                into DEST with OCI whiteouts, as the image
                                spec says (the reference to compare with)
  layers.py list DIR            one line per entry below DIR: path, type,
                                mode, owner, size, content hash, link target,
                                device, xattrs and link count (sorted)

Images (each an OCI layout tagged "latest"):
  features        2 gzip layers: dirs, files with owners and modes incl.
                  setuid/setgid/sticky, symlinks, hardlinks, a char device, a
                  fifo, xattrs (user.* and security.capability); then a layer
                  that deletes a file (.wh.), replaces a dir by a file, makes a
                  dir opaque (.wh..wh..opq) and adds files below it
  features-child  features plus one zstd-free plain tar layer on top (shares
                  features' two layers: only the new one is unpacked)
  hostile-<name>  one layer each: dotdot, absolute, symlink-escape,
                  hardlink-escape, whiteout-escape, lying-diffid; the escape
                  layers aim at the path in $HULL_CANARY (default
                  /tmp/hull-canary)
Reproducible: fixed mtimes, sorted entries, gzip without a timestamp.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MTIME = 1_700_000_000


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """A tar built in memory, entry by entry."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0,
            link="", xattrs=None, major=0, minor=0):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = MTIME
        info.linkname = link
        info.devmajor, info.devminor = major, minor
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        if kind == tarfile.REGTYPE:
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
        else:
            self.tar.addfile(info)
        return self

    def dir(self, name, mode=0o755, uid=0, gid=0):
        return self.add(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)

    def raw(self, header_and_data):
        """Append raw bytes (a hand-made header) to the stream."""
        self.tar.fileobj.write(header_and_data)
        self.tar.offset += len(header_and_data)
        return self

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        f.write(data)
    return out.getvalue()


def write_layout(out, layers, diff_ids=None):
    """layers: list of (uncompressed tar bytes, gzip?)."""
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = sha(data)
        with open(os.path.join(blobs, d[7:]), "wb") as f:
            f.write(data)
        return d

    descs, ids = [], []
    for tar, compress in layers:
        blob = gz(tar) if compress else tar
        descs.append({"mediaType": LAYER_GZ if compress else LAYER_TAR,
                      "digest": put(blob), "size": len(blob)})
        ids.append(sha(tar))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or ids},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
        "layers": descs,
    }, sort_keys=True).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": put(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def feature_layers():
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    one = (Layer()
           .dir("bin").dir("etc").dir("data", mode=0o750, uid=1000, gid=1000)
           .dir("tmp", mode=0o1777).dir("old").dir("keep").dir("opaque")
           .add("bin/tool", data=b"#!/bin/sh\necho tool\n", mode=0o4755)
           .add("bin/group-tool", data=b"g\n", mode=0o2711, gid=50)
           .add("bin/ping", data=b"ping\n", mode=0o755, xattrs={"security.capability": cap})
           .add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
           .add("etc/hostname", data=b"features\n", mode=0o600, uid=7, gid=8)
           .add("data/owned", data=b"x" * 70000, uid=1000, gid=1000, xattrs={"user.note": "hello"})
           .add("data/hard", tarfile.LNKTYPE, link="data/owned")
           .add("bin/sh", tarfile.SYMTYPE, link="tool")
           .add("etc/abs-link", tarfile.SYMTYPE, link="/etc/passwd")
           .add("dev-null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
           .add("fifo", tarfile.FIFOTYPE, mode=0o644)
           .add("old/gone", data=b"gone\n").add("old/stays", data=b"stays\n")
           .add("keep/dir-becomes-file/inner", data=b"inner\n")
           .add("opaque/hidden", data=b"hidden\n")
           .bytes())
    two = (Layer()
           .dir("old").add("old/.wh.gone")
           .dir("keep").add("keep/.wh.dir-becomes-file")
           .add("keep/dir-becomes-file", data=b"now a file\n")
           .dir("opaque").add("opaque/.wh..wh..opq")
           .add("opaque/new", data=b"new\n")
           .dir("implicit/parent/made", mode=0o700)
           .add("etc/hostname", data=b"changed\n", mode=0o644, uid=7, gid=8)
           .bytes())
    three = Layer().dir("child").add("child/only", data=b"child layer\n").bytes()
    return one, two, three


def hostile_layers(canary):
    up = "../" * 12 + canary.lstrip("/")
    return {
        "dotdot": Layer().add(up + "/dotdot", data=b"owned\n").bytes(),
        "absolute": Layer().add(canary + "/absolute", data=b"owned\n").bytes(),
        "symlink-escape": (Layer().add("esc", tarfile.SYMTYPE, link=canary)
                           .add("esc/through-symlink", data=b"owned\n").bytes()),
        "hardlink-escape": Layer().add("pw", tarfile.LNKTYPE, link=up + "/target").bytes(),
        "whiteout-escape": Layer().add(up[:-1] + "/.wh.target").bytes(),
        "lying-diffid": Layer().add("file", data=b"honest\n").bytes(),
    }


def build(out):
    canary = os.environ.get("HULL_CANARY", "/tmp/hull-canary")
    one, two, three = feature_layers()
    write_layout(os.path.join(out, "features"), [(one, True), (two, True)])
    write_layout(os.path.join(out, "features-child"), [(one, True), (two, True), (three, False)])
    for name, tar in hostile_layers(canary).items():
        lie = [sha(b"something else")] if name == "lying-diffid" else None
        write_layout(os.path.join(out, "hostile-" + name), [(tar, True)], diff_ids=lie)


def layers_of(layout):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    blobs = os.path.join(layout, "blobs", "sha256")
    read = lambda d: open(os.path.join(blobs, d[7:]), "rb").read()
    manifest = json.loads(read(index["manifests"][0]["digest"]))
    if "manifests" in manifest:  # an index: the amd64 entry
        entry = next(m for m in manifest["manifests"]
                     if m.get("platform", {}).get("architecture") == "amd64")
        manifest = json.loads(read(entry["digest"]))
    return [read(l["digest"]) for l in manifest["layers"]]


def decompress(blob):
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        import subprocess
        return subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, check=True).stdout
    return blob


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def unpack(layout, dest):
    os.makedirs(dest, exist_ok=True)
    for blob in layers_of(layout):
        tar = tarfile.open(fileobj=io.BytesIO(decompress(blob)))
        members = tar.getmembers()
        written = set()
        for m in members:
            name = os.path.normpath(m.name).lstrip("/")
            base = os.path.basename(name)
            parent = os.path.dirname(name)
            if base == ".wh..wh..opq":
                d = os.path.join(dest, parent)
                for child in os.listdir(d) if os.path.isdir(d) else []:
                    if os.path.join(parent, child) not in written:
                        remove(os.path.join(d, child))
                continue
            if base.startswith(".wh."):
                remove(os.path.join(dest, parent, base[4:]))
                continue
            target = os.path.join(dest, name)
            if os.path.lexists(target) and not (m.isdir() and os.path.isdir(target)):
                remove(target)
            m.name = name
            if m.islnk():
                # A hard link shares its target's inode and metadata (tar
                # tools do not apply the link entry's owner or mode).
                os.link(os.path.join(dest, os.path.normpath(m.linkname).lstrip("/")), target)
                written.add(name)
                continue
            try:
                tar.extract(m, dest, set_attrs=True, numeric_owner=True, filter="fully_trusted")
            except TypeError:  # Python before extraction filters
                tar.extract(m, dest, set_attrs=True, numeric_owner=True)
            for k, v in m.pax_headers.items():
                if k.startswith("SCHILY.xattr."):
                    os.setxattr(target, k[13:], v.encode("latin-1") if isinstance(v, str) else v,
                                follow_symlinks=False)
            written.add(name)


def listing(root):
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            line = [rel, oct(kind), oct(stat.S_IMODE(st.st_mode)), f"{st.st_uid}:{st.st_gid}"]
            if stat.S_ISREG(kind):
                line += [str(st.st_size), hashlib.sha256(open(p, "rb").read()).hexdigest(),
                         f"nlink={st.st_nlink}"]
            elif stat.S_ISLNK(kind):
                line.append("-> " + os.readlink(p))
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                line.append(f"dev={os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
            try:
                xs = sorted(x for x in os.listxattr(p, follow_symlinks=False)
                            if not x.startswith("trusted.overlay."))
                line += [f"{x}={os.getxattr(p, x, follow_symlinks=False).hex()}" for x in xs]
            except OSError:
                pass
            lines.append(" ".join(line))
    return "\n".join(sorted(lines)) + "\n"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        build(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "list":
        sys.stdout.write(listing(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
