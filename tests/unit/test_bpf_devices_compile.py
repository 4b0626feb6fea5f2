"""Unit tests for sangja.linux.cgroups.bpf_devices: the rule list, the instruction stream
(run through a tiny interpreter of the few opcodes the compiler emits), and loading through
the real verifier (root only; nothing is attached)."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from sangja.linux.cgroups import bpf_devices as B
from sangja.linux.cgroups.devices import DEFAULT_ALLOW

BLOCK, CHAR = B.DEVCG_DEV_BLOCK, B.DEVCG_DEV_CHAR
M, R, W = B.DEVCG_ACC_MKNOD, B.DEVCG_ACC_READ, B.DEVCG_ACC_WRITE
DENY_ALL = {"allow": False, "access": "rwm"}


def run(prog: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the instruction stream on one bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", dev_type | (access << 16), major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 10000
        code, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if code == 0x61:
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xB7:
            regs[dst] = imm & 0xFFFFFFFFFFFFFFFF
        elif code == 0x05:
            pc += off
        elif code == 0x45:
            if regs[dst] & (imm & 0xFFFFFFFFFFFFFFFF):
                pc += off
        elif code == 0x56:
            if (regs[dst] & 0xFFFFFFFF) != (imm & 0xFFFFFFFF):
                pc += off
        elif code == 0x95:
            return regs[0]
        else:  # pragma: no cover
            raise AssertionError(f"unexpected opcode {code:#x}")
        assert 0 <= pc < len(insns)


def allowed(rules, *, t=CHAR, acc=R, major=1, minor=3):
    return run(B.compile_rules(rules), t, acc, major, minor) == 1


def test_rule_list_composes_like_apply_v1():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": -1, "access": "r"}]
    seq = B.rule_list(rules)
    assert seq[0] == (False, "a", None, None, "rwm")
    assert seq[1] == (True, "c", 4, -1, "r")
    assert seq[2:] == [(True, *d) for d in DEFAULT_ALLOW]


def test_instruction_stream_shape():
    prog = B.compile_rules([DENY_ALL])
    assert len(prog) % 8 == 0
    # ends with r0 = 1; exit
    assert prog[-16:] == B._insn(0xB7, 0, imm=1) + B._insn(0x95)
    # grows with rules
    more = B.compile_rules([DENY_ALL, {"allow": True, "type": "b", "major": 8, "minor": 0,
                                       "access": "rw"}])
    assert len(more) > len(prog)


@pytest.mark.parametrize("bad", [
    {"allow": True, "type": "x"}, {"allow": True, "type": "c", "access": "rx"},
    {"allow": True, "type": "c", "major": "1"}, {"allow": True, "type": "c", "major": 1 << 32},
])
def test_bad_rules(bad):
    with pytest.raises(ValueError):
        B.compile_rules([bad])


def test_deny_all_then_null_only():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    assert allowed(rules, major=1, minor=3, acc=R | W)
    assert allowed(rules, major=1, minor=5, acc=R)            # /dev/zero is a default
    assert not allowed(rules, major=8, minor=0, t=BLOCK)      # sda
    assert not allowed(rules, major=10, minor=229, acc=R | W)  # fuse: not listed
    assert allowed(rules, major=8, minor=0, t=BLOCK, acc=M)  # "b *:* m" default
    assert allowed(rules, major=136, minor=4, acc=R | W)     # ptys
    assert not allowed(rules, major=5, minor=1, acc=R)       # host console: not a default


def test_device_nodes_get_only_what_the_rules_allow():
    """linux.devices nodes have no implicit rule (runc): a read-only rule stays read-only."""
    ro = [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]
    assert allowed(ro, major=10, minor=229, acc=R)
    assert not allowed(ro, major=10, minor=229, acc=R | W)
    assert not allowed([DENY_ALL], major=10, minor=229, acc=R)


def test_last_match_wins_and_access_per_bit():
    # deny-all, then the user denies writing /dev/null: the later DEFAULT_ALLOW c 1:3 rwm
    # wins, as on v1 where the defaults are written after the user's rules.
    rules = [DENY_ALL, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    assert allowed(rules, major=1, minor=3, acc=W)
    # a deny on a device the defaults do not cover sticks, bit by bit
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 4, "access": "rw"},
             {"allow": False, "type": "c", "major": 4, "minor": 2, "access": "w"}]
    assert allowed(rules, major=4, minor=2, acc=R)
    assert not allowed(rules, major=4, minor=2, acc=W)
    assert not allowed(rules, major=4, minor=2, acc=R | W)   # O_RDWR cannot sneak past
    assert allowed(rules, major=4, minor=3, acc=R | W)
    assert allowed(rules, major=4, minor=3, acc=M)  # the "c *:* m" default
    assert not allowed(rules, major=4, minor=2, acc=M | W)


def test_char_major_read_only():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": None, "access": "r"}]
    assert allowed(rules, major=4, minor=77, acc=R)
    assert not allowed(rules, major=4, minor=77, acc=W)
    assert not allowed(rules, major=4, minor=77, t=BLOCK, acc=R)


def test_wildcard_type_rules_reset():
    # a deny-all in the middle hides everything before it
    rules = [{"allow": True, "type": "c", "major": 4, "access": "rwm"}, DENY_ALL]
    assert not allowed(rules, major=4, minor=1, acc=R)
    assert allowed(rules, major=1, minor=3, acc=R)  # defaults come after
    # allow-all at the end of the user's rules allows everything
    assert allowed([DENY_ALL, {"allow": True, "type": "a"}], t=BLOCK, major=8, minor=0,
                   acc=R | W)


def test_default_allow_without_leading_deny_all():
    # like a fresh v1 cgroup under an allow-all parent: no match means allowed
    rules = [{"allow": False, "type": "b", "major": 8, "access": "rw"}]
    assert not allowed(rules, t=BLOCK, major=8, minor=1, acc=R)
    assert allowed(rules, t=BLOCK, major=9, minor=1, acc=R | W)
    assert allowed([], t=BLOCK, major=9, minor=1, acc=R | W)


def test_big_numbers_compare_unsigned():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 0xFFFFFFF0, "minor": 1,
                        "access": "r"}]
    assert allowed(rules, major=0xFFFFFFF0, minor=1, acc=R)
    assert not allowed(rules, major=0xFFFFFFF1, minor=1, acc=R)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="BPF_PROG_LOAD needs root")


@needs_root
@pytest.mark.parametrize("rules", [
    [], [DENY_ALL], [{"allow": True, "access": "rwm"}],
    [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    [DENY_ALL, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
     {"allow": True, "type": "b", "major": 8, "access": "r"}, {"allow": True, "type": "a"}],
    [{"allow": False, "type": "b", "access": "rwm"}],
])
def test_verifier_accepts(rules):
    prog = B.compile_rules(rules)
    fd = B.load(prog)
    try:
        assert fd >= 0
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)


@needs_root
def test_verifier_log_in_error():
    bad = B._insn(0xB7, 0, imm=0) + B._insn(0x05, off=-2) + B._insn(0x95)
    with pytest.raises(OSError) as ei:
        B.load(bad)
    assert ei.value.errno in (errno.EINVAL, errno.EACCES, errno.EPERM)
    assert "verifier log" in str(ei.value)


def test_load_rejects_ragged_program():
    with pytest.raises(ValueError):
        B.load(b"\x00" * 12)
