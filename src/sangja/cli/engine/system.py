"""System commands: info, version, system df, system prune, system check."""

from __future__ import annotations

import sys

from .common import FORMAT_HELP, INSPECT_FORMAT_HELP, PROG, Command, Flag, Globals, UsageError

VERSION = Command("[OPTIONS]", "Show the sangja version information", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
])


def _format_flag(command: Command, args: list[str], usage: str) -> str | None:
    flags, rest = command.parse(args)
    if rest:
        raise UsageError(usage)
    return flags["format"]


def _print_formatted(fmt: str, doc) -> None:
    """`--format json` (one line) or a template, through the one template module."""
    if fmt == "json":
        from ...jsonio import dumps

        print(dumps(doc))
        return
    from .common import render_template

    print(render_template(fmt, doc))


def cmd_version(opts: Globals, args: list[str]) -> int:
    fmt = _format_flag(VERSION, args, f"usage: {PROG} version [--format TEMPLATE|json]")
    from ...engine.sysinfo import version_document

    doc = version_document()
    if fmt:
        _print_formatted(fmt, doc)
        return 0
    c, s = doc["Client"], doc["Server"]
    lines = ["Client:", f" Version:           {c['Version']}",
             f" OS/Arch:           {c['Os']}/{c['Arch']}", f" Context:           {c['Context']}",
             "", f"Server: {s['Platform']['Name']}"]
    for comp in s["Components"]:
        lines.append(f" {comp['Name']}:")
        lines.append(f"  {'Version:':<18}{comp['Version']}")
        details = comp["Details"]
        if comp["Name"] == "Engine":
            lines.append(f"  {'OS/Arch:':<18}{details['Os']}/{details['Arch']}")
            lines.append(f"  {'Kernel version:':<18}{details['KernelVersion']}")
        for k, v in details.items():
            if comp["Name"] != "Engine" and v:
                lines.append(f"  {k + ':':<18}{v}")
    print("\n".join(lines))
    return 0


INFO = Command("[OPTIONS]", "Display system-wide information", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
])


def cmd_info(opts: Globals, args: list[str]) -> int:
    fmt = _format_flag(INFO, args, f"usage: {PROG} info [--format TEMPLATE|json]")
    from ...engine.sysinfo import info_document

    doc = info_document(opts.storage_root, opts.run_root)
    if fmt:
        from ...engine.sysinfo import version_document

        client = version_document()["Client"]
        doc["ClientInfo"] = {"Debug": opts.debug, "Version": client["Version"],
                             "Context": "default", "Plugins": [], "Warnings": None}
        _print_formatted(fmt, doc)
        return 0
    mem = _bytes_size(doc["MemTotal"])
    lines = [
        "Client:",
        f" Version:    {doc['ServerVersion']}",
        " Context:    default",
        f" Debug Mode: {str(opts.debug).lower()}",
        "",
        "Server:",
        f" Containers: {doc['Containers']}",
        f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}",
        f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}",
        f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}",
        f" Logging Driver: {doc['LoggingDriver']}",
        f" Cgroup Driver: {doc['CgroupDriver']}",
        f" Cgroup Version: {doc['CgroupVersion']}",
        " Plugins:",
        *(f"  {k}: {' '.join(v)}" for k, v in doc["Plugins"].items() if v),
        " Swarm: inactive",
        f" Runtimes: {' '.join(doc['Runtimes'])}",
        f" Default Runtime: {doc['DefaultRuntime']}",
        " Security Options:",
        *(f"  {o.removeprefix('name=').partition(',')[0]}"
          + (f"\n   Profile: {o.partition('profile=')[2]}" if "profile=" in o else "")
          for o in doc["SecurityOptions"]),
        f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}",
        f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}",
        f" CPUs: {doc['NCPU']}",
        f" Total Memory: {mem}",
        f" Name: {doc['Name']}",
        f" Docker Root Dir: {doc['DockerRootDir']}",
        f" Run Root Dir: {doc['RunRootDir']}",
        f" Debug Mode: {str(opts.debug).lower()}",
        " Experimental: false",
        " Insecure Registries:",
        *(f"  {r}" for r in doc["RegistryConfig"]["InsecureRegistryCIDRs"]),
        f" Live Restore Enabled: {str(doc['LiveRestoreEnabled']).lower()}",
    ]
    print("\n".join(lines))
    print()
    for w in doc["Warnings"] or []:
        print(w, file=sys.stderr)
    return 0


