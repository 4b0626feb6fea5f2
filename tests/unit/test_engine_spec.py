"""Unit tests for sangja.engine.spec (and users, seccomp_profile, etc_files): the
config.json an engine container gets, checked field by field against Docker's rules, and
checked valid by the runtime's own config validation."""

from __future__ import annotations

import os

import pytest

from sangja.engine import docker_defaults as dd
from sangja.engine import etc_files, seccomp_profile, spec, users
from sangja.engine.options import ContainerOptions, DeviceRequest, Ulimit
from sangja.engine.spec import ResolvedMount, SpecError, build_spec
from sangja.errors import SangjaError

DOCKER_DEFAULT_MASK = 0x00000000A80425FB

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
broken:x:notanumber:0::/:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
tty:x:5:alice
alice:x:1000:
bob:x:1001:
wheel:x:10:alice,bob
audio:x:29:bob
nogroup:x:65534:
"""


def mask(names) -> int:
    from sangja.linux.capabilities import NUMBERS

    return sum(1 << NUMBERS[n] for n in names)


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.fixture
def build(tmp_path, rootfs):
    """build(opts_kwargs..., image=..., mounts=..., init_path=...) -> spec dict."""
    counter = iter(range(1000))

    def factory(image=None, mounts=None, init_path=None, root=None, cid=None, **kw):
        kw.setdefault("command", ["sh"])
        opts = ContainerOptions(image="busybox", **kw)
        n = next(counter)
        return build_spec(opts, image if image is not None else {}, container_id=cid or
                          f"0123456789abcdef{n:04d}", rootfs=str(root or rootfs),
                          container_dir=str(tmp_path / f"ctr{n}"), mounts=mounts,
                          init_path=init_path)

    return factory


def validate(d: dict) -> None:
    """The runtime's own checks: the OCI model, then what sangja-runtime can honour."""
    from sangja.oci.runtime_spec import Spec
    from sangja.runtime.bundle import check_supported

    check_supported(Spec(d))


# ------------------------------------------------------------------------ entrypoint/cmd

IMG_CMD = {"Cmd": ["sh"]}
IMG_EP = {"Entrypoint": ["/ep.sh", "-x"], "Cmd": ["serve"]}


@pytest.mark.parametrize("image,entrypoint,command,expected", [
    (IMG_CMD, None, [], ["sh"]),
    (IMG_CMD, None, ["echo", "hi"], ["echo", "hi"]),
    (IMG_EP, None, [], ["/ep.sh", "-x", "serve"]),
    (IMG_EP, None, ["run"], ["/ep.sh", "-x", "run"]),
    (IMG_EP, ["/bin/true"], [], ["/bin/true"]),  # --entrypoint drops the image's Cmd
    (IMG_EP, ["/bin/echo"], ["a", "b"], ["/bin/echo", "a", "b"]),
    (IMG_EP, [], ["ls", "/"], ["ls", "/"]),  # --entrypoint "" with a command
    (IMG_EP, [""], ["ls"], ["ls"]),
    ({"Entrypoint": ["/ep"]}, None, [], ["/ep"]),
])
def test_args(image, entrypoint, command, expected):
    opts = ContainerOptions(image="x", entrypoint=entrypoint, command=command)
    assert spec.command_args(opts, image) == expected


@pytest.mark.parametrize("image,entrypoint,command", [
    ({}, None, []),
    (IMG_EP, [], []),  # --entrypoint "" and no command: the image's Cmd is not used
    ({"Entrypoint": None, "Cmd": None}, None, []),
])
def test_no_command(image, entrypoint, command):
    with pytest.raises(SangjaError) as e:
        spec.command_args(ContainerOptions(image="x", entrypoint=entrypoint,
                                           command=command), image)
    assert str(e.value) == "no command specified"
    assert e.value.engine_exit_code == 125


def test_init_prepends_and_mounts(build):
    s = build(image=IMG_EP, command=[], init=True, init_path="/usr/bin/tini-static")
    assert s["process"]["args"] == [dd.INIT_PATH_IN_CONTAINER, "--", "/ep.sh", "-x", "serve"]
    m = [m for m in s["mounts"] if m["destination"] == dd.INIT_PATH_IN_CONTAINER]
    assert m == [{"destination": "/sbin/sangja-init", "type": "bind",
                  "source": "/usr/bin/tini-static", "options": ["bind", "ro"]}]
    validate(s)


