"""Device access rules (linux.resources.devices) on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE
program attached to the container's cgroup2 directory.

The rule list is the one apply_v1 writes to devices.allow/devices.deny: the user's rules, then
DEFAULT_ALLOW. The config's own device nodes (linux.devices) get no implicit rule, as with
runc: a node is reachable only as far as linux.resources.devices allows it (so
`--device /dev/x:/dev/x:r` really is read-only). Evaluation, as in runc: the
LAST rule that matches a device wins. Each requested access bit (m, r, w) is decided on its
own, and the access is allowed only if every requested bit is, so a `deny w` rule cannot be
slipped past with an O_RDWR open. A rule of type "a" is a reset, as on v1 (the kernel reads
only the "a"): it matches every device and every access, whatever its major/minor/access say.
No rule matching means deny when the first rule is a deny-all, allow otherwise (a v1 cgroup
inherits its parent's allow-all in that case).

Program layout (R1 = struct bpf_cgroup_dev_ctx *):

    r2 = ctx->access_type & 0xffff      device type (1 block, 2 char)
    r3 = ctx->access_type >> 16         access bits (1 mknod, 2 read, 4 write)
    r4 = ctx->major ; r5 = ctx->minor
    for bit in (m, r, w):               one block per bit
        if !(r3 & bit) goto next block
        for rule in reversed(rules) if bit in rule's access:
            if r2 != type or r4 != major or r5 != minor: goto next rule
            allow: goto next block | deny: return 0
        default deny: return 0          (omitted when a rule above matched unconditionally)
    return 1
"""

from __future__ import annotations

import ctypes
import os
import struct

from ..syscall import libc
from .devices import DEFAULT_ALLOW

# struct bpf_cgroup_dev_ctx values
DEVCG_DEV_BLOCK = 1
DEVCG_DEV_CHAR = 2
DEVCG_ACC_MKNOD = 1
DEVCG_ACC_READ = 2
DEVCG_ACC_WRITE = 4
_ACCESS = (("m", DEVCG_ACC_MKNOD), ("r", DEVCG_ACC_READ), ("w", DEVCG_ACC_WRITE))
_TYPES = {"b": DEVCG_DEV_BLOCK, "c": DEVCG_DEV_CHAR}

# bpf(2)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_NR = {"x86_64": 321, "aarch64": 280}

# Opcodes (class | op | source)
_LDXW = 0x61      # BPF_LDX | BPF_MEM | BPF_W       dst = *(u32 *)(src + off)
_AND32K = 0x54    # BPF_ALU | BPF_AND | BPF_K
_RSH32K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
_MOV64K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K
_JA = 0x05        # BPF_JMP | BPF_JA
_JSETK = 0x45     # BPF_JMP | BPF_JSET | BPF_K
_JNE32K = 0x56    # BPF_JMP32 | BPF_JNE | BPF_K    (32-bit compare: no sign-extension issues)
_EXIT = 0x95      # BPF_JMP | BPF_EXIT

INSN_SIZE = 8


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    if imm >= 1 << 31:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def rule_list(rules: list) -> list[tuple[bool, str, int | None, int | None, str]]:
    """(allow, type, major, minor, access) in evaluation order, as apply_v1 composes them."""
    seq = []
    for r in rules or ():
        kind = r.get("type") or "a"
        major, minor, access = r.get("major"), r.get("minor"), r.get("access") or "rwm"
        if kind == "a":
            major, minor, access = None, None, "rwm"
        for k, v in (("major", major), ("minor", minor)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v >= 1 << 32):
                raise ValueError(f"device rule {k} {v!r} is not a 32-bit number")
        if kind not in ("a", "b", "c") or not set(access) <= set("rwm"):
            raise ValueError(f"bad device rule {r!r}")
        seq.append((bool(r.get("allow")), kind, major, minor, access))
    seq += [(True, *d) for d in DEFAULT_ALLOW]
    return seq


