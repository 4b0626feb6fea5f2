"""`sangja`: the Docker-style engine command line. The engine itself (images, containers,
volumes) arrives with the image-store and engine issues; today it reports its version and
the host facts the runtime depends on."""

from __future__ import annotations

import sys

PROG = "sangja"


def _info() -> int:
    import os
    import platform

    from .. import OCI_VERSION, __version__
    from ..linux import namespaces
    from ..linux.cgroups import mode

    print(f"Version:        {__version__}")
    print(f"OCI runtime:    sangja-runtime (runtime-spec {OCI_VERSION})")
    print(f"Kernel:         {platform.release()}")
    print(f"Cgroups:        {mode()}")
    print(f"Namespaces:     {', '.join(namespaces.available())}")
    root = os.environ.get("SANGJA_ROOT", "/var/lib/sangja")
    run = os.environ.get("SANGJA_RUNROOT", "/run/sangja")
    print(f"Storage root:   {root}")
    print(f"Run root:       {run}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-v"], ["version"]):
        from .. import __version__

        print(f"{PROG} version {__version__}")
        return 0
    if argv[:1] == ["info"]:
        return _info()
    if argv[:1] in ([], ["--help"], ["-h"], ["help"]):
        print(f"usage: {PROG} COMMAND\n\nCommands:\n  info      show host and engine facts\n"
              f"  version   print the version\n\nContainers are run with sangja-runtime for "
              f"now (see README).")
        return 0 if argv else 1
    print(f"{PROG}: unknown command {argv[0]!r} (see {PROG} --help)", file=sys.stderr)
    return 125


if __name__ == "__main__":
    sys.exit(main())
