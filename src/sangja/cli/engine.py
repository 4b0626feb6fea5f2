"""`sangja`: the Docker-style engine command line: host facts, and local images (bootstrap,
list, inspect, tag, remove). Imports stay inside the commands: start-up time matters."""

from __future__ import annotations

import os
import sys

PROG = "sangja"

HELP = f"""usage: {PROG} [--root DIR] COMMAND [ARG...]

Global options:
  --root DIR   storage root (default: $SANGJA_ROOT or /var/lib/sangja)

Commands:
  bootstrap busybox [NAME]   build an image from the host's static busybox
                             (default name localhost/busybox:latest)
  images [-q] [--digests] [--format json]
                             list images
  image inspect NAME...      show images as a JSON array
  image ls|rm|tag            same as images, rmi, tag
  tag SOURCE TARGET          give an image another name
  rmi [-f] NAME...           remove images (untag; delete when the last tag goes)
  save [-o FILE] [--format docker-archive|oci-archive] NAME...
                             write images to a tar archive (stdout without -o)
  load [-i FILE]             load images from a tar archive (stdin without -i)
  info                       show host and engine facts
  version                    print the version

Containers are run with sangja-runtime for now (see README)."""


class UsageError(Exception):
    pass


def _root(opts: dict) -> str:
    return opts.get("root") or os.environ.get("SANGJA_ROOT") or "/var/lib/sangja"


def _store(opts: dict):
    from ..image.store import ImageStore

    return ImageStore(_root(opts))


def _info(opts: dict) -> int:
    import platform

    from .. import OCI_VERSION, __version__
    from ..linux import namespaces
    from ..linux.cgroups import mode

    print(f"Version:        {__version__}")
    print(f"OCI runtime:    sangja-runtime (runtime-spec {OCI_VERSION})")
    print(f"Kernel:         {platform.release()}")
    print(f"Cgroups:        {mode()}")
    print(f"Namespaces:     {', '.join(namespaces.available())}")
    run = os.environ.get("SANGJA_RUNROOT", "/run/sangja")
    print(f"Storage root:   {_root(opts)}")
    print(f"Run root:       {run}")
    return 0


# ---------------------------------------------------------------------------- formatting


