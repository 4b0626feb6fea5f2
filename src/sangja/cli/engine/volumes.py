"""Volume commands: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    PROG,
    Command,
    Flag,
    Globals,
    UsageError,
    error,
)


def _db(opts: Globals):
    from ...engine.paths import Paths
    from ...engine.records import open_db

    return open_db(opts.storage_root), Paths(opts.storage_root, opts.run_root)


def _labels(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid label {v!r}")
        out[k] = val
    return out


VOLUME_CREATE = Command("[OPTIONS] [VOLUME]", "Create a volume", [
    Flag("-d,--driver", "value", "Specify volume driver name (only local)", default="local"),
    Flag("-l,--label", "multi", "Set metadata for a volume"),
    Flag("--name", "value", "Specify volume name", hidden=True),
    Flag("-o,--opt", "multi", "Set driver specific options (none supported yet: refused)",
         meta="map"),
])


def cmd_volume_create(opts: Globals, args: list[str]) -> int:
    flags, rest = VOLUME_CREATE.parse(args)
    if len(rest) > 1 or (rest and flags["name"] and rest[0] != flags["name"]):
        raise UsageError(f"usage: {PROG} volume create [--label K=V] [NAME]")
    if flags["driver"] not in (None, "local"):
        raise UsageError(f"volume driver {flags['driver']!r} is not available (only local)")
    if flags["opt"]:
        raise UsageError("volume driver options (-o) are not supported by the local driver "
                         "yet")
    import os

    from ...engine.volumes import ensure_volume

    name = flags["name"] or (rest[0] if rest else os.urandom(32).hex())
    db, paths = _db(opts)
    with db:
        ensure_volume(db, paths, name, labels=_labels(flags["label"]))
    print(name)
    return 0


VOLUME_LS = Command("[OPTIONS]", "List volumes", [
    Flag("-f,--filter", "multi", 'Provide filter values (e.g. "dangling=true")', meta="filter"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("-q,--quiet", help="Only display volume names"),
])


def cmd_volume_ls(opts: Globals, args: list[str]) -> int:
    flags, rest = VOLUME_LS.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} volume ls [-q] [--filter K=V] [--format FORMAT]")
    from ...engine.volumes import volume_info

    db, paths = _db(opts)
    with db:
        rows = db.volumes()
        dangling = {r["name"]: not db.volume_users(r["name"]) for r in rows}
    infos = [volume_info(paths, r) for r in rows]
    for f in flags["filter"]:
        key, _, val = f.partition("=")
        if key == "dangling":
            want = val.lower() in ("true", "1")
            infos = [i for i in infos if dangling[i["Name"]] == want]
        elif key == "name":
            infos = [i for i in infos if val in i["Name"]]
        elif key == "label":
            k, eq, v = val.partition("=")
            infos = [i for i in infos if k in i["Labels"] and (not eq or i["Labels"][k] == v)]
        else:
            raise UsageError(f"invalid filter {f!r} (dangling, name, label)")
    if flags["quiet"]:
        for i in infos:
            print(i["Name"])
        return 0
    from .common import print_listing

    print_listing(flags["format"], [_volume_context(i) for i in infos],
                  "table {{.Driver}}\t{{.Name}}", VOLUME_HEADERS)
    return 0


VOLUME_INSPECT = Command("[OPTIONS] VOLUME [VOLUME...]",
                         "Display detailed information on one or more volumes", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
])


VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE", "Availability": "AVAILABILITY", "Group": "GROUP",
                  "Status": "STATUS"}


def _volume_context(info: dict) -> dict:
    """Docker's volume context: what `volume ls --format` sees (Labels as "k=v,...")."""
    labels = info.get("Labels") or {}
    ctx = {"Availability": "N/A", "Driver": info.get("Driver", "local"), "Group": "N/A",
           "Labels": ",".join(f"{k}={v}" for k, v in labels.items()), "Links": "N/A",
           "Mountpoint": info.get("Mountpoint", ""), "Name": info["Name"],
           "Scope": info.get("Scope", "local"), "Size": "N/A", "Status": "N/A"}
    ctx["Label"] = lambda key: labels.get(key, "")
    return ctx


def cmd_volume_inspect(opts: Globals, args: list[str]) -> int:
    flags, names = VOLUME_INSPECT.parse(args)
    if not names:
        raise UsageError(f"usage: {PROG} volume inspect NAME...")
    from ...engine.records import NoSuchVolume
    from ...engine.volumes import volume_info

    db, paths = _db(opts)
    out, rc = [], 0
    with db:
        for n in names:
            try:
                out.append(volume_info(paths, db.volume(n)))
            except NoSuchVolume as e:
                error(str(e))
                rc = 1
    from .common import print_inspect

    return print_inspect(out, flags["format"]) or rc


VOLUME_RM = Command("[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", [
    Flag("-f,--force", help="Force the removal of one or more volumes"),
])


def cmd_volume_rm(opts: Globals, args: list[str]) -> int:
    flags, names = VOLUME_RM.parse(args)
    if not names:
        raise UsageError(f"usage: {PROG} volume rm [-f] NAME...")
    from ...engine.records import NoSuchVolume
    from ...engine.volumes import remove_volume
    from ...errors import SangjaError

    db, paths = _db(opts)
    rc = 0
    with db:
        for n in names:
            try:
                remove_volume(db, paths, n)
                print(n)
            except NoSuchVolume as e:
                if not flags["force"]:
                    error(str(e))
                    rc = 1
            except SangjaError as e:
                error(str(e))
                rc = 1
    return rc


VOLUME_PRUNE = Command("[OPTIONS]", "Remove unused local volumes", [
    Flag("-a,--all", help="Remove all unused volumes, not just anonymous ones"),
    Flag("--filter", "multi", 'Provide filter values (e.g. "label=<label>")', meta="filter"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
])


def cmd_volume_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = VOLUME_PRUNE.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} volume prune [-a] [-f] [--filter label=K[=V]]")
    from ...engine.filters import PruneFilter, PruneFilterError, prune_filters
    from ...engine.volumes import prune_volumes
    from .image_tools import confirm, human_size4, print_deleted

    keep = PruneFilter("volume", prune_filters(flags["filter"]))
    if flags["all"] and keep.all is not None:
        raise PruneFilterError("conflicting options: cannot specify both --all and --filter "
                               "all=1")
    every = flags["all"] or bool(keep.all)
    if not flags["force"] and not confirm(
            "WARNING! This will remove all local volumes not used by at least one container."
            if flags["all"] else "WARNING! This will remove anonymous local volumes not used "
            "by at least one container."):
        return 0
    db, paths = _db(opts)
    with db:
        gone, size = prune_volumes(db, paths, anonymous_only=not every, select=keep or None)
    print_deleted("Deleted Volumes:", [("", n) for n in gone])
    print(f"Total reclaimed space: {human_size4(size)}")
    return 0
