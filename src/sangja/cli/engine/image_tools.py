"""Image commands: import, history, image prune."""

from __future__ import annotations

import sys

from .common import FORMAT_HELP, Command, Flag, Globals, UsageError, human_size, since, table
from .common import store as open_store

CREATED_BY_WIDTH = 45


def human_size4(size: float) -> str:
    """Docker's units.HumanSize (4 significant digits): `Total reclaimed space`, `system df`."""
    return human_size(size, 4)


def ellipsis(text: str, width: int) -> str:
    """Docker's formatter.Ellipsis: at most `width` characters, the last one "…"."""
    return text if len(text) <= width else text[: width - 1] + "…"


CONTINUE = "Are you sure you want to continue?"


def confirm(warning: str, question: str = "\n" + CONTINUE) -> bool:
    """Docker's prompt.Confirm: the warning and the question, then ` [y/N] `; one line
    of stdin, and only "y" or "Y" (spaces around allowed) says yes."""
    sys.stdout.write(f"{warning}{question} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        sys.stdout.write("\n")
    return answer.strip().lower() == "y"


def print_deleted(title: str, events: list[tuple[str, str]]) -> None:
    if events:
        print(title)
        for kind, subject in events:
            print(f"{kind}: {subject}" if kind else subject)
        print()


# ---------------------------------------------------------------------------- import


IMPORT = Command("[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents from a "
                 "tarball to create a filesystem image", [
    Flag("-c,--change", "multi", "Apply Dockerfile instruction to the created image"),
    Flag("-m,--message", "value", "Set commit message for imported image"),
    Flag("--platform", "value", "Set platform if server is multi-platform capable"),
])


def cmd_import(opts: Globals, args: list[str]) -> int:
    flags, rest = IMPORT.parse(args)
    usage = ("usage: sangja import [-c INSTRUCTION]... [-m MESSAGE] [--platform OS/ARCH] "
             "FILE|URL|- [REPOSITORY[:TAG]]")
    if not 1 <= len(rest) <= 2:
        raise UsageError(usage)
    from ...image.importer import import_tarball

    source = rest[0]
    with open_store(opts) as store:
        if source == "-":
            if sys.stdin.isatty():
                raise UsageError("requested import from stdin, but stdin is a terminal")
            src = sys.stdin.buffer
        else:
            src = source
        image_id = import_tarball(
            store, src, reference=rest[1] if len(rest) > 1 else None,
            changes=flags["change"], message=flags["message"], platform=flags["platform"],
        )
    print(image_id)
    return 0


# ---------------------------------------------------------------------------- history


HISTORY = Command("[OPTIONS] IMAGE", "Show the history of an image", [
    Flag("--format", "value", FORMAT_HELP),
    Flag("-H,--human", help="Print sizes and dates in human readable format", default=True),
    Flag("--no-trunc", help="Don't truncate output"),
    Flag("-q,--quiet", help="Only show image IDs"),
])


HISTORY_TABLE = ("table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t"
                 "{{.Comment}}")
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def cmd_history(opts: Globals, args: list[str]) -> int:
    flags, rest = HISTORY.parse(args)
    if len(rest) != 1:
        raise UsageError("usage: sangja history [--no-trunc] [-q] [-H=false] [--format json] "
                         "IMAGE")
    fmt = flags["format"]
    with open_store(opts) as store:
        rows = store.history(rest[0])
    trunc = not flags["no_trunc"]

    def image_id(r: dict) -> str:
        i = r["id"]
        return i.partition(":")[2][:12] if trunc and i.startswith("sha256:") else i

    def size(r: dict) -> str:
        if r["size"] is None:
            return "N/A"
        return human_size(r["size"]) if flags["human"] else str(r["size"])

    if flags["quiet"]:
        for r in rows:
            print(image_id(r))
        return 0
    out = []
    for r in rows:
        created_by = r["created_by"].replace("\t", " ")
        out.append({
            "ID": image_id(r),
            "CreatedSince": since(r["created"]) if flags["human"] else (r["created"] or ""),
            "CreatedAt": r["created"] or "",
            "CreatedBy": ellipsis(created_by, CREATED_BY_WIDTH) if trunc else created_by,
            "Size": size(r),
            "Comment": r["comment"],
        })
    if fmt:
        from .common import print_listing

        print_listing(fmt, out, HISTORY_TABLE, HISTORY_HEADERS)
        return 0
    table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
          [[v["ID"], v["CreatedSince"], v["CreatedBy"], v["Size"], v["Comment"]] for v in out])
    return 0


# ---------------------------------------------------------------------------- image prune


IMAGE_PRUNE = Command("[OPTIONS]", "Remove unused images", [
    Flag("-a,--all", help="Remove all unused images, not just dangling ones"),
    Flag("--filter", "multi", 'Provide filter values (e.g. "until=<timestamp>")',
         meta="filter"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
])


def cmd_image_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = IMAGE_PRUNE.parse(args)
    if rest:
        raise UsageError("usage: sangja image prune [-a] [-f] [--filter until=T|label=K[=V]]")
    from ...engine.filters import PruneFilter, prune_filters

    keep = PruneFilter("image", prune_filters(flags["filter"]))
    if keep.dangling is False:  # Docker: dangling=false is -a
        flags["all"] = True
    if not flags["force"]:
        what = ("all images without at least one container associated to them"
                if flags["all"] else "all dangling images")
        if not confirm(f"WARNING! This will remove {what}."):
            return 0
    from ...engine.usage import prune_unused_images

    with open_store(opts) as store:
        select = keep.image_selector(store) if keep else None
        report = prune_unused_images(store, all_images=flags["all"], select=select)
    print_deleted("Deleted Images:", report.events)
    print(f"Total reclaimed space: {human_size4(report.reclaimed)}")
    return 0
