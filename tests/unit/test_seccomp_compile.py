"""Unit tests for sangja.linux.seccomp: validation, compilation of a Docker/podman-shaped
profile, and filters loaded for real in forked children (no root needed: the children set
no_new_privs first; the chroot test needs root)."""

from __future__ import annotations

import copy
import ctypes
import errno
import fcntl
import json
import os
import resource
import signal
import socket
import struct

import pytest

from sangja.errors import ConfigError
from sangja.linux import seccomp

try:
    seccomp._libseccomp()
except ConfigError as e:  # pragma: no cover - libseccomp2 is a runtime dependency
    pytest.skip(str(e), allow_module_level=True)

PR_SET_NO_NEW_PRIVS = 38

# The shape of Docker's / podman's default profile (abridged): default ERRNO(EPERM), three
# x86 arches, one long allow list with names some arches or libseccomp versions lack,
# argument rules for personality and clone, clone3 answered with ENOSYS.
ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
arch_prctl modify_ldt arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint
cacheflush set_tls s390_pci_mmio_read s390_pci_mmio_write riscv_flush_icache
sangja_no_such_syscall another_future_syscall
""".split()  # noqa: SIM905 - a word list reads better

DOCKER_LIKE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
        *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
           "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
          for v in (0, 8, 131072, 131080, 4294967295)),
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["bpf", "perf_event_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["sangja_only_unknown_names", "neither_is_this"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        {"names": ["kcmp", "ptrace"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"},
                  {"index": 0, "value": 100000, "op": "SCMP_CMP_LT"}]},  # one index twice
    ],
}


# --------------------------------------------------------------------------------------------
# check(): bad input names the field
# --------------------------------------------------------------------------------------------

def _base(**kw):
    cfg = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    cfg.update(kw)
    return cfg


def _sc(**kw):
    entry = {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
    entry.update(kw)
    return _base(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_LOG"}] * 3 + [entry])


BAD = [
    ("not a dict", [], "linux.seccomp must be an object"),
    ("no default", {"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.defaultAction is required"),
    ("default type", _base(defaultAction=3), "linux.seccomp.defaultAction must be a string"),
    ("default unknown", _base(defaultAction="SCMP_ACT_FOO"),
     "linux.seccomp.defaultAction 'SCMP_ACT_FOO' is not a seccomp action"),
    ("default notify", _base(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/x"),
     "linux.seccomp.defaultAction SCMP_ACT_NOTIFY cannot be the default action"),
    ("default errno on allow", _base(defaultErrnoRet=1),
     "linux.seccomp.defaultErrnoRet is set but SCMP_ACT_ALLOW returns no errno"),
    ("default errno negative", _base(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=-1),
     "linux.seccomp.defaultErrnoRet -1 is not an integer"),
    ("default errno bool", _base(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=True),
     "linux.seccomp.defaultErrnoRet True is not an integer"),
    ("arches type", _base(architectures="SCMP_ARCH_X86"),
     "linux.seccomp.architectures must be an array"),
    ("arch prefix", _base(architectures=["SCMP_ARCH_X86_64", "x86"]),
     "linux.seccomp.architectures[1] 'x86' is not a seccomp architecture"),
    ("arch unknown", _base(architectures=["SCMP_ARCH_VAX"]),
     "linux.seccomp.architectures[0] 'SCMP_ARCH_VAX' is not an architecture libseccomp knows"),
    ("arch byte order", _base(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_S390X"]
                              if os.uname().machine in ("x86_64", "aarch64") else 0),
     "linux.seccomp.architectures[1] SCMP_ARCH_S390X cannot share a filter"),
    ("flag unknown", _base(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FOO"]),
     "linux.seccomp.flags[1] 'SECCOMP_FILTER_FLAG_FOO' is not a seccomp filter flag"),
    ("listener type", _base(listenerPath=5), "linux.seccomp.listenerPath must be a string"),
    ("metadata alone", _base(listenerMetadata="m"),
     "linux.seccomp.listenerMetadata is set but listenerPath is not"),
    ("syscalls type", _base(syscalls={}), "linux.seccomp.syscalls must be an array"),
    ("entry type", _base(syscalls=["mkdir"]), "linux.seccomp.syscalls[0] must be an object"),
    ("names empty", _sc(names=[]), "linux.seccomp.syscalls[3].names must list at least one"),
    ("names missing", _base(syscalls=[{"action": "SCMP_ACT_ERRNO"}]),
     "linux.seccomp.syscalls[0].names must list at least one"),
    ("name empty", _sc(names=["mkdir", ""]), "linux.seccomp.syscalls[3].names[1] '' is not"),
    ("name type", _sc(names=[7]), "linux.seccomp.syscalls[3].names[0] 7 is not a syscall name"),
    ("action missing", _base(syscalls=[{"names": ["mkdir"]}]),
     "linux.seccomp.syscalls[0].action is required"),
    ("action unknown", _sc(action="SCMP_ACT_FOO"),
     "linux.seccomp.syscalls[3].action 'SCMP_ACT_FOO' is not a seccomp action"),
    ("errnoRet on kill", _sc(action="SCMP_ACT_KILL", errnoRet=1),
     "linux.seccomp.syscalls[3].errnoRet is set but SCMP_ACT_KILL returns no errno"),
    ("errnoRet too big", _sc(errnoRet=70000), "linux.seccomp.syscalls[3].errnoRet 70000"),
    ("notify without listener", _sc(action="SCMP_ACT_NOTIFY"),
     "linux.seccomp.syscalls[3].action SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
    ("notify on write", dict(_sc(action="SCMP_ACT_NOTIFY", names=["write"]), listenerPath="/x"),
     "linux.seccomp.syscalls[3].action SCMP_ACT_NOTIFY cannot be used for write"),
    ("args type", _sc(args={"index": 0}), "linux.seccomp.syscalls[3].args must be an array"),
    ("arg type", _sc(args=[1]), "linux.seccomp.syscalls[3].args[0] must be an object"),
    ("arg no op", _sc(args=[{"index": 0, "value": 1}]),
     "linux.seccomp.syscalls[3].args[0].op is required"),
    ("arg no value", _sc(args=[{"index": 0, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[3].args[0].value is required"),
    ("arg index", _sc(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[3].args[0].index 6 is not an integer between 0 and 5"),
    ("arg value", _sc(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[3].args[0].value"),
    ("arg value str", _sc(args=[{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[3].args[0].value '1' is not an integer"),
    ("arg valueTwo", _sc(args=[{"index": 0, "value": 1, "valueTwo": -2, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[3].args[0].valueTwo -2"),
    ("arg op", _sc(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_ISH"}]),
     "linux.seccomp.syscalls[3].args[0].op 'SCMP_CMP_ISH' is not a seccomp comparison"),
]


@pytest.mark.parametrize("cfg,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_rejects(cfg, message):
    with pytest.raises(ConfigError) as info:
        seccomp.check(cfg)
    assert message in str(info.value)


@pytest.mark.parametrize("cfg,on", [
    (None, False), ({}, False), ({"defaultAction": "", "syscalls": []}, False),
    ({"architectures": ["SCMP_ARCH_X86_64"]}, False),  # runc: no action, no syscalls = off
    ({"defaultAction": "SCMP_ACT_ALLOW"}, True),
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, True),
    ([], True),  # wrong type: validated (and refused) rather than ignored
])
def test_enabled(cfg, on):
    assert seccomp.enabled(cfg) is on
    if not on:
        seccomp.check(cfg)  # accepted: nothing to apply


def test_wait_killable_recv_needs_newer_libseccomp_or_works():
    cfg = _base(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    try:
        seccomp.check(cfg)
    except ConfigError as e:  # libseccomp < 2.6 has no SCMP_FLTATR_CTL_WAITKILL
        assert "linux.seccomp.flags[0]" in str(e) and "libseccomp >= 2.6" in str(e)


@pytest.mark.parametrize("cfg", [
    {"defaultAction": "SCMP_ACT_ALLOW"},
    {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": None, "architectures": None},
    _base(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
    _base(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
                         "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64"]),
    # a rule whose action is the default action is skipped (libseccomp would refuse it)
    _base(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]),
    {"defaultAction": "SCMP_ACT_ERRNO",
     "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
    # entries whose names are all unknown
    _base(syscalls=[{"names": ["no_such_call_1", "no_such_call_2"], "action": "SCMP_ACT_KILL"}]),
    _base(listenerPath="/run/agent.sock", listenerMetadata="m",
          syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]),
    _base(listenerPath="/unused/without/notify"),
    _base(syscalls=[{"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 3},
                    {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
                    {"names": ["gettid"], "action": "SCMP_ACT_KILL_THREAD"},
                    {"names": ["getuid"], "action": "SCMP_ACT_LOG"}]),
])
def test_check_accepts(cfg):
    seccomp.check(cfg)


def test_compile_docker_like_profile_twice():
    before = copy.deepcopy(DOCKER_LIKE)
    for _ in range(2):
        f = seccomp.compile(DOCKER_LIKE)
        assert f.notify is False and f.listener_path is None
        f.release()
        f.release()  # idempotent
    assert DOCKER_LIKE == before  # the config is not modified
    with seccomp.compile(DOCKER_LIKE) as f:
        assert not f.loaded


def test_released_filter_cannot_load():
    f = seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW"})
    f.release()
    with pytest.raises(ValueError):
        f.load()


# --------------------------------------------------------------------------------------------
# the filters for real, in forked children
# --------------------------------------------------------------------------------------------

def _nnp() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def _in_child(body):
    """Fork; the child runs body(wfd) with no_new_privs set and a 20 s alarm, and exits 0
    (1 and the error text on the pipe if body raised). Returns (pid, rfd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            signal.alarm(20)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS dumps core otherwise
            _nnp()
            body(w)
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(w, f"ERROR {type(e).__name__}: {e}".encode())
            except OSError:
                pass
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def _finish(pid, r):
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, data.decode()


def test_errno_rule_blocks_mkdir(tmp_path):
    cfg = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.ENOSYS}]}

    def body(w):
        f = seccomp.compile(cfg)
        assert f.load() is None
        f.release()
        try:
            os.mkdir(tmp_path / "blocked")
            os.write(w, b"0")
        except OSError as e:
            os.write(w, str(e.errno).encode())

    status, out = _finish(*_in_child(body))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    assert out == "38"
    assert not (tmp_path / "blocked").exists()
    os.mkdir(tmp_path / "allowed")  # the parent is not filtered