def compile_rules(rules: list) -> bytes:
    """The BPF instruction stream (8 bytes per instruction) enforcing `rules`, then
    DEFAULT_ALLOW."""
    seq = rule_list(rules)
    user = list(rules or ())
    first = user[0] if user else None
    default_allow = not (first is not None and not first.get("allow")
                         and (first.get("type") or "a") == "a")

    # Instructions with symbolic jump targets: (code, dst, src, label or off, imm).
    prog: list = []
    labels: dict[str, int] = {}

    def emit(code, dst=0, src=0, off=0, imm=0):
        prog.append([code, dst, src, off, imm])

    def mark(label):
        labels[label] = len(prog)

    emit(_LDXW, 2, 1, 0)
    emit(_AND32K, 2, imm=0xFFFF)
    emit(_LDXW, 3, 1, 0)
    emit(_RSH32K, 3, imm=16)
    emit(_LDXW, 4, 1, 4)
    emit(_LDXW, 5, 1, 8)
    n = 0
    for bi, (letter, bit) in enumerate(_ACCESS):
        nxt = f"bit{bi + 1}"
        emit(_JSETK, 3, off=1, imm=bit)
        emit(_JA, off=nxt)
        unconditional = False
        for allow, kind, major, minor, access in reversed(seq):
            if letter not in access:
                continue
            n += 1
            skip = f"rule{n}"
            checks = []
            if kind != "a":
                checks.append((2, _TYPES[kind]))
            if major is not None and major >= 0:  # None or negative (runc's -1): any
                checks.append((4, major))
            if minor is not None and minor >= 0:
                checks.append((5, minor))
            for reg, val in checks:
                emit(_JNE32K, reg, off=skip, imm=val)
            if allow:
                emit(_JA, off=nxt)
            else:
                emit(_MOV64K, 0, imm=0)
                emit(_EXIT)
            mark(skip)
            if not checks:
                unconditional = True  # later (earlier-in-list) rules are unreachable
                break
        if not unconditional and not default_allow:
            emit(_MOV64K, 0, imm=0)
            emit(_EXIT)
        mark(nxt)
    emit(_MOV64K, 0, imm=1)
    emit(_EXIT)

    out = bytearray()
    for pc, (code, dst, src, off, imm) in enumerate(prog):
        if isinstance(off, str):
            off = labels[off] - (pc + 1)
        out += _insn(code, dst, src, off, imm)
    return bytes(out)


# ------------------------------------------------------------------------------------------
# bpf(2)
# ------------------------------------------------------------------------------------------


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
    ]


class _ProgAttachAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    try:
        number = _BPF_NR[os.uname().machine]
    except KeyError:
        raise OSError(f"bpf syscall unknown on {os.uname().machine}") from None
    ret = libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
    return ret if ret != -1 else -ctypes.get_errno()


_LICENSE = ctypes.create_string_buffer(b"Apache")


def load(program: bytes) -> int:
    """BPF_PROG_LOAD a device program; returns its fd (O_CLOEXEC). On a rejection the
    OSError carries the verifier's log."""
    if not program or len(program) % INSN_SIZE:
        raise ValueError("BPF program must be a non-empty multiple of 8 bytes")
    insns = ctypes.create_string_buffer(program, len(program))

    def attempt(log):
        attr = _ProgLoadAttr()
        attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE
        attr.insn_cnt = len(program) // INSN_SIZE
        attr.insns = ctypes.addressof(insns)
        attr.license = ctypes.addressof(_LICENSE)
        attr.prog_name = b"sangja_devices"
        if log is not None:
            attr.log_level = 1
            attr.log_size = len(log)
            attr.log_buf = ctypes.addressof(log)
        return _bpf(BPF_PROG_LOAD, attr)

    fd = attempt(None)
    if fd >= 0:
        return fd
    err = -fd
    text = ""
    if err in (1, 13, 22):  # EPERM, EACCES, EINVAL: ask the verifier why
        log = ctypes.create_string_buffer(1 << 20)
        fd = attempt(log)
        if fd >= 0:  # pragma: no cover - flaky first attempt
            return fd
        err = -fd
        text = log.value.decode(errors="replace").strip()
    msg = f"bpf(BPF_PROG_LOAD) of the device program: {os.strerror(err)}"
    raise OSError(err, msg + (f"\nverifier log:\n{text}" if text else ""))


def attach(cgroup2_dir: str, program: bytes) -> int:
    """Load `program` and attach it to the cgroup2 directory with BPF_F_ALLOW_MULTI.

    Returns the program fd (O_CLOEXEC); the caller closes it: the attachment lives as long
    as the cgroup does, removing the cgroup detaches the program."""
    fd = load(program)
    try:
        dfd = os.open(cgroup2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attr = _ProgAttachAttr()
            attr.target_fd = dfd
            attr.attach_bpf_fd = fd
            attr.attach_type = BPF_CGROUP_DEVICE
            attr.attach_flags = BPF_F_ALLOW_MULTI
            ret = _bpf(BPF_PROG_ATTACH, attr)
        finally:
            os.close(dfd)
        if ret < 0:
            raise OSError(-ret, f"bpf(BPF_PROG_ATTACH) to {cgroup2_dir}: {os.strerror(-ret)}",
                          cgroup2_dir)
    except BaseException:
        os.close(fd)
        raise
    return fd
