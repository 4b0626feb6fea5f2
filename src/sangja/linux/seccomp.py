"""runtime-spec `linux.seccomp` through libseccomp (ctypes), the way runc applies it.

    enabled(cfg)               False when absent or empty (runc: seccomp off)
    check(cfg)                 validate (names the field) and trial-compile; runtime side
    f = compile(cfg)           build the filter: BEFORE pivot_root/chroot (dlopen, probing)
    fd = f.load()              seccomp_load; the notify fd if any rule is SCMP_ACT_NOTIFY
    f.release()                free the libseccomp context (the loaded filter stays)

SCMP_ACT_NOTIFY: the notify fd goes to the agent listening on `listenerPath` as runc sends
it: one connection, one JSON containerProcessState with the fd in SCM_RIGHTS, then close.
`connect_listener()` + `send_listener()` (or `notify_listener()` for both); `take_fd()`
copies the notify fd out of another process (pidfd_getfd), as runc's parent does.

Like runc: SCMP_ACT_KILL is KILL_THREAD; errno actions default to EPERM; a rule whose action
equals the default action is skipped; names libseccomp does not know are skipped; when two
conditions of one entry test the same argument, every condition becomes its own rule;
no_new_privs is left to the caller (SCMP_FLTATR_CTL_NNP = 0); TSYNC is set whenever the
kernel has it; binary-tree optimisation above 32 entries. Not mirrored: runc's patched BPF
that returns ENOSYS for syscalls newer than the profile (libseccomp's filter is loaded as is).
"""

from __future__ import annotations

import ctypes
import os

from ..errors import ConfigError, Unsupported

ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # = KILL_THREAD, as in libseccomp and runc
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,  # | errno
    "SCMP_ACT_TRACE": 0x7FF00000,  # | msg
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_WITH_RET = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
EPERM = 1

OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# enum scmp_filter_attr
_ATTR_NNP, _ATTR_TSYNC, _ATTR_LOG, _ATTR_SSB, _ATTR_OPTIMIZE, _ATTR_SYSRAWRC, _ATTR_WAITKILL = \
    3, 4, 6, 7, 8, 9, 10

FLAGS = {  # flag -> (libseccomp attribute, what it needs)
    "SECCOMP_FILTER_FLAG_TSYNC": (_ATTR_TSYNC, "Linux >= 3.17"),
    "SECCOMP_FILTER_FLAG_LOG": (_ATTR_LOG, "libseccomp >= 2.4 and Linux >= 4.14"),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (_ATTR_SSB, "libseccomp >= 2.4 and Linux >= 4.17"),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (_ATTR_WAITKILL,
                                               "libseccomp >= 2.6 and Linux >= 5.19"),
}

MAX_ARGS = 6
_U64 = (1 << 64) - 1
_NR_SCMP_ERROR = -1
_OPTIMIZE_ABOVE = 32  # runc: binary tree for long rule sets (libseccomp <= 2.5.4 needs rules)
MISSING = "seccomp needs libseccomp (apt-get install libseccomp2)"