# --------------------------------------------------------------------------------- env


@pytest.mark.parametrize("image_env,user_env,tty,expected", [
    ([], [], False, [dd.DEFAULT_PATH_ENV, "HOSTNAME=h"]),
    ([], [], True, [dd.DEFAULT_PATH_ENV, "HOSTNAME=h", "TERM=xterm"]),
    (["PATH=/bin", "A=1"], [], False, ["PATH=/bin", "HOSTNAME=h", "A=1"]),
    (["A=1", "B=2"], ["B=3", "C=4"], False,
     [dd.DEFAULT_PATH_ENV, "HOSTNAME=h", "B=3", "C=4", "A=1"]),
    (["A=1"], ["A"], False, [dd.DEFAULT_PATH_ENV, "HOSTNAME=h"]),  # bare KEY unsets
    ([], ["TERM=dumb", "HOSTNAME=x"], True, [dd.DEFAULT_PATH_ENV, "HOSTNAME=x", "TERM=dumb"]),
    (["X=a=b"], [], False, [dd.DEFAULT_PATH_ENV, "HOSTNAME=h", "X=a=b"]),
])
def test_env(image_env, user_env, tty, expected):
    opts = ContainerOptions(image="x", env=user_env, tty=tty)
    assert spec.environment(opts, {"Env": image_env}, "h") == expected


@pytest.mark.parametrize("bad", ["=x", ""])
def test_env_invalid(bad):
    with pytest.raises(SpecError, match="invalid environment variable"):
        spec.environment(ContainerOptions(image="x", env=[bad]), {}, "h")


def test_env_hostname_and_tty_in_spec(build):
    s = build(tty=True, hostname="web1")
    assert s["process"]["terminal"] is True
    assert "HOSTNAME=web1" in s["process"]["env"] and "TERM=xterm" in s["process"]["env"]
    assert s["hostname"] == "web1"


@pytest.mark.parametrize("workdir,image_wd,expected", [
    (None, None, "/"), (None, "/app", "/app"), ("/srv//x/", "/app", "/srv/x"),
    (None, "rel", "/rel"),
])
def test_cwd(workdir, image_wd, expected):
    opts = ContainerOptions(image="x", workdir=workdir)
    assert spec.working_dir(opts, {"WorkingDir": image_wd} if image_wd else {}) == expected


def test_cwd_relative_flag():
    with pytest.raises(SpecError, match="needs to be an absolute path"):
        spec.working_dir(ContainerOptions(image="x", workdir="rel"), {})


# -------------------------------------------------------------------------- capabilities


def test_default_caps_are_dockers():
    assert mask(dd.DEFAULT_CAPS) == DOCKER_DEFAULT_MASK


@pytest.mark.parametrize("add,drop,has,lacks", [
    ([], [], dd.DEFAULT_CAPS, ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]),
    (["NET_ADMIN"], [], ["CAP_NET_ADMIN", "CAP_CHOWN"], ["CAP_SYS_ADMIN"]),
    (["net_admin"], ["chown", "CAP_MKNOD"], ["CAP_NET_ADMIN"], ["CAP_CHOWN", "CAP_MKNOD"]),
    (["KILL"], ["ALL"], ["CAP_KILL"], ["CAP_CHOWN", "CAP_SETUID"]),
    (["ALL"], ["MKNOD"], ["CAP_SYS_ADMIN", "CAP_CHOWN"], ["CAP_MKNOD"]),
    ([], ["ALL"], [], list(dd.DEFAULT_CAPS)),
])
def test_caps_add_drop(add, drop, has, lacks):
    caps = spec.capability_list(ContainerOptions(image="x", cap_add=add, cap_drop=drop))
    assert set(has) <= set(caps)
    assert not set(lacks) & set(caps)
    assert len(caps) == len(set(caps))
    if drop == ["ALL"]:
        assert caps == [c for c in has]


def test_caps_unknown():
    with pytest.raises(SpecError, match='unknown capability: "CAP_FLY"'):
        spec.capability_list(ContainerOptions(image="x", cap_add=["fly"]))


