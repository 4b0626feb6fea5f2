"""`sangja run/create` flags -> ContainerOptions: Docker's syntax, values and errors."""

import os
import re
import sys

import pytest

from sangja.cli.engine.common import UsageError
from sangja.cli.engine.run_flags import CREATE_FLAGS, RUN_FLAGS, InvalidOption, parse_run_args
from sangja.engine import units
from sangja.engine.options import (
    ContainerOptions,
    DeviceRequest,
    MountRequest,
    RestartPolicy,
    Ulimit,
)

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _two_cpus(monkeypatch):
    """A host with CPUs 0-1, whatever the test machine has."""
    monkeypatch.setattr(units, "host_cpu_count", lambda: 2)
    monkeypatch.setattr(units, "online_cpus", lambda: {0, 1})


def run(*args: str) -> ContainerOptions:
    return parse_run_args([*args, "img"])


# ---------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0), ("512", 512), ("1b", 1), ("1B", 1), ("1k", 1024), ("1K", 1024),
        ("1kb", 1024), ("1KiB", 1024), ("1kib", 1024), ("64m", 64 * MiB), ("64M", 64 * MiB),
        ("64mb", 64 * MiB), ("64MiB", 64 * MiB), ("1g", 1 << 30), ("2G", 2 << 30),
        ("1t", 1 << 40), ("1p", 1 << 50), ("1.5g", 3 << 29), ("0.5k", 512), ("10 m", 10 * MiB),
    ],
)
def test_ram_in_bytes(text, expected):
    assert units.ram_in_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["", "m", "-1", "1x", "1e", "1kk", "1.2.3m", "1.m", ".5m", "1i", "1ib", "1  m",
             "1mbb", "١٢", "abc", "1 "],
)
def test_ram_in_bytes_bad(text):
    if text == "1 ":  # trailing blanks are forgiven
        assert units.ram_in_bytes(text) == 1
        return
    with pytest.raises(ValueError, match="invalid size"):
        units.ram_in_bytes(text)


@pytest.mark.parametrize(("text", "expected"),
                         [("10m", 10_000_000), ("1k", 1000), ("1KiB", 1000), ("5", 5)])
def test_from_human_size_is_decimal(text, expected):
    assert units.from_human_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", {0}), ("0-2", {0, 1, 2}), ("0-2,4", {0, 1, 2, 4}), ("1,3,5-6", {1, 3, 5, 6}),
     (" 1 , 2 ", {1, 2})],
)
def test_cpu_list(text, expected):
    assert units.parse_cpu_list(text) == expected


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "2-1", "1,,2", "1-2-3", "0x1"])
def test_cpu_list_bad(text):
    with pytest.raises(ValueError):
        units.parse_cpu_list(text)


def test_format_cpu_list():
    assert units.format_cpu_list({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert units.format_cpu_list(set()) == ""


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("-1", -1), ("+5", 5), ("42", 42)])
def test_parse_int(text, expected):
    assert units.parse_int(text) == expected


@pytest.mark.parametrize("text", ["", "-", "1.0", "1_000", "0x10", "1e3", "٣"])
def test_parse_int_bad(text):
    with pytest.raises(ValueError):
        units.parse_int(text)


# ---------------------------------------------------------------------------- parsing


def test_defaults():
    o = parse_run_args(["busybox"])
    assert o == ContainerOptions(image="busybox")


@pytest.mark.parametrize(
    ("args", "checks"),
    [
        (["-dit"], {"detach": True, "interactive": True, "tty": True}),
        (["-d", "-i", "-t"], {"detach": True, "interactive": True, "tty": True}),
        (["--detach", "--interactive", "--tty"],
         {"detach": True, "interactive": True, "tty": True}),
        (["--rm"], {"rm": True}),
        (["--rm=false"], {"rm": False}),
        (["--rm", "--rm=false"], {"rm": False}),
        (["--rm=true"], {"rm": True}),
        (["--read-only"], {"read_only": True}),
        (["--privileged"], {"privileged": True}),
        (["--init"], {"init": True}),
        (["-it", "--init=0"], {"interactive": True, "tty": True, "init": False}),
    ],
)
def test_booleans(args, checks):
    o = run(*args)
    for k, v in checks.items():
        assert getattr(o, k) == v


@pytest.mark.parametrize(
    "args",
    [["-e", "FOO=1"], ["-eFOO=1"], ["-e=FOO=1"], ["--env", "FOO=1"], ["--env=FOO=1"]],
)
def test_env_spellings(args):
    assert run(*args).env == ["FOO=1"]


def test_command_after_image_is_verbatim():
    o = parse_run_args(["--rm", "img", "sh", "-c", "x", "-e", "y"])
    assert o.image == "img"
    assert o.command == ["sh", "-c", "x", "-e", "y"]
    assert o.env == []


def test_command_after_image_keeps_double_dash_and_flags():
    o = parse_run_args(["img", "--rm", "--", "-d"])
    assert o.command == ["--rm", "--", "-d"]
    assert not o.rm and not o.detach


def test_double_dash_before_image():
    o = parse_run_args(["-d", "--", "img", "ls"])
    assert (o.image, o.command, o.detach) == ("img", ["ls"], True)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], "requires at least 1 argument"),
        (["-d"], "requires at least 1 argument"),
        (["--rm", "--"], "requires at least 1 argument"),
        ([""], "image name is empty"),
        (["--bogus", "img"], "unknown flag: --bogus"),
        (["-x", "img"], "unknown shorthand flag"),
        (["-dx", "img"], "unknown shorthand flag"),
        (["--name"], "flag needs an argument: --name"),
        (["-e"], "flag needs an argument: 'e' in -e"),
        (["--rm=maybe", "img"], 'invalid argument "maybe" for "--rm" flag: strconv.ParseBool'),
        (["--rm=yes", "img"], 'invalid argument "yes" for "--rm" flag'),
    ],
)
def test_usage_errors(args, match):
    with pytest.raises(UsageError, match=match):
        parse_run_args(args)


def test_create_rejects_detach():
    with pytest.raises(UsageError, match="unknown shorthand flag"):
        parse_run_args(["-d", "img"], command="create")
    with pytest.raises(UsageError, match="unknown flag: --detach"):
        parse_run_args(["--detach", "img"], command="create")
    with pytest.raises(UsageError, match='"sangja create" requires'):
        parse_run_args([], command="create")


def test_create_takes_the_rest():
    o = parse_run_args(["-it", "--rm", "--name", "web", "img"], command="create")
    assert (o.interactive, o.tty, o.rm, o.name, o.detach) == (True, True, True, "web", False)
    assert {f.dest for f in RUN_FLAGS} - {f.dest for f in CREATE_FLAGS} == {
        "detach", "sig_proxy", "detach_keys"}


