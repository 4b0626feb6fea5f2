"""The typed Python API: `from sangja import Engine`.

The same engine library the CLI and the API service use (sangja.engine.containers.Engine,
the image store), with small records instead of sqlite3 rows:

    from sangja import Engine

    with Engine() as eng:                      # --root/--runroot as the CLI's defaults
        c = eng.create("busybox", ["sh", "-c", "exit 3"], name="job")
        eng.start(c.id)
        assert eng.wait(c.id) == 3
        print(eng.container("job").state)     # "exited"
        eng.remove(c.id)

What a record does not carry is in `inspect(ref)` (Docker's document) or in the library
itself (`Engine.library`). A program that starts containers is their monitors' parent, as
`sangja start` is: a long-running one reaps its exited children (the API service does)."""

from __future__ import annotations

import os

from .records import dataclass, field


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str  # the name it was created from
    image_id: str
    state: str  # created | running | paused | exited | removing (Docker's State.Status)
    created: float
    started_at: float | None
    finished_at: float | None
    exit_code: int
    pid: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    id: str
    tags: tuple[str, ...]
    created: str | None
    size: int
    architecture: str | None
    os: str | None


class Engine:
    """The engine on `root`/`runroot` (default: $SANGJA_ROOT or /var/lib/sangja,
    $SANGJA_RUNROOT or /run/sangja, as the CLI's)."""

    def __init__(self, root: str | None = None, runroot: str | None = None):
        from .engine.containers import Engine as Library

        self.library = Library(root or os.environ.get("SANGJA_ROOT") or "/var/lib/sangja",
                               runroot or os.environ.get("SANGJA_RUNROOT") or "/run/sangja")

    def close(self) -> None:
        self.library.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- containers -----------------------------------------------------------------------
    def _record(self, row) -> Container:
        from .engine.status import live_state

        try:
            labels = dict(self.library.options(row).labels)
        except Exception:  # noqa: BLE001 - a record with unreadable options still lists
            labels = {}
        return Container(id=row["id"], name=row["name"], image=row["image_name"],
                         image_id=row["image_id"], state=live_state(row),
                         created=row["created"], started_at=row["started_at"],
                         finished_at=row["finished_at"], exit_code=row["exit_code"],
                         pid=row["pid"], labels=labels)

    def containers(self, *, all: bool = True) -> list[Container]:  # noqa: A002 - ps -a
        """Every container (`all=False`: the running and paused ones), oldest first."""
        out = [self._record(r) for r in self.library.db.all()]
        return out if all else [c for c in out if c.state in ("running", "paused")]

    def container(self, ref: str) -> Container:
        """By id, unique id prefix or name (NoSuchContainer otherwise)."""
        return self._record(self.library.get(ref))

    def inspect(self, ref: str) -> dict:
        """Docker's inspect document (`sangja inspect`)."""
        from .engine.inspect import container_document

        return container_document(self.library, self.library.get(ref))

    def create(self, image: str, command: list[str] | None = None, *, name: str | None = None,
               env: list[str] | None = None, labels: dict[str, str] | None = None,
               remove: bool = False) -> Container:
        """`sangja create` with the options most programs need; the engine's rules apply
        (for every other option, build sangja.engine.options.ContainerOptions and call
        `library.create`)."""
        from .engine.options import ContainerOptions

        opts = ContainerOptions(image=image, command=list(command or []), name=name,
                                env=list(env or []), labels=dict(labels or {}), rm=remove,
                                detach=True)
        return self.container(self.library.create(opts))

    def start(self, ref: str) -> None:
        self.library.start(ref)

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.library.stop(ref, timeout)

    def kill(self, ref: str, signal: int = 9) -> None:
        self.library.kill(ref, signal)

    def wait(self, ref: str) -> int:
        """Until the container has exited; its exit code."""
        return self.library.wait(ref)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        self.library.remove(ref, force=force, volumes=volumes)

    # -- images ---------------------------------------------------------------------------
    @staticmethod
    def _image(img) -> Image:
        return Image(id=img.id, tags=tuple(img.tags), created=img.created, size=img.size,
                     architecture=img.architecture, os=img.os)

    def images(self) -> list[Image]:
        return [self._image(i) for i in self.library.images.db.images()]

    def image(self, ref: str) -> Image:
        """By name (the CLI's rule: `busybox` is localhost/busybox:latest) or id."""
        return self._image(self.library.images.resolve(ref))