def test_caps_all_is_what_the_engine_holds():
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    caps = spec.capability_list(ContainerOptions(image="x", privileged=True))
    if eff:
        assert mask(caps) == eff


@pytest.mark.parametrize("user,cap_add,uid,eff_empty", [
    (None, [], 0, False),
    ("root", [], 0, False),
    ("1000", [], 1000, True),
    ("alice", ["NET_ADMIN"], 1000, True),  # Docker: added caps stay in bounding only
    ("0:1000", [], 0, False),
])
def test_caps_by_user(build, user, cap_add, uid, eff_empty):
    s = build(user=user, cap_add=cap_add)
    caps = s["process"]["capabilities"]
    assert s["process"]["user"]["uid"] == uid
    assert set(caps["bounding"]) >= set(dd.DEFAULT_CAPS)
    assert (caps["effective"] == [] and caps["permitted"] == []) == eff_empty
    if not eff_empty:
        assert caps["effective"] == caps["bounding"] == caps["permitted"]
    assert "ambient" not in caps and "inheritable" not in caps
    validate(s)


def test_privileged(build):
    s = build(privileged=True, devices=[DeviceRequest("/dev/null", "/dev/null2")])
    lin = s["linux"]
    assert "seccomp" not in lin
    assert "maskedPaths" not in lin and "readonlyPaths" not in lin
    assert lin["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    paths = {d["path"] for d in lin["devices"]}
    assert "/dev/null" in paths and "/dev/null2" in paths
    assert "/dev/console" not in paths and not any(p.startswith("/dev/pts/") for p in paths)
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    cg = next(m for m in s["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert "ro" not in sysfs["options"] and "ro" not in cg["options"]
    assert s["process"]["capabilities"]["bounding"] == spec.all_capabilities()
    validate(s)


# -------------------------------------------------------------------------------- users


@pytest.mark.parametrize("user,group_add,uid,gid,gids,home", [
    ("", [], 0, 0, [0], "/root"),
    ("root", [], 0, 0, [0], "/root"),
    ("alice", [], 1000, 1000, [1000, 5, 10], "/home/alice"),
    ("1000", [], 1000, 1000, [1000, 5, 10], "/home/alice"),
    ("bob", ["audio", "4242", "tty"], 1001, 1001, [1001, 10, 29, 4242, 5], "/home/bob"),
    ("alice:wheel", [], 1000, 10, [10], "/home/alice"),  # explicit group: no supplementary
    ("alice:77", [], 1000, 77, [77], "/home/alice"),
    ("4000", [], 4000, 0, [0], "/"),  # numeric uid without an entry
    ("4000:4001", ["wheel"], 4000, 4001, [4001, 10], "/"),
])
def test_resolve_user(rootfs, user, group_add, uid, gid, gids, home):
    u = users.resolve(str(rootfs), user, group_add)
    assert (u.uid, u.gid, u.additional_gids, u.home) == (uid, gid, gids, home)


@pytest.mark.parametrize("user,group_add,message", [
    ("mallory", [], "unable to find user mallory: no matching entries in passwd file"),
    ("alice:nogrp", [], "unable to find group nogrp: no matching entries in group file"),
    ("alice", ["nogrp"], "unable to find group nogrp: no matching entries in group file"),
    ("broken", [], "unable to find user broken"),  # a malformed line never becomes uid 0
    ("99999999999", [], "uids and gids must be in range"),
])
def test_resolve_user_errors(rootfs, user, group_add, message):
    with pytest.raises(SangjaError, match=message) as e:
        users.resolve(str(rootfs), user, group_add)
    assert e.value.engine_exit_code == 125


def test_user_in_spec(build):
    s = build(user="alice", group_add=["audio"])
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 5, 10,
                                                                                  29]}


def test_no_passwd_file(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    assert users.resolve(str(root), "").uid == 0
    assert users.resolve(str(root), "123:456").additional_gids == [456]
    with pytest.raises(SangjaError, match="unable to find user root"):
        users.resolve(str(root), "root")


@pytest.fixture
def host_passwd(tmp_path):
    """A 'host' passwd file outside the rootfs with a user the rootfs does not have."""
    p = tmp_path / "host-etc" / "passwd"
    p.parent.mkdir()
    p.write_text("root:x:0:0:root:/root:/bin/sh\nhostonly:x:4321:4321::/:/bin/sh\n")
    (p.parent / "group").write_text("hostgrp:x:777:\n")
    return p


@pytest.mark.parametrize("how", ["absolute", "relative", "dir"])
def test_hostile_passwd_symlink_stays_in_rootfs(tmp_path, host_passwd, how):
    root = tmp_path / "evil"
    (root / "etc").mkdir(parents=True)
    if how == "absolute":
        # what a naive open() would follow straight to the host's file
        os.symlink(str(host_passwd), root / "etc" / "passwd")
        os.symlink(str(host_passwd.parent / "group"), root / "etc" / "group")
    elif how == "relative":
        up = "../" * (len(root.parts) + 2)
        os.symlink(up + str(host_passwd).lstrip("/"), root / "etc" / "passwd")
        os.symlink(up + str(host_passwd.parent / "group").lstrip("/"), root / "etc" / "group")
    else:
        os.rmdir(root / "etc")
        os.symlink(str(host_passwd.parent), root / "etc")  # the whole /etc
    with pytest.raises(SangjaError, match="unable to find user hostonly"):
        users.resolve(str(root), "hostonly")
    with pytest.raises(SangjaError, match="unable to find group hostgrp"):
        users.resolve(str(root), "0", ["hostgrp"])
    # the read itself, too: nothing of the host file comes back
    assert users.read_root_file(str(root), "/etc/passwd") is None


def test_passwd_symlink_inside_rootfs_is_followed(tmp_path):
    root = tmp_path / "ok"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "share").mkdir(parents=True)
    (root / "usr" / "share" / "passwd").write_text("svc:x:500:500::/srv:/bin/sh\n")
    os.symlink("/usr/share/passwd", root / "etc" / "passwd")
    assert users.resolve(str(root), "svc").uid == 500


def test_passwd_fifo_refused(tmp_path):
    root = tmp_path / "fifo"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "passwd")  # a blocking open would hang `sangja create`
    with pytest.raises(SangjaError, match="not a regular file"):
        users.resolve(str(root), "anyone")