def test_every_flag_has_a_unique_name():
    names = [n for f in RUN_FLAGS for n in f.names]
    assert len(names) == len(set(names))
    for required in ["-d", "-i", "-t", "--rm", "--name", "-e", "--env-file", "-w", "-u",
                     "--entrypoint", "-h", "-v", "--mount", "--tmpfs", "--read-only", "-m",
                     "--memory-swap", "--cpus", "-c", "--cpuset-cpus", "--pids-limit",
                     "--ulimit", "--cap-add", "--cap-drop", "--privileged", "--security-opt",
                     "--group-add", "--init", "--restart", "-l", "--label-file",
                     "--stop-signal", "--stop-timeout", "--pull", "--runtime", "--network",
                     "--net", "--sysctl", "--device", "--shm-size", "--log-driver",
                     "--log-opt", "--annotation", "-a", "-p", "--expose", "--platform"]:
        assert required in names


def test_errors_are_exit_125_sangja_errors():
    from sangja.errors import SangjaError

    with pytest.raises(InvalidOption) as e:
        run("-m", "x")
    assert isinstance(e.value, SangjaError)
    assert e.value.exit_code == 125
    assert "\n" not in str(e.value)


def test_options_round_trip_through_dict():
    o = run("-v", "/tmp:/x:ro", "--device", "/dev/null", "--ulimit", "nofile=10:20",
            "--restart", "always", "-a", "stdout", "--expose", "80")
    assert ContainerOptions.from_dict(o.to_dict()) == o


# ---------------------------------------------------------------------------- identity


@pytest.mark.parametrize(("value", "expected"),
                         [("web", "web"), ("/web", "web"), ("a1_b.c-d", "a1_b.c-d"),
                          ("9x", "9x")])
def test_name(value, expected):
    assert run("--name", value).name == expected


@pytest.mark.parametrize("value", ["", "a", "-web", "_x", "web app", "wéb", "a/b", "/"])
def test_name_bad(value):
    with pytest.raises(InvalidOption, match=r'"--name" flag'):
        run("--name", value)


def test_workdir_user_hostname_entrypoint_group_add():
    o = run("-w", "/srv", "-u", "1000:1000", "-h", "box.local", "--entrypoint", "/bin/sh",
            "--group-add", "audio", "--group-add", "44", "--group-add", "audio")
    assert o.workdir == "/srv"
    assert o.user == "1000:1000"
    assert o.hostname == "box.local"
    assert o.entrypoint == ["/bin/sh"]
    assert o.group_add == ["audio", "44"]


@pytest.mark.parametrize(("value", "expected"),
                         [("", []), ("/bin/sh -c", ["/bin/sh -c"]), ("env", ["env"])])
def test_entrypoint(value, expected):
    assert run("--entrypoint", value).entrypoint == expected


def test_entrypoint_unset_is_none():
    assert run().entrypoint is None


@pytest.mark.parametrize("value", ["nobody", "0", "1000:1000", "app:staff", "0:0"])
def test_user(value):
    assert run("-u", value).user == value


def test_user_empty_is_image_default():
    assert run("-u", "").user is None


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("-w", "srv", '"-w, --workdir"'),
        ("-w", "", '"-w, --workdir"'),
        ("-u", "1000:", '"-u, --user"'),
        ("-u", ":0", '"-u, --user"'),
        ("-u", "a:b:c", '"-u, --user"'),
        ("-u", "a b", '"-u, --user"'),
        ("-h", "", '"-h, --hostname"'),
        ("-h", "x" * 65, '"-h, --hostname"'),
        ("-h", "-lead", '"-h, --hostname"'),
        ("-h", "a b", '"-h, --hostname"'),
        ("-h", "a..b", '"-h, --hostname"'),
        ("--group-add", "", '"--group-add"'),
        ("--group-add", "a:b", '"--group-add"'),
    ],
)
def test_identity_bad(flag, value, named):
    with pytest.raises(InvalidOption, match=named) as e:
        run(flag, value)
    assert f'"{value}"' in str(e.value)


# ---------------------------------------------------------------------------- env, labels


def test_env_bare_key_from_environment(monkeypatch):
    monkeypatch.setenv("SANGJA_T_SET", "v=1")
    monkeypatch.delenv("SANGJA_T_UNSET", raising=False)
    o = run("-e", "SANGJA_T_SET", "-e", "SANGJA_T_UNSET", "-e", "E=", "-e", "A=b=c")
    assert o.env == ["SANGJA_T_SET=v=1", "E=", "A=b=c"]


@pytest.mark.parametrize("value", ["=x", "="])
def test_env_bad(value):
    with pytest.raises(InvalidOption, match=r'"-e, --env" flag: invalid environment'):
        run("-e", value)


def test_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "here")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    f = tmp_path / "env"
    f.write_bytes(
        b"\xef\xbb\xbf# a comment\n"
        b"\n"
        b"   \n"
        b"A=1\n"
        b"  B=two words  \n"
        b"C=\n"
        b"D=x=y\r\n"
        b"FROM_HOST\n"
        b"NOT_SET_ANYWHERE\n"
        b"  # indented comment\n"
        b"E='quoted'"
    )
    o = run("--env-file", str(f), "-e", "A=override")
    assert o.env == ["A=1", "B=two words  ", "C=", "D=x=y", "FROM_HOST=here", "E='quoted'",
                     "A=override"]


def test_env_files_in_order(tmp_path):
    (tmp_path / "a").write_text("X=1\n")
    (tmp_path / "b").write_text("X=2\n")
    o = run("--env-file", str(tmp_path / "a"), "--env-file", str(tmp_path / "b"))
    assert o.env == ["X=1", "X=2"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"A B=1\n", "contains whitespaces"),
        (b"=1\n", "no variable name on line 1"),
        (b"OK=1\n\tX Y\n", "line 2 contains whitespaces"),
        (b"A=\xff\n", "invalid UTF-8 on line 1"),
    ],
)
def test_env_file_bad(tmp_path, content, match):
    f = tmp_path / "env"
    f.write_bytes(content)
    with pytest.raises(InvalidOption, match=match) as e:
        run("--env-file", str(f))
    assert '"--env-file"' in str(e.value)


def test_env_file_missing(tmp_path):
    with pytest.raises(InvalidOption, match=r'"--env-file" flag: No such file'):
        run("--env-file", str(tmp_path / "nope"))


def test_labels(tmp_path):
    f = tmp_path / "labels"
    f.write_text("# c\ncom.example.a=1\nbare\ncom.example.b=from-file\n")
    o = run("--label-file", str(f), "-l", "com.example.b=flag", "--label", "x",
            "-lk=v=w")
    assert o.labels == {"com.example.a": "1", "bare": "", "com.example.b": "flag", "x": "",
                        "k": "v=w"}


@pytest.mark.parametrize(("flag", "value"), [("-l", "=v"), ("-l", ""), ("--annotation", "=x")])
def test_labels_bad(flag, value):
    with pytest.raises(InvalidOption, match="non-empty KEY"):
        run(flag, value)


def test_label_file_bad(tmp_path):
    f = tmp_path / "labels"
    f.write_text("a b=1\n")
    with pytest.raises(InvalidOption, match='"--label-file" flag'):
        run("--label-file", str(f))


