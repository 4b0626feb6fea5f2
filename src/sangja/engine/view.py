"""The engine as the commands that only look see it (ps, inspect, logs, the filters): the
paths, the container records (read-only when `readonly`: SQLiteDB.open_readonly), each
container's options, and image configs. `Engine` (sangja.engine.containers) adds every
change on top; a command that only looks imports this module alone."""

from __future__ import annotations

import os

from .options import ContainerOptions
from .paths import Paths


class EngineView:
    def __init__(self, root: str, runroot: str, *, readonly: bool = False):
        """``readonly``: the container database is opened read-only when it can be (no
        lock, pragma or migration); otherwise, and for Engine, the usual way."""
        self.paths = Paths(root, runroot)
        self.readonly = readonly
        self._db = None
        self._images = None

    @property
    def db(self):
        if self._db is None:
            from .records import ContainerDB, open_db

            if self.readonly:
                self._db = ContainerDB.open_readonly(os.path.join(self.paths.root,
                                                                  "containers.db"))
            if self._db is None:
                self._db = open_db(self.paths.root)
        return self._db

    @property
    def images(self):
        if self._images is None:
            from ..image.store import ImageStore

            self._images = ImageStore(self.paths.root, self.paths.runroot)
        return self._images

    def image_config(self, image_id: str) -> dict:
        """An image's config (its blob read directly when possible: no image store)."""
        from ..image.readonly import image_config

        config = image_config(self.paths.root, image_id)
        return config if config is not None else self.images.config(image_id)

    def snapshots(self):
        """The containers' root filesystems (sizes for `ps -s`, `inspect -s`)."""
        from ..image.snapshots import Snapshotter

        return Snapshotter(self.paths.snapshots)

    @staticmethod
    def options(row) -> ContainerOptions:
        from ..jsonio import loads

        return ContainerOptions.from_dict(loads(row["options"]))

    def get(self, ref: str):
        return self.db.get(ref)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._images is not None:
            self._images.close()

    def __enter__(self) -> EngineView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
