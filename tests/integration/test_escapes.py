"""Container-escape regression tests: attacks run from INSIDE a container, the host is
checked afterwards.

Each test re-enacts a known runc escape class:

* CVE-2019-5736: a container process reaches the runtime's own executable (here the host's
  Python interpreter) through /proc/PID/exe, map_files or fd of a runtime process that is
  joining the container (`exec`, or an init not yet exec'd), and overwrites it.
* CVE-2024-21626: a host fd leaked into the container process, or a process.cwd like
  /proc/self/fd/N that resolves through such an fd, gives the container a host directory.
* CVE-2021-30465: symlinks planted in the rootfs redirect mount targets, device nodes,
  masked or read-only paths onto the host.
* masked / read-only /proc and /sys, the default capability set and no_new_privs.

Every test was checked against runc 1.1.5 (SANGJA_TEST_RUNTIME=/usr/sbin/runc) and against
deliberately weakened copies of sangja (to see that each one can fail).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import (
    add_mounts,
    bind,
    host_mountinfo,
    new_id,
    sh,
    wait_until,
)

pytestmark = pytest.mark.root

# ".." enough times to climb from any directory to the root that the process can reach:
# inside a container that is the container's root; from a host directory it is the host's.
UP = "/".join([".."] * 40)
# Prints "CWD inside" when the current directory lies inside the process's root.
CWD_CHECK = (
    f'if [ "$(stat -c %d:%i {UP})" = "$(stat -c %d:%i /)" ]; then echo "CWD inside"; '
    'else echo "CWD outside $(readlink /proc/self/cwd)"; ls; fi'
)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _host_executables(runtime) -> dict[str, str]:
    """sha256 of the host files a CVE-2019-5736 attacker would overwrite: the runtime
    binary (runc), or the interpreter that runs it (sangja) and the test's own Python."""
    paths = {os.path.realpath(sys.executable), os.path.realpath(runtime.binary)}
    with open(runtime.binary, "rb") as f:
        head = f.read(256)
    if head.startswith(b"#!"):
        interp = head[2:].split(b"\n", 1)[0].split()[0].decode()
        paths.add(os.path.realpath(interp))
    return {p: _sha256(p) for p in sorted(paths)}


def _rootfs(bundle: Path) -> Path:
    return Path(bundle) / "rootfs"


def _namespaces(pid_path: str | None = None) -> list[dict]:
    pid = {"type": "pid", "path": pid_path} if pid_path else {"type": "pid"}
    return [pid, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]