def test_annotations():
    o = run("--annotation", "org.example/a=1", "--annotation", "b", "--annotation", "a=2=3")
    assert o.annotations == {"org.example/a": "1", "b": "", "a": "2=3"}


# ---------------------------------------------------------------------------- mounts


def test_volume_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    o = run(
        "-v", f"{tmp_path}:/a",
        "-v", f"{tmp_path}/:/b/:ro",
        "-v", f"{tmp_path}:/c:rw,rshared,z",
        "-v", "data:/d",
        "-v", "my_vol.1-x:/e:ro,nocopy",
        "-v", "/f",
        "-v", "/g:ro",
        "-v", "./sub:/h:slave",
        "-v", ".:/i:Z,cached",
        "--volume=/j/../k",
    )
    t = str(tmp_path)
    assert o.mounts == [
        MountRequest("bind", "/a", t, False, ["rbind", "rprivate"]),
        MountRequest("bind", "/b", t, True, ["rbind", "rprivate"]),
        MountRequest("bind", "/c", t, False, ["rbind", "rshared"]),
        MountRequest("volume", "/d", "data", False, []),
        MountRequest("volume", "/e", "my_vol.1-x", True, ["nocopy"]),
        MountRequest("volume", "/f", "", False, []),
        MountRequest("volume", "/g", "", True, []),
        MountRequest("bind", "/h", f"{t}/sub", False, ["rbind", "slave"]),
        MountRequest("bind", "/i", t, False, ["rbind", "rprivate"]),
        MountRequest("volume", "/k", "", False, []),
    ]


