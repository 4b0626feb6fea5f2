"""Registry commands: pull, push, login, logout, search. The work is sangja.registry's; this parses
the flags and draws the progress."""

from __future__ import annotations

import os
import sys

from .common import Command, Flag, Globals, UsageError
from .common import store as open_store

_UNSET = "unset"  # --tls-verify not given: verify, plain HTTP for loopback registries
_TLS_VERIFY = Flag("--tls-verify", help="Require HTTPS and verify certificates (default: "
                   "true, but plain HTTP to a registry on this host)", default=_UNSET)
_CERT_DIR = Flag("--cert-dir", "value", "Use certificates (*.crt, *.cert, *.key) in this "
                 "directory")
_AUTHFILE = Flag("--authfile", "value", "Path of the authentication file (podman's "
                 "auth.json)")
_CONNECTION_FLAGS = [_TLS_VERIFY, _CERT_DIR, _AUTHFILE,
                     Flag("--creds", "value", "Credentials for the registry: "
                          "USERNAME[:PASSWORD]")]
_PROGRESS_FORMAT = Flag("--format", "value", "Progress output: json for one JSON object per "
                        "event line")


def registry_options(flags: dict):
    """sangja.registry.Options from the flags every registry command shares."""
    from ...registry.auth import Credentials
    from ...registry.options import Options

    creds = None
    if flags.get("creds"):
        user, sep, password = str(flags["creds"]).partition(":")
        if not user:
            raise UsageError("--creds takes USERNAME[:PASSWORD]")
        if not sep:
            import getpass

            password = getpass.getpass("Password: ")
        creds = Credentials(user, password)
    chunk = os.environ.get("SANGJA_PUSH_CHUNK_SIZE", "").strip()
    chunk_size = None
    if chunk:
        from ...engine.units import ram_in_bytes

        try:
            chunk_size = ram_in_bytes(chunk)
        except ValueError:
            raise UsageError(f"SANGJA_PUSH_CHUNK_SIZE={chunk!r}: expected a size") from None
    verify = flags.get("tls_verify")
    return Options(tls_verify=None if verify == _UNSET else verify, cert_dir=flags.get("cert_dir"),
                   auth_file=flags.get("authfile"), creds=creds, chunk_size=chunk_size)


def progress_for(flags: dict):
    from .progress import Progress

    fmt = flags.get("format")
    if fmt not in (None, "json"):
        raise UsageError(f"unsupported --format {fmt!r} (json)")
    if flags.get("quiet"):
        return Progress("quiet")
    return Progress("json" if fmt == "json" else "auto")


PULL = Command("[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", [
    Flag("-a,--all-tags", help="Download all tagged images in the repository"),
    _PROGRESS_FORMAT,
    Flag("--platform", "value", "Set platform if server is multi-platform capable"),
    Flag("-q,--quiet", help="Suppress verbose output"),
    *_CONNECTION_FLAGS,
])


def cmd_pull(opts: Globals, args: list[str]) -> int:
    flags, rest = PULL.parse(args)
    if len(rest) != 1:
        raise UsageError("usage: sangja pull [--platform OS/ARCH] [-a] [-q] "
                         "[--tls-verify=false] [--cert-dir DIR] [--authfile FILE] "
                         "[--creds USER[:PASS]] [--format json] NAME[:TAG|@DIGEST]")
    from ...registry.pulling import pull

    progress = progress_for(flags)
    options = registry_options(flags)
    try:
        with open_store(opts) as store:
            results = pull(store, rest[0], platform=flags["platform"],
                           all_tags=flags["all_tags"], options=options, progress=progress)
    finally:
        options.close()
    if progress.mode != "json":
        for image_id in dict.fromkeys(r.image_id for r in results):
            print(image_id)
    return 0


PUSH = Command("[OPTIONS] NAME[:TAG] [DESTINATION]", "Upload an image to a registry", [
    Flag("--digestfile", "value", "Write the digest of the pushed image to this file"),
    _PROGRESS_FORMAT,
    Flag("-q,--quiet", help="Suppress verbose output"),
    *_CONNECTION_FLAGS,
])


def cmd_push(opts: Globals, args: list[str]) -> int:
    flags, rest = PUSH.parse(args)
    if not 1 <= len(rest) <= 2:
        raise UsageError("usage: sangja push [--digestfile FILE] [-q] [--tls-verify=false] "
                         "[--cert-dir DIR] [--authfile FILE] [--creds USER[:PASS]] IMAGE "
                         "[DESTINATION]")
    from ...registry.pushing import push

    progress = progress_for(flags)
    options = registry_options(flags)
    try:
        with open_store(opts) as store:
            result = push(store, rest[0], rest[1] if len(rest) > 1 else None,
                          options=options, progress=progress)
    finally:
        options.close()
    if flags["digestfile"]:
        from ...output import output_file

        with output_file(str(flags["digestfile"])) as f:
            f.write(result.digest.encode())
    return 0


