"""process.* settings of config.json, observed from inside the container."""

from __future__ import annotations

import os
import re

import pytest

from conftest import add_mounts, bind, cap_mask, new_id, processes_referencing, sh

pytestmark = pytest.mark.root

CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE = 5, 10, 29
CAP_CHOWN, CAP_SYS_ADMIN = 0, 21


def _run_ok(runtime, bundle, **kw):
    r = runtime.run_container(bundle, **kw)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def _status_fields(text: str) -> dict:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_env_passed(runtime, make_bundle):
    bundle = make_bundle(
        process={"env": ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "TERM=dumb"]},
        args=["env"],
    )
    env = set(_run_ok(runtime, bundle).splitlines())
    assert {"FOO=bar baz", "EMPTY=", "TERM=dumb", "PATH=/bin:/usr/bin"} <= env
    # nothing from the host or the runtime leaks into the environment
    assert not any(line.startswith(("PYTEST_", "SANGJA_TEST_", "_LIBCONTAINER")) for line in env)


def test_cwd(runtime, make_bundle):
    bundle = make_bundle(process={"cwd": "/tmp"}, args=["pwd"])
    assert _run_ok(runtime, bundle) == "/tmp\n"


def test_cwd_created_if_missing(runtime, make_bundle):
    bundle = make_bundle(process={"cwd": "/home/newdir"}, root={"readonly": False}, args=["pwd"])
    assert _run_ok(runtime, bundle) == "/home/newdir\n"


def test_user_uid_gid(runtime, make_bundle):
    bundle = make_bundle(
        process={"user": {"uid": 65534, "gid": 65534}}, args=sh("id -u; id -g; id -G")
    )
    assert _run_ok(runtime, bundle).split() == ["65534", "65534", "65534"]


def test_additional_gids(runtime, make_bundle):
    bundle = make_bundle(
        process={"user": {"uid": 65534, "gid": 65534, "additionalGids": [5, 100]}},
        args=sh("id -G"),
    )
    assert sorted(_run_ok(runtime, bundle).split(), key=int) == ["5", "100", "65534"]


def test_root_has_no_supplementary_groups_by_default(runtime, make_bundle):
    bundle = make_bundle(args=sh("grep ^Groups: /proc/self/status"))
    assert _run_ok(runtime, bundle).split() == ["Groups:"]


@pytest.mark.parametrize("umask, expected", [(0o027, "0027"), (0o077, "0077"), (0o002, "0002")])
def test_umask(runtime, make_bundle, umask, expected):
    bundle = make_bundle(process={"user": {"uid": 0, "gid": 0, "umask": umask}}, args=sh("umask"))
    assert _run_ok(runtime, bundle).strip() == expected


def test_capabilities_default_set(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=["cat", "/proc/self/status"]))
    status = _status_fields(out)
    expected = cap_mask([CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE])
    assert expected == "0000000020000420"
    assert status["CapEff"] == expected
    assert status["CapBnd"] == expected
    assert status["CapPrm"] == expected
    assert status["CapInh"] == "0000000000000000"


def test_capabilities_custom_set(runtime, make_bundle):
    caps = ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    bundle = make_bundle(
        process={"capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
        args=["cat", "/proc/self/status"],
    )
    status = _status_fields(_run_ok(runtime, bundle))
    assert status["CapBnd"] == cap_mask([CAP_CHOWN, CAP_SYS_ADMIN])
    assert status["CapPrm"] == cap_mask([CAP_CHOWN, CAP_SYS_ADMIN])
    # for uid 0 execve() raises the effective set to the permitted set anyway
    assert status["CapEff"] == cap_mask([CAP_CHOWN, CAP_SYS_ADMIN])


def test_capabilities_bounding_limits_permitted(runtime, make_bundle):
    bundle = make_bundle(
        process={"capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                  "permitted": ["CAP_KILL"]}},
        args=["cat", "/proc/self/status"],
    )
    status = _status_fields(_run_ok(runtime, bundle))
    assert status["CapBnd"] == status["CapEff"] == status["CapPrm"] == cap_mask([CAP_KILL])


def test_capabilities_dropped_for_non_root(runtime, make_bundle):
    bundle = make_bundle(
        process={"user": {"uid": 65534, "gid": 65534}}, args=["cat", "/proc/self/status"]
    )
    status = _status_fields(_run_ok(runtime, bundle))
    assert status["CapBnd"] == cap_mask([CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE])
    # effective/permitted come from config regardless of uid (runc keeps them)
    assert int(status["CapEff"], 16) & ~int(status["CapBnd"], 16) == 0


def test_capability_is_enforced(runtime, make_bundle, host_dir):
    # root without CAP_DAC_OVERRIDE cannot read a mode-000 file owned by someone else
    d = host_dir()
    (d / "locked").write_text("secret\n")
    os.chown(d / "locked", 65534, 65534)
    (d / "locked").chmod(0)
    bundle = make_bundle(
        add_mounts(bind(d, "/data")),
        args=sh("cat /data/locked 2>/dev/null || echo denied"),
    )
    assert _run_ok(runtime, bundle).strip() == "denied"


def test_no_new_privileges(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=["cat", "/proc/self/status"]))
    assert _status_fields(out)["NoNewPrivs"].strip() == "1"


def test_no_new_privileges_false(runtime, make_bundle):
    bundle = make_bundle(process={"noNewPrivileges": False}, args=["cat", "/proc/self/status"])
    assert _status_fields(_run_ok(runtime, bundle))["NoNewPrivs"].strip() == "0"


def test_rlimit_nofile(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=sh("ulimit -n; ulimit -Hn")))
    assert out.split() == ["1024", "1024"]


