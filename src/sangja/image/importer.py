"""`sangja import`: a root filesystem tarball becomes a one-layer image (Docker's import).

The source (a file, ``-`` for stdin, a ``file://``, ``http://`` or ``https://`` URL) may be a
plain tar or gzip, zstd, xz or bzip2 compressed (detected by magic bytes). The tar itself is
the layer: its sha256 is the diff_id; the blob is stored gzip-compressed (as
``import_rootfs`` does). It is unpacked into its layer directory by
``ImageStore.unpack_layer`` (the unpacking every layer goes through) before anything is
recorded, so a hostile entry is refused exactly as for any layer, and nothing is left
behind: temp files go, blobs this import added are removed again (under the exclusive gc
lock: a concurrent writer may be about to record one of them), and no record or tag is
written. The whole import holds the gc lock shared (files first, record last).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.image.changes import apply_changes
from sangja.image.db import Layer
from sangja.image.layers import LayerTooLarge, UnpackLimits
from sangja.image.store import ImageStore, StoreError, _rmtree, goarch, oci_manifest

__all__ = ["ImportError_", "detect", "import_tarball", "parse_platform"]

_CHUNK = 1 << 20
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


class ImportError_(StoreError):
    """The tarball or an option of `import` is unusable (one line, exit 125)."""


def detect(head: bytes) -> str:
    """Compression of a stream from its first bytes: gzip, zstd, xz, bzip2 or none."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "none"