def test_passwd_special_file_is_never_opened(tmp_path):
    """Refused from its O_PATH handle: not even opened for reading (opening a device node
    can act on the device: a watchdog starts its timer). inotify sees every real open."""
    import ctypes

    root = tmp_path / "special"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("alice:x:1000:1000::/:/bin/sh\n")
    os.mkfifo(root / "etc" / "group")
    libc = ctypes.CDLL(None, use_errno=True)
    ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert ino >= 0
    try:
        assert libc.inotify_add_watch(ino, str(root / "etc" / "group").encode(), 0x20) >= 0
        with pytest.raises(SangjaError, match="/etc/group of the container is not a regular"):
            users.resolve(str(root), "alice")
        with pytest.raises(BlockingIOError):
            os.read(ino, 4096)  # no IN_OPEN event
    finally:
        os.close(ino)


# ------------------------------------------------------------------------------- mounts


def dests(s):
    return [m["destination"] for m in s["mounts"]]


def test_default_mounts(build, tmp_path):
    s = build(shm_size=32 << 20)
    d = dests(s)
    assert d[:7] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                     "/dev/shm"]
    assert d[7:] == ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    shm = s["mounts"][6]
    assert shm["options"][-1] == f"size={32 << 20}" and "noexec" in shm["options"]
    for m in s["mounts"][7:]:
        assert m["type"] == "bind" and os.path.isfile(m["source"])
        assert m["source"].startswith(str(tmp_path))
    validate(s)


