"""linux.seccomp: filters applied to the container's process and to exec'd processes,
observed from inside with busybox tools (validated against runc)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import socket
import struct
import threading

import pytest

from conftest import add_mounts, new_id, sh

pytestmark = pytest.mark.root

EPERM = errno.EPERM
TMPFS = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]}
NO_CORE = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
           {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]  # SIGSYS would dump core


def _arches() -> list[str]:
    return {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(os.uname().machine, [])


def _with_seccomp(seccomp: dict, *, nnp: bool = True, user=None):
    def mutate(config):
        config["linux"]["seccomp"] = seccomp
        config["process"]["noNewPrivileges"] = nnp
        config["process"]["rlimits"] = list(NO_CORE)
        if user is not None:
            config["process"]["user"] = user
    return mutate


def _block(names, action="SCMP_ACT_ERRNO", **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": _arches(),
            "syscalls": [dict({"names": list(names), "action": action}, **extra)]}


def _run(runtime, bundle):
    r = runtime.run_container(bundle)
    return r, r.stdout + r.stderr


def _status(text: str) -> dict:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# Docker's default allow list (abridged) without `uname`: enough for the runtime's own
# steps after the filter is loaded and for busybox.
ALLOW_LIST = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown clock_adjtime
clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range creat
dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
fchdir fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu
getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid
getpgrp getpid getppid getpriority getrandom getresgid getresuid getrlimit get_robust_list
getrusage getsid getsockname getsockopt gettid gettimeofday getuid getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch ioctl ioprio_get ioprio_set kill lchown lgetxattr
link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier
memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mprotect mremap
msync munlock munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg
rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select sendfile sendmmsg sendmsg sendto setfsgid
setfsuid setgid setgroups setitimer setpgid setpriority setregid setresgid setresuid
setreuid setrlimit set_robust_list setsid setsockopt set_tid_address setuid setxattr
shutdown sigaltstack signalfd signalfd4 socket socketpair splice stat statfs statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime
times tkill truncate umask unlink unlinkat utime utimensat utimes vfork vmsplice wait4
waitid write writev arch_prctl sangja_no_such_syscall
""".split()  # noqa: SIM905 - a word list reads better