def test_volume_missing_host_dir_is_made_at_start():
    """Docker's -v makes a missing host directory (when the container starts); --mount
    refuses it (below)."""
    (m,) = parse_run_args(["-v", "/nonexistent-sangja-path:/x", "img"]).mounts
    assert (m.type, m.source, m.create_source) == ("bind", "/nonexistent-sangja-path", True)
    (m,) = parse_run_args(["-v", "/tmp:/x", "img"]).mounts
    assert m.create_source is False


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("data:rel", "mount path must be absolute"),
        ("rel", "mount path must be absolute"),
        ("/tmp:/", "destination can't be '/'"),
        ("/", "destination can't be '/'"),
        ("data:/x/..", "destination can't be '/'"),
        ("a:/x", '"a" includes invalid characters for a local volume name'),
        ("bad name:/x", "includes invalid characters"),
        ("-vol:/x", "includes invalid characters"),
        ("a:b:c:d", "invalid volume specification"),
        (":/x", "invalid volume specification"),
        ("/tmp:", "invalid volume specification"),
        ("/tmp:/x:ro,ro", "invalid mode: ro,ro"),
        ("/tmp:/x:ro,rw", "invalid mode: ro,rw"),
        ("/tmp:/x:bogus", "invalid mode: bogus"),
        ("/tmp:/x:", "invalid volume specification"),
        ("/tmp:/x:ro,", "invalid mode"),
        ("/tmp:/x:shared,slave", "invalid mode"),
        ("/tmp:/x:nocopy", "nocopy applies to volumes only"),
        ("vol:/x:rshared", "applies to bind mounts only"),
        ("/x:rshared", "applies to bind mounts only"),
    ],
)
def test_volume_bad(spec, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("-v", spec)
    assert '"-v, --volume"' in str(e.value)
    assert f'"{spec}"' in str(e.value)


def test_mount_forms(tmp_path):
    t = str(tmp_path)
    o = run(
        "--mount", f"type=bind,source={t},target=/a",
        "--mount", f"type=bind,src={t}/,dst=/b,readonly",
        "--mount", f"type=bind,src={t},destination=/c,ro=true,bind-propagation=rslave",
        "--mount", f"type=bind,src={t},dst=/d,ro=0,bind-nonrecursive",
        "--mount", f"type=bind,src={t},dst=/e,bind-recursive=disabled,consistency=cached",
        "--mount", "type=volume,src=data,dst=/f",
        "--mount", "type=volume,dst=/g,volume-nocopy,volume-driver=local",
        "--mount", "type=volume,target=/h,volume-nocopy=false,readonly=1",
        "--mount", "type=tmpfs,dst=/i",
        "--mount", "type=tmpfs,dst=/j,tmpfs-size=64m,tmpfs-mode=1770",
        "--mount", "Type=tmpfs,Target=/k,RO",
    )
    assert o.mounts == [
        MountRequest("bind", "/a", t, False, ["rbind", "rprivate"]),
        MountRequest("bind", "/b", t, True, ["rbind", "rprivate"]),
        MountRequest("bind", "/c", t, True, ["rbind", "rslave"]),
        MountRequest("bind", "/d", t, False, ["bind", "rprivate"]),
        MountRequest("bind", "/e", t, False, ["bind", "rprivate"]),
        MountRequest("volume", "/f", "data", False, []),
        MountRequest("volume", "/g", "", False, ["nocopy"]),
        MountRequest("volume", "/h", "", True, []),
        MountRequest("tmpfs", "/i", None, False, ["noexec", "nosuid", "nodev"]),
        MountRequest("tmpfs", "/j", None, False,
                     ["noexec", "nosuid", "nodev", f"size={64 * MiB}", "mode=1770"]),
        MountRequest("tmpfs", "/k", None, True, ["noexec", "nosuid", "nodev"]),
    ]


def test_mount_csv_quoting(tmp_path):
    d = tmp_path / "a,b"
    d.mkdir()
    q = tmp_path / 'q"x'
    q.mkdir()
    o = run("--mount", f'type=bind,"source={d}",target=/x',
            "--mount", f'type=bind,"src={tmp_path}/q""x","target=/y"')
    assert [m.source for m in o.mounts] == [str(d), str(q)]
    assert [m.target for m in o.mounts] == ["/x", "/y"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("target=/x", "type is required"),
        ("type=bind,src=/tmp", "target is required"),
        ("type=bind,src=/tmp,target=", "target is required"),
        ("type=nfs,target=/x", "invalid mount type 'nfs'"),
        ("type=npipe,target=/x", "invalid mount type"),
        ("type=bind,target=/x", 'type "bind": field Source must not be empty'),
        ("type=bind,src=rel,target=/x", "mount path must be absolute"),
        ("type=bind,src=/nonexistent-sangja,target=/x",
         "bind source path does not exist: /nonexistent-sangja"),
        ("type=bind,src=/tmp,target=rel", "mount path must be absolute"),
        ("type=bind,src=/tmp,target=/", "destination can't be '/'"),
        ("type=tmpfs,src=x,target=/x", 'type "tmpfs": field Source must not be specified'),
        ("type=volume,src=a,target=/x", "invalid characters for a local volume name"),
        ("type=volume,src=/tmp,target=/x", "invalid characters"),
        ("type=bind,src=/tmp,target=/x,volume-nocopy", "cannot mix 'volume-\\*' options with "
                                                       "mount type 'bind'"),
        ("type=volume,target=/x,bind-propagation=shared", "cannot mix 'bind-\\*'"),
        ("type=volume,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-\\*'"),
        ("type=tmpfs,target=/x,volume-nocopy", "cannot mix 'volume-\\*'"),
        ("type=bind,src=/tmp,target=/x,readonly=maybe", "invalid value for readonly: maybe"),
        ("type=bind,src=/tmp,target=/x,bind-propagation=up", "invalid value for "
                                                             "bind-propagation"),
        ("type=bind,src=/tmp,target=/x,bind-recursive=readonly", "not supported"),
        ("type=bind,src=/tmp,target=/x,consistency=strong", "invalid value for consistency"),
        ("type=volume,target=/x,volume-driver=nfs", "volume driver 'nfs' is not supported"),
        ("type=volume,target=/x,volume-opt=o=bind", "volume-opt is not supported"),
        ("type=tmpfs,target=/x,tmpfs-size=big", "invalid value for tmpfs-size"),
        ("type=tmpfs,target=/x,tmpfs-mode=888", "invalid value for tmpfs-mode"),
        ("type=tmpfs,target=/x,tmpfs-mode=17777", "invalid value for tmpfs-mode"),
        ("type=tmpfs,target=/x,size=1m", "unexpected key 'size'"),
        ("type=tmpfs,target", "invalid field 'target' must be a key=value pair"),
        ('type=bind,src="/tmp",target=/x', 'bare " in non-quoted-field'),
        ('type=bind,"src=/tmp,target=/x', 'extraneous or missing " in quoted-field'),
        ('type=bind,"src=/tmp"x,target=/x', 'extraneous or missing "'),
    ],
)
def test_mount_bad(spec, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--mount", spec)
    assert '"--mount" flag' in str(e.value)


@pytest.mark.parametrize(
    ("spec", "readonly", "options"),
    [
        ("/run", False, ["noexec", "nosuid", "nodev"]),
        ("/run:", False, ["noexec", "nosuid", "nodev"]),
        ("/run:ro", True, ["noexec", "nosuid", "nodev"]),
        ("/run:rw,size=64m", False, ["noexec", "nosuid", "nodev", f"size={64 * MiB}"]),
        ("/run:exec", False, ["nosuid", "nodev", "exec"]),
        ("/run:exec,suid,dev", False, ["exec", "suid", "dev"]),
        ("/run:noexec,nosuid", False, ["noexec", "nosuid", "nodev"]),
        ("/tmp:size=1g,mode=1777,uid=1000,gid=100",
         False, ["noexec", "nosuid", "nodev", f"size={1 << 30}", "mode=1777", "uid=1000",
                 "gid=100"]),
        ("/run:size=50%", False, ["noexec", "nosuid", "nodev", "size=50%"]),
        ("/run:size=1m,size=2m", False, ["noexec", "nosuid", "nodev", f"size={2 * MiB}"]),
        ("/run:nr_inodes=10k,noatime,huge=within_size", False,
         ["noexec", "nosuid", "nodev", "noatime", "nr_inodes=10k", "huge=within_size"]),
        ("/run/../run/", False, ["noexec", "nosuid", "nodev"]),
    ],
)
def test_tmpfs(spec, readonly, options):
    (m,) = run("--tmpfs", spec).mounts
    assert m == MountRequest("tmpfs", "/run" if spec.startswith("/run") else "/tmp", None,
                             readonly, options)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("run", "mount path must be absolute"),
        (":size=1m", "mount path must be absolute"),
        ("/", "destination can't be '/'"),
        ("/run:size=lots", "invalid size option"),
        ("/run:size=0%", "invalid size option"),
        ("/run:mode=999", "invalid mode option"),
        ("/run:uid=root", "invalid uid option"),
        ("/run:bogus", "invalid tmpfs option 'bogus'"),
        ("/run:bogus=1", "invalid tmpfs option 'bogus=1'"),
        ("/run:huge=sometimes", "invalid tmpfs option"),
        ("/run:nr_inodes=x", "invalid nr_inodes option"),
    ],
)
def test_tmpfs_bad(spec, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--tmpfs", spec)
    assert '"--tmpfs" flag' in str(e.value)


@pytest.mark.parametrize(
    "args",
    [
        ["-v", "/x", "-v", "a1:/x"],
        ["-v", "/x", "--tmpfs", "/x"],
        ["-v", "/x/", "--mount", "type=tmpfs,dst=/x"],
        ["--tmpfs", "/x", "--tmpfs", "/y/../x"],
        ["--mount", "type=volume,dst=/x", "--mount", "type=tmpfs,dst=//x"],
    ],
)
def test_duplicate_mount_points(args):
    with pytest.raises(InvalidOption, match=r"^Duplicate mount point: /x$"):
        run(*args)


# ---------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("args", "memory", "swap"),
    [
        (["-m", "64m"], 64 * MiB, None),
        (["--memory=1g"], 1 << 30, None),
        (["-m6m"], 6 * MiB, None),
        (["-m", "0"], None, None),
        (["-m", "1g", "--memory-swap", "2g"], 1 << 30, 2 << 30),
        (["-m", "1g", "--memory-swap", "1g"], 1 << 30, 1 << 30),
        (["-m", "1g", "--memory-swap", "-1"], 1 << 30, -1),
        (["-m", "1g", "--memory-swap", "0"], 1 << 30, None),
        (["--memory-swap", "-1"], None, -1),
    ],
)
def test_memory(args, memory, swap):
    o = run(*args)
    assert (o.memory, o.memory_swap) == (memory, swap)


