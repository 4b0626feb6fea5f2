"""Commit: a container's changes become an image layer (`sangja commit`, and every RUN of
`sangja build`, share it).

The container's writable layer (its overlay upper dir) is written as a layer blob and an
unpacked layer directory at once (`sangja.image.commit.store_upper_layer`), so the first
container of the new image starts without unpacking anything. A running container is
frozen while its layer is read (Docker's `commit --pause`, the default), so the layer is
one moment of it. A container that will be removed right after (a build step) gives its
upper dir itself to the store (``adopt``): nothing is copied.

Before the layer is written, the empty files and directories the runtime made in the
upper dir as mount points (`/etc/hosts`, `/etc/resolv.conf`, a RUN --mount target...)
are removed when the image did not have them: they are the engine's, not the image's
(BuildKit and Docker do the same).
"""

from __future__ import annotations

import errno
import os
import stat

from ..image.commit import StoredLayer, record_commit, store_upper_layer

__all__ = ["MountStubs", "commit_container", "container_layer", "mount_stubs",
           "remove_mount_stubs"]


def _pauser(engine, row):
    """pause() -> resume() for a running container, None otherwise."""
    from .status import RUNNING, live_state

    if live_state(row) != RUNNING:
        return None
    cid = row["id"]

    def pause():
        engine.pause(cid)
        return lambda: engine.unpause(cid)

    return pause


def container_layer(engine, row, *, epoch: int | None = None, adopt: bool = False,
                    pause: bool = True) -> StoredLayer | None:
    """The container's changes as a layer in the image store (None: no changes). The
    caller holds the store's gc lock shared until it records an image using it."""
    upper = engine.snapshots().diff_dir(row["id"])
    return store_upper_layer(engine.images, upper, epoch=epoch, adopt=adopt,
                             pause=_pauser(engine, row) if pause and not adopt else None)


def commit_container(engine, ref: str, *, reference: str | None = None,
                     changes: list[str] | None = None, author: str = "", message: str = "",
                     pause: bool = True) -> str:
    """`sangja commit`: a new image from the container's image and its changes, with the
    container's effective config (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
    StopSignal) and `changes` applied; tagged `reference`. Returns the image id."""
    from ..image.changes import apply_changes
    from ..image.commit import _now_rfc3339, merge_config
    from ..jsonio import loads

    store = engine.images
    tag = store.canonical(reference) if reference else None
    with engine.rootfs(ref) as (row, _):
        base = store.resolve(row["image_id"])
        base_config = store.config(base.id)
        inner = merge_config(base_config.get("config") or {}, _effective_config(engine, row))
        if changes:
            inner = apply_changes(inner, list(changes))
        created = _now_rfc3339()
        with store.lock.shared():  # files first, record last: no gc in between
            stored = container_layer(engine, row, pause=pause)
            return record_commit(store, base, base_config, inner, stored, created=created,
                                 created_by=" ".join([row["path"], *loads(row["args"])]),
                                 author=author, message=message, tag=tag)


def _effective_config(engine, row) -> dict:
    """What `docker commit` keeps in the new image: the container's effective config."""
    from .inspect import container_document

    config = container_document(engine, row)["Config"]
    keep = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "StopSignal")
    return {k: config[k] for k in keep if config.get(k) not in (None, "", [], {})}


# ---------------------------------------------------------------------------- mount stubs


class MountStubs:
    """What a container's mount points will add to its upper dir: the missing targets and
    parents (`made`), and the existing directories they go in (`parents`: their owner and
    mode in the image), which overlayfs copies up to hold them."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.parents: dict[str, tuple[int, int, int]] = {}


def mount_stubs(rootfs: str, targets: list[str]) -> MountStubs:
    """Of the mount targets, those the root filesystem `rootfs` (mounted, before the
    container starts) lacks, and each missing parent: what the runtime will make as
    mount points. Resolved inside the root; a target behind a symlink is left alone."""
    from ..linux.paths import O_PATH, open_beneath

    out = MountStubs()
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for target in targets:
            parts = [p for p in target.split("/") if p and p != "."]
            for i in range(1, len(parts) + 1):
                rel = "/".join(parts[:i])
                try:
                    pfd = open_beneath(fd, rel, O_PATH | os.O_NOFOLLOW)
                except FileNotFoundError:
                    if rel not in out.made:
                        out.made.append(rel)
                        parent = rel.rpartition("/")[0]
                        if parent and parent not in out.made and parent not in out.parents:
                            st = os.stat(parent, dir_fd=fd, follow_symlinks=False)
                            out.parents[parent] = (st.st_mode, st.st_uid, st.st_gid)
                    continue
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                        raise
                    break  # a symlink on the way: not a stub we can name
                os.close(pfd)
    finally:
        os.close(fd)
    return out


def remove_mount_stubs(upper: str, stubs: MountStubs) -> None:
    """Remove from the (unmounted) upper dir the stubs `mount_stubs` named, deepest first,
    when they are still what a runtime makes: an empty file or an empty directory. Then
    a directory of the image that overlayfs copied up only to hold them goes too, when it
    is empty, not opaque, and has its owner and mode of the image (its mtime changed)."""
    from ..linux.paths import O_PATH, open_beneath

    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def remove(rel: str, want: tuple[int, int, int] | None) -> None:
        parent, _, name = rel.rpartition("/")
        try:
            pfd = open_beneath(fd, parent, O_PATH | os.O_DIRECTORY) if parent else os.dup(fd)
        except OSError:
            return
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if want is None and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=pfd)
            elif stat.S_ISDIR(st.st_mode):
                if want is not None:
                    if (st.st_mode, st.st_uid, st.st_gid) != want:
                        return
                    dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                  dir_fd=pfd)
                    try:
                        for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
                            try:
                                os.getxattr(dfd, attr)
                                return  # opaque: it hides the image's content
                            except OSError:
                                pass
                    finally:
                        os.close(dfd)
                os.rmdir(name, dir_fd=pfd)  # ENOTEMPTY: the step put files there
        except OSError:
            pass
        finally:
            os.close(pfd)

    try:
        for rel in sorted(stubs.made, key=lambda p: p.count("/"), reverse=True):
            remove(rel, None)
        for rel in sorted(stubs.parents, key=lambda p: p.count("/"), reverse=True):
            remove(rel, stubs.parents[rel])
    finally:
        os.close(fd)