def _fds_of(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------------------------
# 1. CVE-2019-5736: the runtime's executable through /proc/PID/exe, map_files, fd
# --------------------------------------------------------------------------------------------

ATTACKER_C = r"""
/* Scan /proc for processes that are not the container's own programs (a runtime process
 * joining the container, or an init that has not exec'd yet) and try to reach their
 * executable (open O_PATH / read / write, reopen via /proc/self/fd), map_files and fds.
 * Every success is logged as BAD; a runtime process seen is logged once as SEEN. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int logfd, bad_lines;
static struct stat self_st, bb_st, memfd_st;
static char seen[1 << 16];

static void note(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    if (strncmp(buf, "BAD", 3) == 0 && ++bad_lines > 200) return; /* enough evidence */
    if (write(logfd, buf, n) < 0) _exit(3);
}

static int ours(const struct stat *st) {
    return (st->st_dev == self_st.st_dev && st->st_ino == self_st.st_ino) ||
           (st->st_dev == bb_st.st_dev && st->st_ino == bb_st.st_ino);
}

static void cmdline(int pid, char *out, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    out[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, out, len - 1);
    close(fd);
    if (n < 0) n = 0;
    out[n] = 0;
    for (ssize_t i = 0; i < n; i++)
        if (out[i] == 0 || out[i] == '\n') out[i] = ' ';
}

/* After a successful access: was the process still a runtime process, or had it exec'd
 * the container's program meanwhile (which may then be inspected: it is the container's)? */
static int is_helper(int pid);

static int still_foreign(int pid) {
    char exe[64];
    struct stat st;
    if (is_helper(pid)) return 0; /* checked by attack_helper */
    snprintf(exe, sizeof exe, "/proc/%d/exe", pid);
    if (stat(exe, &st) == 0) return !ours(&st);
    return errno != ENOENT; /* EACCES: still non-dumpable; ENOENT: exited, cannot tell */
}

static int is_helper_fd(int fd);

static int foreign_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && !ours(&st) && !is_helper_fd(fd);
}

/* sangja's last exec goes through sangja-exec run from a sealed memfd: that process is
 * as reachable as the program it becomes, but its executable must stay unwritable (also
 * through an O_PATH fd kept until it is gone, the CVE's trick) and it must hold no fd
 * but the program's stdio. */
static int kept[64], nkept;
static char helper_seen[1 << 16];

static int is_helper(int pid) {
    char exe[64], target[256];
    snprintf(exe, sizeof exe, "/proc/%d/exe", pid);
    ssize_t n = readlink(exe, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return strncmp(target, "/memfd:sangja-exec", 18) == 0;
}

/* The process became the helper between our checks: its exe is checked by attack_helper. */
static int is_helper_fd(int fd) {
    char p[64], target[256];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return strncmp(target, "/memfd:sangja-exec", 18) == 0;
}

static void try_write(int fd, int pid, const char *how) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int w = open(p, O_WRONLY | O_CLOEXEC);
    if (w < 0) return;
    if (write(w, "X", 1) == 1 || ftruncate(w, 0) == 0)
        note("BAD helper-exe-written pid=%d via %s", pid, how);
    close(w);
}

static void attack_helper(int pid) {
    char exe[64], p[128], target[256];
    if (!helper_seen[pid & 0xffff]) {
        helper_seen[pid & 0xffff] = 1;
        note("HELPER pid=%d", pid);
    }
    snprintf(exe, sizeof exe, "/proc/%d/exe", pid);
    int fd = open(exe, O_PATH);
    if (fd >= 0) {
        try_write(fd, pid, "open");
        if (nkept < 64) kept[nkept++] = fd; else close(fd);
    }
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *dir = opendir(p);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) <= 2) continue;
        char q[400];
        snprintf(q, sizeof q, "%s/%s", p, e->d_name);
        ssize_t n = readlink(q, target, sizeof target - 1);
        if (n >= 0 && is_helper(pid)) {
            target[n] = 0;
            note("BAD helper-fd pid=%d %s -> %s", pid, e->d_name, target);
        }
    }
    closedir(dir);
}

static void attack(int pid) {
    char exe[64], p[128], cmd[160], target[512];
    struct stat st;
    if (is_helper(pid)) {
        attack_helper(pid);
        return;
    }
    snprintf(exe, sizeof exe, "/proc/%d/exe", pid);
    int r = stat(exe, &st);
    int stat_errno = errno;
    if (r == 0 && ours(&st)) return; /* the container's own program: not a target */
    if (r != 0 && stat_errno == ENOENT) return; /* gone or a zombie */
    if (r == 0 && st.st_dev == memfd_st.st_dev) {
        /* a memfd: the sealed helper, exec'd since is_helper looked (it may be running the
         * container's program by now, so its link no longer tells) */
        if (is_helper(pid)) attack_helper(pid);
        return;
    }
    cmdline(pid, cmd, sizeof cmd);
    if (r == 0)
        note("BAD exe-stat pid=%d ino=%lu cmd=%s", pid, (unsigned long)st.st_ino, cmd);
    else if (!seen[pid & 0xffff]) {
        seen[pid & 0xffff] = 1;
        note("SEEN pid=%d exe-errno=%d cmd=%s", pid, stat_errno, cmd);
    }
    int fd = open(exe, O_PATH | O_CLOEXEC);
    if (fd >= 0 && foreign_fd(fd)) {
        note("BAD exe-open-O_PATH pid=%d", pid);
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        int w = open(p, O_WRONLY | O_CLOEXEC);
        if (w >= 0 || errno == ETXTBSY) /* ETXTBSY: reached the file, only busy */
            note("BAD exe-reopen-for-write pid=%d errno=%d", pid, w >= 0 ? 0 : errno);
        if (w >= 0) close(w);
    }
    if (fd >= 0) close(fd);
    fd = open(exe, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && foreign_fd(fd)) note("BAD exe-open-read pid=%d", pid);
    if (fd >= 0) close(fd);
    fd = open(exe, O_WRONLY | O_CLOEXEC);
    int werr = errno;
    if ((fd >= 0 && foreign_fd(fd)) || (fd < 0 && werr == ETXTBSY && still_foreign(pid)))
        note("BAD exe-open-write pid=%d errno=%d", pid, fd >= 0 ? 0 : werr);
    if (fd >= 0) close(fd);
    const char *dirs[] = {"map_files", "fd"};
    for (int d = 0; d < 2; d++) {
        snprintf(p, sizeof p, "/proc/%d/%s", pid, dirs[d]);
        DIR *dir = opendir(p);
        if (!dir) continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.') continue;
            char q[400];
            snprintf(q, sizeof q, "%s/%s", p, e->d_name);
            ssize_t n = readlink(q, target, sizeof target - 1);
            if (n >= 0 && still_foreign(pid)) {
                target[n] = 0;
                note("BAD %s-readlink pid=%d %s -> %s", dirs[d], pid, e->d_name, target);
            }
            int f = open(q, O_PATH | O_CLOEXEC);
            if (f >= 0 && still_foreign(pid))
                note("BAD %s-open pid=%d %s", dirs[d], pid, e->d_name);
            if (f >= 0) close(f);
        }
        closedir(dir);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    logfd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0 || stat("/proc/self/exe", &self_st) || stat("/bin/busybox", &bb_st))
        return 2;
    int probe = (int)syscall(SYS_memfd_create, "probe", 1u /* MFD_CLOEXEC */);
    if (probe < 0 || fstat(probe, &memfd_st)) return 2; /* the memfds' file system */
    close(probe);
    int me = getpid();
    note("READY pid=%d", me);
    for (unsigned long scan = 1;; scan++) {
        DIR *proc = opendir("/proc");
        if (!proc) return 4;
        struct dirent *e;
        while ((e = readdir(proc))) {
            int pid = atoi(e->d_name);
            if (pid > 0 && pid != me) attack(pid);
        }
        closedir(proc);
        for (int i = 0; i < nkept; i++) try_write(kept[i], 0, "kept O_PATH fd");
        if (scan % 500 == 0) note("SCAN %lu", scan);
        sched_yield();
    }
}
"""


@pytest.fixture(scope="session")
def attacker_bin(tmp_path_factory):
    """A static binary (so it runs in the busybox rootfs) that attacks runtime processes."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler with a static libc to build the attacker")
    d = tmp_path_factory.mktemp("attacker")
    (d / "attacker.c").write_text(ATTACKER_C)
    r = subprocess.run([cc, "-static", "-O2", "-o", str(d / "attacker"), str(d / "attacker.c")],
                       check=False, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static attacker binary: {r.stderr[-500:]}")
    return d / "attacker"


def _log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _scans_after(log: Path, marker_index: int) -> bool:
    """True once the attacker finished a full /proc scan after line `marker_index`."""
    return any(line.startswith("SCAN") for line in _log_lines(log)[marker_index + 1:])


def _attacker_and_victim(runtime, make_bundle, host_dir, attacker_bin):
    """Container A running the /proc scanner (started, first scan done), and the bundle of
    a container B to be made in A's pid namespace, whose busybox is A's very inode (so
    that B's programs look like "the container's own" to the attacker). Returns
    (A's id, the attacker's log, B's bundle)."""
    out = host_dir("attack")
    bundle_a = make_bundle(add_mounts(bind(out, "/out")), args=["/bin/attacker", "/out/log"])
    shutil.copy(attacker_bin, _rootfs(bundle_a) / "bin" / "attacker")
    log = out / "log"
    a = new_id("atk")
    runtime.run("run", "-d", "--bundle", bundle_a, a, check=True)
    wait_until(lambda: _scans_after(log, 0), timeout=10, message="the attacker to start")
    pid_a = runtime.state(a)["pid"]
    bundle_b = make_bundle(args=["true"], linux={"namespaces": _namespaces(
        f"/proc/{pid_a}/ns/pid")})
    b_busybox = _rootfs(bundle_b) / "bin" / "busybox"
    b_busybox.unlink()
    os.link(_rootfs(bundle_a) / "bin" / "busybox", b_busybox)
    return a, log, bundle_b


def test_runtime_executable_unreachable_from_container(runtime, make_bundle, host_dir,
                                                       attacker_bin):
    """CVE-2019-5736: an attacker in container A scans /proc non-stop while (1) container B,
    created in A's pid namespace, waits with its init still run by the runtime (before
    execve), and (2) several `exec`s run in A. It must never open a runtime process's
    /proc/PID/exe (O_PATH, read, write, reopen via /proc/self/fd), map_files or fd."""
    before = _host_executables(runtime)
    a, log, bundle_b = _attacker_and_victim(runtime, make_bundle, host_dir, attacker_bin)
    # B's init sits in A's pid namespace, in the runtime's hands until `start`.
    b = new_id("vic")
    runtime.create(bundle_b, b)
    wait_until(lambda: any(line.startswith(("SEEN", "BAD")) for line in _log_lines(log)),
               timeout=10, message="the attacker to see B's not-yet-exec'd init")
    mark = len(_log_lines(log)) - 1
    wait_until(lambda: _scans_after(log, mark), timeout=10, message="a full scan")
    runtime.start(b)

    # exec: the runtime's process joins A's namespaces while the attacker scans.
    for i in range(8):
        user = ("--user", "65534:65534") if i % 2 else ()
        r = runtime.run("exec", *user, a, "sh", "-c", "echo exec-$$")
        assert r.returncode == 0 and r.stdout.startswith("exec-"), r
    mark = len(_log_lines(log)) - 1
    wait_until(lambda: _scans_after(log, mark), timeout=10, message="a full scan")

    lines = _log_lines(log)
    bad = [line for line in lines if line.startswith("BAD")]
    seen = [line for line in lines if line.startswith("SEEN")]
    assert not bad, "container reached a runtime process:\n" + "\n".join(bad[:40])
    assert seen, "the attacker never saw a runtime process (test did not exercise anything)"
    runtime.run("delete", "--force", a)
    assert _host_executables(runtime) == before, "a host executable changed"


@pytest.mark.sangja_only
def test_sealed_exec_helper_exposes_nothing(runtime, make_bundle, host_dir, attacker_bin):
    """The last exec of a container process goes through sangja-exec from a sealed memfd;
    that helper is dumpable like the program it becomes, so the attacker may see it. Held
    in that stage for a second (strace delays its execve of the program), for an `exec` and
    for a container started in the attacker's pid namespace: its executable must never be
    written (also through an O_PATH fd kept after it is gone) and it must hold no fd of the
    runtime's (nothing but the program's stdio)."""
    if not shutil.which("strace"):
        pytest.skip("needs strace to hold a process in the helper stage")
    before = _host_executables(runtime)
    a, log, bundle_b = _attacker_and_victim(runtime, make_bundle, host_dir, attacker_bin)
    # every execve waits 1.5 s (counted per process): so does the helper's exec of the program
    slow = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=execve",
            "-e", "inject=execve:delay_enter=1500000"]
    r = subprocess.run([*slow, *runtime.argv("exec", a, "sh", "-c", "echo exec-$$")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "exec-" in r.stdout, r
    b = new_id("vic")
    # created under strace, which then follows the init through `start` until it exits
    tracer = subprocess.Popen([*slow, *runtime.argv("create", "--bundle", bundle_b, b)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        runtime.wait_status(b, "created", timeout=30)
        runtime.start(b)
        tracer.wait(timeout=60)
    finally:
        tracer.kill()
        tracer.wait()
    mark = len(_log_lines(log)) - 1
    wait_until(lambda: _scans_after(log, mark), timeout=10, message="a full scan")
    lines = _log_lines(log)
    helpers = [line for line in lines if line.startswith("HELPER")]
    bad = [line for line in lines if line.startswith("BAD")]
    assert not bad, "the helper stage gave something away:\n" + "\n".join(bad[:40])
    assert len(helpers) >= 2, f"the attacker did not catch both helpers: {lines[-20:]}"
    runtime.run("delete", "--force", b)
    runtime.run("delete", "--force", a)
    assert _host_executables(runtime) == before, "a host executable changed"


# --------------------------------------------------------------------------------------------
# 2. CVE-2024-21626: leaked fds and a host working directory
# --------------------------------------------------------------------------------------------


def test_init_and_exec_hold_no_extra_fds(runtime, make_bundle):
    """The container's init and an exec'd process hold only fds 0, 1, 2 (seen from the
    host and from inside), and their cwd is the container's root."""
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    runtime.run("run", "-d", "--bundle", bundle, cid, check=True)
    init = runtime.state(cid)["pid"]
    pidfile = Path(bundle) / "exec.pid"
    runtime.run("exec", "-d", "--pid-file", pidfile, cid, "sleep", "1000", check=True)
    execd = int(pidfile.read_text())
    for pid, what in ((init, "init"), (execd, "exec'd process")):
        fds = _fds_of(pid)
        assert sorted(fds) == [0, 1, 2], f"{what} holds extra fds: {fds}"
        for fd in (0, 1, 2):
            assert not os.path.isdir(f"/proc/{pid}/fd/{fd}"), (what, fds)
        cwd, root = os.stat(f"/proc/{pid}/cwd"), os.stat(f"/proc/{pid}/root")
        assert (cwd.st_dev, cwd.st_ino) == (root.st_dev, root.st_ino), (
            f"{what} cwd {os.readlink(f'/proc/{pid}/cwd')} is not the container root "
            f"{os.readlink(f'/proc/{pid}/root')}")

    # From inside: `ls` run directly (no shell and its own plumbing) holds 0 1 2 and the
    # directory it lists; the cwd is the container's root.
    r = runtime.run("exec", cid, "ls", "-l", "/proc/self/fd")
    assert r.returncode == 0, r
    _assert_only_stdio(r.stdout)
    r = runtime.run("exec", cid, "sh", "-c", CWD_CHECK)
    assert r.returncode == 0 and r.stdout == "CWD inside\n", r


def _assert_only_stdio(ls_output: str) -> None:
    """`ls -l /proc/self/fd` output: fds 0 1 2, plus 3 = ls's handle on /proc/self/fd."""
    fds = {}
    for line in ls_output.splitlines():
        words = line.split()
        if len(words) >= 9 and words[0].startswith("l"):
            fds[int(words[8])] = " ".join(words[10:]) if "->" in words else ""
    assert sorted(fds) == [0, 1, 2, 3], ls_output
    assert fds[3] == "" or re.fullmatch(r"/proc/\d+/fd", fds[3]), ls_output


def test_init_fds_from_inside(runtime, make_bundle):
    r = runtime.run_container(make_bundle(args=["ls", "-l", "/proc/self/fd"]))
    assert r.returncode == 0, r
    _assert_only_stdio(r.stdout)
    r = runtime.run_container(make_bundle(args=sh(CWD_CHECK)))
    assert r.returncode == 0 and r.stdout == "CWD inside\n", r


def test_created_init_holds_no_host_files(runtime, make_bundle):
    """While created, the init is still the runtime's: besides stdio and the exec fifo it
    may hold pipes and sockets to the runtime, but no host file or directory (a container
    process started with --preserve-fds, a hook, or a cwd of /proc/self/fd/N could
    inherit or reach it). Checked on a few containers: a leak can depend on timing."""
    bundle = make_bundle(args=["true"])
    for _ in range(3):
        cid = new_id()
        runtime.create(bundle, cid)
        pid = runtime.state(cid)["pid"]
        fifo = str(runtime.root / cid)
        fds = _fds_of(pid)
        # sangja's init also holds the sealed sangja-exec (a memfd, no host file) to exec
        bad = {fd: target for fd, target in fds.items() if fd > 2 and (
            os.path.isdir(f"/proc/{pid}/fd/{fd}")
            or (target.startswith("/") and not target.startswith(fifo + "/")
                and not target.startswith("/memfd:sangja-exec")))}
        runtime.run("delete", "--force", cid, check=True)
        assert not bad, f"created init holds host files: {bad} (all fds: {fds})"


LEAKED_CWDS = [f"/proc/self/fd/{n}" for n in range(3, 16)] + [
    f"/proc/1/fd/{n}" for n in range(3, 10)] + [
    "/proc/self/cwd", "/proc/self/root", f"/proc/self/root/{UP}", "/proc/1/cwd/.."]


def test_init_cwd_through_leaked_fd_paths(runtime, make_bundle):
    """process.cwd naming a runtime fd (runc's CVE-2024-21626): `run` must fail or the
    process must end up inside the container."""
    bundle = make_bundle(args=sh(CWD_CHECK))
    config_path = Path(bundle) / "config.json"
    base = json.loads(config_path.read_text())
    results = {}
    for cwd in LEAKED_CWDS:
        base["process"]["cwd"] = cwd
        config_path.write_text(json.dumps(base))
        r = runtime.run_container(bundle, timeout=20)
        results[cwd] = (r.returncode, r.stdout.strip(), r.stderr.strip()[-200:])
    escaped = {k: v for k, v in results.items() if v[0] == 0 and v[1] != "CWD inside"}
    assert not escaped, f"init got a cwd outside the container: {escaped}"


def test_exec_cwd_through_leaked_fd_paths(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    runtime.run("run", "-d", "--bundle", bundle, cid, check=True)
    results = {}
    for cwd in LEAKED_CWDS:
        r = runtime.run("exec", "--cwd", cwd, cid, "sh", "-c", CWD_CHECK)
        results[cwd] = (r.returncode, r.stdout.strip(), r.stderr.strip()[-200:])
    escaped = {k: v for k, v in results.items() if v[0] == 0 and v[1] != "CWD inside"}
    assert not escaped, f"exec'd process got a cwd outside the container: {escaped}"
    # the same through a process.json
    proc = Path(bundle) / "process.json"
    for cwd in ("/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/5"):
        proc.write_text(json.dumps({"args": ["sh", "-c", CWD_CHECK], "cwd": cwd,
                                    "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}))
        r = runtime.run("exec", "--process", proc, cid)
        assert r.returncode != 0 or r.stdout.strip() == "CWD inside", (cwd, r)


# --------------------------------------------------------------------------------------------
# 3. CVE-2021-30465: symlinks in the rootfs aimed at the host
# --------------------------------------------------------------------------------------------


def _tree(path: Path) -> dict[str, tuple]:
    """Every entry under `path` with its type and content (for files)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(path))] = (stat.S_IFMT(st.st_mode), st.st_rdev, content)
    return out


def test_symlinks_in_rootfs_cannot_redirect_onto_host(runtime, make_bundle, host_dir, tmp_path):
    """Mount destinations, device nodes, masked and read-only paths that go through
    symlinks in the rootfs (absolute, ../-relative, a symlinked parent) aimed at host
    directories: everything must land inside the rootfs. A runtime that follows the
    links on the host would create directories, files and nodes in the victims."""
    victims = {name: host_dir(f"victim-{name}") for name in (
        "tmpfs-abs", "tmpfs-rel", "parent", "bind-abs", "bind-rel", "dev-abs", "dev-rel",
        "secret")}
    secret = victims["secret"] / "secret"
    secret.write_text("HOSTSECRET\n")
    bind_src_dir = host_dir("bindsrc")
    bind_src_file = tmp_path / "bindsrc-file"
    bind_src_file.write_text("bound\n")

    def up(path: Path) -> str:
        return "../" * 30 + str(path).lstrip("/")

    links = {  # rootfs entry -> where it points
        "tabs": str(victims["tmpfs-abs"]), "trel": up(victims["tmpfs-rel"]),
        "a": str(victims["parent"]),
        "babs": str(victims["bind-abs"]), "brel": up(victims["bind-rel"]),
        "dabs": str(victims["dev-abs"]), "drel": up(victims["dev-rel"]),
        "etc/mask-link": str(secret), "etc/ro-link": str(secret),
        "etc/mask-rel": up(secret),
    }

    def plant(config):
        config["linux"]["devices"] = [
            {"path": "/dabs/evil-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o666, "uid": 0, "gid": 0},
            {"path": "/drel/evil-zero", "type": "c", "major": 1, "minor": 5,
             "fileMode": 0o666, "uid": 0, "gid": 0},
        ]
        config["linux"]["maskedPaths"] += ["/etc/mask-link", "/etc/mask-rel"]
        config["linux"]["readonlyPaths"] += ["/etc/ro-link"]

    tmpfs = {"type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
    mounts = [
        dict(tmpfs, destination="/tabs/sub"),
        dict(tmpfs, destination="/trel/sub"),
        dict(tmpfs, destination="/a/b"),
        bind(bind_src_file, "/babs/bindfile"),
        bind(bind_src_dir, "/brel/binddir"),
    ]
    bundle = make_bundle(add_mounts(*mounts), plant, args=["sleep", "1000"])
    rootfs = _rootfs(bundle)
    for name, target in links.items():
        os.symlink(target, rootfs / name)
    before = {name: _tree(d) for name, d in victims.items()}

    cid = new_id()
    r = runtime.run("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r
    script = (
        "for d in /tabs/sub /trel/sub /a/b; do echo \"$d $(stat -f -c %T $d/)\"; "
        "touch $d/pwned; done; "
        "echo pwned > /babs/bindfile; touch /brel/binddir/pwned; "
        "cat /etc/mask-link /etc/mask-rel /etc/ro-link; echo pwned > /etc/ro-link; "
        "ls -l /dabs/ /drel/; true"
    )
    r = runtime.run("exec", cid, "sh", "-c", script)
    while_running = [line for line in host_mountinfo().splitlines()
                     if any(str(d) in line for d in victims.values())]
    runtime.run("delete", "--force", cid, check=True)

    after = {name: _tree(d) for name, d in victims.items()}
    changed = {k: (before[k], after[k]) for k in victims if before[k] != after[k]}
    assert not changed, f"host directories changed (before, after): {changed}"
    assert secret.read_text() == "HOSTSECRET\n"
    assert not while_running, f"mounts on the host: {while_running}"
    assert r.returncode == 0, r
    assert "HOSTSECRET" not in r.stdout + r.stderr, r
    # the mounts are in the container, where its own view of the symlinks leads
    for d in ("/tabs/sub", "/trel/sub", "/a/b"):
        assert f"{d} tmpfs" in r.stdout, r.stdout
    assert "evil-null" in r.stdout and "evil-zero" in r.stdout, r.stdout


# --------------------------------------------------------------------------------------------
# 4. masked and read-only /proc and /sys, read-only root
# --------------------------------------------------------------------------------------------

PROBE = r"""
t() { name=$1; shift
  if out=$("$@" 2>&1); then echo "$name=ok"; else echo "$name=denied $out"; fi; }
for f in /proc/sysrq-trigger /proc/sys/kernel/core_pattern /sys/kernel/uevent_helper \
         /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/profiling; do
  # open for writing only (O_TRUNC writes nothing): harmless even if it succeeded
  [ -e $f ] && t "open-w:$f" sh -c ": > $f"
done
t write:hostname sh -c 'echo sangja-evil > /proc/sys/kernel/hostname'
t write:drop_caches sh -c 'echo 1 > /proc/sys/vm/drop_caches'
t sysctl:hostname sysctl -w kernel.hostname=sangja-evil
t mkdir:cgroup mkdir /sys/fs/cgroup/sangja-evil
t remount-rw mount -o remount,rw /
t write-root touch /sangja-evil
echo "hostname=$(hostname)"
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
  [ -e $f ] && echo "read:$f=$(cat $f 2>/dev/null | wc -c)"
done
for d in /proc/acpi /proc/scsi /sys/firmware; do
  [ -e $d ] && echo "list:$d=$(ls -A $d 2>/dev/null | wc -l)"
done
"""


def test_masked_and_readonly_proc_sys(runtime, make_bundle):
    host_hostname = os.uname().nodename
    bundle = make_bundle(args=sh(PROBE))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r
    res = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    opened = [k for k in res if k.startswith("open-w:")]
    assert opened, r.stdout  # at least one of the files exists on this kernel
    allowed = [k for k, v in res.items()
               if (k.startswith(("open-w:", "write:", "sysctl:", "mkdir:"))
                   or k in ("remount-rw", "write-root")) and v == "ok"]
    assert not allowed, f"writes that should have failed succeeded: {allowed}\n{r.stdout}"
    assert res["hostname"] == "sangja-test", r.stdout
    assert os.uname().nodename == host_hostname
    assert "Operation not permitted" in res["remount-rw"] or "ermission" in res["remount-rw"], (
        res["remount-rw"])
    for key, value in res.items():
        if key.startswith(("read:", "list:")):
            host_path = key.split(":", 1)[1]
            assert value.strip() == "0", f"{host_path} not masked: {value}"
    # the masking is doing something: on the host these have content
    with open("/proc/timer_list") as f:
        assert f.read(1) and res.get("read:/proc/timer_list") == "0", r.stdout


# runc 1.1.5 is vulnerable here (CVE-2025-31133, fixed in runc 1.2.8 / 1.3.3): it binds the
# image's /dev/null symlink target (here /proc/sys/kernel/core_pattern) over masked paths.
@pytest.mark.sangja_only
def test_masking_not_redirected_by_dev_null_symlink(runtime, make_bundle):
    """Without a /dev mount the image's own /dev is used; its /dev/null is a symlink to a
    host-relevant procfs file. Masked paths must still show an empty /dev/null."""

    def no_dev_mounts(config):
        config["mounts"] = [m for m in config["mounts"]
                            if not m["destination"].startswith("/dev")]

    bundle = make_bundle(no_dev_mounts, args=sh(
        "ls -l /dev/null; echo keys=$(wc -c < /proc/keys) timer=$(wc -c < /proc/timer_list);"
        " grep -E ' /proc/(keys|timer_list) ' /proc/self/mountinfo"))
    os.symlink("/proc/sys/kernel/core_pattern", _rootfs(bundle) / "dev" / "null")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r
    assert "keys=0 timer=0" in r.stdout, r.stdout
    assert "core_pattern" not in r.stdout, r.stdout
    assert r.stdout.startswith("crw"), r.stdout


# --------------------------------------------------------------------------------------------
# 5. the init before execve: /proc/1 from a peer in its pid namespace and from `exec`
# --------------------------------------------------------------------------------------------

PEEK = r"""
for w in environ maps cmdline; do
  if cat /proc/1/$w >/dev/null 2>&1; then echo "read:$w"; else echo "denied:$w"; fi
done
for w in exe cwd root; do
  if readlink /proc/1/$w >/dev/null 2>&1; then echo "readlink:$w"; else echo "denied:$w"; fi
done
if ls /proc/1/root/ >/dev/null 2>&1; then
  [ -e /proc/1/root/MARKER-A ] && echo "root:container" || echo "root:NOT-CONTAINER"
fi
if ls /proc/1/cwd/ >/dev/null 2>&1; then
  [ -e /proc/1/cwd/MARKER-A ] && echo "cwd:container" || echo "cwd:NOT-CONTAINER"
fi
for f in /proc/1/fd/*; do
  n=${f##*/}
  readlink $f >/dev/null 2>&1 && echo "readlink:fd$n"
  [ -d $f ] && echo "DIR-FD:$n $(readlink $f)"
done
if echo x >> /proc/1/exe 2>/dev/null; then echo "WROTE-EXE"; fi
echo done
"""


def _created_target(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"], name=f"target-{uuid.uuid4().hex[:6]}")
    (_rootfs(bundle) / "MARKER-A").write_text("a\n")
    cid = new_id("tgt")
    runtime.create(bundle, cid)
    return cid, runtime.state(cid)["pid"]


def _peek_results(runtime, make_bundle) -> dict[str, list[str]]:
    """PEEK at the created (not started) container's init from a peer container that
    joined its pid namespace and from `exec`."""
    cid, pid = _created_target(runtime, make_bundle)
    peer = make_bundle(args=sh(PEEK),
                       linux={"namespaces": _namespaces(f"/proc/{pid}/ns/pid")})
    out = {}
    r = runtime.run_container(peer)
    assert r.returncode == 0 and "done" in r.stdout, r
    out["peer"] = r.stdout.split()
    r = runtime.run("exec", cid, "sh", "-c", PEEK)
    assert r.returncode == 0 and "done" in r.stdout, r
    out["exec"] = r.stdout.split()
    assert runtime.status(cid) == "created"
    return out


def test_created_init_gives_no_way_to_the_host(runtime, make_bundle):
    """Whatever /proc/1 of a created container lets a peer see, it leads nowhere on the
    host: root and cwd are the container's, no fd is a directory, exe cannot be written."""
    before = _host_executables(runtime)
    for who, words in _peek_results(runtime, make_bundle).items():
        text = " ".join(words)
        assert "NOT-CONTAINER" not in text, (who, text)
        assert "DIR-FD" not in text, (who, text)
        assert "WROTE-EXE" not in text, (who, text)
    assert _host_executables(runtime) == before


# runc 1.1.5 makes its init non-dumpable only while it joins namespaces given by path: a
# container that creates its own namespaces has a dumpable `runc init`, so its environ,
# maps and fds are readable (it guards its binary with a sealed memfd copy instead).
@pytest.mark.sangja_only
def test_created_init_is_not_dumpable(runtime, make_bundle):
    """sangja's init is a Python process (the host interpreter, host libraries, host fds)
    until execve: nothing in the container may read /proc/1's environ, maps, fds, exe."""
    for who, words in _peek_results(runtime, make_bundle).items():
        leaked = [w for w in words if w.startswith(("read:", "readlink:", "root:", "cwd:"))
                  and w != "read:cmdline"]
        assert not leaked, (who, words)
        for w in ("environ", "maps", "exe", "cwd", "root"):
            assert f"denied:{w}" in words, (who, words)


# --------------------------------------------------------------------------------------------
# 6. the default capability set and no_new_privs
# --------------------------------------------------------------------------------------------

CAPS_PROBE = r"""
t() { name=$1; shift
  if out=$("$@" 2>&1); then echo "$name=ok"; else echo "$name=denied $out"; fi; }
t mknod mknod /dev/sda b 8 0
t hostname hostname sangja-evil
t ip-link ip link add sangja0 type dummy
t chroot chroot / /bin/true
t mount-tmpfs mount -t tmpfs none /tmp
t mount-proc mount -t proc proc /tmp
t chown chown 65534 /dev/null
echo "hostname=$(hostname)"
grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status | tr -d '\t' | sed 's/:/=/'
"""


def test_default_capabilities_deny_privileged_operations(runtime, make_bundle):
    bundle = make_bundle(args=sh(CAPS_PROBE))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r
    res = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    allowed = [k for k in ("mknod", "hostname", "ip-link", "chroot", "mount-tmpfs",
                           "mount-proc", "chown") if res[k] == "ok"]
    assert not allowed, f"allowed without the capability: {allowed}\n{r.stdout}"
    assert res["hostname"] == "sangja-test"
    want = f"{sum(1 << b for b in (5, 10, 29)):016x}"  # KILL, NET_BIND_SERVICE, AUDIT_WRITE
    assert res["CapEff"] == res["CapBnd"] == res["CapPrm"] == want, r.stdout
    assert not os.path.exists(Path(bundle) / "rootfs" / "dev" / "sda")


def _suid_bundle(make_bundle, no_new_privs: bool):
    """A setuid-root busybox as /suid/id (busybox keeps privileges for `id` only when
    /etc/busybox.conf says so), run as nobody."""
    bundle = make_bundle(args=["/suid/id", "-u"],
                         process={"user": {"uid": 65534, "gid": 65534},
                                  "noNewPrivileges": no_new_privs})
    rootfs = _rootfs(bundle)
    shutil.copy(rootfs / "bin" / "busybox", rootfs / "bin" / "suid-busybox")
    os.chown(rootfs / "bin" / "suid-busybox", 0, 0)
    os.chmod(rootfs / "bin" / "suid-busybox", 0o4755)
    conf = rootfs / "etc" / "busybox.conf"
    conf.write_text("[SUID]\nid = sxx root.root\n")
    os.chmod(conf, 0o600)
    (rootfs / "suid").mkdir()
    os.symlink("/bin/suid-busybox", rootfs / "suid" / "id")
    return bundle


def test_no_new_privs_blocks_setuid(runtime, make_bundle):
    control = runtime.run_container(_suid_bundle(make_bundle, no_new_privs=False))
    if control.returncode != 0 or control.stdout.strip() != "0":
        pytest.skip(f"setuid-root busybox does not raise privileges here: {control}")
    r = runtime.run_container(_suid_bundle(make_bundle, no_new_privs=True))
    assert r.returncode == 0, r
    assert r.stdout.strip() == "65534", r.stdout