@pytest.mark.parametrize(
    ("args", "named", "match"),
    [
        (["-m", "lots"], '"-m, --memory"', "invalid size: 'lots'"),
        (["-m", "-1"], '"-m, --memory"', "invalid size"),
        (["-m", "4m"], '"-m, --memory"', "Minimum memory limit allowed is 6MB"),
        (["-m", "1"], '"-m, --memory"', "Minimum memory limit allowed is 6MB"),
        (["--memory-swap", "1g"], '"--memory-swap"', "always set the memory limit"),
        (["-m", "1g", "--memory-swap", "512m"], '"--memory-swap"',
         "should be larger than memory limit"),
        (["-m", "1g", "--memory-swap", "-2"], '"--memory-swap"', "invalid size"),
        (["--shm-size", "x"], '"--shm-size"', "invalid size"),
    ],
)
def test_memory_bad(args, named, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run(*args)
    assert named in str(e.value)


@pytest.mark.parametrize(("value", "expected"), [("64m", 64 * MiB), ("1g", 1 << 30),
                                                 ("0", 64 * MiB), ("512k", 512 << 10)])
def test_shm_size(value, expected):
    assert run("--shm-size", value).shm_size == expected


@pytest.mark.parametrize(("value", "expected"),
                         [("1", 1.0), ("0.5", 0.5), ("1.25", 1.25), ("2", 2.0), ("2.000", 2.0),
                          ("0.01", 0.01), (".5", 0.5), ("1.", 1.0)])
def test_cpus(value, expected):
    assert run("--cpus", value).cpus == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("0", "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        ("0.001", "range of CPUs is from 0.01 to 2.00"),
        ("2.5", "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        ("-1", "failed to parse -1 as a rational number"),
        ("one", "failed to parse one as a rational number"),
        ("1.2.3", "failed to parse"),
        ("", "failed to parse"),
        (".", "failed to parse"),
        ("1e0", "failed to parse"),
        ("nan", "failed to parse"),
        ("0.0000000001", "value is too precise"),
    ],
)
def test_cpus_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--cpus", value)
    assert '"--cpus"' in str(e.value)


@pytest.mark.parametrize(
    ("args", "shares", "cpuset", "pids"),
    [
        (["-c", "512"], 512, None, None),
        (["--cpu-shares=1024"], 1024, None, None),
        (["-c0"], None, None, None),
        (["--cpuset-cpus", "0-1"], None, "0-1", None),
        (["--cpuset-cpus", "0,1"], None, "0,1", None),
        (["--cpuset-cpus", "1"], None, "1", None),
        (["--cpuset-cpus", ""], None, None, None),
        (["--pids-limit", "100"], None, None, 100),
        (["--pids-limit", "-1"], None, None, -1),
        (["--pids-limit", "0"], None, None, 0),
    ],
)
def test_cpu_and_pids(args, shares, cpuset, pids):
    o = run(*args)
    assert (o.cpu_shares, o.cpuset_cpus, o.pids_limit) == (shares, cpuset, pids)


@pytest.mark.parametrize(
    ("args", "named", "match"),
    [
        (["-c", "x"], '"-c, --cpu-shares"', "not an integer"),
        (["-c", "-5"], '"-c, --cpu-shares"', "must be at least 0"),
        (["-c", "1.5"], '"-c, --cpu-shares"', "not an integer"),
        (["--cpuset-cpus", "0-2"], '"--cpuset-cpus"',
         "Requested CPUs are not available - requested 0-2, available: 0-1"),
        (["--cpuset-cpus", "0,4"], '"--cpuset-cpus"', "not available"),
        (["--cpuset-cpus", "a-b"], '"--cpuset-cpus"', "Invalid value a-b for cpuset cpus"),
        (["--cpuset-cpus", "1-0"], '"--cpuset-cpus"', "Invalid value"),
        (["--pids-limit", "lots"], '"--pids-limit"', "not an integer"),
        (["--stop-timeout", "10s"], '"--stop-timeout"', "not an integer"),
        (["--stop-timeout", "-2"], '"--stop-timeout"', "at least -1"),
    ],
)
def test_cpu_and_pids_bad(args, named, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run(*args)
    assert named in str(e.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["nofile=1024"], [Ulimit("nofile", 1024, 1024)]),
        (["nofile=1024:2048"], [Ulimit("nofile", 1024, 2048)]),
        (["core=-1"], [Ulimit("core", -1, -1)]),
        (["core=unlimited"], [Ulimit("core", -1, -1)]),
        (["memlock=100:unlimited"], [Ulimit("memlock", 100, -1)]),
        (["memlock=-1:-1"], [Ulimit("memlock", -1, -1)]),
        (["nproc=0:0"], [Ulimit("nproc", 0, 0)]),
        (["nofile=1:2", "nproc=3", "nofile=5:6"],
         [Ulimit("nofile", 5, 6), Ulimit("nproc", 3, 3)]),
    ],
)
def test_ulimits(values, expected):
    args = [a for v in values for a in ("--ulimit", v)]
    assert run(*args).ulimits == expected


@pytest.mark.parametrize(
    "name",
    ["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
     "rss", "rtprio", "rttime", "sigpending", "stack"],
)
def test_ulimit_names(name):
    assert run("--ulimit", f"{name}=1").ulimits == [Ulimit(name, 1, 1)]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("nofile", "invalid ulimit argument"),
        ("nofile=", "invalid ulimit argument"),
        ("open=10", "invalid ulimit type: open"),
        ("NOFILE=10", "invalid ulimit type: NOFILE"),
        ("nofile=ten", "invalid ulimit argument"),
        ("nofile=1:x", "invalid ulimit argument"),
        ("nofile=-2", "invalid ulimit argument"),
        ("nofile=2048:1024", "soft limit must be less than or equal to hard limit: "
                             "2048 > 1024"),
        ("nofile=unlimited:1024", "soft limit must be less than or equal to hard limit"),
    ],
)
def test_ulimit_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--ulimit", value)
    assert '"--ulimit"' in str(e.value)


# ---------------------------------------------------------------------------- security


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["NET_ADMIN"], ["CAP_NET_ADMIN"]),
        (["CAP_NET_ADMIN"], ["CAP_NET_ADMIN"]),
        (["net_admin", "cap_sys_time"], ["CAP_NET_ADMIN", "CAP_SYS_TIME"]),
        (["all"], ["ALL"]),
        (["ALL", "All"], ["ALL"]),
        (["sys_admin", "CAP_SYS_ADMIN"], ["CAP_SYS_ADMIN"]),
        (["Bpf", "checkpoint_restore"], ["CAP_BPF", "CAP_CHECKPOINT_RESTORE"]),
    ],
)
def test_caps(values, expected):
    add = [a for v in values for a in ("--cap-add", v)]
    drop = [a for v in values for a in ("--cap-drop", v)]
    assert run(*add).cap_add == expected
    assert run(*drop).cap_drop == expected


@pytest.mark.parametrize(("flag", "value"),
                         [("--cap-add", "NET_ADMINS"), ("--cap-drop", "CAP_"),
                          ("--cap-add", ""), ("--cap-drop", "CAP_ALL")])
def test_caps_bad(flag, value):
    with pytest.raises(InvalidOption, match="unknown capability") as e:
        run(flag, value)
    assert f'"{flag}"' in str(e.value)


@pytest.fixture
def profile(tmp_path):
    p = tmp_path / "seccomp.json"
    p.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    return p


@pytest.mark.parametrize(
    ("values", "checks"),
    [
        (["no-new-privileges"], {"no_new_privileges": True}),
        (["no-new-privileges=true"], {"no_new_privileges": True}),
        (["no-new-privileges:true"], {"no_new_privileges": True}),
        (["no-new-privileges", "no-new-privileges=false"], {"no_new_privileges": False}),
        (["seccomp=unconfined"], {"seccomp": "unconfined"}),
        (["seccomp:unconfined"], {"seccomp": "unconfined"}),
        (["seccomp=unconfined", "seccomp=builtin"], {"seccomp": None}),
        (["label=disable"], {"label_disable": True}),
        (["label:disable"], {"label_disable": True}),
        (["apparmor=unconfined"], {}),
    ],
)
def test_security_opt(values, checks):
    o = run(*[a for v in values for a in ("--security-opt", v)])
    for k, v in checks.items():
        assert getattr(o, k) == v