def human_size(size: float) -> str:
    """Docker's units.HumanSizeWithPrecision(size, 3): decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def _since(created: str | None) -> str:
    import time

    ts = _parse_time(created)
    if ts is None:
        return "N/A"
    delta = time.time() - ts
    if delta < 0:
        return "Less than a second ago"
    return f"{human_duration(delta)} ago"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        line = "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
        print(line.rstrip())


# ---------------------------------------------------------------------------- commands


def _flags(args: list[str], known: dict[str, bool]) -> tuple[dict[str, str | bool], list[str]]:
    """Split flags from operands. known: flag -> takes a value."""
    flags: dict[str, str | bool] = {}
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--":
            rest.extend(it)
            break
        if a.startswith("-") and a != "-":
            name, eq, value = a.partition("=")
            if name not in known:
                raise UsageError(f"unknown flag {name!r}")
            if known[name]:
                if not eq:
                    value = next(it, None)
                    if value is None:
                        raise UsageError(f"flag {name} needs a value")
                flags[name] = value
            else:
                if eq:
                    raise UsageError(f"flag {name} takes no value")
                flags[name] = True
        else:
            rest.append(a)
    return flags, rest


def cmd_bootstrap(opts: dict, args: list[str]) -> int:
    _, rest = _flags(args, {})
    if not rest or rest[0] != "busybox" or len(rest) > 2:
        raise UsageError("usage: sangja bootstrap busybox [NAME]")
    from ..image.bootstrap import DEFAULT_BUSYBOX_NAME, bootstrap_busybox

    with _store(opts) as store:
        print(bootstrap_busybox(store, rest[1] if len(rest) > 1 else DEFAULT_BUSYBOX_NAME))
    return 0


def cmd_images(opts: dict, args: list[str]) -> int:
    flags, rest = _flags(
        args, {"-q": False, "--quiet": False, "--digests": False, "--format": True}
    )
    if rest:
        raise UsageError("usage: sangja images [-q] [--digests] [--format json]")
    fmt = flags.get("--format")
    if fmt not in (None, "json", "table"):
        raise UsageError(f"unsupported --format {fmt!r} (json or table)")
    with _store(opts) as store:
        rows = store.images()
    if flags.get("-q") or flags.get("--quiet"):
        seen: set[str] = set()
        for r in rows:
            short = r["id"].partition(":")[2][:12]
            if short not in seen:
                seen.add(short)
                print(short)
        return 0
    if fmt == "json":
        from ..jsonio import dumps

        out = [
            {
                "Repository": r["repository"],
                "Tag": r["tag"],
                "ID": r["id"],
                "Digest": r["digest"],
                "Created": r["created"],
                "CreatedSince": _since(r["created"]),
                "Size": r["size"],
            }
            for r in rows
        ]
        print(dumps(out, indent=4))
        return 0
    digests = bool(flags.get("--digests"))
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "CREATED", "SIZE"]
    table = [
        [
            r["repository"],
            r["tag"],
            *([r["digest"] or "<none>"] if digests else []),
            r["id"].partition(":")[2][:12],
            _since(r["created"]),
            human_size(r["size"]),
        ]
        for r in rows
    ]
    _table(header, table)
    return 0


def cmd_inspect(opts: dict, args: list[str]) -> int:
    _, rest = _flags(args, {})
    if not rest:
        raise UsageError("usage: sangja image inspect NAME...")
    from ..jsonio import dumps

    with _store(opts) as store:
        out = [store.inspect(name) for name in rest]
    print(dumps(out, indent=4))
    return 0


def cmd_tag(opts: dict, args: list[str]) -> int:
    _, rest = _flags(args, {})
    if len(rest) != 2:
        raise UsageError("usage: sangja tag SOURCE TARGET")
    with _store(opts) as store:
        store.tag(rest[1], store.resolve(rest[0]).id)
    return 0


def cmd_rmi(opts: dict, args: list[str]) -> int:
    flags, rest = _flags(args, {"-f": False, "--force": False})
    if not rest:
        raise UsageError("usage: sangja rmi [-f] NAME...")
    from ..errors import SangjaError

    force = bool(flags.get("-f") or flags.get("--force"))
    rc = 0
    with _store(opts) as store:
        for name in rest:
            try:
                for line in store.remove(name, force=force):
                    print(line)
            except SangjaError as e:
                print(f"{PROG}: {e}", file=sys.stderr)
                rc = 125
    return rc


def cmd_save(opts: dict, args: list[str]) -> int:
    flags, rest = _flags(args, {"-o": True, "--output": True, "--format": True})
    usage = "usage: sangja save [-o FILE] [--format docker-archive|oci-archive] NAME..."
    if not rest:
        raise UsageError(usage)
    from ..image.archive import FORMATS, save

    fmt = str(flags.get("--format") or "docker-archive")
    if fmt not in FORMATS:
        raise UsageError(f"unsupported --format {fmt!r} ({' or '.join(FORMATS)})")
    output = flags.get("-o") or flags.get("--output")
    with _store(opts) as store:
        for name in rest:  # fail before creating the output when a name is unknown
            store.resolve(name)
        if not output or output == "-":
            if sys.stdout.isatty():
                raise UsageError(
                    "refusing to write an image archive to a terminal: use -o FILE or redirect"
                )
            sys.stdout.flush()
            save(store, rest, sys.stdout.buffer, format=fmt)
            sys.stdout.buffer.flush()
            return 0
        path = str(output)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                save(store, rest, f, format=fmt)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    return 0


def cmd_load(opts: dict, args: list[str]) -> int:
    flags, rest = _flags(args, {"-i": True, "--input": True, "-q": False, "--quiet": False})
    if rest:
        raise UsageError("usage: sangja load [-i FILE]")
    from ..image.archive import load

    source = flags.get("-i") or flags.get("--input")
    with _store(opts) as store:
        if not source or source == "-":
            if sys.stdin.isatty():
                raise UsageError("requested load from stdin, but stdin is a terminal: use -i FILE")
            names = load(store, sys.stdin.buffer)
        else:
            with open(str(source), "rb") as f:
                names = load(store, f)
    for name in names:
        print(f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {name}")
    return 0


COMMANDS = {
    "bootstrap": cmd_bootstrap,
    "save": cmd_save,
    "load": cmd_load,
    "images": cmd_images,
    "tag": cmd_tag,
    "rmi": cmd_rmi,
}
IMAGE_SUBCOMMANDS = {
    "inspect": cmd_inspect,
    "ls": cmd_images,
    "list": cmd_images,
    "rm": cmd_rmi,
    "tag": cmd_tag,
}


def _dispatch(argv: list[str]) -> int:
    opts: dict[str, str] = {}
    while argv and argv[0].startswith("--root"):
        name, eq, value = argv[0].partition("=")
        if name != "--root":
            break
        if eq:
            argv = argv[1:]
        elif len(argv) > 1:
            value, argv = argv[1], argv[2:]
        else:
            raise UsageError("--root needs a directory")
        if not value:
            raise UsageError("--root needs a directory")
        opts["root"] = value
    if argv[:1] in (["--version"], ["-v"], ["version"]):
        from .. import __version__

        print(f"{PROG} version {__version__}")
        return 0
    if argv[:1] in ([], ["--help"], ["-h"], ["help"]):
        print(HELP)
        return 0 if argv else 1
    cmd, args = argv[0], argv[1:]
    if cmd == "info":
        return _info(opts)
    if cmd == "image":
        if not args or args[0] not in IMAGE_SUBCOMMANDS:
            raise UsageError(f"usage: sangja image {{{'|'.join(IMAGE_SUBCOMMANDS)}}} ...")
        return IMAGE_SUBCOMMANDS[args[0]](opts, args[1:])
    if cmd in COMMANDS:
        return COMMANDS[cmd](opts, args)
    raise UsageError(f"unknown command {cmd!r} (see {PROG} --help)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 125
    except BrokenPipeError:
        from . import stdout_gone

        return stdout_gone()
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from ..errors import SangjaError

        if isinstance(e, SangjaError | OSError) or type(e).__module__ == "sqlite3":
            print(f"{PROG}: {e}", file=sys.stderr)
            return 125
        raise


if __name__ == "__main__":
    sys.exit(main())