def test_user_mounts_sorted_and_replacing(build, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "hosts").write_text("1.2.3.4 x\n")
    ms = [
        ResolvedMount("bind", str(host), "/a/b/c", ["ro"]),
        ResolvedMount("tmpfs", None, "/a", ["size=1m", "exec"]),
        ResolvedMount("bind", str(host / "hosts"), "/etc/hosts", []),
        ResolvedMount("tmpfs", None, "/dev/shm", []),
        ResolvedMount("bind", str(host), "/a/b", ["bind", "rslave"], readonly=True),
        ResolvedMount("volume", str(host), "/etc", []),
    ]
    s = build(mounts=ms, init_path="/usr/bin/tini-static")
    d = dests(s)
    assert d.count("/etc/hosts") == 1 and d.count("/dev/shm") == 1
    user_part = d[6:]  # after the six defaults left (/dev/shm is the user's)
    depth = [p.count("/") for p in user_part]
    assert depth == sorted(depth), user_part  # parents before children
    assert d.index("/etc") < d.index("/etc/hosts") and d.index("/a") < d.index("/a/b") < \
        d.index("/a/b/c")
    by = {m["destination"]: m for m in s["mounts"]}
    assert by["/etc/hosts"]["source"] == str(host / "hosts")
    assert by["/dev/shm"]["source"] == "tmpfs"  # the user's tmpfs, not the default shm
    assert by["/a"]["options"] == ["nosuid", "nodev", "rprivate", "size=1m", "exec"]
    assert by["/a/b/c"]["options"] == ["rbind", "rprivate", "ro"]
    assert by["/a/b"]["options"] == ["bind", "rslave", "ro"]
    assert by["/etc"]["type"] == "bind" and by["/etc"]["options"] == ["rbind", "rprivate"]
    assert s["linux"]["rootfsPropagation"] == "rslave"  # for the rslave bind at /a/b
    validate(s)
    assert "rootfsPropagation" not in build()["linux"]


def test_user_dev_replaces_all_dev_defaults(build, tmp_path):
    s = build(mounts=[ResolvedMount("bind", str(tmp_path), "/dev", [])])
    assert [d for d in dests(s) if d.startswith("/dev")] == ["/dev"]


@pytest.mark.parametrize("dest,msg", [("/", "can't be '/'"), ("rel", "must be absolute")])
def test_bad_mount_destination(build, tmp_path, dest, msg):
    with pytest.raises(SpecError, match=msg):
        build(mounts=[ResolvedMount("bind", str(tmp_path), dest, [])])