def test_docker_like_profile_runs_a_program(tmp_path):
    """Default EPERM with the allow list: the child still works; clone3 gets ENOSYS."""
    def body(w):
        seccomp.compile(DOCKER_LIKE).load()
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.syscall(435, 0, 0)  # clone3(NULL, 0)
        err = ctypes.get_errno()
        os.mkdir(tmp_path / "made")
        os.write(w, f"{rc} {err} {os.getpid() > 0}".encode())

    status, out = _finish(*_in_child(body))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    assert out == f"-1 {errno.ENOSYS} True"
    assert (tmp_path / "made").is_dir()


def test_kill_process_dies_with_sigsys():
    cfg = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}

    def body(w):
        seccomp.compile(cfg).load()
        os.write(w, b"loaded")
        os.getppid()
        os.write(w, b" survived")

    status, out = _finish(*_in_child(body))
    assert out == "loaded"
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_masked_eq_and_repeated_index(tmp_path):
    """fchmodat with the setuid bit (MASKED_EQ on arg2) gets EPERM, plain modes do not;
    two conditions on one argument become two rules (either one matches)."""
    cfg = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [
               {"names": [n], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 2 if n == "fchmodat" else 1, "value": 0o4000,
                          "valueTwo": 0o4000, "op": "SCMP_CMP_MASKED_EQ"}]}
               for n in ("fchmodat", "chmod")] + [
               {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                "args": [{"index": 0, "value": 0o11, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 0o22, "op": "SCMP_CMP_EQ"}]}]}
    f = tmp_path / "f"
    f.write_text("")

    def body(w):
        seccomp.compile(cfg).load()
        out = []
        for mode in (0o644, 0o4755, 0o755):
            try:
                os.chmod(f, mode)
                out.append("ok")
            except OSError as e:
                out.append(errno.errorcode[e.errno])
        libc = ctypes.CDLL(None, use_errno=True)
        for mask in (0o11, 0o22, 0o33):
            out.append(str(libc.syscall(95, mask)))  # x86_64 umask, raw
        os.write(w, " ".join(out).encode())

    if os.uname().machine != "x86_64":
        pytest.skip("raw umask syscall number is x86_64's")
    status, out = _finish(*_in_child(body))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    first, second, third, *masks = out.split()
    assert (first, second, third) == ("ok", "EPERM", "ok")
    # umask(0o11) and umask(0o22) fail with EIO (-1); umask(0o33) works (returns old mask)
    assert masks[:2] == ["-1", "-1"] and masks[2] != "-1"


