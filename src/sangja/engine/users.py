"""`--user` and `--group-add` resolved against the container's own /etc/passwd and
/etc/group, the way Docker does it (its runc user library's rules):

- "" (no --user, no image USER): uid 0; gid, home and supplementary groups from uid 0's
  passwd entry when there is one, else gid 0.
- "NAME" or "UID": a name must have a passwd entry ("unable to find user NAME: no
  matching entries in passwd file"); a number is a uid with or without one. The primary
  gid comes from the entry (0 without one); the supplementary groups are the /etc/group
  entries that list the user's name.
- "USER:GROUP": GROUP (name, or number with or without an entry) replaces the primary gid,
  and then no supplementary groups are looked up.
- --group-add: group names (must exist) or numbers, added after them.

The files are read inside the root file system with openat2(RESOLVE_IN_ROOT): a symlink
such as /etc/passwd -> /etc/passwd (absolute) or ../../../../etc/passwd resolves inside
the rootfs, never to the host's file. FIFOs and devices are refused (an image must not be
able to make `sangja create` hang or read a host device).
"""

from __future__ import annotations

import errno
import os

from sangja.records import dataclass, field

from ..errors import SangjaError

MAX_ID = (1 << 31) - 1
_MAX_FILE = 64 << 20  # a passwd or group file larger than this is not read


class UserError(SangjaError):
    """The user or a group cannot be resolved: Docker's exit code 125."""

    exit_code = 125
    engine_exit_code = 125


@dataclass
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str | None = None  # the passwd entry's name, if one matched


@dataclass
class _Entry:
    name: str
    uid: int  # or gid, for a group entry
    gid: int = 0
    home: str = "/"
    members: tuple[str, ...] = ()


def read_root_file(rootfs: str, path: str) -> bytes | None:
    """A regular file of the container, resolved as if `rootfs` were "/"; None when it
    does not exist (or cannot exist: a dangling or looping symlink, a missing parent)."""
    from ..linux.paths import NotRegularFile, open_in_root, reopen_regular

    try:
        rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"root file system {rootfs}: {e.strerror}") from None
    try:
        try:
            pathfd = open_in_root(rootfd, path, os.O_PATH)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise UserError(f"cannot read {path} of the container: {e.strerror}") from None
    finally:
        os.close(rootfd)
    try:
        # a FIFO or device node there is never opened (opening one blocks or acts)
        fd = reopen_regular(pathfd)
    except NotRegularFile:
        raise UserError(f"{path} of the container is not a regular file") from None
    except OSError as e:
        raise UserError(f"cannot read {path} of the container: {e.strerror}") from None
    finally:
        os.close(pathfd)
    try:
        st = os.fstat(fd)
        if st.st_size > _MAX_FILE:
            raise UserError(f"{path} of the container is too large ({st.st_size} bytes)")
        chunks = []
        left = _MAX_FILE + 1  # a file growing while we read stops here, not at the disk's end
        while left > 0:
            b = os.read(fd, min(1 << 16, left))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        if left <= 0:
            raise UserError(f"{path} of the container is too large")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _id(text: str) -> int | None:
    if not text.isascii() or not text.isdigit():
        return None
    n = int(text)
    return n if n <= MAX_ID else None


def _records(data: bytes | None, min_fields: int):
    """The colon-separated records of /etc/passwd or /etc/group with at least `min_fields`
    fields, comments and blank lines skipped."""
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            f = line.split(":")
            if len(f) >= min_fields:
                yield f


def parse_passwd(data: bytes | None) -> list[_Entry]:
    out = []
    for f in _records(data, 4):
        uid, gid = _id(f[2]), _id(f[3])
        if uid is None or gid is None:
            continue  # a malformed line must not become uid 0
        out.append(_Entry(f[0], uid, gid, f[5] if len(f) > 5 and f[5] else "/"))
    return out


def parse_group(data: bytes | None) -> list[_Entry]:
    out = []
    for f in _records(data, 3):
        gid = _id(f[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in f[3].split(",") if m.strip()) if len(f) > 3 else ()
        out.append(_Entry(f[0], gid, members=members))
    return out


def _numeric(text: str, what: str) -> int | None:
    """A decimal id, range-checked; None when `text` is not a number at all."""
    if not text.isascii() or not text.isdigit():
        return None
    n = int(text)
    if n > MAX_ID:
        raise UserError(f"{what} {text}: uids and gids must be in range 0-{MAX_ID}")
    return n


def resolve(rootfs: str, spec: str | None, group_add: list[str] | tuple[str, ...] = ()
            ) -> ExecUser:
    """The uid, gid, additional gids and home of `spec` ("name[:group]" / "uid[:gid]")."""
    spec = spec or ""
    user_arg, _, group_arg = spec.partition(":")
    uid_num = _numeric(user_arg, "user") if user_arg else None
    passwd = parse_passwd(read_root_file(rootfs, "/etc/passwd"))

    if user_arg == "":
        match = next((u for u in passwd if u.uid == 0), None)
    elif uid_num is not None:
        match = next((u for u in passwd if u.uid == uid_num), None)
    else:
        match = next((u for u in passwd if u.name == user_arg), None)
        if match is None:
            raise UserError(f"unable to find user {user_arg}: no matching entries in "
                            "passwd file")
    user = ExecUser(uid=match.uid if match else (uid_num or 0),
                    gid=match.gid if match else 0,
                    home=match.home if match else "/",
                    name=match.name if match else None)

    groups: list[_Entry] = []  # read only when a group is asked for
    sgids: list[int] = []
    if group_arg or user.name is not None or group_add:
        groups = parse_group(read_root_file(rootfs, "/etc/group"))
    if group_arg:
        gid_num = _numeric(group_arg, "group")
        g = next((g for g in groups if g.name == group_arg or
                  (gid_num is not None and g.uid == gid_num)), None)
        if g is not None:
            user.gid = g.uid
        elif gid_num is not None:
            user.gid = gid_num
        else:
            raise UserError(f"unable to find group {group_arg}: no matching entries in "
                            "group file")
    elif user.name is not None:
        sgids = [g.uid for g in groups if user.name in g.members]

    added: list[int] = []
    for name in group_add:
        num = _numeric(name, "group")
        g = next((g for g in groups if g.name == name or
                  (num is not None and g.uid == num)), None)
        if g is not None:
            added.append(g.uid)
        elif num is not None:
            added.append(num)
        else:
            raise UserError(f"unable to find group {name}: no matching entries in group file")

    # The primary gid comes first: setgroups() must not leave it out (CVE-2022-36109).
    seen: set[int] = set()
    for gid in [user.gid, *sgids, *added]:
        if gid not in seen:
            seen.add(gid)
            user.additional_gids.append(gid)
    return user