def _default_errno_profile() -> dict:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": _arches(),
        "syscalls": [
            {"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }


@pytest.mark.parametrize("nnp,user", [(True, None), (False, None),
                                      (False, {"uid": 1000, "gid": 1000})],
                         ids=["no_new_privs", "privileged", "unprivileged_user"])
def test_errno_rule_blocks_mkdir(runtime, make_bundle, nnp, user):
    """Without no_new_privs the filter must be loaded while the process still has
    CAP_SYS_ADMIN, i.e. before the user switch and capability drop."""
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_block(["mkdir", "mkdirat"], errnoRet=EPERM), nnp=nnp, user=user),
        args=sh("touch /tmp/file && echo touched; mkdir /tmp/x; echo rc=$?; "
                "grep Seccomp: /proc/self/status"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "touched" in r.stdout  # /tmp is writable: only mkdir is refused
    assert "Operation not permitted" in r.stderr, out
    assert "rc=1" in r.stdout
    assert _status(r.stdout)["Seccomp"].strip() == "2", out


@pytest.mark.sangja_only
def test_cached_program_enforces_the_same_filter(runtime, make_bundle):
    """The second container with the same filter loads the compiled program from the cache
    (no libseccomp): it must refuse exactly what the first one refused, with or without
    no_new_privs."""
    for nnp in (True, False):
        bundle = make_bundle(
            add_mounts(TMPFS),
            _with_seccomp(_block(["mkdir", "mkdirat"], errnoRet=EPERM), nnp=nnp),
            args=sh("mkdir /tmp/x; echo rc=$?; touch /tmp/f && echo touched; "
                    "grep Seccomp: /proc/self/status"),
        )
        outs = [_run(runtime, bundle) for _ in range(2)]
        cache = [n for n in os.listdir(os.path.join(str(runtime.root), "~seccomp"))
                 if n.endswith(".bpf")]
        assert cache, "the compiled program was not cached"
        for r, out in outs:
            assert r.returncode == 0, out
            assert "rc=1" in r.stdout and "touched" in r.stdout, out
            assert "Operation not permitted" in r.stderr, out
            assert _status(r.stdout)["Seccomp"].strip() == "2", out


def test_errno_value_is_errno_ret(runtime, make_bundle):
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_block(["mkdir", "mkdirat"], errnoRet=errno.ENOSPC)),
        args=sh("mkdir /tmp/x"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 1, out
    assert "No space left on device" in r.stderr, out


def test_default_errno_with_allow_list(runtime, make_bundle):
    """Everything not listed gets the default EPERM: here uname, mkdir and mkdirat."""
    prof = _default_errno_profile()
    prof["syscalls"][0]["names"] = [n for n in ALLOW_LIST if n not in ("mkdir", "mkdirat")]
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(prof),
        args=sh("echo start; echo uname=$(uname -s); mkdir /tmp/x; echo rc=$?; "
                "cat /proc/self/status | grep Seccomp:"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "start" in r.stdout and "rc=1" in r.stdout, out
    assert "Operation not permitted" in r.stderr, out
    assert "uname=\n" in r.stdout, out  # busybox prints empty fields when uname() fails
    assert _status(r.stdout)["Seccomp"].strip() == "2", out


def test_uname_blocked_only_by_the_filter(runtime, make_bundle):
    """Control for the test above: the same profile with uname allowed shows Linux."""
    prof = _default_errno_profile()
    prof["syscalls"][0]["names"] = ALLOW_LIST + ["uname"]
    bundle = make_bundle(_with_seccomp(prof), args=["uname", "-s"])
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert r.stdout == "Linux\n"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL_PROCESS"])
def test_kill_rule(runtime, make_bundle, action):
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_block(["mkdir", "mkdirat"], action)),
        args=sh("mkdir /tmp/x; echo rc=$?; test -d /tmp/x || echo absent"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "rc=159" in r.stdout, out  # 128 + SIGSYS
    assert "absent" in r.stdout


def test_kill_rule_on_the_init(runtime, make_bundle):
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_block(["mkdir", "mkdirat"], "SCMP_ACT_KILL_PROCESS")),
        args=["mkdir", "/tmp/x"],
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 128 + 31, out


def _setuid_rules() -> dict:
    """chmod/fchmodat get EPERM when the mode has the setuid bit (MASKED_EQ)."""
    cond = {"value": 0o4000, "valueTwo": 0o4000, "op": "SCMP_CMP_MASKED_EQ"}
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": _arches(),
            "syscalls": [
                {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [dict(cond, index=1)]},
                {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
                 "args": [dict(cond, index=2)]},
            ]}


def test_argument_condition(runtime, make_bundle):
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_setuid_rules()),
        args=sh("cd /tmp && touch f && chmod 644 f && echo plain=$?; chmod u+s f; "
                "echo setuid=$?; chmod 600 f; stat -c %a f"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "plain=0" in r.stdout and "setuid=1" in r.stdout, out
    assert "Operation not permitted" in r.stderr
    assert r.stdout.split()[-1] == "600"  # the last chmod went through


def test_repeated_argument_index(runtime, make_bundle):
    """Two conditions on one argument: each is its own rule (runc's behaviour), so either
    value matches."""
    rules = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": _arches(),
             "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 1, "value": 0o711, "op": "SCMP_CMP_EQ"},
                                    {"index": 1, "value": 0o722, "op": "SCMP_CMP_EQ"}]}]}
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(rules),
        args=sh("cd /tmp && touch f; for m in 711 722 733; do chmod $m f; echo $m=$?; done"),
    )
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "711=1" in r.stdout and "722=1" in r.stdout and "733=0" in r.stdout, out


def test_unknown_names_skipped(runtime, make_bundle):
    """Names libseccomp does not know are skipped, even an entry made only of them."""
    prof = _block(["mkdir", "mkdirat", "no_such_syscall_at_all"], errnoRet=EPERM)
    prof["syscalls"].append({"names": ["also_unknown_1", "also_unknown_2"],
                             "action": "SCMP_ACT_KILL"})
    bundle = make_bundle(add_mounts(TMPFS), _with_seccomp(prof),
                         args=sh("mkdir /tmp/x; echo rc=$?"))
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "rc=1" in r.stdout


@pytest.mark.sangja_only  # runc 1.1 refuses every flag ("not yet supported"); 1.2 has them
def test_flags_accepted(runtime, make_bundle):
    prof = _block(["mkdir", "mkdirat"], errnoRet=EPERM)
    prof["flags"] = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    bundle = make_bundle(add_mounts(TMPFS), _with_seccomp(prof),
                         args=sh("mkdir /tmp/x; echo rc=$?"))
    r, out = _run(runtime, bundle)
    assert r.returncode == 0, out
    assert "rc=1" in r.stdout