# --------------------------------------------------------------------------------------------
# SCMP_ACT_NOTIFY
# --------------------------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes


def _answer(notify_fd: int, value: int) -> int:
    """Receive one notification and make the syscall return `value`; return its number."""
    req = bytearray(80)
    fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
    notif_id, _pid, _flags, nr = struct.unpack_from("=QIIi", req)
    resp = bytearray(struct.pack("=QqiI", notif_id, value, 0, 0))
    fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
    return nr


NOTIFY_CFG = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
              "listenerMetadata": "MKNOD=/dev/null",
              "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
STATE = {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 4711,
         "bundle": "/b", "annotations": {"k": "v"}}


def _notify_child(agent_side: socket.socket, chroot_to=None):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def body(w):
        ours.close()
        f = seccomp.compile(NOTIFY_CFG)  # before the chroot, as before pivot_root
        if chroot_to is not None:
            os.chroot(chroot_to)
            os.chdir("/")
        fd = f.load()
        assert fd is not None and fd >= 0
        assert not os.get_inheritable(fd)
        seccomp.send_listener(theirs.detach(), fd, STATE, f.listener_metadata, pid=os.getpid())
        os.close(fd)
        os.write(w, str(os.getppid()).encode())

    pid, r = _in_child(body)
    theirs.close()
    agent_side.append(ours)
    return pid, r