def _bytes_size(size: float) -> str:
    """Docker's units.BytesSize: binary units, 4 significant digits ("23.54GiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{units[i]}"


# ---------------------------------------------------------------------------- system df


def _reclaimable(reclaimable: int, total: int) -> str:
    from .image_tools import human_size4

    if total > 0:
        return f"{human_size4(reclaimable)} ({reclaimable * 100 // total}%)"
    return human_size4(reclaimable)


DF = Command("[OPTIONS]", "Show sangja disk usage", [
    Flag("--format", "value", FORMAT_HELP),
    Flag("-v,--verbose", help="Show detailed information on space usage"),
])


DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def cmd_df(opts: Globals, args: list[str]) -> int:
    flags, rest = DF.parse(args)
    if rest:
        raise UsageError("usage: sangja system df [-v] [--format json|TEMPLATE]")
    fmt = flags["format"]
    from ...engine.usage import containers_usage, images_in_use, volumes_usage
    from ...image.gc import disk_usage
    from .common import human_size, since, table
    from .common import store as open_store
    from .image_tools import human_size4

    root = opts.storage_root
    containers = containers_usage(root, opts.run_root)
    volumes = volumes_usage(root)
    counts: dict[str, int] = {}
    for c in containers:
        if c.get("image_id"):
            counts[c["image_id"]] = counts.get(c["image_id"], 0) + 1
    from ...image.gc import build_cache_usage

    with open_store(opts) as store:
        in_use = images_in_use(root) | set(counts)
        images = disk_usage(store, in_use, counts)
        cache = build_cache_usage(store, in_use)
    c_size = sum(int(c.get("size") or 0) for c in containers)
    c_reclaim = sum(int(c.get("size") or 0) for c in containers if not c.get("running"))
    v_size = sum(int(v.get("size") or 0) for v in volumes)
    v_reclaim = sum(int(v.get("size") or 0) for v in volumes if not v.get("links"))
    summary = [
        ("Images", images["total"], images["active"], images["size"], images["reclaimable"]),
        ("Containers", len(containers), sum(1 for c in containers if c.get("running")),
         c_size, c_reclaim),
        ("Local Volumes", len(volumes), sum(1 for v in volumes if v.get("links")),
         v_size, v_reclaim),
        ("Build Cache", cache["total"], cache["active"], cache["size"], cache["reclaimable"]),
    ]
    if not flags["verbose"]:
        from .common import print_listing

        rows = [{"Type": t, "TotalCount": str(n), "Active": str(a), "Size": human_size4(sz),
                 "Reclaimable": human_size4(r) if t == "Build Cache" else _reclaimable(r, sz)}
                for t, n, a, sz, r in summary]
        print_listing(fmt, rows, DF_TABLE, DF_HEADERS)
        return 0
    if fmt:
        doc = {"Images": images["images"], "Containers": containers, "Volumes": volumes,
               "BuildCache": cache["entries"]}
        if fmt == "json":
            from ...jsonio import dumps

            print(dumps(doc))
        else:
            from .common import render_template

            print(render_template(fmt, doc))
        return 0
    from ...image.reference import parse

    print("Images space usage:\n")
    image_rows: list[list[str]] = []
    for img in images["images"]:
        names = img["tags"] or ["<none>"]
        for name in names:
            repo, tag = "<none>", "<none>"
            if name != "<none>":
                ref = parse(name)
                repo, tag = ref.name, ref.tag or "<none>"
            image_rows.append([repo, tag, img["id"].partition(":")[2][:12], since(img["created"]),
                         human_size(img["size"]), human_size(img["shared_size"]),
                         human_size(img["unique_size"]), str(img["containers"])])
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
           "CONTAINERS"], image_rows)
    print("\nContainers space usage:\n")
    table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS",
           "NAMES"],
          [[str(c.get("id", ""))[:12], str(c.get("image", "")),
            '"' + str(c.get("command", ""))[:20] + '"', str(c.get("local_volumes", 0)),
            human_size(int(c.get("size") or 0)), since(c.get("created")),
            str(c.get("status", "")), ",".join(c.get("names") or [])] for c in containers])
    print("\nLocal Volumes space usage:\n")
    table(["VOLUME NAME", "LINKS", "SIZE"],
          [[str(v.get("name", "")), str(v.get("links", 0)), human_size(int(v.get("size") or 0))]
           for v in volumes])
    print(f"\nBuild cache usage: {human_size(cache['size'])}\n")
    table(["CACHE ID", "CACHE TYPE", "CREATED", "LAST USED", "IMAGE", "DESCRIPTION"],
          [[e["key"][:12], "regular", since(e["created"]), since(e["last_used"]),
            e["image_id"].partition(":")[2][:12], e["description"][:40]]
           for e in cache["entries"]])
    return 0


# ---------------------------------------------------------------------------- system prune


SYSTEM_PRUNE = Command("[OPTIONS]", "Remove unused data", [
    Flag("-a,--all", help="Remove all unused images not just dangling ones"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
    Flag("--volumes", help="Prune anonymous volumes"),
])


def cmd_system_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = SYSTEM_PRUNE.parse(args)
    if rest:
        raise UsageError("usage: sangja system prune [-a] [-f] [--volumes]")
    from .image_tools import confirm, human_size4, print_deleted

    if not flags["force"]:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if flags["volumes"]:
            items.append("all anonymous volumes not used by at least one container")
        items.append("all images without at least one container associated to them"
                     if flags["all"] else "all dangling images")
        items.append("all build cache" if flags["all"] else "unused build cache")
        warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
        if not confirm(warning):
            return 0
    from ...engine.usage import images_in_use
    from ...image.gc import prune_build_cache, prune_images
    from .common import store as open_store

    reclaimed = 0
    with open_store(opts) as store:
        with store.lock.exclusive():
            containers, volumes, engine_bytes = prune_engine_objects(
                store.root, opts.run_root, volumes=flags["volumes"])
            report = prune_images(store, all_images=flags["all"],
                                  in_use=images_in_use(store.root))
            cache = prune_build_cache(store, all_entries=flags["all"],
                                      in_use=images_in_use(store.root))
    reclaimed = engine_bytes + report.reclaimed + cache.reclaimed
    from ...engine.containers import Engine
    from ...engine.networking import prune_networks

    with Engine(opts.storage_root, opts.run_root) as eng:
        networks = prune_networks(eng)
    print_deleted("Deleted Containers:", [("", c) for c in containers])
    print_deleted("Deleted Networks:", [("", n) for n in networks])
    print_deleted("Deleted Volumes:", [("", v) for v in volumes])
    print_deleted("Deleted Images:", report.events)
    if cache.deleted_cache:
        print("Deleted build cache objects:")
        for key in cache.deleted_cache:
            print(key)
        print()
    print(f"Total reclaimed space: {human_size4(reclaimed)}")
    return 0


def prune_engine_objects(root: str, runroot: str, *, volumes: bool
                         ) -> tuple[list[str], list[str], int]:
    """The engine's part of `system prune`, before the images: stopped containers, then
    (with --volumes) unused volumes. Returns (container ids, volume names, bytes). The
    engine implements the hooks in ``sangja.engine.usage``."""
    from ...engine.usage import prune_containers, prune_volumes

    ids, reclaimed = prune_containers(root, runroot)
    names: list[str] = []
    if volumes:
        names, vol_bytes = prune_volumes(root, runroot)
        reclaimed += vol_bytes
    return ids, names, reclaimed


# ---------------------------------------------------------------------------- system check


CHECK = Command("[OPTIONS]", "Find damaged or leftover store and container parts (exit 1 "
                "if any)", [
    Flag("-f,--force", help="With --repair: also remove broken images"),
    Flag("--rebuild", help="Recreate a lost images.db/containers.db"),
    Flag("-r,--repair", help="Fix what was found"),
])


def cmd_check(opts: Globals, args: list[str]) -> int:
    flags, rest = CHECK.parse(args)
    if rest:
        raise UsageError("usage: sangja system check [--repair [-f]] [--rebuild]")
    from ...engine.check import system_check

    result = system_check(opts.storage_root, opts.run_root, repair=flags["repair"],
                          force=flags["force"], rebuild=flags["rebuild"])
    for line in result.rebuilt:
        print(line)
    if flags["rebuild"] and not result.rebuilt:
        print("nothing to rebuild: images.db and containers.db are readable")
    for f in result.findings:
        print(f.line())
    found, remaining = len(result.findings), len(result.remaining)
    if not found:
        print("no problems found")
        return 0
    summary = f"{found} problem{'s' if found != 1 else ''} found"
    if flags["repair"]:
        summary += f", {found - remaining} repaired, {remaining} remaining"
    print(summary)
    lost = any(f.flags == "--rebuild" for f in result.remaining)
    if lost:
        print(f"a database is lost: restore it from a backup, or run '{PROG} system check "
              "--rebuild'")
    elif any(f.fix for f in result.remaining) and not flags["repair"]:
        print(f"run '{PROG} system check --repair' to fix them"
              + (" ('-f' also removes broken images)"
                 if any(f.needs_force for f in result.remaining) else ""))
    elif remaining and any(f.needs_force for f in result.remaining):
        print(f"run '{PROG} system check --repair -f' to remove the broken images")
    return 1 if remaining else 0