_lib = None


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _libseccomp():
    """dlopen libseccomp once and declare the prototypes (each function object is then
    cached by ctypes, so nothing is looked up after pivot_root)."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise ConfigError(MISSING) from None
    vp, u32, i, ci = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
    for name, res, args in (
        ("seccomp_init", vp, [u32]),
        ("seccomp_release", None, [vp]),
        ("seccomp_arch_add", i, [vp, u32]),
        ("seccomp_arch_resolve_name", u32, [ci]),
        ("seccomp_syscall_resolve_name", i, [ci]),
        ("seccomp_rule_add_array", i, [vp, u32, i, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]),
        ("seccomp_attr_set", i, [vp, i, u32]),
        ("seccomp_load", i, [vp]),
        ("seccomp_notify_fd", i, [vp]),
        ("seccomp_api_get", ctypes.c_uint, []),
        ("seccomp_export_bpf", i, [vp, i]),
    ):
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _lib = lib
    return lib


def _neg_errno(rc: int, what: str) -> OSError:
    err = -rc if rc < 0 else (ctypes.get_errno() or 22)
    return OSError(err, f"{what}: {os.strerror(err)}")


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _uint(v, field: str, top: int) -> int:
    if not _is_int(v) or v < 0 or v > top:
        raise ConfigError(f"{field} {v!r} is not an integer between 0 and {top}")
    return v


def _str(v, field: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{field} must be a string, not {type(v).__name__}")
    return v


def _list(v, field: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(f"{field} must be an array, not {type(v).__name__}")
    return v


def _action(name, ret, field: str, ret_field: str) -> int:
    if name not in ACTIONS:
        raise ConfigError(f"{field} {name!r} is not a seccomp action")
    value = ACTIONS[name]
    if name in _WITH_RET:
        return value | (EPERM if ret is None else _uint(ret, ret_field, 0xFFFF))
    if ret is not None:
        _uint(ret, ret_field, 0xFFFF)
        raise ConfigError(f"{ret_field} is set but {name} returns no errno")
    return value


def _arch_token(name, field: str) -> int:
    if not isinstance(name, str) or not name.startswith("SCMP_ARCH_"):
        raise ConfigError(f"{field} {name!r} is not a seccomp architecture")
    lib = _libseccomp()
    token = lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_"):].lower().encode())
    if not token:
        raise ConfigError(f"{field} {name!r} is not an architecture libseccomp knows")
    return token


def _validate(cfg) -> None:
    """Types and values; everything that needs no libseccomp context."""
    where = "linux.seccomp"
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where} must be an object")
    if "defaultAction" not in cfg:
        raise ConfigError(f"{where}.defaultAction is required")
    default = _str(cfg["defaultAction"], f"{where}.defaultAction")
    _action(default, cfg.get("defaultErrnoRet"), f"{where}.defaultAction",
            f"{where}.defaultErrnoRet")
    if default == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{where}.defaultAction SCMP_ACT_NOTIFY cannot be the default action")
    for i, a in enumerate(_list(cfg.get("architectures"), f"{where}.architectures")):
        _arch_token(a, f"{where}.architectures[{i}]")
    for i, f in enumerate(_list(cfg.get("flags"), f"{where}.flags")):
        if not isinstance(f, str) or f not in FLAGS:
            raise ConfigError(f"{where}.flags[{i}] {f!r} is not a seccomp filter flag")
    listener = cfg.get("listenerPath")
    if listener is not None and _str(listener, f"{where}.listenerPath") == "":
        listener = None
    meta = cfg.get("listenerMetadata")
    if meta is not None and _str(meta, f"{where}.listenerMetadata") and listener is None:
        raise ConfigError(f"{where}.listenerMetadata is set but listenerPath is not")
    for i, sc in enumerate(_list(cfg.get("syscalls"), f"{where}.syscalls")):
        w = f"{where}.syscalls[{i}]"
        if not isinstance(sc, dict):
            raise ConfigError(f"{w} must be an object")
        names = _list(sc.get("names"), f"{w}.names")
        if not names:
            raise ConfigError(f"{w}.names must list at least one syscall")
        for j, n in enumerate(names):
            if not isinstance(n, str) or not n:
                raise ConfigError(f"{w}.names[{j}] {n!r} is not a syscall name")
        if "action" not in sc:
            raise ConfigError(f"{w}.action is required")
        act = _str(sc["action"], f"{w}.action")
        _action(act, sc.get("errnoRet"), f"{w}.action", f"{w}.errnoRet")
        if act == "SCMP_ACT_NOTIFY":
            if listener is None:
                raise ConfigError(f"{w}.action SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
            if "write" in names:
                # as runc: the init still writes to its parent after the load
                raise ConfigError(f"{w}.action SCMP_ACT_NOTIFY cannot be used for write")
        for j, arg in enumerate(_list(sc.get("args"), f"{w}.args")):
            wa = f"{w}.args[{j}]"
            if not isinstance(arg, dict):
                raise ConfigError(f"{wa} must be an object")
            for key in ("index", "value", "op"):
                if key not in arg:
                    raise ConfigError(f"{wa}.{key} is required")
            _uint(arg["index"], f"{wa}.index", MAX_ARGS - 1)
            _uint(arg["value"], f"{wa}.value", _U64)
            if arg.get("valueTwo") is not None:
                _uint(arg["valueTwo"], f"{wa}.valueTwo", _U64)
            if not isinstance(arg["op"], str) or arg["op"] not in OPS:
                raise ConfigError(f"{wa}.op {arg['op']!r} is not a seccomp comparison")


def enabled(seccomp) -> bool:
    """False for a missing `linux.seccomp`, and (as runc) for one with neither a default
    action nor syscalls: seccomp is then off. Anything else is validated and applied."""
    if seccomp is None:
        return False
    return not (isinstance(seccomp, dict) and not seccomp.get("defaultAction")
                and not seccomp.get("syscalls"))


def check(seccomp, keep: bool = False) -> Filter | None:
    """Validate `linux.seccomp` (ConfigError naming the field), then build the filter once
    without loading it, so whatever libseccomp or the kernel refuses fails here too.
    Accepts what enabled() calls off. With ``keep`` the built filter is returned (the
    caller releases it) instead of being thrown away."""
    if not enabled(seccomp):
        return None
    f = compile(seccomp)
    if keep:
        return f
    f.release()
    return None


# ------------------------------------------------------------------------------------------
# the filter
# ------------------------------------------------------------------------------------------


class Filter:
    """A libseccomp context built from a config; load() applies it to this thread/process."""

    def __init__(self, ctx: int, lib, *, notify: bool, listener_path: str | None,
                 listener_metadata: str):
        self._ctx: int | None = ctx  # None once released
        self._lib = lib
        self.notify = notify  # some rule is SCMP_ACT_NOTIFY: load() returns the notify fd
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.loaded = False

    def load(self) -> int | None:
        """seccomp_load. Needs no_new_privs or CAP_SYS_ADMIN. Returns the notify fd
        (close-on-exec) when the filter has SCMP_ACT_NOTIFY rules, else None."""
        if self._ctx is None:
            raise ValueError("seccomp filter already released")
        rc = self._lib.seccomp_load(self._ctx)
        if rc != 0:
            e = _neg_errno(rc, "load seccomp filter")
            if e.errno == 13:  # EACCES
                e = OSError(13, "load seccomp filter: needs no_new_privs or CAP_SYS_ADMIN")
            raise e
        self.loaded = True
        if not self.notify:
            return None
        fd = self._lib.seccomp_notify_fd(self._ctx)
        if fd < 0:
            raise _neg_errno(fd, "seccomp notify fd")
        return fd

    def export_bpf(self) -> bytes:
        """The classic-BPF program libseccomp would load (struct sock_filter array)."""
        r, w = os.pipe()
        try:
            rc = self._lib.seccomp_export_bpf(self._ctx, w)
            os.close(w)
            w = -1
            if rc != 0:
                raise _neg_errno(rc, "export seccomp filter")
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def release(self) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> Filter:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------
# the compiled-program cache
# ------------------------------------------------------------------------------------------

# seccomp(2) filter flags (linux/seccomp.h)
_SET_MODE_FILTER = 1
_FLAG_TSYNC, _FLAG_LOG, _FLAG_SPEC_ALLOW, _FLAG_TSYNC_ESRCH = 1, 2, 4, 16
_CONFIG_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": _FLAG_TSYNC, "SECCOMP_FILTER_FLAG_LOG": _FLAG_LOG,
                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _FLAG_SPEC_ALLOW}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CompiledFilter:
    """A filter as the kernel takes it (classic BPF), from the cache: loading it needs
    neither libseccomp nor any compiling. Configs with SCMP_ACT_NOTIFY never come here."""

    notify = False
    listener_path = None
    listener_metadata = ""

    def __init__(self, program: bytes, flags: int):
        if not program or len(program) % 8:
            raise ValueError("a BPF program is a non-empty array of 8-byte instructions")
        self.program = program
        self.flags = flags
        self.loaded = False

    def load(self) -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER) with the flags libseccomp would have used.
        Needs no_new_privs or CAP_SYS_ADMIN."""
        from .syscall import libc, nr

        buf = ctypes.create_string_buffer(self.program, len(self.program))
        prog = _SockFprog(len(self.program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        flags = self.flags | _FLAG_TSYNC | _FLAG_TSYNC_ESRCH
        while True:
            rc = libc.syscall(nr("seccomp"), _SET_MODE_FILTER, flags, ctypes.byref(prog))
            if rc == 0:
                break
            err = ctypes.get_errno()
            if err == 22 and flags & _FLAG_TSYNC_ESRCH:  # EINVAL: a kernel before 5.7
                flags &= ~_FLAG_TSYNC_ESRCH
                continue
            if err == 13:
                raise OSError(13, "load seccomp filter: needs no_new_privs or CAP_SYS_ADMIN")
            raise OSError(err, f"load seccomp filter: {os.strerror(err)}")
        self.loaded = True

    def release(self) -> None:
        pass


def _cache_key(seccomp) -> str:
    """What the compiled program depends on: the config (canonical JSON), the kernel (its
    API level decides what libseccomp emits) and the machine."""
    import hashlib

    u = os.uname()
    data = f"v1\0{u.release}\0{u.machine}\0{_canonical(seccomp)}"
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def _canonical(v) -> str:
    from ..jsonio import dumps

    if isinstance(v, dict):
        return "{" + ",".join(f"{dumps(k)}:{_canonical(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_canonical(x) for x in v) + "]"
    return dumps(v)


def prepare(seccomp, cache_dir: str | None):
    """check(keep=True), through a cache of compiled programs in `cache_dir` (a directory
    only root can write, under the runtime's state root): the same config on the same
    kernel is compiled once, and every later container loads the cached program. Returns a
    Filter (notify configs, cache misses), a CompiledFilter (hits), or None (seccomp off)."""
    if not enabled(seccomp):
        return None
    cacheable = (
        isinstance(seccomp, dict)
        and isinstance(seccomp.get("flags") or [], list)
        and all(isinstance(f, str) and f in _CONFIG_FLAGS for f in seccomp.get("flags") or [])
        and isinstance(seccomp.get("syscalls") or [], list)
        and not any(sc.get("action") == "SCMP_ACT_NOTIFY"
                    for sc in (seccomp.get("syscalls") or []) if isinstance(sc, dict)))
    path = os.path.join(cache_dir, _cache_key(seccomp) + ".bpf") \
        if cache_dir is not None and cacheable else None
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read()
            flags = int.from_bytes(data[:4], "little")
            return CompiledFilter(data[4:], flags)
        except (OSError, ValueError):
            pass
    filt = compile(seccomp)
    if cache_dir is not None and path is not None:
        try:
            flags = 0
            for name in seccomp.get("flags") or []:
                flags |= _CONFIG_FLAGS.get(name, 0)
            from ..fs import write_atomic

            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            write_atomic(path, flags.to_bytes(4, "little") + filt.export_bpf(), durable=False)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return filt


def compile(seccomp) -> Filter:
    """Validate and build the filter. Call before pivot_root: it dlopens libseccomp, probes
    the kernel and imports what load()/send_listener() need later."""
    _validate(seccomp)
    lib = _libseccomp()
    where = "linux.seccomp"
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"), "", "")
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(22, "seccomp_init failed")
    syscalls = seccomp.get("syscalls") or []
    notify = any(sc["action"] == "SCMP_ACT_NOTIFY" for sc in syscalls)
    listener = seccomp.get("listenerPath") or None
    f = Filter(ctx, lib, notify=notify, listener_path=listener,
               listener_metadata=seccomp.get("listenerMetadata") or "")
    try:
        if notify and lib.seccomp_api_get() < 6:
            raise Unsupported(f"{where}: SCMP_ACT_NOTIFY",
                              "needs libseccomp >= 2.5 and Linux >= 5.7")
        if notify:  # send_listener runs after pivot_root, when no module can be found
            import socket  # noqa: F401
            import struct  # noqa: F401

            from .. import jsonio  # noqa: F401
        for i, name in enumerate(seccomp.get("architectures") or []):
            rc = lib.seccomp_arch_add(ctx, _arch_token(name, ""))
            if rc == -33:  # EDOM
                raise ConfigError(f"{where}.architectures[{i}] {name} cannot share a filter "
                                  f"with the native architecture (byte order)")
            if rc not in (0, -17):  # EEXIST: the native arch is already there
                raise ConfigError(f"{where}.architectures[{i}] {name}: "
                                  f"{os.strerror(-rc if rc < 0 else 22)}")
        _attr(lib, ctx, _ATTR_NNP, 0, None)  # the runtime sets no_new_privs itself
        _attr(lib, ctx, _ATTR_SYSRAWRC, 1, None)  # kernel errnos from seccomp_load
        _attr(lib, ctx, _ATTR_TSYNC, 1, None)  # as libseccomp-golang: when the kernel can
        for i, flag in enumerate(seccomp.get("flags") or []):
            attr, needs = FLAGS[flag]
            _attr(lib, ctx, attr, 1, (f"{where}.flags[{i}]", f"({flag}) needs {needs}"))
        if len(syscalls) > _OPTIMIZE_ABOVE:
            _attr(lib, ctx, _ATTR_OPTIMIZE, 2, None)
        for i, sc in enumerate(syscalls):
            _add_rules(lib, ctx, default, sc, f"{where}.syscalls[{i}]")
        if notify:
            import socket  # noqa: F401 - for send_listener after pivot_root
            import struct  # noqa: F401
    except BaseException:
        f.release()
        raise
    return f


def _attr(lib, ctx, attr: int, value: int, required) -> None:
    rc = lib.seccomp_attr_set(ctx, attr, value)
    if rc != 0 and required is not None:
        raise Unsupported(*required)


def _add_rules(lib, ctx, default: int, sc: dict, where: str) -> None:
    action = _action(sc["action"], sc.get("errnoRet"), "", "")
    if action == default:
        return  # redundant; libseccomp would refuse it (runc skips it too)
    conds = []
    for arg in sc.get("args") or []:
        conds.append(_ArgCmp(arg["index"], OPS[arg["op"]], arg["value"],
                             arg.get("valueTwo") or 0))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) != len(indexes):
        groups = [[c] for c in conds]  # runc: one rule per condition
    else:
        groups = [conds]
    for name in sc["names"]:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == _NR_SCMP_ERROR:
            continue  # unknown to libseccomp here: skipped, as runc does
        for group in groups:
            arr = (_ArgCmp * len(group))(*group) if group else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
            if rc != 0:
                raise ConfigError(f"{where}: cannot add the rule for {name}: "
                                  f"{os.strerror(-rc if rc < 0 else 22)}")


# ------------------------------------------------------------------------------------------
# SCMP_ACT_NOTIFY: the seccomp agent
# ------------------------------------------------------------------------------------------


def connect_listener(path: str) -> int:
    """Connect to the agent's AF_UNIX SOCK_STREAM socket (on the host: before pivot_root
    when the container's init does it). Returns a close-on-exec fd."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OSError(e.errno, f"seccomp listener {path}: {e.strerror}") from None
    return s.detach()


def send_listener(sock, notify_fd: int, state: dict, metadata: str = "",
                  pid: int | None = None) -> None:
    """Send the containerProcessState (JSON) with `notify_fd` in SCM_RIGHTS in one sendmsg,
    then close the connection (runtime-spec: one state per connection). `sock` is a
    connected fd (ours to close) or the listener's path. `pid` defaults to state["pid"]."""
    import socket
    import struct

    from ..jsonio import dumps

    if isinstance(sock, str):
        sock = connect_listener(sock)
    doc = {"ociVersion": state.get("ociVersion") or "1.0.2", "fds": ["seccompFd"],
           "pid": state.get("pid", 0) if pid is None else pid}
    if metadata:
        doc["metadata"] = metadata
    doc["state"] = state
    data = dumps(doc).encode()
    s = socket.socket(fileno=sock)
    try:
        n = s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                struct.pack("i", notify_fd))])
        if n < len(data):
            s.sendall(data[n:])  # fds went with the first part, as the spec requires
    except OSError as e:
        raise OSError(e.errno, f"send seccomp state to the listener: {e.strerror}") from None
    finally:
        s.close()


def notify_listener(path: str, notify_fd: int, state: dict, metadata: str = "",
                    pid: int | None = None) -> None:
    """connect_listener + send_listener, for a process that can still reach `path`."""
    send_listener(connect_listener(path), notify_fd, state, metadata, pid)


def take_fd(pid: int, fd: int) -> int:
    """Copy fd number `fd` of process `pid` into this process (pidfd_getfd, Linux >= 5.6;
    needs ptrace rights over it: root does). How runc's parent gets the notify fd."""
    from .syscall import check, libc

    pidfd = os.pidfd_open(pid)
    try:
        return check(libc.pidfd_getfd(pidfd, fd, 0), "pidfd_getfd")
    finally:
        os.close(pidfd)
