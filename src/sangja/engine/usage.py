"""What the engine's objects (containers, volumes) use, for the image store's prune and df.

The image side (``sangja.image.gc``, ``image prune``, ``system df``/``prune``) asks only these
functions about containers and volumes. They fail closed: a store without a container
database yet has nothing in use, but a container database that cannot be read (lost,
corrupt, locked) raises, and nothing is deleted on a guess.
"""

from __future__ import annotations

import os


def image_users(root: str) -> dict[str, str]:
    """Image id -> the id of one container made from it (for `rmi` and prune); empty only
    when the store has no container database yet. Raises when it cannot be read."""
    from .records import open_existing

    db = open_existing(root)
    if db is None:
        return {}
    with db:
        return {r["image_id"]: r["id"] for r in db.conn.execute(
            "SELECT image_id, id FROM containers")}


def images_in_use(root: str) -> set[str]:
    """Image ids (``sha256:...``) that some container of storage root `root` was made from;
    empty only when the store has no container database yet. Raises when it cannot be
    read: the caller must then delete nothing."""
    return set(image_users(root))


def _has_containers_db(root: str) -> bool:
    """False for a store without a container database yet; a lost one raises."""
    from .records import open_existing

    db = open_existing(root)
    if db is None:
        return False
    db.close()
    return True


def _engine(root: str, runroot: str | None):
    from .containers import Engine

    return Engine(root, runroot or os.environ.get("SANGJA_RUNROOT") or "/run/sangja")


def _tree_size(path: str) -> int:
    from .volumes import tree_size

    return tree_size(path) if os.path.isdir(path) else 0


def _upper_size(eng, cid: str) -> int:
    """Bytes in a container's writable layer (0 when it was never started)."""
    from ..errors import SangjaError

    try:
        return _tree_size(eng.snapshots().diff_dir(cid))
    except SangjaError:
        return 0


def _apparent_size(path: str) -> int:
    """Docker's SizeRw of a directory (pkg/directory.Size): the sizes of what is not a
    directory, a hard-linked inode counted once. An fd walk that follows no link; 0 when
    `path` is missing."""
    from ..linux.fdtree import walk_tree

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    total, seen = 0, set()
    try:
        for _full, _rel, st in walk_tree(fd):
            if st.st_size and not (st.st_mode & 0o170000) == 0o040000 and \
                    (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    except OSError:
        pass
    finally:
        os.close(fd)
    return total


def container_sizes(eng, row) -> tuple[int, int]:
    """(SizeRw, SizeRootFs) of a container as Docker reports them (`ps -s`, `inspect -s`):
    the bytes its writable layer holds, and those plus its image's."""
    from ..errors import SangjaError

    try:
        rw = _apparent_size(eng.snapshots().diff_dir(row["id"]))
    except SangjaError:
        rw = 0
    try:
        image = eng.images.resolve(row["image_id"]).size
    except (SangjaError, KeyError):
        image = 0
    return rw, rw + image


def containers_usage(root: str, runroot: str | None = None) -> list[dict]:
    """One dict per container, for `system df`: ``id``, ``names`` (list), ``image``
    (as the user named it), ``image_id``, ``command``, ``created`` (unix time), ``status``
    (Docker's text, "Exited (0) 2 hours ago"), ``running`` (bool), ``size`` (bytes of its
    writable layer), ``local_volumes`` (count)."""
    if not _has_containers_db(root):
        return []
    from ..jsonio import loads
    from .status import PAUSED, RUNNING, docker_status, live_state

    out = []
    with _engine(root, runroot) as eng:
        for row in eng.db.all():
            out.append({
                "id": row["id"], "names": [row["name"]], "image": row["image_name"],
                "image_id": row["image_id"],
                "command": " ".join([row["path"], *loads(row["args"])]),
                "created": row["created"], "status": docker_status(eng.paths, row),
                "running": live_state(row) in (RUNNING, PAUSED),
                "size": _upper_size(eng, row["id"]),
                "local_volumes": len(eng.db.container_volumes(row["id"])),
            })
    return out


def volumes_usage(root: str) -> list[dict]:
    """One dict per volume, for `system df`: ``name``, ``links`` (containers using it),
    ``size`` (bytes under its _data)."""
    if not _has_containers_db(root):
        return []
    from .paths import Paths
    from .records import open_db

    paths = Paths(root, "/run/sangja")
    with open_db(root) as db:
        return [{"name": r["name"], "links": len(db.volume_users(r["name"])),
                 "size": _tree_size(paths.volume_data(r["name"]))} for r in db.volumes()]


def prune_containers(root: str, runroot: str | None = None) -> tuple[list[str], int]:
    """`system prune`: remove every stopped container; return (their ids, bytes of their
    writable layers). Runs before the images are pruned."""
    if not _has_containers_db(root):
        return [], 0
    from .status import CREATED, EXITED, live_state

    with _engine(root, runroot) as eng:
        sizes = {r["id"]: _upper_size(eng, r["id"])
                 for r in eng.db.all() if live_state(r) in (EXITED, CREATED)}
        gone = eng.prune()
    return gone, sum(sizes.get(c, 0) for c in gone)


def prune_volumes(root: str, runroot: str, all_volumes: bool = False
                  ) -> tuple[list[str], int]:
    """`system prune --volumes`: remove unused anonymous volumes (every unused volume with
    `all_volumes`); return (their names, bytes reclaimed)."""
    if not _has_containers_db(root):
        return [], 0
    from .paths import Paths
    from .records import open_db
    from .volumes import prune_volumes as prune

    with open_db(root) as db:
        return prune(db, Paths(root, runroot), anonymous_only=not all_volumes)


def remove_image(store, name: str, *, force: bool = False) -> list[str]:
    """`rmi NAME`: its report lines. What containers use is read under the store's gc lock
    (exclusive: no container is being created meanwhile), so an image a new container
    needs is never removed; such an image is refused (or with ``force`` only untagged)."""
    with store.lock.exclusive():
        return store.remove(name, force=force, in_use=image_users(store.root))


def prune_unused_images(store, *, all_images: bool = False, select=None):
    """`image prune [-a] [--filter]` under the same protocol as remove_image (``select``:
    which images the filters keep in play); the GC report."""
    from ..image.gc import prune_images

    with store.lock.exclusive():  # "in use" is read with no writer mid-way
        return prune_images(store, all_images=all_images, in_use=images_in_use(store.root),
                            select=select)
