"""System commands: info, version."""

from __future__ import annotations

from .common import PROG, Globals, parse_flags


def cmd_version(opts: Globals, args: list[str]) -> int:
    from ... import __version__

    print(f"{PROG} version {__version__}")
    return 0


def cmd_info(opts: Globals, args: list[str]) -> int:
    import os

    from ... import OCI_VERSION, __version__
    from ...linux import namespaces
    from ...linux.cgroups import mode

    parse_flags(args, [])
    print(f"Version:        {__version__}")
    print(f"OCI runtime:    sangja-runtime (runtime-spec {OCI_VERSION})")
    print(f"Kernel:         {os.uname().release}")
    print(f"Cgroups:        {mode()}")
    print(f"Namespaces:     {', '.join(namespaces.available())}")
    print(f"Storage root:   {opts.storage_root}")
    print(f"Run root:       {opts.run_root}")
    return 0
