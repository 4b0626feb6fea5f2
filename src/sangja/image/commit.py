"""`sangja commit`: a new image from a base image plus a container's overlay upper dir.

The upper directory is an overlayfs diff: a deleted path is a character device 0:0 (or,
with xattr whiteouts, an empty file carrying ``trusted.overlay.whiteout``), a directory
that replaced a lower one carries ``trusted.overlay.opaque=y`` (``user.overlay.*`` for
unprivileged mounts). The layer written from it uses the OCI forms: ``.wh.NAME`` entries
and a ``.wh..wh..opq`` entry right after the opaque directory's own entry.

The layer is reproducible: entries sorted, numeric owners, real mtimes (or clamped to an
``epoch``), PAX headers with no user names; the same upper content gives the same diff id.
An upper dir with nothing in it adds no layer (the history entry is marked
``empty_layer``, as Docker does).

Speed: the layer blob is the plain tar (``application/vnd.oci.image.layer.v1.tar``, as
podman and buildah keep local layers; compression is for the wire), written once, hashed
as it is written and moved into the blob store without being read again; the layer's
directory is made at once, so the first container of the new image mounts it without an
unpack. A directory that nothing else will use (a build step's container, about to be
removed) is itself renamed into the store (``adopt``), after being tidied to hold exactly
what the tar holds; otherwise the directory is unpacked from the tar just written.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable

from sangja import jsonio
from sangja.errors import SangjaError
from sangja.image.db import ImageNotFound, Layer
from sangja.image.store import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_MANIFEST,
    ImageStore,
    _HashingWriter,
)
from sangja.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")

__all__ = ["CommitError", "LayerResult", "commit", "merge_config", "record_commit",
           "store_upper_layer", "write_image", "write_upper_layer"]

MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_COPY_BUF = 1 << 20
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


def _tidy(full: str, st: os.stat_result, epoch: int | None) -> None:
    """Make an upper-dir entry what the tar says of it (``adopt``): overlayfs's own
    xattrs other than the opaque mark gone, the mtime clamped to `epoch`."""
    for prefix in _OVERLAY_PREFIXES:
        try:
            names = os.listxattr(full, follow_symlinks=False)
        except OSError:
            break
        for name in names:
            if name.startswith(prefix) and name != prefix + "opaque":
                try:
                    os.removexattr(full, name, follow_symlinks=False)
                except OSError:
                    pass
        break
    if epoch is not None and st.st_mtime > epoch:
        os.utime(full, (min(st.st_atime, epoch), epoch), follow_symlinks=False)


def _clamp_dir(dfd: int, rel: str, epoch: int) -> None:
    from sangja.linux.paths import open_beneath

    fd = open_beneath(dfd, rel or ".", os.O_RDONLY | os.O_DIRECTORY) if rel else os.dup(dfd)
    try:
        os.utime(fd, (epoch, epoch))
    finally:
        os.close(fd)


def write_upper_layer(upper_dir: str, out: io.BufferedIOBase, *, epoch: int | None = None,
                      tidy: bool = False) -> LayerResult:
    """Write the (plain) OCI layer tar for an overlay upper dir to `out`. ``epoch``: mtimes
    after it are written as it (reproducible builds). ``tidy``: also make the directory
    itself hold what the tar holds (sockets removed, overlay bookkeeping dropped, mtimes
    clamped), so that it can become the layer's directory."""
    import tarfile

    from sangja.image.layers import OPAQUE_MARKER, WHITEOUT_PREFIX, add_entry
    from sangja.linux.fdtree import walk_tree

    sink = _HashingWriter(out)
    links: dict[tuple[int, int], str] = {}
    entries = content = 0
    emptied: list[str] = []  # directories a socket was removed from (tidy)
    dfd = os.open(upper_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # a "w|" tar only writes to its fileobj; typeshed wants read, seek and close too
        with tarfile.open(fileobj=sink, mode="w|", bufsize=_COPY_BUF,  # type: ignore[call-overload]  # see above
                          format=tarfile.PAX_FORMAT) as tf:
            tf.copybufsize = _COPY_BUF
            for full, rel, st in walk_tree(dfd):
                parent, _, name = rel.rpartition("/")
                if _is_whiteout(full, st):
                    tf.addfile(tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}".lstrip("/")))
                    entries += 1
                    continue
                if stat.S_ISSOCK(st.st_mode):
                    if tidy:  # a tar cannot hold a socket; Docker leaves them out too
                        os.unlink(full)
                        emptied.append(parent)
                    continue
                if _overlay_xattr(full, "redirect") is not None:
                    raise CommitError(f"/{rel} is a renamed directory (overlay redirect_dir): "
                                      "its content is not all in the upper layer")
                if _overlay_xattr(full, "metacopy") is not None:
                    raise CommitError(f"/{rel} has only its metadata in the upper layer "
                                      "(overlay metacopy)")
                if tidy:
                    _tidy(full, st, epoch)
                ti = add_entry(tf, full, rel, st, links, epoch=epoch)
                entries += 1
                if ti.isreg():
                    content += st.st_size
                if stat.S_ISDIR(st.st_mode) and _overlay_xattr(full, "opaque") == b"y":
                    tf.addfile(tarfile.TarInfo(f"{rel}/{OPAQUE_MARKER}"))
                    entries += 1
        if epoch is not None:  # removing a socket made its directory new again
            for rel in emptied:
                _clamp_dir(dfd, rel, epoch)
    finally:
        os.close(dfd)
    return LayerResult(f"sha256:{sink.sha.hexdigest()}", entries, content)


@dataclass(frozen=True)
class StoredLayer:
    """A layer written into the store by `store_upper_layer` (blob and directory), to be
    recorded by `write_image` before the gc lock is released."""

    layer: Layer
    descriptor: dict


def store_upper_layer(store: ImageStore, upper_dir: str, *, epoch: int | None = None,
                      adopt: bool = False, pause: Callable | None = None
                      ) -> StoredLayer | None:
    """The layer of `upper_dir` as a blob and an unpacked layer directory; None when the
    upper dir holds nothing. ``adopt``: the directory itself becomes the layer's (the
    caller never uses it again). The caller holds ``store.lock`` shared."""
    import tempfile

    from sangja.fs import syncfs

    fd, tmp = tempfile.mkstemp(prefix="commit-", dir=store.blobs.tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            result = _paused(pause, lambda: write_upper_layer(upper_dir, f, epoch=epoch,
                                                              tidy=adopt))
        if not result.entries:
            os.unlink(tmp)
            return None
        if adopt:
            os.chown(upper_dir, 0, 0)
            os.chmod(upper_dir, 0o755)
            final = store.adopt_layer_dir(result.diff_id, upper_dir)
            syncfs(store.layers_dir)  # the tar and the directory, at once
        else:
            syncfs(store.blobs.tmp_dir)
        desc = store.blobs.adopt(tmp, result.diff_id)
        if not adopt:
            store.unpack_layer(result.diff_id, desc.digest)
            final = store.layer_path(result.diff_id)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    layer = Layer(result.diff_id, desc.digest, desc.size, unpacked_path=final,
                  content_size=result.content_size)
    return StoredLayer(layer, {"mediaType": MEDIA_TYPE_LAYER_TAR, "digest": desc.digest,
                               "size": desc.size})


def merge_config(inner: dict[str, object], overrides: dict[str, object] | None
                 ) -> dict[str, object]:
    """The image's ``config`` object with `overrides` applied: a key set to None is removed,
    object values (Labels, ExposedPorts, Volumes) are merged key by key, others replaced."""
    import copy

    out = copy.deepcopy(inner)
    for key, value in (overrides or {}).items():
        current = out.get(key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            out[key] = {**current, **copy.deepcopy(value)}
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
                media = d.get("mediaType")
                d["mediaType"] = (_DOCKER_TO_OCI.get(media, media) if isinstance(media, str)
                                  else media)
                out.append(d)
            return out
    out = []
    for layer in layers:
        if layer.blob_digest is None or layer.size is None:
            raise CommitError(f"layer {layer.diff_id} of the base image has no blob")
        from sangja.image.layers import detect_compression

        with store.blobs.open(layer.blob_digest) as f:
            kind = detect_compression(f.read(4))
        media = {"gzip": MEDIA_TYPE_LAYER_GZIP, "none": MEDIA_TYPE_LAYER_TAR}.get(kind)
        if media is None:
            media = "application/vnd.oci.image.layer.v1.tar+zstd"
        out.append({"mediaType": media, "digest": layer.blob_digest, "size": layer.size})
    return out


def _paused(pause: Callable | None, fn: Callable[[], _T]) -> _T:
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
        stored = store_upper_layer(store, upper_dir, pause=pause)
        return record_commit(store, base, base_config, inner, stored, created=created,
                             created_by=created_by, author=author, message=message, tag=tag)


def record_commit(store: ImageStore, base, base_config: dict, inner: dict,
                  stored: StoredLayer | None, *, created: str, created_by: str = "",
                  author: str = "", message: str = "", tag: str | None = None) -> str:
    """The image a commit makes: the base's config with `inner` as its run config, one
    history entry (`stored` None: an empty layer), the base's layers plus `stored`;
    written and tagged. The caller holds the store's gc lock shared since `stored` was
    made. Shared by :func:`commit` (an upper directory) and the engine's `sangja commit`."""
    import copy

    config = {k: copy.deepcopy(v) for k, v in base_config.items()
              if k not in ("container", "container_config", "docker_version")}
    config["created"] = created
    if author:
        config["author"] = author
    config["config"] = inner
    entry: dict[str, object] = {"created": created}
    if created_by:
        entry["created_by"] = created_by
    if author:
        entry["author"] = author
    if message:
        entry["comment"] = message
    if stored is None:
        entry["empty_layer"] = True
    config["history"] = [*(base_config.get("history") or []), entry]
    layers, descs = base_layers(store, base, base_config)
    if stored is not None:
        layers.append(stored.layer)
        descs.append(stored.descriptor)
    size = base.size + ((stored.layer.content_size or 0) if stored else 0)
    return write_image(store, config, layers, descs, tag=tag, size=size)


def base_layers(store: ImageStore, base, base_config: dict) -> tuple[list[Layer], list[dict]]:
    """The image's own layers (the blobs its manifest names) and their manifest
    descriptors, lowest first: what an image made on top of it starts from."""
    own = {layer.diff_id: layer for layer in store.db.image_layers(base.id)}
    diff_ids = list((base_config.get("rootfs") or {}).get("diff_ids") or base.layers)
    layers = [own.get(d) or Layer(d) for d in diff_ids]
    return layers, _base_layer_descriptors(store, base, layers)


def write_image(store: ImageStore, config: dict, layers: list[Layer], descriptors: list[dict],
                *, tag: str | None = None, size: int | None = None) -> str:
    """Store an image config (its ``rootfs`` is set from `layers`), its manifest and its
    record; return the image id. The layers' blobs and directories are in the store
    already; the caller holds ``store.lock`` shared. ``size``: the sum of the layers'
    content sizes, when the caller knows it."""
    from sangja.digest import sha256

    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": [la.diff_id for la in layers]}
    config_bytes = jsonio.dumps(config).encode()
    known = f"sha256:{sha256(config_bytes).hexdigest()}"
    try:  # made before (a rebuild, a cached step's config): nothing to write
        store.db.get_image(known)
        if tag:
            store.tag(tag, known)
        return known
    except ImageNotFound:
        pass
    config_desc = store.blobs.put(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_desc.digest,
                   "size": config_desc.size},
        "layers": descriptors,
    }
    manifest_desc = store.blobs.put(jsonio.dumps(manifest).encode())
    if size is None:
        size = 0
        for la in {la.diff_id: la for la in layers}.values():
            size += la.content_size if la.content_size is not None else (
                store._measure_layer(la) or 0)
    store.db.add_image(
        config_desc.digest,
        manifest_digest=manifest_desc.digest,
        layers=layers,
        created=config.get("created"),
        size=size,
        architecture=config.get("architecture"),
        os=config.get("os"),
    )
    if tag:
        store.tag(tag, config_desc.digest)
    return config_desc.digest