def test_rlimit_custom(runtime, make_bundle):
    bundle = make_bundle(
        process={"rlimits": [
            {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 512},
            {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200},
        ]},
        args=sh("ulimit -n; ulimit -Hn; ulimit -u"),
    )
    assert _run_ok(runtime, bundle).split() == ["512", "2048", "200"]


def _open_fds(ls_output: str) -> set[int]:
    """fds listed by `ls -l /proc/self/fd`, minus the directory fd ls itself holds."""
    fds = set()
    for line in ls_output.splitlines():
        m = re.search(r"\s(\d+) -> (.*)$", line)
        if not m:
            continue
        fd, target = int(m.group(1)), m.group(2)
        if re.fullmatch(r"/proc/\d+/fd", target):
            continue
        fds.add(fd)
    return fds


def test_no_host_fds_leaked(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=["ls", "-l", "/proc/self/fd"]))
    assert _open_fds(out) == {0, 1, 2}, out


def test_no_fds_leaked_into_created_container(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["ls", "-l", "/proc/self/fd"])
    cid = new_id()
    out = tmp_path / "out"
    runtime.create(bundle, cid, stdout=out)
    runtime.start(cid)
    runtime.wait_status(cid, "stopped")
    assert _open_fds(out.read_text()) == {0, 1, 2}, out.read_text()


def test_preserve_fds(runtime, make_bundle, tmp_path):
    payload = tmp_path / "payload"
    payload.write_text("through-fd-3\n")
    bundle = make_bundle(args=sh("cat <&3; ls -l /proc/self/fd"))
    with open(payload) as f:
        r = runtime.run("run", "--preserve-fds", "1", "--bundle", bundle, new_id(),
                        fds={3: f.fileno()})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "through-fd-3"
    assert 3 in _open_fds("\n".join(lines[1:]))


def test_fds_not_preserved_without_flag(runtime, make_bundle, tmp_path):
    payload = tmp_path / "payload"
    payload.write_text("should-not-pass\n")
    bundle = make_bundle(args=["ls", "-l", "/proc/self/fd"])
    with open(payload) as f:
        r = runtime.run("run", "--bundle", bundle, new_id(), fds={3: f.fileno()})
    assert r.returncode == 0, r.stderr
    assert _open_fds(r.stdout) == {0, 1, 2}, r.stdout


@pytest.mark.parametrize("command", ["run", "create"])
def test_missing_executable(runtime, make_bundle, command):
    bundle = make_bundle(args=["/no/such/binary", "arg"])
    cid = new_id()
    r = runtime.run(command, "--bundle", bundle, cid)
    assert r.returncode != 0
    assert "no/such/binary" in r.stderr, r.stderr
    assert cid not in runtime.ids()
    assert not (runtime.root / cid).exists()
    assert not processes_referencing(cid, str(bundle))


def test_missing_executable_in_path(runtime, make_bundle):
    bundle = make_bundle(args=["no-such-command-xyz"])
    cid = new_id()
    r = runtime.run("run", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert "no-such-command-xyz" in r.stderr, r.stderr
    assert cid not in runtime.ids()
    assert not processes_referencing(cid, str(bundle))


def test_args_with_spaces_and_quotes(runtime, make_bundle):
    bundle = make_bundle(args=["printf", "%s|", "a b", "'q'", '"dq"', ""])
    assert _run_ok(runtime, bundle) == "a b|'q'|\"dq\"||"
