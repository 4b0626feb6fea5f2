"""Image commands: bootstrap, images, image inspect, tag, rmi, save, load."""

from __future__ import annotations

import sys

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    PROG,
    Command,
    Flag,
    Globals,
    UsageError,
    human_size,
    since,
)
from .common import store as open_store

BOOTSTRAP = Command("busybox [NAME] | debian [OPTIONS] [NAME]", "Build an image from the "
                    "host's static busybox, or a Debian image with mmdebstrap/debootstrap", [
    Flag("--include", "multi", "debian: more packages to install (PKG,...)"),
    Flag("--mirror", "value", "debian: the archive to install from"),
    Flag("--suite", "value", "debian: the release (default bookworm)"),
    Flag("--variant", "value", "debian: the package set (mmdebstrap's --variant)"),
])
_BOOTSTRAP_BUSYBOX = Command(BOOTSTRAP.usage, BOOTSTRAP.help)


def cmd_bootstrap(opts: Globals, args: list[str]) -> int:
    usage = ("usage: sangja bootstrap busybox [NAME] | sangja bootstrap debian [--suite SUITE] "
             "[--variant VARIANT] [--include PKG,...] [--mirror URL] [NAME]")
    kind = args[0] if args else None
    if kind == "debian":
        flags, rest = BOOTSTRAP.parse(args[1:])
        if len(rest) > 1:
            raise UsageError(usage)
        from ...image.debian import DEFAULT_SUITE, DEFAULT_VARIANT, bootstrap_debian

        include = [p.strip() for v in flags["include"] for p in str(v).split(",")]
        with open_store(opts) as store:
            print(bootstrap_debian(
                store, rest[0] if rest else None, suite=flags["suite"] or DEFAULT_SUITE,
                variant=flags["variant"] or DEFAULT_VARIANT, include=include,
                mirror=flags["mirror"]))
        return 0
    _, rest = _BOOTSTRAP_BUSYBOX.parse(args)
    if not rest or rest[0] != "busybox" or len(rest) > 2:
        raise UsageError(usage)
    from ...image.bootstrap import DEFAULT_BUSYBOX_NAME, bootstrap_busybox

    with open_store(opts) as store:
        print(bootstrap_busybox(store, rest[1] if len(rest) > 1 else DEFAULT_BUSYBOX_NAME))
    return 0


IMAGES = Command("[OPTIONS] [REPOSITORY[:TAG]]", "List images", [
    Flag("-a,--all", help="Show all images (default hides intermediate images)"),
    Flag("--digests", help="Show digests"),
    Flag("-f,--filter", "multi", "Filter output based on conditions provided",
         meta="filter"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("--no-trunc", help="Don't truncate output"),
    Flag("-q,--quiet", help="Only show image IDs"),
])


def cmd_images(opts: Globals, args: list[str]) -> int:
    flags, rest = IMAGES.parse(args)
    if len(rest) > 1:
        raise UsageError("usage: sangja images [-q] [-a] [--digests] [--no-trunc] "
                         "[--filter K=V] [--format FORMAT] [REPOSITORY[:TAG]]")
    wanted: dict = {}
    if flags["filter"] or rest:
        from ...engine import filters as flt

        wanted = flt.parse(flags["filter"], flt.IMAGES_KEYS)
        if rest:  # Docker: the argument is one more reference filter
            wanted.setdefault("reference", []).append(rest[0])
    from ...image.readonly import list_images

    rows = None if wanted else list_images(opts.storage_root, all_images=flags["all"])
    if rows is None:
        with open_store(opts) as store:
            rows = store.images(all_images=flags["all"])
            if wanted:
                keep = flt.ImageFilter(store, wanted)
                rows = [r for r in rows if keep(r)]
    trunc = not flags["no_trunc"]
    if flags["quiet"]:
        seen: set[str] = set()
        for r in rows:
            shown = _image_id(r["id"], trunc)
            if shown not in seen:
                seen.add(shown)
                print(shown)
        return 0
    contexts = [_image_context(r, trunc) for r in rows]
    fmt = flags["format"] or (IMAGES_TABLE_DIGESTS if flags["digests"] else IMAGES_TABLE)
    if fmt == "json":
        from ...jsonio import dumps

        for c in contexts:
            print(dumps(c))
        return 0
    from .common import format_rows

    sys.stdout.write(format_rows(IMAGES_TABLE if fmt == "table" else fmt, contexts,
                                 IMAGES_HEADERS))
    return 0


# Docker's `images` table and the column titles of its fields (docker/cli formatter).
IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t"
                "{{.Size}}")
IMAGES_TABLE_DIGESTS = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                        "{{.CreatedSince}}\t{{.Size}}")
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                  "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                  "VirtualSize": "VIRTUAL SIZE", "Containers": "CONTAINERS"}