def test_security_opt_seccomp_file(profile, tmp_path, monkeypatch):
    """The container keeps the profile's content (compact JSON, as Docker's CLI sends it),
    not the path: later changes to the file do not reach it."""
    stored = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
    assert run("--security-opt", f"seccomp={profile}").seccomp == stored
    monkeypatch.chdir(tmp_path)
    assert run("--security-opt", "seccomp=seccomp.json").seccomp == stored


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("no-new-privileges=maybe", "invalid no-new-privileges value"),
        ("seccomp=/nonexistent-sangja.json", r"opening seccomp profile \(/nonexistent-sangja"
                                             r"\.json\) failed"),
        ("seccomp=", "seccomp needs unconfined or a profile path"),
        ("label=user:system_u", "SELinux labels are not supported"),
        ("label=level:s0:c100,c200", "SELinux labels are not supported"),
        ("apparmor=docker-default", "AppArmor profiles are not supported"),
        ("systempaths=unconfined", "systempaths is not supported"),
        ("bogus=1", "unknown security option 'bogus'"),
        ("seccomp", "expected KEY=VALUE"),
    ],
)
def test_security_opt_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--security-opt", value)
    assert '"--security-opt"' in str(e.value)


@pytest.mark.parametrize(("content", "match"),
                         [("{not json", r"decoding seccomp profile \(.*p\.json\) failed"),
                          ("[1, 2]", "not a JSON object"),
                          ("", r"decoding seccomp profile \(.*p\.json\) failed"),
                          ("\udcff", r"decoding seccomp profile \(.*p\.json\) failed"),
                          ('{"syscalls": [{"names": ["mkdir"]}]}',
                           r"defaultAction is required \(in .*p\.json\)"),
                          ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [1]}',
                           r"syscalls\[0\] must be an object \(in .*p\.json\)"),
                          (" " * (1 << 20) + "{}", r"p\.json\) is larger than")])
def test_security_opt_bad_profile(tmp_path, content, match):
    """A bad profile file fails at create, naming the file."""
    p = tmp_path / "p.json"
    p.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(InvalidOption, match=match):
        run("--security-opt", f"seccomp={p}")


# ---------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no", RestartPolicy("no", 0)),
        ("", RestartPolicy("no", 0)),
        ("always", RestartPolicy("always", 0)),
        ("unless-stopped", RestartPolicy("unless-stopped", 0)),
        ("on-failure", RestartPolicy("on-failure", 0)),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
        ("on-failure:0", RestartPolicy("on-failure", 0)),
    ],
)
def test_restart(value, expected):
    assert run("--restart", value).restart == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("sometimes", "invalid restart policy"),
        ("Always", "invalid restart policy"),
        ("on-failure:x", "maximum retry count must be a non-negative integer"),
        ("on-failure:-1", "maximum retry count must be a non-negative integer"),
        ("on-failure:", "maximum retry count must be a non-negative integer"),
        ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
        ("unless-stopped:1", "cannot be used with restart policy 'unless-stopped'"),
        ("no:1", "cannot be used with restart policy 'no'"),
    ],
)
def test_restart_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--restart", value)
    assert '"--restart"' in str(e.value)


@pytest.mark.parametrize("policy", ["always", "on-failure", "on-failure:2", "unless-stopped"])
def test_restart_conflicts_with_rm(policy):
    with pytest.raises(InvalidOption, match=r"^Conflicting options: --restart and --rm$"):
        run("--rm", "--restart", policy)


def test_restart_no_with_rm_is_fine():
    o = run("--rm", "--restart", "no")
    assert o.rm and o.restart.name == "no"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TERM", "SIGTERM"), ("SIGTERM", "SIGTERM"), ("sigterm", "SIGTERM"), ("15", "SIGTERM"),
        ("9", "SIGKILL"), ("KILL", "SIGKILL"), ("SIGQUIT", "SIGQUIT"), ("usr1", "SIGUSR1"),
        ("SIGIOT", "SIGABRT"), ("CLD", "SIGCHLD"), ("POLL", "SIGIO"), ("SIGWINCH", "SIGWINCH"),
        ("RTMIN", "SIGRTMIN"), ("SIGRTMIN+3", "SIGRTMIN+3"), ("RTMAX", "SIGRTMAX"),
        ("RTMAX-1", "SIGRTMIN+29"),
    ],
)
def test_stop_signal(value, expected):
    assert run("--stop-signal", value).stop_signal == expected


@pytest.mark.parametrize("value", ["", "0", "99", "SIGNOPE", "RTMIN+99", "-9"])
def test_stop_signal_bad(value):
    with pytest.raises(InvalidOption,
                       match=re.escape(f'"--stop-signal" flag: Invalid signal: {value}')):
        run("--stop-signal", value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("30", 30), ("-1", -1)])
def test_stop_timeout(value, expected):
    assert run("--stop-timeout", value).stop_timeout == expected


@pytest.mark.parametrize("value", ["missing", "always", "never"])
def test_pull(value):
    assert run("--pull", value).pull == value


@pytest.mark.parametrize("value", ["", "sometimes", "Always", "newer"])
def test_pull_bad(value):
    with pytest.raises(InvalidOption, match=r'"--pull" flag: invalid pull option'):
        run("--pull", value)


@pytest.mark.parametrize("value", ["sangja-runtime", "runc", "crun", sys.executable])
def test_runtime(value):
    assert run("--runtime", value).runtime == value


def test_runtime_bad(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    cases = [("kata", "unknown runtime"), ("./runc", "unknown runtime"),
             (str(tmp_path / "missing"), "not an executable file"),
             (str(tmp_path), "not an executable file")]
    if os.geteuid() != 0:  # root may execute anything
        cases.append((str(plain), "not an executable file"))
    for value, match in cases:
        with pytest.raises(InvalidOption, match=match) as e:
            run("--runtime", value)
        assert '"--runtime"' in str(e.value)


# ---------------------------------------------------------------------------- network


@pytest.mark.parametrize(("args", "expected"),
                         [([], "bridge"), (["--network", "none"], "none"),
                          (["--network=host"], "host"), (["--net", "host"], "host"),
                          (["--net=none"], "none"), (["--network", "default"], "bridge"),
                          (["--network", "mynet"], "mynet"),
                          (["--network", "container:web"], "container:web"),
                          (["--network", "ns:/run/netns/x"], "ns:/run/netns/x")])
def test_network(args, expected):
    assert run(*args).network == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "invalid network name"),
        ("a b", "invalid network name"),
        ("container:", "container: needs"),
        ("ns:relative", "absolute path"),
    ],
)
def test_network_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--network", value)
    assert '"--network, --net"' in str(e.value)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--ip", "10.0.0.300"], "not an IP address"),
        (["--ip", "fd00::1"], "not an IPv4 address"),
        (["--ip6", "10.0.0.1"], "not an IPv6 address"),
        (["--mac-address", "02:42:ac:11:00"], "invalid MAC address"),
        (["--mac-address", "01:42:ac:11:00:02"], "multicast"),
        (["--network-alias", "-x"], "invalid alias"),
        (["--dns", "dns.example"], "not an IP address"),
        (["--add-host", "nohost"], "expected HOST:IP"),
        (["--add-host", "h:1.2.3"], "not an IP address"),
        (["--network", "none", "--ip", "10.0.0.2"], "Conflicting options"),
        (["--network", "host", "--dns", "1.1.1.1"], "Conflicting options: dns"),
        (["--network", "container:x", "--hostname", "h"], "Conflicting options: hostname"),
        (["--network", "container:x", "--sysctl", "net.core.somaxconn=1"],
         "other container's network"),
    ],
)
def test_network_flags_bad(args, match):
    with pytest.raises(InvalidOption, match=match):
        run(*args)