def test_read_only_root(build):
    s = build(read_only=True)
    assert s["root"]["readonly"] is True
    by = {m["destination"]: m for m in s["mounts"]}
    for d in ("/sys", "/sys/fs/cgroup", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert "ro" in by[d]["options"], d
    for d in dd.READONLY_ROOT_EXEMPT:
        assert "ro" not in by[d]["options"], d
    validate(s)


# ------------------------------------------------------------------------------ seccomp

PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86",
                                                                   "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "always",
         "includes": {}, "excludes": {}},
        {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["both"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["not_on_arm"], "action": "SCMP_ACT_ALLOW",
         "excludes": {"arches": ["arm64"]}},
        {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
        {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
        {"name": "single", "action": "SCMP_ACT_ERRNO", "errno": "EACCES"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}


def names_of(sc):
    return [n for r in sc["syscalls"] for n in r["names"]]


@pytest.mark.parametrize("caps,arch,native,kernel,present,absent,arches", [
    ([], "amd64", "SCMP_ARCH_X86_64", (6, 1),
     ["read", "bpf", "arch_prctl", "not_on_arm", "new_call", "single", "personality"],
     ["both", "arm_only", "old_call"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    (["CAP_SYS_ADMIN"], "amd64", "SCMP_ARCH_X86_64", (6, 1), ["bpf"], ["both"], None),
    (["CAP_SYS_ADMIN", "CAP_BPF"], "amd64", "SCMP_ARCH_X86_64", (6, 1), ["both"], [], None),
    ([], "arm64", "SCMP_ARCH_AARCH64", (4, 4),
     ["arm_only", "old_call"], ["arch_prctl", "not_on_arm", "new_call"],
     ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    ([], "amd64", "SCMP_ARCH_X86_64", (5, 8), ["new_call"], ["old_call"], None),
])
def test_seccomp_conditions(caps, arch, native, kernel, present, absent, arches):
    sc = seccomp_profile.to_oci(PROFILE, caps, arch=arch, native=native, kernel=kernel)
    n = names_of(sc)
    for x in present:
        assert x in n, x
    for x in absent:
        assert x not in n, x
    if arches:
        assert sc["architectures"] == arches
    bpf = [r for r in sc["syscalls"] if r["names"] == ["bpf"]]
    assert len(bpf) == 1  # exactly one of the allow/deny pair survives
    assert bpf[0]["action"] == ("SCMP_ACT_ALLOW" if "CAP_SYS_ADMIN" in caps else
                                "SCMP_ACT_ERRNO")
    single = next(r for r in sc["syscalls"] if r["names"] == ["single"])
    assert single["errnoRet"] == 13
    for r in sc["syscalls"]:
        assert set(r) <= {"names", "action", "errnoRet", "args"}
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1


def test_seccomp_oci_form_passes_through():
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    assert seccomp_profile.to_oci(oci, []) == oci


@pytest.mark.parametrize("profile,msg", [
    ({**PROFILE, "architectures": ["SCMP_ARCH_X86_64"]}, "use either 'architectures'"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}, "both 'name'"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW",
                    "includes": {"minKernel": "x"}}]}, "invalid minKernel"),
])
def test_seccomp_bad_profiles(profile, msg):
    with pytest.raises(SangjaError, match=msg):
        seccomp_profile.to_oci(profile, [], arch="amd64", native="SCMP_ARCH_X86_64",
                               kernel=(6, 1))


def test_seccomp_empty_profile_is_off():
    assert seccomp_profile.to_oci({}, []) is None


needs_profile = pytest.mark.skipif(not os.path.exists(dd.DEFAULT_SECCOMP_PROFILE),
                                   reason="containers-common's seccomp.json is not installed")


@needs_profile
def test_default_profile_follows_caps():
    plain = seccomp_profile.for_container(None, dd.DEFAULT_CAPS)
    admin = seccomp_profile.for_container(None, [*dd.DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO"
    assert plain["architectures"][0] == seccomp_profile.host_arch()[1]

    def action(sc, name):
        return [r["action"] for r in sc["syscalls"] if name in r["names"]]

    assert action(plain, "bpf") == ["SCMP_ACT_ERRNO"]
    assert action(admin, "bpf") == ["SCMP_ACT_ALLOW"]
    assert "SCMP_ACT_ALLOW" in action(plain, "chroot")  # CAP_SYS_CHROOT is a default cap
    assert seccomp_profile.for_container("unconfined", dd.DEFAULT_CAPS) is None
    assert seccomp_profile.for_container(None, dd.DEFAULT_CAPS, privileged=True) is None


@needs_profile
def test_default_profile_fast():
    import time

    seccomp_profile.for_container(None, dd.DEFAULT_CAPS)  # warm the imports
    best = min(_timed(lambda: seccomp_profile.for_container(None, dd.DEFAULT_CAPS), time)
               for _ in range(5))
    assert best < 0.005, f"converting the default profile took {best * 1000:.1f} ms"


def _timed(fn, time):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_user_profile_file(build, tmp_path):
    p = tmp_path / "prof.json"
    import json

    p.write_text(json.dumps(PROFILE))
    s = build(seccomp=str(p))
    assert "bpf" in names_of(s["linux"]["seccomp"])
    with pytest.raises(SangjaError, match="opening seccomp profile"):
        build(seccomp=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(SangjaError, match="decoding seccomp profile"):
        build(seccomp=str(tmp_path / "bad.json"))


@needs_profile
def test_spec_has_default_seccomp(build):
    s = build()
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "seccomp" not in build(seccomp="unconfined")["linux"]
    validate(s)


# ---------------------------------------------------------------------- linux, resources


def test_masked_and_readonly_paths(build):
    lin = build()["linux"]
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
              "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
              "/proc/acpi", "/proc/asound", "/proc/latency_stats", "/proc/timer_stats",
              "/proc/interrupts"):
        assert p in lin["maskedPaths"]
    assert lin["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                    "/proc/sysrq-trigger"]


def test_device_rules(build):
    rules = build(devices=[DeviceRequest("/dev/null", "/dev/mynull", "rw")])["linux"]
    res = rules["resources"]["devices"]
    assert res[0] == {"allow": False, "access": "rwm"}
    allowed = {(r.get("type"), r.get("major"), r.get("minor")) for r in res[1:]}
    assert ("c", 5, 1) not in allowed  # never the host console
    assert ("c", 10, 200) not in allowed  # tun is not a Docker default
    for dev in [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
                ("c", 5, 2), ("c", 136, None), ("c", None, None), ("b", None, None)]:
        assert dev in allowed, dev
    assert res[-1] == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    node = rules["devices"][0]
    assert node["path"] == "/dev/mynull" and (node["major"], node["minor"]) == (1, 3)


def test_device_not_a_device(build, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(SpecError, match="not a device node"):
        build(devices=[DeviceRequest(str(f), "/dev/x")])


@pytest.mark.parametrize("kw,expected", [
    ({}, {}),
    ({"memory": 64 << 20}, {"memory": {"limit": 64 << 20, "swap": 128 << 20}}),
    ({"memory": 64 << 20, "memory_swap": -1}, {"memory": {"limit": 64 << 20, "swap": -1}}),
    ({"memory": 64 << 20, "memory_swap": 100 << 20},
     {"memory": {"limit": 64 << 20, "swap": 100 << 20}}),
    ({"cpus": 0.5, "cpu_shares": 512, "cpuset_cpus": "0"},
     {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}}),
    ({"pids_limit": 100}, {"pids": {"limit": 100}}),
    ({"pids_limit": 0}, {"pids": {"limit": -1}}),
])
def test_resources(monkeypatch, kw, expected):
    monkeypatch.setattr(spec, "swap_limit_supported", lambda: True)
    res = spec.resources(ContainerOptions(image="x", **kw), [])
    res.pop("devices")
    assert res == expected


@pytest.mark.parametrize("kw,msg", [
    ({"memory_swap": 1 << 30}, "always set the Memory limit"),
    ({"memory": 64 << 20, "memory_swap": 32 << 20}, "should be larger than memory"),
    ({"memory": 1 << 20}, "Minimum memory limit"),
    ({"cpus": 0.001}, "range of CPUs"),
    ({"cpus": 100000.0}, "range of CPUs"),
])
def test_resource_errors(monkeypatch, kw, msg):
    monkeypatch.setattr(spec, "swap_limit_supported", lambda: True)
    with pytest.raises(SpecError, match=msg):
        spec.resources(ContainerOptions(image="x", **kw), [])


def test_no_swap_accounting(monkeypatch):
    monkeypatch.setattr(spec, "swap_limit_supported", lambda: False)
    res = spec.resources(ContainerOptions(image="x", memory=64 << 20), [])
    assert res["memory"] == {"limit": 64 << 20}  # Docker drops the implicit swap limit
    with pytest.raises(SpecError, match="swap"):
        spec.resources(ContainerOptions(image="x", memory=64 << 20, memory_swap=1 << 30), [])


def test_rlimits_and_misc(build):
    s = build(ulimits=[Ulimit("nofile", 100, 200), Ulimit("core", -1, -1)],
              no_new_privileges=True, annotations={"a": "b"}, sysctls={"net.core.somaxconn":
                                                                       "100"})
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
        {"type": "RLIMIT_CORE", "hard": (1 << 64) - 1, "soft": (1 << 64) - 1}]
    assert s["process"]["noNewPrivileges"] is True
    assert s["annotations"] == {"a": "b"}
    assert s["linux"]["cgroupsPath"].startswith("/sangja/0123456789abcdef")
    assert s["linux"]["sysctl"]["net.core.somaxconn"] == "100"
    validate(s)


def test_bad_ulimit():
    with pytest.raises(SpecError, match="invalid ulimit type"):
        spec.rlimits(ContainerOptions(image="x", ulimits=[Ulimit("bogus", 1, 1)]))


@pytest.mark.parametrize("mode,cgroupns", [("v2", True), ("v1", False), ("hybrid", False)])
def test_namespaces(monkeypatch, mode, cgroupns):
    from sangja.linux import cgroups

    monkeypatch.setattr(cgroups, "mode", lambda: mode)
    types = [n["type"] for n in spec.namespaces(ContainerOptions(image="x"))]
    assert set(types) >= {"mount", "network", "uts", "pid", "ipc"}
    assert ("cgroup" in types) == cgroupns
    host = [n["type"] for n in spec.namespaces(ContainerOptions(image="x", network="host"))]
    assert "network" not in host and "uts" in host
    joined = spec.namespaces(ContainerOptions(image="x", network="bridge"), "/run/x/netns")
    assert {"type": "network", "path": "/run/x/netns"} in joined
    with pytest.raises(SpecError, match="needs its network namespace"):
        spec.namespaces(ContainerOptions(image="x", network="container:web"))


def test_host_network(build):
    s = build(network="host")
    assert s["hostname"] == os.uname().nodename
    assert "network" not in [n["type"] for n in s["linux"]["namespaces"]]
    assert not any(k.startswith("net.") for k in s["linux"].get("sysctl", {}))
    with pytest.raises(SpecError, match="not allowed in host network namespace"):
        build(network="host", sysctls={"net.ipv4.ip_forward": "1"})
    validate(s)


def test_private_netns_sysctls(build):
    sc = build()["linux"].get("sysctl", {})
    if os.path.exists("/proc/sys/net/ipv4/ip_unprivileged_port_start"):
        assert sc["net.ipv4.ip_unprivileged_port_start"] == "0"
    if os.path.exists("/proc/sys/net/ipv4/ping_group_range"):
        assert sc["net.ipv4.ping_group_range"] == "0 2147483647"


@pytest.mark.parametrize("cid", ["../x", "a/b", "", ".."])
def test_bad_container_id(build, cid):
    with pytest.raises(SpecError, match="invalid container id"):
        build(cid=cid or "\0")


# ---------------------------------------------------------------------------- etc files


def test_etc_files_written(build, tmp_path):
    s = build(hostname="box")
    by = {m["destination"]: m["source"] for m in s["mounts"]}
    assert open(by["/etc/hostname"]).read() == "box\n"
    hosts = open(by["/etc/hosts"]).read()
    assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                            "ip6-loopback\n")
    assert "ff02::2\tip6-allrouters" in hosts
    for p in by["/etc/hosts"], by["/etc/hostname"], by["/etc/resolv.conf"]:
        assert os.stat(p).st_mode & 0o777 == 0o644
    assert not [f for f in os.listdir(os.path.dirname(by["/etc/hosts"])) if ".tmp" in f]


@pytest.mark.parametrize("host,expected", [
    ("nameserver 127.0.0.1\nnameserver 10.0.0.2\nsearch example.com\n",
     "nameserver 10.0.0.2\nsearch example.com\n"),
    ("nameserver 127.0.0.1\noptions ndots:2\n",
     "options ndots:2\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
    ("nameserver ::1\nnameserver fd00::1\nnameserver 1.1.1.1\n", "nameserver 1.1.1.1\n"),
    ("", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
])
def test_resolv_conf_private_network(tmp_path, host, expected):
    f = tmp_path / "resolv.conf"
    f.write_text(host)
    assert etc_files.resolv_conf("none", str(f)) == expected
    assert etc_files.resolv_conf("host", str(f)) == host


def test_resolv_conf_systemd_resolved(tmp_path):
    etc = tmp_path / "etc-resolv.conf"
    real = tmp_path / "run-resolv.conf"
    etc.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    real.write_text("nameserver 192.0.2.1\n")
    assert etc_files.host_resolv_conf_path(str(etc), str(real)) == str(real)
    etc.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.9\n")
    assert etc_files.host_resolv_conf_path(str(etc), str(real)) == str(etc)
    os.unlink(real)
    etc.write_text("nameserver 127.0.0.53\n")
    assert etc_files.host_resolv_conf_path(str(etc), str(real)) == str(etc)


def test_hosts_host_network(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 localhost\n10.1.1.1 myhost\n")
    assert etc_files.hosts("host", "h", str(f)) == f.read_text()
    assert "127.0.0.1\tbox" in etc_files.hosts("none", "box", hostname_entry=True)
    assert "box" not in etc_files.hosts("none", "box")  # Docker: no entry without an address


def test_refused_flags_write_nothing(tmp_path, rootfs):
    ctr = tmp_path / "ctr-refused"
    with pytest.raises(SpecError, match="unknown capability"):
        build_spec(ContainerOptions(image="x", command=["sh"], cap_add=["fly"]), {},
                   container_id="abc", rootfs=str(rootfs), container_dir=str(ctr))
    assert not ctr.exists()
