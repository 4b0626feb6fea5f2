"""config.json mounts, /dev setup and linux.devices, observed from inside the container."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import add_mounts, bind, host_mountinfo, mount_at, parse_mountinfo, sh

pytestmark = pytest.mark.root


def _run_ok(runtime, bundle, **kw):
    r = runtime.run_container(bundle, **kw)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def _split(out: str) -> list[str]:
    return out.split("===\n")


@pytest.fixture
def host_tmpfs(tmp_path):
    """Factory: mount a tmpfs on a fresh host dir (optionally shared); unmounted in teardown."""
    mounted = []

    def factory(name, shared=False):
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sangja-test", str(d)],
                       check=True)
        mounted.append(d)
        if shared:
            subprocess.run(["mount", "--make-shared", str(d)], check=True)
        return d

    yield factory
    for d in reversed(mounted):
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_bind_rw_and_ro(runtime, make_bundle, host_dir):
    rw, ro = host_dir(), host_dir()
    (ro / "existing").write_text("ro-content\n")
    bundle = make_bundle(
        add_mounts(bind(rw, "/mnt/rw"), bind(ro, "/mnt/ro", "ro")),
        args=sh(
            "echo written > /mnt/rw/new && echo rw-ok; "
            "cat /mnt/ro/existing; "
            "echo x > /mnt/ro/new 2>/dev/null && echo ro-writable || echo ro-denied; "
            "echo ===; cat /proc/self/mountinfo"
        ),
    )
    out, mountinfo = _split(_run_ok(runtime, bundle))
    assert out.splitlines() == ["rw-ok", "ro-content", "ro-denied"]
    assert (rw / "new").read_text() == "written\n"
    assert not (ro / "new").exists()
    mounts = parse_mountinfo(mountinfo)
    assert "ro" in mount_at(mounts, "/mnt/ro")["options"]
    assert "rw" in mount_at(mounts, "/mnt/rw")["options"]


def test_rbind_carries_submounts_bind_does_not(runtime, make_bundle, host_dir, host_tmpfs):
    top = host_dir("top")
    sub = top / "sub"
    sub.mkdir()
    (sub / "under").write_text("hidden-by-submount\n")
    # mount a tmpfs at top/sub holding a marker file
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sangja-sub", str(sub)], check=True)
    try:
        (sub / "inner").write_text("submount\n")
        bundle = make_bundle(
            add_mounts(
                {"destination": "/mnt/r", "type": "bind", "source": str(top),
                 "options": ["rbind"]},
                {"destination": "/mnt/b", "type": "bind", "source": str(top),
                 "options": ["bind"]},
            ),
            args=sh("ls /mnt/r/sub; echo ===; ls /mnt/b/sub"),
        )
        rbind, plain = _split(_run_ok(runtime, bundle))
        assert rbind.split() == ["inner"]
        assert plain.split() == ["under"]
    finally:
        subprocess.run(["umount", "-l", str(sub)], capture_output=True)


def test_tmpfs_size_and_mode(runtime, make_bundle):
    bundle = make_bundle(
        add_mounts(
            {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=2m", "mode=1770", "nosuid", "nodev", "noexec"]}
        ),
        args=sh("stat -c %a /mnt/t; echo ===; cat /proc/self/mountinfo"),
    )
    mode, mountinfo = _split(_run_ok(runtime, bundle))
    assert mode.strip() == "1770"
    m = mount_at(parse_mountinfo(mountinfo), "/mnt/t")
    assert m["fstype"] == "tmpfs"
    assert "size=2048k" in m["super_options"], m["line"]
    assert "mode=1770" in m["super_options"], m["line"]
    for flag in ("nosuid", "nodev", "noexec"):
        assert flag in m["options"], m["line"]


def test_mount_flags_in_mountinfo(runtime, make_bundle, host_dir):
    src = host_dir()
    bundle = make_bundle(
        add_mounts(
            bind(src, "/mnt/flags", "nosuid", "nodev", "noexec"),
            bind(src, "/mnt/plain"),
        ),
        args=["cat", "/proc/self/mountinfo"],
    )
    mounts = parse_mountinfo(_run_ok(runtime, bundle))
    flags = mount_at(mounts, "/mnt/flags")["options"]
    for flag in ("nosuid", "nodev", "noexec"):
        assert flag in flags
    plain = mount_at(mounts, "/mnt/plain")["options"]
    assert "noexec" not in plain


def test_noexec_is_enforced(runtime, make_bundle, host_dir):
    src = host_dir()
    exe = src / "prog"
    exe.write_text("#!/bin/sh\necho executed\n")
    exe.chmod(0o755)
    bundle = make_bundle(
        add_mounts(bind(src, "/mnt/noexec", "noexec"), bind(src, "/mnt/exec")),
        args=sh("/mnt/exec/prog; /mnt/noexec/prog 2>/dev/null || echo refused"),
    )
    assert _run_ok(runtime, bundle).split() == ["executed", "refused"]


def test_mount_order_bind_inside_tmpfs(runtime, make_bundle, host_dir):
    src = host_dir()
    (src / "file").write_text("from-host\n")
    bundle = make_bundle(
        add_mounts(
            {"destination": "/mnt/outer", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]},
            bind(src, "/mnt/outer/inner"),
        ),
        args=sh("cat /mnt/outer/inner/file; echo ===; cat /proc/self/mountinfo"),
    )
    content, mountinfo = _split(_run_ok(runtime, bundle))
    assert content == "from-host\n"
    mounts = parse_mountinfo(mountinfo)
    outer = mount_at(mounts, "/mnt/outer")
    inner = mount_at(mounts, "/mnt/outer/inner")
    assert outer["fstype"] == "tmpfs"
    assert inner["parent"] == outer["id"], (outer["line"], inner["line"])


def test_later_mount_shadows_earlier(runtime, make_bundle, host_dir):
    a, b = host_dir(), host_dir()
    (a / "who").write_text("a\n")
    (b / "who").write_text("b\n")
    bundle = make_bundle(
        add_mounts(bind(a, "/mnt/same"), bind(b, "/mnt/same")),
        args=["cat", "/mnt/same/who"],
    )
    assert _run_ok(runtime, bundle) == "b\n"


def test_bind_single_file(runtime, make_bundle, tmp_path):
    host_file = tmp_path / "single.txt"
    host_file.write_text("single-file\n")
    bundle = make_bundle(
        add_mounts(bind(host_file, "/etc/single.txt", "ro")),
        args=sh("cat /etc/single.txt; test -f /etc/single.txt && echo regular"),
    )
    assert _run_ok(runtime, bundle).splitlines() == ["single-file", "regular"]


@pytest.mark.parametrize(
    "prop, expect",
    [("rprivate", "private"), ("rslave", "master"), ("rshared", "shared"),
     ("private", "private"), ("slave", "master"), ("shared", "shared")],
)
def test_bind_propagation_flags(runtime, make_bundle, host_tmpfs, prop, expect):
    src = host_tmpfs("shared-src", shared=True)
    (src / "f").write_text("x")
    bundle = make_bundle(
        add_mounts(bind(src, "/mnt/p", "rbind", prop)),
        args=["cat", "/proc/self/mountinfo"],
    )
    m = mount_at(parse_mountinfo(_run_ok(runtime, bundle)), "/mnt/p")
    optional = " ".join(m["optional"])
    if expect == "private":
        assert "shared:" not in optional and "master:" not in optional, m["line"]
    elif expect == "master":
        assert "master:" in optional and "shared:" not in optional, m["line"]
    else:
        assert "shared:" in optional, m["line"]


def test_slave_mount_receives_host_mounts(runtime, make_bundle, host_tmpfs, tmp_path):
    """A mount made on the host under an rslave bind shows up inside the running container."""
    src = host_tmpfs("prop-src", shared=True)
    (src / "later").mkdir()
    bundle = make_bundle(
        add_mounts(bind(src, "/mnt/p", "rbind", "rslave")),
        args=sh("while [ ! -e /mnt/p/later/marker ]; do sleep 0.1; done; echo seen"),
    )
    proc = runtime.spawn("run", "--bundle", bundle, "t-prop-" + os.urandom(4).hex())
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sangja-late",
                        str(src / "later")], check=True)
        (src / "later" / "marker").write_text("m")
        r = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["umount", "-l", str(src / "later")], capture_output=True)
    assert r.returncode == 0, r
    assert r.stdout == "seen\n"


@pytest.mark.parametrize("prop", ["private", "rprivate", "slave", "rslave", "shared", "rshared"])
def test_rootfs_propagation_accepted(runtime, make_bundle, prop):
    def set_prop(config):
        config["linux"]["rootfsPropagation"] = prop

    mounts = parse_mountinfo(
        _run_ok(runtime, make_bundle(set_prop, args=["cat", "/proc/self/mountinfo"]))
    )
    root = mount_at(mounts, "/")
    optional = " ".join(root["optional"])
    # Only "accepted" is contractual; the resulting peer groups depend on the host's own
    # propagation (runc 1.1.5 shows no shared: tag on / even for "shared" on this kind of host).
    if "private" in prop:
        assert "shared:" not in optional and "master:" not in optional, root["line"]
    else:
        assert root["fstype"]


DEVICES = {
    "null": "1:3",
    "zero": "1:5",
    "full": "1:7",
    "random": "1:8",
    "urandom": "1:9",
    "tty": "5:0",
}


def test_default_devices(runtime, make_bundle):
    script = "; ".join(
        f"echo {name} $(stat -c '%F %t:%T %a' /dev/{name})" for name in DEVICES
    )
    out = _run_ok(runtime, make_bundle(args=sh(script)))
    seen = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        ftype, majmin, mode = rest.rsplit(" ", 2)
        seen[name] = (ftype, ":".join(str(int(x, 16)) for x in majmin.split(":")), mode)
    for name, majmin in DEVICES.items():
        assert seen[name][0] == "character special file", (name, seen[name])
        assert seen[name][1] == majmin, (name, seen[name])
        assert seen[name][2] == "666", (name, seen[name])


def test_default_devices_usable(runtime, make_bundle):
    bundle = make_bundle(
        args=sh(
            "echo x > /dev/null && echo null-ok; "
            "head -c 4 /dev/zero | wc -c; "
            "head -c 4 /dev/urandom | wc -c; "
            "echo x > /dev/full 2>/dev/null || echo full-enospc"
        )
    )
    assert _run_ok(runtime, bundle).split() == ["null-ok", "4", "4", "full-enospc"]


def test_dev_symlinks(runtime, make_bundle):
    names = ["fd", "stdin", "stdout", "stderr", "ptmx"]
    script = "; ".join(f"echo {n} $(readlink /dev/{n})" for n in names)
    out = _run_ok(runtime, make_bundle(args=sh(script)))
    links = dict(line.split(" ", 1) for line in out.splitlines())
    assert links == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
    }


def test_dev_is_tmpfs_with_pts_shm_mqueue(runtime, make_bundle):
    mounts = parse_mountinfo(_run_ok(runtime, make_bundle(args=["cat", "/proc/self/mountinfo"])))
    assert mount_at(mounts, "/dev")["fstype"] == "tmpfs"
    assert mount_at(mounts, "/dev/pts")["fstype"] == "devpts"
    assert mount_at(mounts, "/dev/shm")["fstype"] == "tmpfs"
    assert mount_at(mounts, "/dev/mqueue")["fstype"] == "mqueue"
    assert mount_at(mounts, "/sys")["fstype"] == "sysfs"
    assert "ro" in mount_at(mounts, "/sys")["options"]


def test_linux_devices_entry(runtime, make_bundle):
    def add_device(config):
        config["linux"]["devices"] = [
            {"path": "/dev/sangja-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o640, "uid": 0, "gid": 5},
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
             "fileMode": 0o666, "uid": 0, "gid": 0},
        ]

    bundle = make_bundle(
        add_device,
        args=sh("stat -c '%F %t:%T %a %u:%g' /dev/sangja-null /dev/fuse"),
    )
    lines = _run_ok(runtime, bundle).splitlines()
    assert lines[0] == "character special file 1:3 640 0:5"
    assert lines[1] == "character special file a:e5 666 0:0"


def test_linux_devices_cgroup_allow(runtime, make_bundle):
    """A device listed in linux.devices and allowed in resources.devices can be opened."""
    def add_device(config):
        config["linux"]["devices"] = [
            {"path": "/dev/sangja-zero", "type": "c", "major": 1, "minor": 5,
             "fileMode": 0o666, "uid": 0, "gid": 0},
        ]
        config["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
        )

    bundle = make_bundle(add_device, args=sh("head -c 3 /dev/sangja-zero | wc -c"))
    assert _run_ok(runtime, bundle).strip() == "3"


def test_symlink_destination_stays_inside_rootfs(runtime, make_bundle, tmp_path):
    victim = tmp_path / "host-victim"
    victim.mkdir()
    (victim / "keep").write_text("untouched\n")
    bundle = make_bundle(
        add_mounts(
            {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        ),
        args=sh("echo pwned > /evil/pwned; ls /evil"),
    )
    os.symlink(str(victim), bundle / "rootfs" / "evil")
    r = runtime.run_container(bundle)
    # Whether the runtime refuses or confines the mount, the host dir must be untouched.
    assert sorted(os.listdir(victim)) == ["keep"]
    assert (victim / "keep").read_text() == "untouched\n"
    assert str(victim) not in host_mountinfo()
    if r.returncode == 0:
        assert r.stdout.split() == ["pwned"]


def test_symlink_destination_relative_escape(runtime, make_bundle, tmp_path):
    victim = tmp_path / "host-victim2"
    victim.mkdir()
    bundle = make_bundle(
        add_mounts(
            {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        ),
        args=sh("touch /evil/pwned"),
    )
    # ../../../.. from inside the rootfs climbs to / if followed on the host
    depth = len((bundle / "rootfs").parts) - 1
    os.symlink("../" * depth + str(victim).lstrip("/"), bundle / "rootfs" / "evil")
    runtime.run_container(bundle)
    assert os.listdir(victim) == []
    assert str(victim) not in host_mountinfo()