def test_network_flags():
    o = run("--ip", "10.87.0.9", "--ip6", "fd00::9", "--mac-address", "02:42:AC:11:00:09",
            "--network-alias", "a1", "--dns", "1.1.1.1", "--dns-search", "x.test",
            "--dns-opt", "ndots:2", "--add-host", "h=192.0.2.1", "--add-host",
            "g:host-gateway", "--add-host", "v6:[fd00::1]", "-P")
    assert (o.ip, o.ip6, o.mac_address) == ("10.87.0.9", "fd00::9", "02:42:ac:11:00:09")
    assert (o.network_aliases, o.dns, o.dns_search, o.dns_options) == (
        ["a1"], ["1.1.1.1"], ["x.test"], ["ndots:2"])
    assert o.add_hosts == ["h:192.0.2.1", "g:host-gateway", "v6:fd00::1"]
    assert o.publish_all


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sysctl", "net.ipv4.ip_forward=1"], {"net.ipv4.ip_forward": "1"}),
        (["--sysctl", "kernel.shmmax=1000", "--sysctl", "kernel.msgmax=2"],
         {"kernel.shmmax": "1000", "kernel.msgmax": "2"}),
        (["--sysctl", "kernel.sem=250 32000 100 128"], {"kernel.sem": "250 32000 100 128"}),
        (["--sysctl", "fs.mqueue.msg_max=100"], {"fs.mqueue.msg_max": "100"}),
        (["--sysctl", "kernel.shm_rmid_forced=1", "--net", "host"],
         {"kernel.shm_rmid_forced": "1"}),
        (["--sysctl", "net.core.somaxconn=1", "--sysctl", "net.core.somaxconn=2"],
         {"net.core.somaxconn": "2"}),
        (["--sysctl", "net.ipv4.ping_group_range=0 0"], {"net.ipv4.ping_group_range": "0 0"}),
    ],
)
def test_sysctl(args, expected):
    assert run(*args).sysctls == expected


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname' is not allowed"),
        (["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness' is not allowed"),
        (["--sysctl", "kernel.msg_next_id=1"], "is not allowed"),
        (["--sysctl", "fs.file-max=1"], "is not allowed"),
        (["--sysctl", "net.ipv4.ip_forward=1", "--network", "host"],
         "not allowed with --network host"),
        (["--sysctl", "net.ipv4.ip_forward"], "expected KEY=VALUE"),
        (["--sysctl", "=1"], "expected KEY=VALUE"),
        (["--sysctl", "net/ipv4/ip_forward=1"], "invalid sysctl key"),
        (["--sysctl", "net..x=1"], "invalid sysctl key"),
        (["--sysctl", "net.=1"], "invalid sysctl key"),
    ],
)
def test_sysctl_bad(args, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run(*args)
    assert '"--sysctl"' in str(e.value)


@pytest.mark.parametrize(
    "value",
    ["80", "8080:80", "8080:80/udp", "127.0.0.1:8080:80", "127.0.0.1::80", "[::1]:8080:80/tcp",
     "8000-8010:80-90", "80/sctp"],
)
@pytest.mark.parametrize("network", ["none", "host", "container:x"])
def test_publish_needs_a_network(value, network):
    with pytest.raises(InvalidOption, match="port publishing needs a network") as e:
        run("--network", network, "-p", value)
    assert f"--network {network}" in str(e.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("80", [("", 0, 0, 80, 80, "tcp")]),
        ("8080:80", [("", 8080, 8080, 80, 80, "tcp")]),
        ("8080:80/UDP", [("", 8080, 8080, 80, 80, "udp")]),
        ("127.0.0.1::53/udp", [("127.0.0.1", 0, 0, 53, 53, "udp")]),
        ("[::1]:8080:80/tcp", [("::1", 8080, 8080, 80, 80, "tcp")]),
        ("8000-8010:80-90", [("", 8000, 8010, 80, 90, "tcp")]),
        ("8000-8010:80", [("", 8000, 8010, 80, 80, "tcp")]),
        ("80-81", [("", 0, 0, 80, 81, "tcp")]),
    ],
)
def test_publish(value, expected):
    (p,) = run("-p", value).publish
    assert [(p.host_ip, p.host_port, p.host_end, p.container_port, p.container_end,
             p.protocol)] == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("80/icmp", "invalid proto: icmp"),
        ("http", "invalid port"),
        ("0", "invalid port"),
        ("70000", "invalid port"),
        ("x:80", "invalid port"),
        ("1.2.3.4.5:80:80", "invalid IP address: 1.2.3.4.5"),
        ("a:b:c:d", "expected"),
        ("[::1:80", "invalid IP address"),
        ("90-80", "invalid port"),
        ("8000-8002:80-90", "invalid ranges"),
    ],
)
def test_publish_bad_syntax(value, match):
    with pytest.raises(InvalidOption, match=match):
        run("-p", value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["80"], ["80/tcp"]),
        (["80/udp", "53/UDP"], ["80/udp", "53/udp"]),
        (["8000-8002"], ["8000/tcp", "8001/tcp", "8002/tcp"]),
        (["80", "80/tcp", "9/sctp"], ["80/tcp", "9/sctp"]),
    ],
)
def test_expose(values, expected):
    assert run(*[a for v in values for a in ("--expose", v)]).expose == expected


@pytest.mark.parametrize(("value", "match"),
                         [("http", "invalid port"), ("80/icmp", "invalid proto"),
                          ("0", "invalid port"), ("2-1", "invalid port"), ("", "invalid port")])
def test_expose_bad(value, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run("--expose", value)
    assert '"--expose"' in str(e.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-a", "stdout"], ["stdout"]),
        (["-a", "STDIN", "-a", "stderr", "--attach=stdin"], ["stdin", "stderr"]),
        (["-aStdout"], ["stdout"]),
    ],
)
def test_attach(args, expected):
    assert run(*args).attach == expected


def test_attach_bad():
    with pytest.raises(InvalidOption, match="valid streams are STDIN, STDOUT and STDERR") as e:
        run("-a", "stdio")
    assert '"-a, --attach"' in str(e.value)


def test_attach_conflicts_with_detach():
    with pytest.raises(InvalidOption, match="^Conflicting options: -a and -d$"):
        run("-d", "-a", "stdout")


