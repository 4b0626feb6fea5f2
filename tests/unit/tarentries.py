"""Tar entries for layer tests, built in memory: f (file), d (directory), link (symlink,
or another kind), hard (hard link), and tar_bytes to make the archive."""

from __future__ import annotations

import io
import tarfile

MTIME = 1_600_000_000


def f(name, data=b"", mode=0o644, uid=0, gid=0, **pax):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, uid, gid, MTIME
    ti.pax_headers = pax
    return ti, data


def d(name, mode=0o755, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, uid, gid, MTIME
    return ti, None


def link(name, target, kind=tarfile.SYMTYPE):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mtime = kind, target, MTIME
    return ti, None


def hard(name, target):
    return link(name, target, tarfile.LNKTYPE)


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