def _agent(sock: socket.socket, pid: int, r: int):
    msg, fds, _, _ = socket.recv_fds(sock, 65536, 4)
    assert sock.recv(10) == b""  # the runtime closed the connection after one state
    sock.close()
    doc = json.loads(msg)
    assert len(fds) == 1, doc
    nr = _answer(fds[0], 4242)
    os.close(fds[0])
    status, out = _finish(pid, r)
    return doc, nr, status, out


def test_notify_via_listener():
    socks = []
    pid, r = _notify_child(socks)
    doc, nr, status, out = _agent(socks[0], pid, r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    assert out == "4242"  # getppid() answered by the agent
    assert nr == 110 or os.uname().machine != "x86_64"  # __NR_getppid
    assert doc == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": pid,
                   "metadata": "MKNOD=/dev/null", "state": STATE}


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_load_and_notify_after_chroot_into_empty_dir(tmp_path):
    """load() and send_listener() need nothing from the filesystem (after pivot_root the
    host's libraries are unreachable)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    socks = []
    pid, r = _notify_child(socks, chroot_to=str(empty))
    doc, _, status, out = _agent(socks[0], pid, r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    assert out == "4242" and doc["pid"] == pid


def test_notify_fd_taken_with_pidfd_getfd():
    """runc's way: the child reports the fd number, the parent copies the fd out of it."""
    def body(w):
        fd = seccomp.compile(NOTIFY_CFG).load()
        os.write(w, f"{fd}\n".encode())
        os.write(w, str(os.getppid()).encode())

    pid, r = _in_child(body)
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(r, 1)
    try:
        fd = seccomp.take_fd(pid, int(line))
    except OSError as e:
        os.kill(pid, signal.SIGKILL)
        _finish(pid, r)
        if e.errno in (errno.ENOSYS, errno.EPERM):
            pytest.skip(f"pidfd_getfd: {e}")
        raise
    _answer(fd, 4242)
    os.close(fd)
    status, out = _finish(pid, r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    assert out == "4242"


def test_notify_listener_by_path(short_path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(short_path)
    srv.listen(1)
    r, w = os.pipe()
    try:
        seccomp.notify_listener(short_path, r, dict(STATE, pid=7), "")
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        conn.close()
        doc = json.loads(msg)
        assert doc == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 7,
                       "state": dict(STATE, pid=7)}  # no metadata: omitted, as runc does
        os.write(w, b"x")
        assert os.read(fds[0], 1) == b"x"  # the very fd we sent
        os.close(fds[0])
    finally:
        srv.close()
        os.close(r)
        os.close(w)
    with pytest.raises(OSError, match="seccomp listener"):
        seccomp.connect_listener(short_path + ".missing")


@pytest.fixture
def short_path():
    import tempfile

    d = tempfile.mkdtemp(prefix="sj-", dir="/tmp")
    try:
        yield os.path.join(d, "agent.sock")
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
