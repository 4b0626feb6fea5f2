"""Where the engine keeps each thing (see docs/engine.md, "Where things live")."""

from __future__ import annotations

import os


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

    def runtime_root(self, runtime_name: str) -> str:
        """State root of an OCI runtime; one per runtime so their ids never collide."""
        if runtime_name == "sangja-runtime":
            return os.path.join(self.runroot, "runtime")
        return os.path.join(self.runroot, os.path.basename(runtime_name))