@pytest.mark.sangja_only
def test_unknown_flag_rejected(runtime, make_bundle):
    prof = _block(["mkdir"])
    prof["flags"] = ["SECCOMP_FILTER_FLAG_BOGUS"]
    bundle = make_bundle(_with_seccomp(prof), args=["true"])
    r, out = _run(runtime, bundle)
    assert r.returncode != 0, out
    assert "linux.seccomp.flags[0]" in r.stderr, out


def test_exec_inherits_seccomp(runtime, make_bundle):
    bundle = make_bundle(
        add_mounts(TMPFS),
        _with_seccomp(_block(["mkdir", "mkdirat"], errnoRet=EPERM)),
        args=["sleep", "1000"],
    )
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    r = runtime.run("exec", cid, "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert _status(r.stdout)["Seccomp"].strip() == "2"
    r = runtime.run("exec", cid, "mkdir", "/tmp/y")
    assert r.returncode == 1, r
    assert "Operation not permitted" in r.stderr
    r = runtime.run("exec", cid, "sh", "-c", "touch /tmp/z && echo ok")
    assert r.stdout == "ok\n", r


def test_bad_action_rejected(runtime, make_bundle):
    prof = _block(["mkdir"], "SCMP_ACT_FOO")
    bundle = make_bundle(_with_seccomp(prof), args=["true"])
    r, out = _run(runtime, bundle)
    assert r.returncode != 0, out
    if not runtime.is_runc:
        assert "linux.seccomp.syscalls[0].action 'SCMP_ACT_FOO'" in r.stderr, out


# --------------------------------------------------------------------------------------------
# SCMP_ACT_NOTIFY and the listener
# --------------------------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)


class Agent(threading.Thread):
    """A seccomp agent: accepts one connection, keeps the state and the notify fd, and
    answers every notification with -ENOSPC until the filter's processes are gone."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(30)
        self.state = None
        self.nfds = None
        self.answered = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            conn, _ = self.srv.accept()
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 8)
                while not msg.endswith(b"}"):
                    more = conn.recv(1 << 16)
                    if not more:
                        break
                    msg += more
            self.state, self.nfds = json.loads(msg), len(fds)
            fd = fds[0]
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not self.stop.is_set():
                events = poller.poll(100)
                if not events:
                    continue
                if events[0][1] & select.POLLHUP:
                    break
                req = bytearray(80)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
                except OSError:
                    continue  # the caller died meanwhile
                nid = struct.unpack_from("=Q", req)[0]
                resp = bytearray(struct.pack("=QqiI", nid, 0, -errno.ENOSPC, 0))
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
                    self.answered += 1
                except OSError:
                    pass
            os.close(fd)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.srv.close()


def test_notify_sends_state_to_listener(runtime, make_bundle, short_tmp):
    path = str(short_tmp / "agent.sock")
    agent = Agent(path)
    agent.start()
    prof = _block(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")
    prof["listenerPath"] = path
    prof["listenerMetadata"] = "sangja-test-metadata"
    bundle = make_bundle(add_mounts(TMPFS), _with_seccomp(prof),
                         args=sh("mkdir /tmp/x; echo rc=$?; test -d /tmp/x || echo absent"))
    cid = new_id()
    try:
        r = runtime.run_container(bundle, cid)
    finally:
        agent.stop.set()
        agent.join(10)
    assert agent.error is None, agent.error
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No space left on device" in r.stderr  # the agent's answer
    assert "rc=1" in r.stdout and "absent" in r.stdout
    assert agent.answered >= 1
    doc = agent.state
    assert agent.nfds == 1
    assert doc["fds"] == ["seccompFd"]
    assert doc["metadata"] == "sangja-test-metadata"
    assert doc["ociVersion"]
    st = doc["state"]
    assert st["id"] == cid and st["status"] == "creating"
    assert st["bundle"] == str(bundle)
    assert isinstance(doc["pid"], int) and doc["pid"] > 0 and st["pid"] == doc["pid"]


def test_notify_without_listener_path_rejected(runtime, make_bundle):
    bundle = make_bundle(_with_seccomp(_block(["mkdir"], "SCMP_ACT_NOTIFY")), args=["true"])
    r, out = _run(runtime, bundle)
    assert r.returncode != 0, out


def test_notify_listener_unreachable_fails_create(runtime, make_bundle, short_tmp):
    prof = _block(["mkdir"], "SCMP_ACT_NOTIFY")
    prof["listenerPath"] = str(short_tmp / "nobody-listens.sock")
    bundle = make_bundle(_with_seccomp(prof), args=["true"])
    cid = new_id()
    r = runtime.create(bundle, cid, check=False)
    assert r.returncode != 0, r
