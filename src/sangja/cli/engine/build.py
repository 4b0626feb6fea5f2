"""`sangja build` and `sangja builder prune`: parsing and printing only (the work is in
sangja.build and sangja.image.gc)."""

from __future__ import annotations

import os
import sys

from .common import PROG, Command, Flag, Globals, UsageError

USAGE = (f"usage: {PROG} build [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] "
         "[--no-cache] [--pull[=always|missing|never]] [--label K=V]... [--network MODE] "
         "[--platform linux/ARCH] [-q] [--iidfile FILE] [--secret id=ID,src=FILE]... "
         "CONTEXT|-")


def _pairs(values: list[str], flag: str, *, env_fallback: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not key:
            raise UsageError(f"{flag} {v!r}: expected KEY=VALUE")
        if not eq:
            if not env_fallback:
                raise UsageError(f"{flag} {v!r}: expected KEY=VALUE")
            if key not in os.environ:
                continue  # Docker: `--build-arg NAME` takes NAME from the environment
            value = os.environ[key]
        out[key] = value
    return out


def _secrets(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        fields = dict(part.partition("=")[::2] for part in v.split(","))
        sid = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not sid or not src or fields.get("type", "file") != "file":
            raise UsageError(f"--secret {v!r}: expected id=ID,src=FILE")
        if not os.path.isfile(src):
            raise UsageError(f"--secret {v!r}: {src} is not a file")
        out[sid] = os.path.abspath(src)
    return out


def _pull(value) -> str:
    if value in (None, False):
        return "missing"
    if value is True:
        return "always"
    text = str(value).lower()
    if text in ("true", "always"):
        return "always"
    if text in ("false", "missing", "ifmissing"):
        return "missing"
    if text == "never":
        return "never"
    raise UsageError(f"invalid --pull value {value!r} (always, missing or never)")


BUILD = Command("[OPTIONS] PATH | -", "Build an image from a Dockerfile", [
    Flag("--build-arg", "multi", "Set build-time variables"),
    Flag("-f,--file", "value", 'Name of the Dockerfile (Default is "PATH/Containerfile" or '
         '"PATH/Dockerfile")'),
    Flag("--force-rm", help="Always remove intermediate containers (sangja makes none)"),
    Flag("--iidfile", "value", "Write the image ID to the file"),
    Flag("--label", "multi", "Set metadata for an image"),
    Flag("--layers", help="Cache intermediate layers (false: as --no-cache)", default=True),
    Flag("--network", "value", "Set the networking mode for the RUN instructions during build "
         "(none or host)"),
    Flag("--no-cache", help="Do not use cache when building the image"),
    Flag("--platform", "value", "Set platform if server is multi-platform capable"),
    Flag("--pull", "optional", "Pull the base images: always, missing, never (a bare --pull: "
         "always)", meta="[=WHEN]"),
    Flag("-q,--quiet", help="Suppress the build output and print image ID on success"),
    Flag("--rm", help="Remove intermediate containers after a successful build (sangja makes "
         "none)", default=True),
    Flag("--secret", "multi", "Secret to expose to the build (format: id=ID,src=FILE)"),
    Flag("-t,--tag", "multi", 'Name and optionally a tag in the "name:tag" format'),
    Flag("--target", "value", "Set the target build stage to build."),
])


def cmd_build(opts: Globals, args: list[str]) -> int:
    flags, rest = BUILD.parse(args)
    pull = flags["pull"]
    if len(rest) != 1:
        raise UsageError(USAGE)
    from ...build.context import open_context
    from ...build.executor import BuildOptions, build
    from ...build.progress import Progress

    network = flags["network"]
    if network not in (None, "none", "host", "bridge"):  # those three as they are
        from .run_flags import _network

        network = _network(network)  # the engine's own rules for --network
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and not epoch.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r}: expected a number of seconds")
    bopts = BuildOptions(
        tags=list(flags["tag"]), build_args=_pairs(flags["build_arg"], "--build-arg",
                                                   env_fallback=True),
        target=flags["target"], no_cache=flags["no_cache"] or not flags["layers"], pull=_pull(pull),
        labels=_pairs(flags["label"], "--label"), network=network,
        platform=flags["platform"], secrets=_secrets(flags["secret"]),
        epoch=int(epoch) if epoch else None)
    out = sys.stdout.buffer
    quiet = flags["quiet"]
    progress = Progress(out, quiet=quiet)
    stdin = sys.stdin.buffer if rest[0] == "-" else None
    if stdin is not None and sys.stdin.isatty():
        raise UsageError("the build context on standard input is a terminal: pipe a "
                         "Containerfile or a tar archive")
    import _signal  # `signal` itself imports enum

    # SIGTERM as Ctrl-C: the build unwinds (its RUN container stopped and removed, its
    # mounts undone, nothing tagged) instead of dying where it stands
    _signal.signal(_signal.SIGTERM, _signal.default_int_handler)
    with open_context(rest[0], flags["file"], stdin, scratch_dir=None) as ctx:
        image_id = build(opts.storage_root, opts.run_root, context=ctx, opts=bopts,
                         progress=progress)
    if not quiet:
        for t in bopts.tags:
            from ...image.store import ImageStore

            progress.line(f"Successfully tagged {ImageStore.canonical(t)}")
    print(image_id, flush=True)
    if flags["iidfile"]:
        from ...fs import write_atomic

        write_atomic(flags["iidfile"], image_id, durable=False)
    return 0


BUILDER_PRUNE = Command("[OPTIONS]", "Remove build cache", [
    Flag("-a,--all", help="Remove all unused build cache, not just dangling ones"),
    Flag("--filter", "multi", 'Provide filter values (e.g. "until=24h")', meta="filter"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
    Flag("--keep-storage", "value", "Amount of disk space to keep for cache", meta="bytes"),
])


def cmd_builder_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = BUILDER_PRUNE.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} builder prune [-a] [-f] [--filter until=T]")
    from ...engine.filters import PruneFilter, prune_filters
    from .image_tools import CONTINUE, confirm, human_size4

    keep = PruneFilter("build", prune_filters(flags["filter"]))
    keep_bytes = None
    if flags["keep_storage"] is not None:
        from ...engine.units import ram_in_bytes

        try:
            keep_bytes = ram_in_bytes(flags["keep_storage"]) or None  # 0: no limit
        except ValueError as e:
            raise UsageError(f'invalid argument "{flags["keep_storage"]}" for '
                             f'"--keep-storage" flag: {e}') from None
    if not flags["force"]:
        what = "all build cache" if flags["all"] else "all dangling build cache"
        if not confirm(f"WARNING! This will remove {what}.", " " + CONTINUE):
            return 0
    from ...engine.usage import images_in_use
    from ...image.gc import prune_build_cache
    from .common import store as open_store

    with open_store(opts) as store:
        report = prune_build_cache(store, all_entries=flags["all"],
                                   in_use=images_in_use(store.root), select=keep or None,
                                   keep_bytes=keep_bytes)
    if report.deleted_cache:
        print("Deleted build cache objects:")
        for key in report.deleted_cache:
            print(key)
        print()
    print(f"Total reclaimed space: {human_size4(report.reclaimed)}")
    return 0