def parse_platform(text: str | None) -> tuple[str, str, str | None]:
    """``linux/amd64``, ``linux/arm64/v8``, ``amd64`` -> (os, architecture, variant)."""
    if not text:
        return "linux", goarch(), None
    parts = text.lower().split("/")
    if len(parts) == 1:
        parts = ["linux", *parts]
    if len(parts) > 3 or not all(parts):
        raise ImportError_(f"invalid platform {text!r} (want OS/ARCH[/VARIANT])")
    if parts[0] != "linux":
        raise ImportError_(f"unsupported platform OS {parts[0]!r} (only linux)")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _rfc3339_now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    ts = int(epoch) if epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _fetch(source: str | BinaryIO, dest_dir: str) -> tuple[str, str]:
    """A local path holding the source's bytes, and its name for the history comment."""
    if not isinstance(source, str):
        path = os.path.join(dest_dir, "source")
        with open(path, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        return path, "-"
    if source == "-":
        raise ImportError_("internal: pass stdin as a file object")
    scheme = source.partition("://")[0].lower() if "://" in source else ""
    if scheme == "file":
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        u = urlparse(source)
        if u.netloc not in ("", "localhost"):
            raise ImportError_(f"{source}: file URLs must name a local path")
        path = url2pathname(u.path)
        _check_readable(path, source)
        return path, source
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        path = os.path.join(dest_dir, "source")
        try:
            with urllib.request.urlopen(source, timeout=60) as resp, open(path, "wb") as out:
                shutil.copyfileobj(resp, out, _CHUNK)
        except urllib.error.HTTPError as e:
            raise ImportError_(f"cannot fetch {source}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            why = getattr(e, "reason", None) or e
            raise ImportError_(f"cannot fetch {source}: {why}") from None
        return path, source
    if scheme:
        raise ImportError_(f"unsupported URL scheme {scheme!r} in {source!r} "
                           "(file, http and https are)")
    _check_readable(source, source)
    return source, "-"


def _check_readable(path: str, what: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ImportError_(f"cannot read {what}: {e.strerror or e}") from None
    if os.path.isdir(path):
        raise ImportError_(f"cannot read {what}: is a directory")


def _decompress(src: str, kind: str, out: BinaryIO) -> str:
    """Write the plain tar of src to out (at most as much as the unpack limits allow for
    src's size); return its sha256 digest."""
    h = hashlib.sha256()
    limits, given = UnpackLimits.from_env(), os.path.getsize(src)
    left = limits.allowed(given)

    def write(chunk: bytes) -> None:
        nonlocal left
        left -= len(chunk)
        if left < 0:
            raise ImportError_(f"the tarball {limits.too_large(given)}")
        h.update(chunk)
        out.write(chunk)
    if kind == "zstd":
        exe = shutil.which("zstd")
        if exe is None:
            raise ImportError_("the tarball is zstd-compressed but 'zstd' is not installed")
        proc = subprocess.Popen([exe, "-dcq", src], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while chunk := proc.stdout.read(_CHUNK):
                write(chunk)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise ImportError_(f"corrupt zstd data: {err.splitlines()[-1] if err else 'error'}")
        return f"sha256:{h.hexdigest()}"
    opener: Any = {"gzip": gzip.open, "xz": lzma.open, "bzip2": bz2.open, "none": open}[kind]
    try:
        with opener(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                write(chunk)
    except (EOFError, OSError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as e:
        raise ImportError_(f"corrupt or truncated {kind} data: {e}") from None
    return f"sha256:{h.hexdigest()}"


def _content_size(tar_path: str) -> int:
    """Sum of the regular files' sizes; also proves the file is a readable tar (of at most
    the unpack limits' number of entries)."""
    limits = UnpackLimits.from_env()
    try:
        with tarfile.open(tar_path, mode="r:") as tf:
            total = 0
            for n, m in enumerate(tf, 1):
                if n > limits.max_entries:
                    raise ImportError_(f"the tarball {limits.too_many_entries()}")
                total += m.size if m.isreg() else 0
            return total
    except (tarfile.TarError, EOFError, OSError) as e:
        why = str(e) or type(e).__name__
        if "empty file" in why:
            why = "the file is empty"
        raise ImportError_(f"not a valid tar archive: {why}") from None


def import_tarball(
    store: ImageStore,
    source: str | BinaryIO,
    *,
    reference: str | None = None,
    changes: list[str] | None = None,
    message: str | None = None,
    platform: str | None = None,
) -> str:
    """Import the tarball as a one-layer image (tagged ``reference`` if given); return the
    image id. Raises ImportError_, ChangeError, UnsafeLayer or LayerError, leaving the
    store as it was."""
    canonical = store.canonical(reference) if reference else None
    os_name, arch, variant = parse_platform(platform)
    inner = apply_changes({}, list(changes or []))
    with store.lock.shared():
        work = tempfile.mkdtemp(prefix=".import-", dir=store.root)
        added: list[str] = []  # blobs this import put (some may have been there before)
        existing: set[str] = set()
        unpacked: str | None = None
        try:
            src_path, src_name = _fetch(source, work)
            with open(src_path, "rb") as f:
                kind = detect(f.read(6))
            plain = src_path
            if kind == "none":
                with open(src_path, "rb") as f:
                    h = hashlib.sha256()
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                diff_id = f"sha256:{h.hexdigest()}"
            else:
                plain = os.path.join(work, "layer.tar")
                with open(plain, "wb") as out:
                    diff_id = _decompress(src_path, kind, out)
            content = _content_size(plain)

            def put(data_or_file) -> Any:
                desc = store.blobs.put(data_or_file)
                if desc.digest not in added:
                    added.append(desc.digest)
                return desc

            existing.update(store.blobs.digests())
            gz_path = os.path.join(work, "layer.tar.gz")
            with open(plain, "rb") as f, open(gz_path, "w+b") as g:
                with gzip.GzipFile(filename="", mode="wb", fileobj=g, mtime=0,
                                   compresslevel=6) as gz:
                    shutil.copyfileobj(f, gz, _CHUNK)
                g.flush()
                g.seek(0)
                layer_desc = put(g)
            if not os.path.isdir(store.layer_path(diff_id)):
                try:  # refuses hostile entries, and what expands past the limits
                    store.unpack_layer(diff_id, layer_desc.digest, UnpackLimits.from_env())
                except LayerTooLarge as e:
                    raise ImportError_(f"the tarball {e}") from None
                unpacked = store.layer_path(diff_id)
            created = _rfc3339_now()
            comment = message if message else f"Imported from {src_name}"
            config: dict[str, Any] = {
                "created": created,
                "architecture": arch,
                **({"variant": variant} if variant else {}),
                "os": os_name,
                "comment": comment,
                "config": inner,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": created, "comment": comment}],
            }
            config_desc = put(jsonio.dumps(config).encode())
            manifest = oci_manifest(config_desc.digest, config_desc.size,
                                    [(layer_desc.digest, layer_desc.size)])
            manifest_desc = put(jsonio.dumps(manifest).encode())
            with store.db.transaction():
                store.db.add_image(
                    config_desc.digest,
                    manifest_digest=manifest_desc.digest,
                    layers=[Layer(diff_id, layer_desc.digest, layer_desc.size,
                                  store.layer_path(diff_id), content)],
                    created=created,
                    size=content,
                    architecture=arch,
                    os=os_name,
                )
                if canonical:
                    store.db.tag(canonical, config_desc.digest)
        except BaseException:
            _rollback(store, [d for d in added if d not in existing], unpacked)
            raise
        finally:
            _rmtree(work)
    if canonical:  # Docker's import tags (an event), then logs the import
        store.event("tag", config_desc.digest, canonical)
    store.event("import", config_desc.digest, config_desc.digest)
    return config_desc.digest


def _rollback(store: ImageStore, added: list[str], unpacked: str | None) -> None:
    with store.lock.exclusive():  # converts: a concurrent writer may be recording these
        still = store.db.referenced_blobs()
        for digest in added:
            if digest not in still:
                store.blobs.delete(digest)
        if unpacked is not None:
            known = {layer.diff_id for layer in store.db.layers()}
            diff_id = "sha256:" + os.path.basename(unpacked)
            if diff_id not in known:
                store.remove_layer_dir(diff_id)
