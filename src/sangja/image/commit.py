"""`sangja commit`: a new image from a base image plus a container's overlay upper dir.

The upper directory is an overlayfs diff: a deleted path is a character device 0:0 (or,
with xattr whiteouts, an empty file carrying ``trusted.overlay.whiteout``), a directory
that replaced a lower one carries ``trusted.overlay.opaque=y`` (``user.overlay.*`` for
unprivileged mounts). The layer written from it uses the OCI forms: ``.wh.NAME`` entries
and a ``.wh..wh..opq`` entry right after the opaque directory's own entry.

The layer is reproducible: entries sorted, numeric owners, real mtimes, PAX headers with
no user names, gzip with mtime 0 and no file name; the same upper content gives the same
diff id and blob digest. An upper dir with nothing in it adds no layer (the history entry
is marked ``empty_layer``, as Docker does).
"""

from __future__ import annotations

import copy
import gzip
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.errors import SangjaError
from sangja.image.db import Layer
from sangja.image.layers import OPAQUE_MARKER, WHITEOUT_PREFIX, add_entry, detect_compression
from sangja.image.store import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_MANIFEST,
    ImageStore,
    _HashingWriter,
)
from sangja.records import dataclass

__all__ = ["CommitError", "commit", "merge_config", "write_upper_layer"]

MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": MEDIA_TYPE_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": MEDIA_TYPE_LAYER_TAR,
}
_OVERLAY_PREFIXES = ("trusted.overlay.", "user.overlay.")


class CommitError(SangjaError):
    pass


@dataclass(frozen=True)
class LayerResult:
    diff_id: str
    entries: int
    content_size: int  # bytes of files in the layer (what `images` adds up)


def _overlay_xattr(full: str, name: str) -> bytes | None:
    for prefix in _OVERLAY_PREFIXES:
        try:
            return os.getxattr(full, prefix + name, follow_symlinks=False)
        except OSError:
            continue
    return None


def _is_whiteout(full: str, st: os.stat_result) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return (stat.S_ISREG(st.st_mode) and st.st_size == 0
            and _overlay_xattr(full, "whiteout") is not None)


def write_upper_layer(upper_dir: str, out: BinaryIO) -> LayerResult:
    """Write the gzipped OCI layer for an overlay upper dir to `out`."""
    from sangja.linux.fdtree import walk_tree

    gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
    sink = _HashingWriter(gz)
    links: dict[tuple[int, int], str] = {}
    entries = content = 0
    dfd = os.open(upper_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=sink, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT) as tf:
            for full, rel, st in walk_tree(dfd):
                parent, _, name = rel.rpartition("/")
                if _is_whiteout(full, st):
                    tf.addfile(tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}".lstrip("/")))
                    entries += 1
                    continue
                if stat.S_ISSOCK(st.st_mode):
                    continue  # a tar cannot hold a socket; Docker leaves them out too
                if _overlay_xattr(full, "redirect") is not None:
                    raise CommitError(f"/{rel} is a renamed directory (overlay redirect_dir): "
                                      "its content is not all in the upper layer")
                if _overlay_xattr(full, "metacopy") is not None:
                    raise CommitError(f"/{rel} has only its metadata in the upper layer "
                                      "(overlay metacopy)")
                ti = add_entry(tf, full, rel, st, links)
                entries += 1
                if ti.isreg():
                    content += st.st_size
                if stat.S_ISDIR(st.st_mode) and _overlay_xattr(full, "opaque") == b"y":
                    tf.addfile(tarfile.TarInfo(f"{rel}/{OPAQUE_MARKER}"))
                    entries += 1
    finally:
        os.close(dfd)
    gz.close()
    return LayerResult(f"sha256:{sink.sha.hexdigest()}", entries, content)


