"""Where the engine keeps each thing (see docs/engine.md, "Where things live")."""

from __future__ import annotations

import os

# Directories of the run root that are the engine's own (per-container run files, network
# namespace files, netavark's config, the event log); every other directory there is an
# OCI runtime's state root (`runtime` for sangja-runtime, the runtime's name for the others).
OWN_RUN_DIRS = frozenset({"engine", "netns", "network", "events"})


class Paths:
    def __init__(self, root: str, runroot: str):
        self.root = os.path.abspath(root)
        self.runroot = os.path.abspath(runroot)

    @property
    def db(self) -> str:
        return os.path.join(self.root, "containers.db")

    @property
    def snapshots(self) -> str:
        return os.path.join(self.root, "snapshots")

    @property
    def volumes(self) -> str:
        return os.path.join(self.root, "volumes")

    def volume_data(self, name: str) -> str:
        return os.path.join(self.volumes, name, "_data")

    def container_dir(self, cid: str) -> str:
        """Persistent files of one container: bundle config, /etc files, log."""
        return os.path.join(self.root, "containers", cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "ctr.log")

    def lock_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "lock")

    def run_dir(self, cid: str) -> str:
        """Run-time files of one container: attach socket, exit file, monitor pid."""
        return os.path.join(self.runroot, "engine", cid)

    def exit_file(self, cid: str) -> str:
        return os.path.join(self.run_dir(cid), "exit")

    def cleaned_file(self, cid: str) -> str:
        return os.path.join(self.run_dir(cid), "cleaned")

    def attach_socket(self, cid: str) -> str:
        return os.path.join(self.run_dir(cid), "attach")

    def exec_records_dir(self, cid: str) -> str:
        """One record per running exec session of the container (sangja.engine.exec)."""
        return os.path.join(self.run_dir(cid), "execs")

    def runtime_root(self, runtime_name: str) -> str:
        """State root of an OCI runtime; one per runtime so their ids never collide."""
        if runtime_name == "sangja-runtime":
            return os.path.join(self.runroot, "runtime")
        name = os.path.basename(runtime_name)
        if name in OWN_RUN_DIRS or name.startswith("runtime"):
            name = "runtime-" + name  # never one of the engine's own directories
        return os.path.join(self.runroot, name)


def runtime_name_of(run_dir_name: str) -> str | None:
    """The runtime whose state root is the run root's directory ``run_dir_name`` (the
    inverse of :meth:`Paths.runtime_root`), or None for the engine's own directories."""
    if run_dir_name in OWN_RUN_DIRS:
        return None
    if run_dir_name == "runtime":
        return "sangja-runtime"
    if run_dir_name.startswith("runtime-"):
        return run_dir_name[len("runtime-"):]
    return run_dir_name
