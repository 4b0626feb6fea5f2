"""`sangja bootstrap debian`: a Debian base image built from Debian's own packages.

The root filesystem is made by ``mmdebstrap`` (faster: apt resolves and downloads in one go)
or, when it is missing, ``debootstrap``, in a scratch directory on the store's filesystem
(``<root>/.bootstrap-*``), then imported as a one-layer image configured like Docker's
official ``debian`` image (``Cmd ["bash"]``, the standard ``PATH``).

Both tools mount things inside the new root (``/proc``, ``/sys``, ``/dev`` entries) and do not
always unmount them when they fail or are killed. So the tool runs in its own mount *and* PID
namespace (``unshare --mount --propagation private --pid --fork --kill-child``) under
``setpriv --pdeathsig KILL``: its mounts are never visible outside, and when sangja dies
(even by SIGKILL) the tool, every process it started and with them the namespace and all its
mounts go away. The scratch directory is removed on every way out (SIGTERM and Ctrl-C
included); after a SIGKILL of sangja it is left for ``system check``/``prune`` (the gc lock,
held shared for the whole bootstrap, is released by the kernel).

Reproducible where the inputs allow: with ``SOURCE_DATE_EPOCH`` set it is passed to
mmdebstrap (which then removes its logs and caches), every mtime newer than it is clamped to
it and it is the image's creation time; host-specific files (``/etc/hostname``,
``/etc/resolv.conf``, which engines provide at run time), apt's package lists and caches and
the install logs are removed (as in Docker's official image: ``apt-get update`` first). The
same suite, mirror state and options then give the same image id.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sangja.image.store import ImageStore, StoreError

__all__ = ["DEFAULT_MIRROR", "DEFAULT_SUITE", "DEFAULT_VARIANT", "BootstrapError",
           "bootstrap_debian", "default_name"]

DEFAULT_SUITE = "bookworm"
DEFAULT_VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# mmdebstrap's variants; debootstrap knows minbase and buildd (and its default)
VARIANTS = ("minbase", "buildd", "essential", "apt", "required", "important", "standard")
DEBOOTSTRAP_VARIANTS = ("minbase", "buildd")
TIMEOUT = 1800  # seconds: a slow mirror, not a hang
TOOL_ENV = "SANGJA_BOOTSTRAP_TOOL"
# merged /usr the way debootstrap (and Docker's official image) does it; without it
# mmdebstrap satisfies init-system-helpers' dependency with usrmerge, which pulls in perl
MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"

_SUITE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?")
_MIRROR = re.compile(r"(https?|file)://[^\s'\"]+")
HOST_FILES = ("etc/hostname", "etc/resolv.conf")
CLEANUP_FILES = ("var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log",
                 "var/log/apt/history.log", "var/log/apt/term.log", "var/log/apt/eipp.log.xz",
                 "var/cache/ldconfig/aux-cache", "var/lib/dbus/machine-id")
CLEANUP_DIRS = ("var/lib/apt/lists", "var/cache/apt/archives")


class BootstrapError(StoreError):
    """The bootstrap cannot be done as asked (one line, exit 125)."""


def default_name(suite: str = DEFAULT_SUITE) -> str:
    return f"localhost/debian:{suite}"


def _check(suite: str, variant: str, include: list[str], mirror: str | None) -> None:
    if not _SUITE.fullmatch(suite):
        raise BootstrapError(f"invalid suite {suite!r} (a Debian codename such as bookworm)")
    if variant not in VARIANTS:
        raise BootstrapError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    for pkg in include:
        if not _PACKAGE.fullmatch(pkg):
            raise BootstrapError(f"invalid package name {pkg!r} in --include")
    if mirror is not None and not _MIRROR.fullmatch(mirror):
        raise BootstrapError(f"invalid mirror {mirror!r} (want an http://, https:// or "
                             "file:// URL)")


def find_tool() -> tuple[str, str]:
    """("mmdebstrap" | "debootstrap", path); BootstrapError when neither is installed.
    $SANGJA_BOOTSTRAP_TOOL=debootstrap (or mmdebstrap) insists on one."""
    wanted = os.environ.get(TOOL_ENV)
    if wanted and wanted not in ("mmdebstrap", "debootstrap"):
        raise BootstrapError(f"{TOOL_ENV}={wanted!r}: want mmdebstrap or debootstrap")
    for name in [wanted] if wanted else ("mmdebstrap", "debootstrap"):
        path = shutil.which(name) or next(
            (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)),
            None)
        if path:
            return name, path
    raise BootstrapError(f"{wanted} is not installed" if wanted else
                         "neither mmdebstrap nor debootstrap is installed "
                         "(apt-get install mmdebstrap)")


def _command(tool: str, exe: str, suite: str, variant: str, include: list[str],
             mirror: str | None, target: str) -> list[str]:
    if tool == "mmdebstrap":
        # apt retries a fetch that fails (a mirror's hiccup would end the whole bootstrap;
        # the merged-usr hook's `apt-get update --error-on=any` reads the same options)
        cmd = [exe, "--mode=root", "--format=directory", f"--variant={variant}",
               '--aptopt=Acquire::Retries "3"']
        if os.path.isdir(MERGED_USR_HOOK):  # usr-is-merged, not usrmerge (and its perl)
            cmd.append(f"--hook-dir={MERGED_USR_HOOK}")
        if include:
            cmd.append(f"--include={','.join(include)}")
        cmd += ["--", suite, target]
        if mirror:
            cmd.append(mirror)
        return cmd
    if variant not in DEBOOTSTRAP_VARIANTS:
        raise BootstrapError(f"variant {variant!r} needs mmdebstrap (debootstrap knows "
                             f"{', '.join(DEBOOTSTRAP_VARIANTS)})")
    cmd = [exe, f"--variant={variant}"]
    if include:
        cmd.append(f"--include={','.join(include)}")
    return [*cmd, suite, target, mirror or DEFAULT_MIRROR]  # (debootstrap knows no "--")


def _isolated(cmd: list[str]) -> list[str]:
    """cmd in private mount and PID namespaces that die with this process."""
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, "--pdeathsig", "KILL", "--", unshare, "--mount", "--propagation",
            "private", "--pid", "--fork", "--kill-child=KILL", "--", *cmd]


def _reason(log: str, tool: str, rc: int) -> str:
    """The line of the tool's output that says why it failed."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in lines:  # apt's and mmdebstrap's first error is the cause, later ones follow
        if ln.startswith("E: ") and "failed to run" not in ln:
            return ln[3:].strip()
    for ln in lines:
        if ln.startswith(("E: ", "W: Failure", "E:")):
            return ln.removeprefix("E:").strip()
    return lines[-1] if lines else f"{tool} exited with status {rc}"


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below path in this mount namespace, deepest first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) < 5:
                continue
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_scratch(path: str) -> None:
    """rm -rf, but never through a mount point (there should be none: the tool's mounts
    lived in its own namespace)."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)
    if _mounts_under(path):
        raise BootstrapError(f"{path} still has mounts inside; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def _tidy(rootfs: str) -> None:
    """What an image should not carry: host files, package lists and caches, install logs
    (mmdebstrap removes most of these itself; debootstrap does not)."""
    def remove(rel: str) -> None:
        p = os.path.join(rootfs, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)

    def empty(rel: str, keep=("lock", "partial")) -> None:
        d = os.path.join(rootfs, rel)
        if os.path.isdir(d) and not os.path.islink(d):
            for name in os.listdir(d):
                if name in keep:
                    if os.path.isdir(os.path.join(d, name)):
                        empty(os.path.join(rel, name), keep=())
                    continue
                remove(os.path.join(rel, name))

    for rel in HOST_FILES + CLEANUP_FILES:
        remove(rel)
    for rel in CLEANUP_DIRS:
        empty(rel)
    cache = os.path.join(rootfs, "var/cache/apt")
    if os.path.isdir(cache):
        for name in os.listdir(cache):
            if name.endswith(".bin"):
                remove(os.path.join("var/cache/apt", name))


def _clamp_mtimes(root: str, epoch: int) -> None:
    """Clamp every mtime (and atime) newer than epoch to epoch, never following links."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ([""] if dirpath == root else []):
            full = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(full)
            if st.st_mtime > epoch:
                os.utime(full, (epoch, epoch), follow_symlinks=False)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt here, so clean-up code runs (main thread only)."""
    try:
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(cmd: list[str], log_path: str, tool: str) -> None:
    # The tool's own temporary files (mmdebstrap's gpg home, for one, which it leaves behind
    # when its namespace is torn down) go in the scratch directory, which is always removed.
    tmp = os.path.join(os.path.dirname(log_path), "tmp")
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    with open(log_path, "w+b") as log:
        env = dict(os.environ, LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive", TMPDIR=tmp)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:  # interrupted or timed out: the namespace dies with it
                proc.kill()
                proc.wait()
        log.seek(0)
        text = log.read().decode(errors="replace")
    if rc is None:
        raise BootstrapError(f"{tool} did not finish within {TIMEOUT} s")
    if rc != 0:
        raise BootstrapError(f"{tool} failed: {_reason(text, tool, rc)}")


def bootstrap_debian(
    store: ImageStore,
    name: str | None = None,
    *,
    suite: str = DEFAULT_SUITE,
    variant: str = DEFAULT_VARIANT,
    include: list[str] | tuple[str, ...] = (),
    mirror: str | None = None,
) -> str:
    """Build a Debian root filesystem, import it, tag it (default ``localhost/debian:SUITE``);
    return the image id. BootstrapError (store unchanged, nothing left behind) on failure."""
    include = [p for p in include if p]
    _check(suite, variant, include, mirror)
    canonical = store.canonical(name or default_name(suite))  # bad names fail before work
    if os.geteuid() != 0:
        raise BootstrapError("bootstrap debian needs root (the tools chroot and mount)")
    tool, exe = find_tool()
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH")
    epoch = None
    if epoch_text:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise BootstrapError(f"SOURCE_DATE_EPOCH={epoch_text!r} is not an integer") from None
    created_by = " ".join(["sangja bootstrap debian", f"--suite {suite}", f"--variant {variant}",
                           *([f"--include {','.join(include)}"] if include else []),
                           *([f"--mirror {mirror}"] if mirror else [])])
    with store.lock.shared(), _sigterm_as_interrupt():  # gc waits for the scratch dir
        scratch = tempfile.mkdtemp(prefix=".bootstrap-", dir=store.root)
        try:
            rootfs = os.path.join(scratch, "rootfs")
            cmd = _command(tool, exe, suite, variant, include, mirror, rootfs)
            _run(_isolated(cmd), os.path.join(scratch, "log"), tool)
            _tidy(rootfs)
            if epoch is not None:
                _clamp_mtimes(rootfs, epoch)
            image_id = store.import_rootfs(rootfs, config_overrides={"Cmd": ["bash"]},
                                           created_by=created_by)
            store.tag(canonical, image_id)
        finally:
            _remove_scratch(scratch)
    return image_id