def merge_config(inner: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The image's ``config`` object with `overrides` applied: a key set to None is removed,
    object values (Labels, ExposedPorts, Volumes) are merged key by key, others replaced."""
    out = copy.deepcopy(inner)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns % 10**9:09d}Z"


def _base_layer_descriptors(store: ImageStore, image, layers: list[Layer]) -> list[dict]:
    """The base image's layer descriptors: from its manifest, else from the layer records
    (media type from the blob's magic bytes)."""
    if image.manifest_digest and store.blobs.exists(image.manifest_digest):
        manifest = jsonio.loads(store.blobs.read_bytes(image.manifest_digest))
        descs = manifest.get("layers")
        if isinstance(descs, list) and len(descs) == len(layers):
            out = []
            for d in descs:
                d = dict(d)
                d["mediaType"] = _DOCKER_TO_OCI.get(d.get("mediaType"), d.get("mediaType"))
                out.append(d)
            return out
    out = []
    for layer in layers:
        if layer.blob_digest is None or layer.size is None:
            raise CommitError(f"layer {layer.diff_id} of the base image has no blob")
        with store.blobs.open(layer.blob_digest) as f:
            kind = detect_compression(f.read(4))
        media = {"gzip": MEDIA_TYPE_LAYER_GZIP, "none": MEDIA_TYPE_LAYER_TAR}.get(kind)
        if media is None:
            media = "application/vnd.oci.image.layer.v1.tar+zstd"
        out.append({"mediaType": media, "digest": layer.blob_digest, "size": layer.size})
    return out


def _paused(pause: Callable | None, fn: Callable[[], Any]) -> Any:
    """Run fn while paused: `pause()` may return None, a resume callable or a context
    manager."""
    if pause is None:
        return fn()
    handle = pause()
    if hasattr(handle, "__enter__") and hasattr(handle, "__exit__"):
        with handle:
            return fn()
    try:
        return fn()
    finally:
        if callable(handle):
            handle()


def commit(
    store: ImageStore,
    base_image_id: str,
    upper_dir: str,
    *,
    config_overrides: dict | None = None,
    changes: list[str] | None = None,
    author: str = "",
    message: str = "",
    created_by: str = "",
    reference: str | None = None,
    pause: Callable | None = None,
    created: str | None = None,
) -> str:
    """Store base image + the layer made from `upper_dir` as a new image; return its id.

    config_overrides: merged into the base's ``config`` (see :func:`merge_config`), then
    `changes` (Dockerfile instructions, ``commit --change``) are applied. author and
    message go into the config and its new history entry; reference is tagged. pause is
    called around the reading of upper_dir. created defaults to now.
    """
    if not os.path.isdir(upper_dir):
        raise CommitError(f"container layer {upper_dir} does not exist")
    tag = store.canonical(reference) if reference else None
    base = store.resolve(base_image_id)
    base_config = jsonio.loads(store.blobs.read_bytes(base.id))
    inner = merge_config(base_config.get("config") or {}, config_overrides)
    if changes:
        from sangja.image.changes import apply_changes

        inner = apply_changes(inner, list(changes))
    created = created or _now_rfc3339()
    with store.lock.shared():  # files first, record last: no gc in between (see gclock)
        return _commit(store, base, base_config, inner, upper_dir, author, message,
                       created_by, tag, pause, created)


def _commit(store: ImageStore, base, base_config: dict, inner: dict, upper_dir: str,
            author: str, message: str, created_by: str, tag: str | None,
            pause: Callable | None, created: str) -> str:
    result: LayerResult | None = None
    layer_desc = None
    # an unnamed temp file (O_TMPFILE): nothing is left behind whatever happens
    with tempfile.TemporaryFile(prefix="commit-", dir=store.blobs.tmp_dir) as f:
        result = _paused(pause, lambda: write_upper_layer(upper_dir, f))
        if result.entries:
            f.flush()
            f.seek(0)
            layer_desc = store.blobs.put(f)

    # the base image's own layer blobs (those its manifest names), not the layer records'
    # newest: the new image's records must match the manifest made from the base's
    own = {layer.diff_id: layer for layer in store.db.image_layers(base.id)}
    base_diff_ids = list((base_config.get("rootfs") or {}).get("diff_ids") or base.layers)
    base_layers = [own.get(d) or Layer(d) for d in base_diff_ids]

    config = {k: copy.deepcopy(v) for k, v in base_config.items()
              if k not in ("container", "container_config", "docker_version")}
    config["created"] = created
    if author:
        config["author"] = author
    config["config"] = inner
    history_entry: dict[str, Any] = {"created": created}
    if created_by:
        history_entry["created_by"] = created_by
    if author:
        history_entry["author"] = author
    if message:
        history_entry["comment"] = message
    diff_ids = list(base_diff_ids)
    new_layers = list(base_layers)
    if layer_desc is not None:
        diff_ids.append(result.diff_id)
        new_layers.append(Layer(result.diff_id, layer_desc.digest, layer_desc.size,
                                content_size=result.content_size))
    else:
        history_entry["empty_layer"] = True
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [*(base_config.get("history") or []), history_entry]
    config_bytes = jsonio.dumps(config).encode()
    config_desc = store.blobs.put(config_bytes)

    layer_descs = _base_layer_descriptors(store, base, base_layers)
    if layer_desc is not None:
        layer_descs.append({"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": layer_desc.digest,
                            "size": layer_desc.size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_desc.digest,
                   "size": config_desc.size},
        "layers": layer_descs,
    }
    manifest_desc = store.blobs.put(jsonio.dumps(manifest).encode())
    store.db.add_image(
        config_desc.digest,
        manifest_digest=manifest_desc.digest,
        layers=new_layers,
        created=created,
        size=base.size + (result.content_size if result is not None and layer_desc else 0),
        architecture=config.get("architecture"),
        os=config.get("os"),
    )
    if tag:
        store.tag(tag, config_desc.digest)
    return config_desc.digest
