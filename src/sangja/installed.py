"""Packages installed beside sangja (urllib3 for the registry client), on request.

The `sangja` command starts with ``python -S`` and only sangja's own source on ``sys.path``
(start-up time: ``site`` and its ``.pth`` hooks cost milliseconds every command, see the
Makefile's install target). The few commands that need a package from the environment call
:func:`add_site_packages` first; nothing on the run path does."""

from __future__ import annotations

import sys


def add_site_packages() -> None:
    """Put the site-packages of the environment the interpreter runs in (its virtual
    environment's, as ``site`` would find it from ``pyvenv.cfg``; the system's when there is
    none, or when the venv includes them) at the end of ``sys.path``, without running
    ``site``'s start-up hooks (.pth files). Idempotent."""
    import os

    prefix = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    paths: list[str] = []
    system = True
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8") as f:
            cfg = {k.strip().lower(): v.strip().lower()
                   for k, _, v in (line.partition("=") for line in f)}
    except OSError:
        cfg = None
    if cfg is not None:  # a virtual environment
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        paths.append(os.path.join(prefix, "lib", version, "site-packages"))
        system = cfg.get("include-system-site-packages") == "true"
    if system:
        import site  # under -S, importing it runs nothing: only its path helper is used

        paths += site.getsitepackages()
    for path in paths:
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
