"""Checks and side files of `create` for the flags that name things outside the container:
--cidfile (the id written to a new file), --pid/--ipc container:X and --volumes-from
(resolved, see sharing.py), CDI devices (their specs must resolve now), --blkio-weight
(the kernel must have the weight). Each refusal is one line, exit 125, before anything
is made."""

from __future__ import annotations

import os

from ..errors import SangjaError
from .options import ContainerOptions


class CreateError(SangjaError):
    exit_code = 125
    engine_exit_code = 125


def check_options(engine, opts: ContainerOptions) -> None:
    from .sharing import resolve_at_create

    resolve_at_create(engine, opts)
    if opts.cdi_devices:
        from .cdi import CDIError, resolve

        try:
            resolve(opts.cdi_devices)
        except CDIError as e:
            raise CreateError(str(e)) from None
    if opts.blkio_weight and not blkio_weight_supported():
        raise CreateError("--blkio-weight: your kernel does not support Block I/O weight "
                          "(no blkio.weight or io.weight in the cgroup hierarchy)")


def blkio_weight_supported() -> bool:
    from ..linux import cgroups

    for h in cgroups.hierarchies():
        if h.version == 1 and "blkio" in h.controllers:
            return any(os.path.exists(os.path.join(h.mountpoint, f))
                       for f in ("blkio.weight", "blkio.bfq.weight"))
        if h.version == 2 and cgroups.mode() == "v2":
            try:
                with open(os.path.join(h.mountpoint, "cgroup.controllers")) as f:
                    return "io" in f.read().split()
            except OSError:
                return False
    return False


class CidFile:
    """--cidfile PATH: made new before the container (Docker refuses a file that exists:
    another container may own it), the id written once the container exists, the file
    removed again when the create fails. The name is never followed: a symlink (even a
    dangling one) put there counts as existing."""

    def __init__(self, path: str | None):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> CidFile:
        if self.path:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                raise CreateError(f"Container ID file found, make sure the other container "
                                  f"isn't running or delete {self.path}") from None
            except OSError as e:
                raise CreateError(f"failed to create the container ID file {self.path}: "
                                  f"{e.strerror}") from None
        return self

    def write(self, cid: str) -> None:
        if self.fd is not None:
            data = cid.encode()
            while data:
                data = data[os.write(self.fd, data):]

    def __exit__(self, exc_type, *exc) -> None:
        if self.fd is None:
            return
        os.close(self.fd)
        if exc_type is not None:
            assert self.path is not None  # self.fd was opened from it
            try:
                os.unlink(self.path)
            except OSError:
                pass
