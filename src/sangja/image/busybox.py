"""Build a minimal root filesystem from the host's static busybox (Debian's busybox-static).

This is the base that needs no registry: about 2 MB, one static binary plus applet links.
The tree is reproducible: modes are set explicitly (not left to the umask) and every mtime
is clamped to $SOURCE_DATE_EPOCH, else to the busybox binary's mtime, so bootstrapping on
another day (same busybox) gives the same layer and image id.
"""

from __future__ import annotations

import os
import shutil
import subprocess

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Literal

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:
nogroup:x:65534:
"""


class BusyboxNotFound(RuntimeError):
    pass


def find_static_busybox() -> str:
    """Return the path of a statically linked busybox, or raise BusyboxNotFound."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and _is_static(path):
            return path
    raise BusyboxNotFound(
        "no static busybox found (install Debian's busybox-static: apt-get install busybox-static)"
    )


def _is_static(path: str) -> bool:
    """An ELF file without a PT_INTERP program header needs no dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return False
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize : i * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def source_date_epoch(default: float) -> int:
    """$SOURCE_DATE_EPOCH when set (reproducible-builds.org), else `default`."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isdigit():
        return int(value)
    return int(default)


def clamp_mtimes(tree: str, mtime: int) -> None:
    """Set the mtime (and atime) of everything under tree, tree included, to `mtime`;
    symlinks themselves, never their targets. Children first: a directory's mtime changes
    when its entries do."""
    for dirpath, dirs, files in os.walk(tree, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(tree, (mtime, mtime), follow_symlinks=False)


def build_busybox_rootfs(dest: str, busybox: str | None = None) -> str:
    """Populate `dest` with busybox, its applet symlinks and a minimal /etc. Idempotent."""
    busybox = busybox or find_static_busybox()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
              "root", "home", "var", "run"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    for d in ("", "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev",
              "root", "home", "var", "run"):
        os.chmod(os.path.join(dest, d), 0o700 if d == "root" else 0o755)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    target = os.path.join(dest, "bin", "busybox")
    if not os.path.exists(target):
        shutil.copy2(busybox, target)
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = os.path.join(dest, applet)
        if applet == "bin/busybox" or os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        path = os.path.join(dest, "etc", name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
        os.chmod(path, 0o644)
    clamp_mtimes(dest, source_date_epoch(os.stat(busybox).st_mtime))
    return dest