def _image_id(image_id: str, trunc: bool) -> str:
    return image_id.partition(":")[2][:12] if trunc else image_id


def _image_context(r, trunc: bool) -> dict:
    """What an `images --format` template sees, with docker's field names and values."""
    from ...humanize import docker_time

    size = human_size(r["size"])
    return {"Containers": "N/A", "CreatedAt": docker_time(r["created"]),
            "CreatedSince": since(r["created"]), "Digest": r["digest"] or "<none>",
            "ID": _image_id(r["id"], trunc), "Repository": r["repository"],
            "SharedSize": "N/A", "Size": size, "Tag": r["tag"], "UniqueSize": "N/A",
            "VirtualSize": size}


INSPECT = Command("[OPTIONS] IMAGE [IMAGE...]",
                  "Display detailed information on one or more images", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
])


def cmd_inspect(opts: Globals, args: list[str]) -> int:
    flags, rest = INSPECT.parse(args)
    if not rest:
        raise UsageError("usage: sangja image inspect [-f FORMAT] NAME...")
    from ...engine.inspect import image_document
    from ...image.db import ImageNotFound
    from .common import print_inspect

    docs, rc = [], 0
    with open_store(opts) as store:
        for name in rest:
            try:
                docs.append(image_document(store, name))
            except ImageNotFound:
                print(f"{PROG}: No such image: {name}", file=sys.stderr)
                rc = 1
    return print_inspect(docs, flags["format"]) or rc


TAG = Command("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
              "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")


def cmd_tag(opts: Globals, args: list[str]) -> int:
    _, rest = TAG.parse(args)
    if len(rest) != 2:
        raise UsageError("usage: sangja tag SOURCE TARGET")
    with open_store(opts) as store:
        image_id = store.resolve(rest[0]).id
        store.tag(rest[1], image_id)
    return 0


RMI = Command("[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
    Flag("-f,--force", help="Force removal of the image"),
])


def cmd_rmi(opts: Globals, args: list[str]) -> int:
    flags, rest = RMI.parse(args)
    if not rest:
        raise UsageError("usage: sangja rmi [-f] NAME...")
    from ...errors import SangjaError

    force = flags["force"]
    rc = 0
    from ...engine.usage import remove_image

    with open_store(opts) as store:
        for name in rest:
            try:
                for line in remove_image(store, name, force=force):
                    print(line)
            except SangjaError as e:
                print(f"{PROG}: {e}", file=sys.stderr)
                # Docker's 1 for whatever its daemon refuses (no such image, in use, a bad
                # name); 125 for what only sangja refuses (a lost containers.db)
                from ...sqlite import DatabaseLost

                rc = max(rc, 125 if isinstance(e, DatabaseLost) else 1)
    return rc


SAVE = Command("[OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar archive "
               "(streamed to STDOUT by default)", [
    Flag("--format", "value", "The archive's layout: docker-archive or oci-archive",
         default="docker-archive"),
    Flag("-o,--output", "value", "Write to a file, instead of STDOUT"),
])


def cmd_save(opts: Globals, args: list[str]) -> int:
    flags, rest = SAVE.parse(args)
    usage = "usage: sangja save [-o FILE] [--format docker-archive|oci-archive] NAME..."
    if not rest:
        raise UsageError(usage)
    from ...image.archive import FORMATS, save

    fmt = flags["format"] or "docker-archive"
    if fmt not in FORMATS:
        raise UsageError(f"unsupported --format {fmt!r} ({' or '.join(FORMATS)})")
    output = flags["output"]
    with open_store(opts) as store:
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
        from ...output import output_file

        with output_file(str(output)) as f:
            save(store, rest, f, format=fmt)
    return 0


LOAD = Command("[OPTIONS]", "Load an image from a tar archive or STDIN", [
    Flag("-i,--input", "value", "Read from tar archive file, instead of STDIN"),
    Flag("-q,--quiet", help="Suppress the load output"),
])


def cmd_load(opts: Globals, args: list[str]) -> int:
    flags, rest = LOAD.parse(args)
    if rest:
        raise UsageError("usage: sangja load [-i FILE|DIR|oci:DIR[:NAME]|docker-archive:FILE]")
    from ...image.archive import load, load_path, load_transport, split_transport

    source = flags["input"]
    with open_store(opts) as store:
        if not source or source == "-":
            if sys.stdin.isatty():
                raise UsageError("requested load from stdin, but stdin is a terminal: use -i FILE")
            names = load(store, sys.stdin.buffer)
        elif (transport := split_transport(str(source))) is not None:
            names = load_transport(store, *transport)
        else:
            names = load_path(store, str(source))
    for name in names:
        print(f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {name}")
    return 0
