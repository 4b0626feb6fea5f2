"""The cgroup v2 device program on the real kernel, no runtime involved: attach a program to a
fresh cgroup2 directory, move a forked child into it, and let the child try device nodes.
Root and a cgroup2 mount are needed."""

from __future__ import annotations

import errno
import json
import os
import time
import uuid

import pytest

from sangja.linux.cgroups import bpf_devices as B


def _cgroup2_root() -> str | None:
    for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.isdir(p) and _fstype(p) == "cgroup2":
            return p
    return None


def _fstype(path: str) -> str | None:
    best, kind = "", None
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fs = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fs
    return kind


ROOT = _cgroup2_root()

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf, cgroup writes)"),
    pytest.mark.skipif(ROOT is None, reason="no cgroup2 mount"),
]


@pytest.fixture
def cg2():
    d = os.path.join(ROOT, f"sangja-bpftest-{uuid.uuid4().hex[:12]}")
    os.mkdir(d)
    try:
        yield d
    finally:
        for _ in range(100):  # a reaped child can take a moment to leave the cgroup
            try:
                os.rmdir(d)
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        else:
            os.rmdir(d)


def _try(path: str, flags: int) -> str:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    try:
        if flags & os.O_ACCMODE != os.O_WRONLY:
            os.read(fd, 1)
        return "ok"
    except OSError as e:
        return "read:" + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)


def run_in(cgroup_dir: str, attempts: list[tuple[str, int]]) -> list[str]:
    """Fork a child, move it into cgroup_dir (from the parent), let it try `attempts`
    and report through a pipe."""
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(go_w)
            os.close(res_r)
            if os.read(go_r, 1) != b"g":
                os._exit(3)
            out = [_try(p, fl) for p, fl in attempts]
            os.write(res_w, json.dumps(out).encode())
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(res_w)
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.write(go_w, b"g")
        os.close(go_w)
        go_w = -1
        data = b""
        while chunk := os.read(res_r, 65536):
            data += chunk
    finally:
        if go_w >= 0:
            os.close(go_w)  # the child sees EOF and exits
        os.close(res_r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "child failed"
    return json.loads(data)


DENY_ALL = {"allow": False, "access": "rwm"}


def test_only_dev_null(cg2):
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    # as the runtime composes it: DEFAULT_ALLOW comes after the user's rules
    fd = B.attach(cg2, B.compile_rules(rules))
    os.close(fd)
    got = run_in(cg2, [("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY),
                       ("/dev/full", os.O_RDONLY), ("/dev/kmsg", os.O_RDONLY)])
    assert got[0] == "ok"
    assert got[1] == "ok"          # c 1:5 is in DEFAULT_ALLOW
    assert got[2] == "ok"          # c 1:7 too
    assert got[3] == "EPERM"       # c 1:11 is not


def test_only_dev_null_raw_program(cg2, monkeypatch):
    # The brief's exact case with the runtime defaults switched off: /dev/null only.
    monkeypatch.setattr(B, "DEFAULT_ALLOW", ())
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    os.close(B.attach(cg2, B.compile_rules(rules)))
    got = run_in(cg2, [("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY)])
    assert got == ["ok", "EPERM"]


def test_char_major_read_only(cg2, monkeypatch):
    monkeypatch.setattr(B, "DEFAULT_ALLOW", ())
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": None, "access": "r"}]
    os.close(B.attach(cg2, B.compile_rules(rules)))
    got = run_in(cg2, [("/dev/zero", os.O_RDONLY), ("/dev/zero", os.O_WRONLY),
                       ("/dev/null", os.O_RDWR), ("/dev/null", os.O_RDONLY)])
    assert got == ["ok", "EPERM", "EPERM", "ok"]


def test_parent_cgroup_unaffected(cg2, monkeypatch):
    monkeypatch.setattr(B, "DEFAULT_ALLOW", ())
    os.close(B.attach(cg2, B.compile_rules([DENY_ALL])))
    # this process is not in cg2: its own opens still work
    assert _try("/dev/zero", os.O_RDONLY) == "ok"
    assert run_in(cg2, [("/dev/zero", os.O_RDONLY)]) == ["EPERM"]


def test_attach_to_missing_dir_fails():
    with pytest.raises(OSError):
        B.attach(os.path.join(ROOT, f"sangja-bpftest-missing-{uuid.uuid4().hex}"),
                 B.compile_rules([DENY_ALL]))