LOGIN = Command("[OPTIONS] [SERVER]", "Authenticate to a registry.", [
    Flag("-p,--password", "value", "Password or Personal Access Token (PAT)"),
    Flag("--password-stdin", help="Take the Password or Personal Access Token (PAT) from stdin"),
    Flag("-u,--username", "value", "Username"),
    _TLS_VERIFY, _CERT_DIR, _AUTHFILE,
])


def cmd_login(opts: Globals, args: list[str]) -> int:
    flags, rest = LOGIN.parse(args)
    if len(rest) > 1:
        raise UsageError("usage: sangja login [-u USER] [-p PASS | --password-stdin] "
                         "[--tls-verify=false] [--cert-dir DIR] [--authfile FILE] [REGISTRY]")
    from ...registry.auth import Credentials
    from ...registry.logins import login

    user, password = flags["username"], flags["password"]
    if flags["password_stdin"]:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not user:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
    if not user:
        if not sys.stdin.isatty():
            raise UsageError("no username given (-u USER)")
        sys.stderr.write("Username: ")
        sys.stderr.flush()
        user = sys.stdin.readline().strip()
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password given (-p, or --password-stdin)")
        import getpass

        password = getpass.getpass("Password: ")
    if not user or not password:
        raise UsageError("a username and a password are needed")
    options = registry_options(flags)
    login(rest[0] if rest else "docker.io", Credentials(user, password), options=options)
    print("Login Succeeded!")
    return 0


LOGOUT = Command("[OPTIONS] [SERVER]", "Log out from a registry.", [
    Flag("-a,--all", help="Log out from every registry"),
    _AUTHFILE,
])


def cmd_logout(opts: Globals, args: list[str]) -> int:
    flags, rest = LOGOUT.parse(args)
    if len(rest) > 1 or (flags["all"] and rest):
        raise UsageError("usage: sangja logout [--authfile FILE] [-a | REGISTRY]")
    from ...registry.logins import logout, registry_key
    from ...registry.options import Options

    options = Options(auth_file=flags["authfile"])
    if flags["all"]:
        logout(None, options=options)
        print("Removed login credentials for all registries")
        return 0
    registry = rest[0] if rest else "docker.io"
    if not logout(registry, options=options):
        raise UsageError(f"not logged into {registry_key(registry)}")
    print(f"Removed login credentials for {registry_key(registry)}")
    return 0


SEARCH = Command("[OPTIONS] TERM", "Search a registry for images", [
    Flag("--limit", "value", "Max number of search results", meta="int"),
    Flag("--format", "value", "Pretty-print search using a Go template, or json"),
    Flag("--no-trunc", help="Don't truncate output"),
    *_CONNECTION_FLAGS,
])


def cmd_search(opts: Globals, args: list[str]) -> int:
    flags, rest = SEARCH.parse(args)
    if len(rest) != 1:
        raise UsageError("usage: sangja search [--limit N] [--format json] [--no-trunc] "
                         "[--tls-verify=false] [--cert-dir DIR] [--authfile FILE] "
                         "[--creds USER[:PASS]] [REGISTRY/]TERM")
    limit = 25
    if flags["limit"] is not None:
        try:
            limit = int(str(flags["limit"]))
        except ValueError:
            limit = 0
        if limit < 1:
            raise UsageError(f"invalid --limit {flags['limit']!r}: a number of at least 1")
    fmt = flags["format"]
    if fmt not in (None, "json", "table"):
        raise UsageError(f"unsupported --format {fmt!r} (json, table)")
    from ...registry.searching import search

    options = registry_options(flags)
    try:
        results = search(rest[0], limit=limit, options=options)
    finally:
        options.close()
    if fmt == "json":
        import json

        print(json.dumps([{"Index": r.index, "Name": r.name, "Description": r.description,
                           "Stars": r.stars, "Official": "[OK]" if r.official else "",
                           "Automated": "[OK]" if r.automated else ""} for r in results],
                         indent=4))
        return 0
    from .common import table

    def desc(text: str) -> str:
        text = " ".join(text.split())
        if flags["no_trunc"] or len(text) <= 45:
            return text
        return text[:44] + "…"

    table(["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"],
          [[r.name, desc(r.description), str(r.stars), "[OK]" if r.official else "",
            "[OK]" if r.automated else ""] for r in results])
    return 0