@pytest.mark.parametrize("value", ["linux/amd64", "linux/x86_64", "LINUX/AMD64", "linux",
                                   "linux/amd64/v2"])
def test_platform(value, monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(
        ("Linux", "h", "6.1", "#1", "x86_64")))
    run("--platform", value)


@pytest.mark.parametrize("value", ["linux/arm64", "windows/amd64", "darwin", "linux/amd64/v8",
                                   "linux/amd64/v2/x", ""])
def test_platform_bad(value, monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(
        ("Linux", "h", "6.1", "#1", "x86_64")))
    with pytest.raises(InvalidOption, match="only the host's platform linux/amd64") as e:
        run("--platform", value)
    assert '"--platform"' in str(e.value)


# ---------------------------------------------------------------------------- devices, logs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/dev/null", DeviceRequest("/dev/null", "/dev/null", "rwm")),
        ("/dev/null:/dev/mynull", DeviceRequest("/dev/null", "/dev/mynull", "rwm")),
        ("/dev/null:r", DeviceRequest("/dev/null", "/dev/null", "r")),
        ("/dev/null:/dev/x:rw", DeviceRequest("/dev/null", "/dev/x", "rw")),
        ("/dev/null:/dev/x:m", DeviceRequest("/dev/null", "/dev/x", "m")),
    ],
)
def test_device(spec, expected):
    assert run("--device", spec).devices == [expected]


def test_device_bad(tmp_path):
    plain = tmp_path / "f"
    plain.write_text("")
    cases = [
        ("/dev/null:/dev/x:rwx", "bad mode specified: rwx"),
        ("/dev/null:/dev/x:rr", "bad mode specified"),
        ("/dev/null:/dev/x:", "bad mode specified"),
        ("/dev/null:x", "x is not an absolute path"),
        ("null", "null is not an absolute path"),
        ("/dev/null:/a:r:w", "invalid device specification"),
        ("/dev/nonexistent-sangja", "error gathering device information"),
        (str(plain), f"{plain} is not a device node"),
        (str(tmp_path), "is not a device node"),
    ]
    for spec, match in cases:
        with pytest.raises(InvalidOption, match=match) as e:
            run("--device", spec)
        assert '"--device"' in str(e.value)


@pytest.mark.parametrize(
    ("args", "driver", "size", "files"),
    [
        ([], "json-file", None, 1),
        (["--log-driver", "none"], "none", None, 1),
        (["--log-driver", "json-file", "--log-opt", "max-size=10m"], "json-file",
         10_000_000, 1),
        (["--log-opt", "max-size=10m,max-file=3"], "json-file", 10_000_000, 3),
        (["--log-opt", "max-file=3", "--log-opt", "max-size=1k"], "json-file", 1000, 3),
        (["--log-opt", "max-size=100"], "json-file", 100, 1),
        (["--log-opt", "max-file=1"], "json-file", None, 1),
    ],
)
def test_logging(args, driver, size, files):
    o = run(*args)
    assert (o.log_driver, o.log_max_size, o.log_max_file) == (driver, size, files)


@pytest.mark.parametrize(
    ("args", "named", "match"),
    [
        (["--log-driver", "syslog"], '"--log-driver"', "unsupported logging driver"),
        (["--log-opt", "max-file=3"], '"--log-opt"', "max-file needs max-size"),
        (["--log-opt", "max-size=10m,max-file=0"], '"--log-opt"',
         "max-file cannot be less than 1"),
        (["--log-opt", "max-size=10m,max-file=x"], '"--log-opt"', "max-file must be an "
                                                                  "integer"),
        (["--log-opt", "max-size=0"], '"--log-opt"', "max-size must be a positive number"),
        (["--log-opt", "max-size=lots"], '"--log-opt"', "invalid size"),
        (["--log-opt", "compress=true"], '"--log-opt"', "unknown log opt 'compress'"),
        (["--log-opt", "max-size"], '"--log-opt"', "expected KEY=VALUE"),
        (["--log-driver", "none", "--log-opt", "max-size=1m"], '"--log-opt"',
         "the none logging driver takes no options"),
    ],
)
def test_logging_bad(args, named, match):
    with pytest.raises(InvalidOption, match=match) as e:
        run(*args)
    assert named in str(e.value)


# ---------------------------------------------------------------------------- all at once


def test_a_full_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_VAR", "h")
    o = parse_run_args([
        "-it", "--rm", "--name=web", "-e", "A=1", "-e", "HOME_VAR", "-w", "/app",
        "-u", "app", "--entrypoint", "", "-h", "web", "-v", f"{tmp_path}:/data:ro",
        "--tmpfs", "/tmp", "--read-only", "-m", "256m", "--memory-swap", "512m",
        "--cpus", "0.5", "-c", "100", "--cpuset-cpus", "0", "--pids-limit", "64",
        "--ulimit", "nofile=512", "--cap-drop", "all", "--cap-add", "net_bind_service",
        "--security-opt", "no-new-privileges", "--group-add", "audio", "--init",
        "-l", "k=v", "--stop-signal", "INT", "--stop-timeout", "5", "--pull", "never",
        "--runtime", "runc", "--net", "none", "--sysctl", "net.core.somaxconn=128",
        "--device", "/dev/null:/dev/n:r", "--shm-size", "32m", "--log-opt", "max-size=1m",
        "--annotation", "a=b", "--expose", "80", "--platform", "linux",
        "registry.example/app:1", "serve", "--port", "80",
    ])
    assert o.image == "registry.example/app:1"
    assert o.command == ["serve", "--port", "80"]
    assert (o.interactive, o.tty, o.rm, o.detach) == (True, True, True, False)
    assert o.env == ["A=1", "HOME_VAR=h"]
    assert (o.name, o.workdir, o.user, o.entrypoint, o.hostname) == (
        "web", "/app", "app", [], "web")
    assert [m.type for m in o.mounts] == ["bind", "tmpfs"]
    assert o.read_only and o.init
    assert (o.memory, o.memory_swap, o.cpus, o.cpu_shares, o.cpuset_cpus, o.pids_limit) == (
        256 * MiB, 512 * MiB, 0.5, 100, "0", 64)
    assert o.cap_drop == ["ALL"] and o.cap_add == ["CAP_NET_BIND_SERVICE"]
    assert o.no_new_privileges and o.group_add == ["audio"]
    assert (o.stop_signal, o.stop_timeout, o.pull, o.runtime, o.network) == (
        "SIGINT", 5, "never", "runc", "none")
    assert o.sysctls == {"net.core.somaxconn": "128"}
    assert o.devices == [DeviceRequest("/dev/null", "/dev/n", "r")]
    assert (o.shm_size, o.log_max_size) == (32 * MiB, 1_000_000)
    assert o.labels == {"k": "v"} and o.annotations == {"a": "b"}
    assert o.expose == ["80/tcp"] and o.ulimits == [Ulimit("nofile", 512, 512)]
