"""`sangja run` from the outside: each flag's effect is observed from inside the container
(/proc/self/status, its cgroup files, `id`, `ulimit`, the mount table, trying the forbidden
thing), never taken from our own output. Every test leaves nothing behind (engine_cli's
`cli` fixture checks mounts, monitors, cgroups, processes and state directories)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from engine_cli import (
    Pty,
    monitors_of,
    processes_mentioning,
    status_fields,
    wait_until,
)

pytestmark = pytest.mark.root


DOCKER_CAPS = 0x00000000A80425FB  # Docker's default 14 capabilities


def cap_eff(text: str) -> int:
    return int(status_fields(text)["CapEff"], 16)


def cgroup_file(cli, controller: str, v1: str, v2: str, *run_flags: str) -> str:
    """The content of the container's own cgroup file (v1 name under /sys/fs/cgroup/
    CONTROLLER, or the unified name), read from inside."""
    script = (f"if [ -e /sys/fs/cgroup/{controller}/{v1} ]; then "
              f"cat /sys/fs/cgroup/{controller}/{v1}; else cat /sys/fs/cgroup/{v2}; fi")
    return cli.out(*run_flags, "busybox", "sh", "-c", script).strip()


def cgroup_v1(controller: str) -> bool:
    return os.path.isdir(f"/sys/fs/cgroup/{controller}") and not os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers")


# ---------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize("args,code", [
    (["busybox", "true"], 0),
    (["busybox", "sh", "-c", "exit 3"], 3),
    (["--memory", "lots", "busybox", "true"], 125),
    (["--no-such-flag", "busybox", "true"], 125),
    (["localhost/no-such-image:latest", "true"], 125),
    (["busybox", "/etc/passwd"], 126),
    (["busybox", "/etc"], 126),
    (["busybox", "no-such-command"], 127),
    (["busybox", "/no/such/file"], 127),
])
def test_foreground_exit_codes(cli, args, code):
    before = {r["ID"] for r in cli.ps()}
    r = cli("run", "--rm", *args)
    assert r.returncode == code, (r.stdout, r.stderr)
    if code >= 125:
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
    # --rm: nothing of it is left, even when it never ran
    assert {r["ID"] for r in cli.ps()} == before


def _foreground_then(cli, name: str, *kill_args: str, flags=()) -> int:
    p = cli.popen("run", "--name", name, *flags, "busybox", "sleep", "1000")
    try:
        cli.wait_status(name, "running")
        cli.ok("kill", *kill_args, name)
        return p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_foreground_killed_137(cli):
    assert _foreground_then(cli, "fg137") == 137
    st = cli.inspect("fg137")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and not st["OOMKilled"]


def test_foreground_terminated_143(cli):
    # PID 1 ignores SIGTERM it has no handler for: with --init the init forwards it to
    # sleep, which dies of it, and the init exits 128+15 as Docker's does.
    assert _foreground_then(cli, "fg143", "-s", "TERM", flags=["--init"]) == 143
    assert cli.inspect("fg143")["State"]["ExitCode"] == 143


def test_foreground_signal_proxy(cli):
    """Without a tty, signals to the foreground CLI go to the container."""
    import signal

    p = cli.popen("run", "--rm", "--name", "proxy", "--init", "busybox", "sh", "-c",
                  "trap 'echo got-term; exit 9' TERM; echo ready; "
                  "while :; do sleep 0.05; done")
    try:
        import select

        assert select.select([p.stdout], [], [], 15)[0], "no output from the container"
        line = p.stdout.readline()
        assert line == b"ready\n"
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        assert b"got-term" in out
        assert p.returncode == 9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------- detached


def test_detached_ps_and_logs(cli):
    script = ("echo early; echo err1 >&2; "
              "while [ ! -e /tmp/go ]; do sleep 0.02; done; echo late; "
              "while [ ! -e /tmp/stop ]; do sleep 0.02; done; echo last")
    cid = cli.detach("--name", "det", "--label", "role=logger", "busybox", "sh", "-c", script)
    (row,) = [r for r in cli.ps() if r["ID"] == cid]
    assert row["Names"] == "det" and row["State"] == "running"
    assert row["Status"].startswith("Up ")
    assert row["Image"] == "busybox"
    assert cid[:12] in cli.ok("ps", "-q").split()
    assert cli.inspect("det")["State"]["Pid"] > 0

    wait_until(lambda: "early" in cli("logs", "det").stdout, 10)
    r = cli("logs", "det")
    assert r.stdout == "early\n" and r.stderr == "err1\n"

    follow = cli.popen("logs", "-f", "det")
    try:
        time.sleep(0.05)
        since = f"{time.time():.6f}"
        time.sleep(0.05)
        cli.ok("exec", "det", "touch", "/tmp/go")
        wait_until(lambda: "late" in cli("logs", "det").stdout, 10)
        assert cli.ok("logs", "--since", since, "det") == "late\n"
        assert cli.ok("logs", "--tail", "1", "det") == "late\n"
        assert cli.ok("logs", "--tail", "2", "det").splitlines() == ["late"]
        stamped = cli("logs", "-t", "det")
        for line in stamped.stdout.splitlines() + stamped.stderr.splitlines():
            ts, _, text = line.partition(" ")
            assert ts.endswith("Z") and "T" in ts and text in ("early", "err1", "late"), line
        cli.ok("exec", "det", "touch", "/tmp/stop")
        out, err = follow.communicate(timeout=30)  # -f ends when the container does
        assert follow.returncode == 0
        assert out.decode().splitlines() == ["early", "late", "last"]
        assert err.decode() == "err1\n"
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    doc = cli.wait_status("det", "exited")
    assert doc["State"]["ExitCode"] == 0
    (row,) = [r for r in cli.ps() if r["ID"] == cid]
    assert row["State"] == "exited" and row["Status"].startswith("Exited (0)")
    assert cid[:12] not in cli.ok("ps", "-q").split()


def test_interactive_stdin(cli):
    assert cli.out("-i", "busybox", "cat", input="hi\n") == "hi\n"
    # a megabyte through cat: nothing lost, nothing reordered
    data = "".join(f"{i:07d}\n" for i in range(131072))
    r = cli("run", "-i", "--rm", "busybox", "cat", input=data)
    assert r.returncode == 0 and r.stdout == data
    # without -i the container's stdin is empty
    assert cli.out("busybox", "cat", input="ignored\n") == ""


def test_tty_interactive_shell(cli):
    t = Pty(cli.argv("run", "-it", "--rm", "--name", "tty1", "busybox", "sh"), rows=33,
            cols=91)
    try:
        t.expect(r"# ")
        t.send("echo $((6*7)); tty; stty size\r")
        t.expect(r"42\r\n")
        t.expect(r"/dev/pts/\d+\r\n")
        t.expect(r"33 91\r\n")
        t.send("exit 5\r")
        assert t.wait() == 5
    finally:
        t.close()
    assert not [r for r in cli.ps() if r["Names"] == "tty1"]


def test_tty_detached_logs(cli):
    cid = cli.detach("-t", "busybox", "sh", "-c", "tty; echo to-err >&2")
    cli.wait_status(cid, "exited")
    out = cli.ok("logs", cid)
    assert "/dev/pts/" in out and "to-err" in out  # one stream with a tty


def test_rm_leaves_nothing(cli):
    cli.out("--name", "gone", "-v", "/anon", "busybox", "true")
    assert not [r for r in cli.ps() if r["Names"] == "gone"]
    assert cli.ok("volume", "ls", "-q").split() == []  # its anonymous volume went too


def test_detached_rm(cli):
    cid = cli.detach("--rm", "-v", "/anon", "-v", "named-kept:/named", "busybox", "sh", "-c",
                     "while [ ! -e /tmp/go ]; do sleep 0.02; done; exit 4")
    assert cli.ps()[0]["ID"] == cid
    w = cli.popen("wait", cid)
    cli.ok("exec", cid, "touch", "/tmp/go")
    out, _ = w.communicate(timeout=30)
    assert out.decode().strip() == "4"  # wait still learns the code of a removed one
    wait_until(lambda: cli.ps() == [], 10, message="--rm container removed after its exit")
    assert cli.ok("volume", "ls", "-q").split() == ["named-kept"]  # only anonymous go
    cli.ok("volume", "rm", "named-kept")


def test_name_and_name_in_use(cli):
    cid = cli.create("--name", "taken", "busybox", "true")
    assert cli.inspect("taken")["Name"] == "/taken"
    line = cli.fails(125, "run", "--name", "taken", "busybox", "true")
    assert "already in use" in line and cid in line
    assert [r["ID"] for r in cli.ps() if r["Names"] == "taken"] == [cid]
    assert len(cli.ps()) == 1


# ---------------------------------------------------------------------------- process


def test_env_and_env_file(cli, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=1\nOVERRIDDEN=file\n\nPASSED\n")
    out = cli.out("--env-file", str(env_file), "-e", "OVERRIDDEN=flag", "-e", "EMPTY=",
                  "-e", "HOSTVAR", "busybox", "env",
                  env={**os.environ, "PASSED": "from-host", "HOSTVAR": "h"})
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["FROM_FILE"] == "1"
    assert env["OVERRIDDEN"] == "flag"
    assert env["EMPTY"] == ""
    assert env["PASSED"] == "from-host" and env["HOSTVAR"] == "h"
    assert env["PATH"].startswith("/usr/local/sbin")
    assert "HOME" in env and "HOSTNAME" in env


def test_workdir(cli):
    assert cli.out("-w", "/made/for/me", "busybox", "pwd") == "/made/for/me\n"
    cli.fails(125, "run", "--rm", "-w", "relative", "busybox", "pwd")


def test_user_and_group_add(cli):
    out = cli.out("-u", "1234:2345", "--group-add", "44", "--group-add", "50", "busybox",
                  "sh", "-c", "id -u; id -g; cat /proc/self/status")
    lines = out.splitlines()
    assert lines[:2] == ["1234", "2345"]
    st = status_fields(out)
    assert st["Uid"].split() == ["1234"] * 4
    assert st["Gid"].split() == ["2345"] * 4
    assert set(st["Groups"].split()) >= {"44", "50"}
    assert cap_eff(out) == 0  # a non-root user has no effective capabilities
    # a name from the image's /etc/passwd
    assert cli.out("--user", "nobody", "busybox", "id", "-un") == "nobody\n"
    cli.fails(None, "run", "--rm", "-u", "no-such-user", "busybox", "true")


def test_user_cannot_write_root_files(cli):
    r = cli("run", "--rm", "-u", "1000", "busybox", "touch", "/etc/passwd")
    assert r.returncode == 1 and "Permission denied" in r.stderr


def test_entrypoint(cli):
    assert cli.out("--entrypoint", "echo", "busybox", "a", "b") == "a b\n"
    doc = cli.inspect(cli.create("--entrypoint", "/bin/echo", "busybox", "x"))
    assert doc["Config"]["Entrypoint"] == ["/bin/echo"] and doc["Path"] == "/bin/echo"
    assert doc["Args"] == ["x"]


def test_hostname(cli):
    out = cli.out("--hostname", "box.example", "busybox", "sh", "-c",
                  "hostname; cat /etc/hostname; cat /proc/sys/kernel/hostname")
    assert out.splitlines() == ["box.example"] * 3
    # the default is the short id
    cid = cli.detach("busybox", "sh", "-c", "hostname")
    cli.wait_status(cid, "exited")
    assert cli.ok("logs", cid) == cid[:12] + "\n"


# ---------------------------------------------------------------------------- mounts


def test_bind_mount(cli, tmp_path):
    host = tmp_path / "share"
    host.mkdir()
    (host / "from-host").write_text("hello\n")
    out = cli.out("-v", f"{host}:/share", "busybox", "sh", "-c",
                  "cat /share/from-host; echo inside > /share/from-container")
    assert out == "hello\n"
    assert (host / "from-container").read_text() == "inside\n"
    # :ro: the write fails, the host stays as it was
    r = cli("run", "--rm", "-v", f"{host}:/share:ro", "busybox", "sh", "-c",
            "cat /share/from-host; echo no > /share/denied")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert r.stdout == "hello\n"
    assert not (host / "denied").exists()
    # :z / :Z are accepted (no SELinux here)
    assert cli.out("-v", f"{host}:/share:z", "busybox", "cat", "/share/from-host") == "hello\n"
    assert cli.out("-v", f"{host}:/share:ro,Z", "busybox", "cat",
                   "/share/from-host") == "hello\n"


def test_bind_mount_file(cli, tmp_path):
    f = tmp_path / "conf"
    f.write_text("a file\n")
    assert cli.out("-v", f"{f}:/etc/app.conf:ro", "busybox", "cat", "/etc/app.conf") \
        == "a file\n"


def test_named_volume_persists(cli):
    cli.out("-v", "keep:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
    assert cli.out("-v", "keep:/other", "busybox", "cat", "/other/f") == "persisted\n"
    assert "keep" in cli.ok("volume", "ls", "-q").split()
    info = json.loads(cli.ok("volume", "inspect", "keep"))[0]
    with open(os.path.join(info["Mountpoint"], "f")) as fh:
        assert fh.read() == "persisted\n"
    cli.ok("volume", "rm", "keep")
    assert not os.path.exists(info["Mountpoint"])


def test_named_volume_copies_image_content(cli):
    # an empty volume mounted over /etc takes the image's files (Docker's copy-up)
    out = cli.out("-v", "etcvol:/etc", "busybox", "sh", "-c", "cat /etc/passwd | head -1")
    assert out.startswith("root:")
    cli.ok("volume", "rm", "etcvol")


def test_anonymous_volume_and_rm_v(cli):
    c1 = cli.detach("-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f")
    c2 = cli.detach("-v", "/scratch", "busybox", "true")
    for c in (c1, c2):
        cli.wait_status(c, "exited")
    m1 = [m for m in cli.inspect(c1)["Mounts"] if m["Destination"] == "/scratch"]
    assert len(m1) == 1 and m1[0]["Type"] == "volume" and len(m1[0]["Name"]) == 64
    vol1 = m1[0]["Name"]
    assert os.path.exists(os.path.join(m1[0]["Source"], "f"))
    vol2 = cli.inspect(c2)["Mounts"][0]["Name"]
    assert set(cli.ok("volume", "ls", "-q").split()) == {vol1, vol2}
    cli.ok("rm", "-v", c1)  # goes with its container
    cli.ok("rm", c2)  # kept without -v, as Docker does
    assert cli.ok("volume", "ls", "-q").split() == [vol2]
    assert cli.ok("volume", "prune", "-f")
    assert cli.ok("volume", "ls", "-q").split() == []


def test_mount_flag(cli, tmp_path):
    host = tmp_path / "m"
    host.mkdir()
    out = cli.out(
        "--mount", f"type=bind,source={host},target=/b",
        "--mount", f"type=bind,src={host},dst=/bro,readonly",
        "--mount", "type=volume,source=mvol,target=/v",
        "--mount", "type=tmpfs,target=/t,tmpfs-size=2m,tmpfs-mode=1770",
        "busybox", "sh", "-c",
        "echo w > /b/w; touch /bro/no 2>/dev/null && echo WROTE; echo v > /v/f; "
        "grep -E ' /(b|bro|v|t) ' /proc/mounts")
    assert (host / "w").read_text() == "w\n"
    assert "WROTE" not in out and not (host / "no").exists()
    mounts = {line.split()[1]: line.split() for line in out.splitlines() if line.strip()}
    assert "ro" in mounts["/bro"][3].split(",")
    assert "rw" in mounts["/b"][3].split(",")
    assert mounts["/t"][2] == "tmpfs"
    opts = mounts["/t"][3].split(",")
    assert "size=2048k" in opts and "mode=1770" in opts
    cli.ok("volume", "rm", "mvol")


def test_tmpfs(cli):
    out = cli.out("--tmpfs", "/run/t:size=1m,mode=1770,noexec", "--tmpfs", "/plain",
                  "busybox", "sh", "-c",
                  "grep -E ' /(run/t|plain) ' /proc/mounts; stat -c %a /run/t; "
                  "echo ok > /run/t/f && cat /run/t/f; "
                  "cp /bin/busybox /run/t/bb && /run/t/bb true || echo noexec-denied")
    lines = out.splitlines()
    t = next(line.split() for line in lines if " /run/t " in line)
    assert t[2] == "tmpfs"
    opts = t[3].split(",")
    assert "size=1024k" in opts and "mode=1770" in opts and "noexec" in opts
    assert "1770" in lines and "ok" in lines and "noexec-denied" in lines
    plain = next(line.split() for line in lines if " /plain " in line)
    assert plain[2] == "tmpfs" and "noexec" in plain[3].split(",")  # Docker's defaults


def test_read_only(cli):
    r = cli("run", "--rm", "--read-only", "busybox", "sh", "-c",
            "grep ' / ' /proc/mounts; touch /x; touch /tmp/x; echo shm > /dev/shm/ok && "
            "cat /dev/shm/ok")
    assert "Read-only file system" in r.stderr
    root = next(line.split() for line in r.stdout.splitlines() if " / " in line)
    assert "ro" in root[3].split(",")
    assert "shm" in r.stdout.splitlines()
    # writable where a tmpfs or volume is mounted
    assert cli.out("--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
                   "echo ok > /tmp/f && cat /tmp/f") == "ok\n"


# ---------------------------------------------------------------------------- resources


def test_memory_and_swap(cli):
    limit = cgroup_file(cli, "memory", "memory.limit_in_bytes", "memory.max", "--memory",
                        "64m")
    assert int(limit) == 64 << 20
    if cgroup_v1("memory") and not os.path.exists(
            "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        pytest.skip("no swap accounting on this host (memory.memsw.*)")
    swap = cgroup_file(cli, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max",
                       "--memory", "64m", "--memory-swap", "96m")
    assert int(swap) == (96 << 20 if cgroup_v1("memory") else 32 << 20)
    cli.fails(125, "run", "--rm", "--memory", "64m", "--memory-swap", "32m", "busybox", "true")


def test_cpus(cli):
    out = cli.out("--cpus", "0.5", "busybox", "sh", "-c",
                  "if [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then "
                  "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us;"
                  " else cat /sys/fs/cgroup/cpu.max; fi")
    quota, period = out.split()
    assert int(quota) * 2 == int(period)


def test_cpu_shares(cli):
    value = cgroup_file(cli, "cpu", "cpu.shares", "cpu.weight", "--cpu-shares", "512")
    if cgroup_v1("cpu"):
        assert value == "512"
    else:  # the runtimes' conversion of shares to weight
        assert value == str(1 + ((512 - 2) * 9999) // 262142)


def test_cpuset_cpus(cli):
    out = cli.out("--cpuset-cpus", "0", "busybox", "sh", "-c",
                  "grep Cpus_allowed_list /proc/self/status; "
                  "cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || "
                  "cat /sys/fs/cgroup/cpuset.cpus")
    lines = out.splitlines()
    assert lines[0].split() == ["Cpus_allowed_list:", "0"]
    assert lines[1] == "0"
    cli.fails(125, "run", "--rm", "--cpuset-cpus", "0-x", "busybox", "true")


def test_pids_limit_caps_a_fork_bomb(cli):
    r = cli("run", "--rm", "--pids-limit", "12", "busybox", "sh", "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
            "(for i in $(seq 40); do sleep 30 & done) 2>/tmp/err; "
            "cat /sys/fs/cgroup/pids/pids.current 2>/dev/null || "
            "cat /sys/fs/cgroup/pids.current; "
            "grep -c \"can't fork\" /tmp/err; kill -9 -1 2>/dev/null; exit 0")
    assert r.returncode == 0, r.stderr
    limit, current, failures = r.stdout.split()
    assert limit == "12"
    assert int(current) <= 12
    assert int(failures) >= 1


def test_ulimit(cli):
    out = cli.out("--ulimit", "nofile=123:456", "--ulimit", "nproc=77", "busybox", "sh",
                  "-c", "ulimit -n; ulimit -Hn; grep -E 'open files|processes' "
                        "/proc/self/limits")
    lines = out.splitlines()
    assert lines[:2] == ["123", "456"]
    nofile = next(line for line in lines if line.startswith("Max open files")).split()
    assert nofile[3:5] == ["123", "456"]
    nproc = next(line for line in lines if line.startswith("Max processes")).split()
    assert nproc[2:4] == ["77", "77"]
    cli.fails(125, "run", "--rm", "--ulimit", "nofile=9:1", "busybox", "true")


# ---------------------------------------------------------------------------- security


def test_default_security(cli):
    out = cli.out("busybox", "sh", "-c", "cat /proc/self/status; "
                  "mkdir /tmp/m; mount -t tmpfs none /tmp/m 2>&1 || echo mount-denied; "
                  "grep ' /sys ' /proc/mounts; cat /proc/kcore 2>&1 | head -c 1 | wc -c")
    st = status_fields(out)
    assert int(st["CapEff"], 16) == DOCKER_CAPS
    assert int(st["CapBnd"], 16) == DOCKER_CAPS
    assert st["Seccomp"] == "2"
    assert st["NoNewPrivs"] == "0"
    assert "mount-denied" in out
    sys_line = next(line for line in out.splitlines() if " /sys " in line)
    assert "ro" in sys_line.split()[3].split(",")


def test_cap_add_and_drop(cli):
    out = cli.out("--cap-drop", "ALL", "busybox", "cat", "/proc/self/status")
    assert cap_eff(out) == 0
    out = cli.out("--cap-add", "SYS_ADMIN", "--cap-drop", "CHOWN", "--cap-drop", "net_raw",
                  "busybox", "cat", "/proc/self/status")
    assert cap_eff(out) == (DOCKER_CAPS | 1 << 21) & ~(1 << 0) & ~(1 << 13)
    # the forbidden thing, tried: chown without CAP_CHOWN
    r = cli("run", "--rm", "--cap-drop", "CHOWN", "busybox", "sh", "-c",
            "touch /tmp/f && chown 1000 /tmp/f")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    # and allowed with it: mount with CAP_SYS_ADMIN (the default seccomp profile lets
    # mount through when the capability is there)
    assert cli.out("--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                   "mkdir /tmp/m && mount -t tmpfs none /tmp/m && echo mounted") == "mounted\n"
    cli.fails(125, "run", "--rm", "--cap-add", "NO_SUCH_CAP", "busybox", "true")


def test_privileged(cli):
    out = cli.out("--privileged", "busybox", "sh", "-c",
                  "cat /proc/self/status; mkdir /tmp/m; "
                  "mount -t tmpfs none /tmp/m && echo mounted; "
                  "ls /dev; grep ' /sys ' /proc/mounts")
    st = status_fields(out)
    with open("/proc/self/status") as f:
        host = status_fields(f.read())
    assert st["CapEff"] == host["CapBnd"]
    assert st["Seccomp"] == "0"
    assert "mounted" in out.splitlines()
    host_devs = set(os.listdir("/dev"))
    seen = set(out.split())
    assert "loop0" in seen or "kmsg" in seen or len(seen & host_devs) > 20
    sys_line = next(line for line in out.splitlines() if " /sys " in line)
    assert "rw" in sys_line.split()[3].split(",")


def test_no_new_privileges(cli):
    out = cli.out("--security-opt", "no-new-privileges", "busybox", "cat",
                  "/proc/self/status")
    assert status_fields(out)["NoNewPrivs"] == "1"
    out = cli.out("--security-opt", "no-new-privileges:true", "busybox", "cat",
                  "/proc/self/status")
    assert status_fields(out)["NoNewPrivs"] == "1"


def test_seccomp_unconfined_and_label_disable(cli):
    out = cli.out("--security-opt", "seccomp=unconfined", "busybox", "cat",
                  "/proc/self/status")
    assert status_fields(out)["Seccomp"] == "0"
    out = cli.out("--security-opt", "label=disable", "busybox", "cat", "/proc/self/status")
    assert status_fields(out)["Seccomp"] == "2"
    cli.fails(125, "run", "--rm", "--security-opt", "seccomp=/no/such/profile.json",
              "busybox", "true")
    cli.fails(125, "run", "--rm", "--security-opt", "bogus", "busybox", "true")


def test_seccomp_profile_file(cli, tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    r = cli("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
            "grep Seccomp: /proc/self/status; mkdir /tmp/d")
    assert "Seccomp:\t2" in r.stdout
    assert r.returncode != 0 and "mkdir" in r.stderr


# ---------------------------------------------------------------------------- init


def test_init(cli):
    out = cli.out("--init", "busybox", "sh", "-c",
                  "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                  # an orphan that exits: the init must reap it
                  "sh -c 'sleep 0.2 &'; sleep 1; "
                  "for p in /proc/[0-9]*; do cat $p/stat; echo; done")
    lines = out.splitlines()
    assert "init" in lines[0] and "sh -c" in lines[0], lines[0]
    zombies = [line for line in lines[1:] if line.strip() and line.split(")")[1].split()[0]
               == "Z"]
    assert zombies == []
    # the signal is forwarded: sleep dies of SIGTERM
    cid = cli.detach("--init", "busybox", "sleep", "1000")
    cli.ok("kill", "-s", "TERM", cid)
    assert cli.ok("wait", cid).strip() == "143"


def test_without_init_pid1_is_the_command(cli):
    assert cli.out("busybox", "cat", "/proc/1/cmdline") == "cat\0/proc/1/cmdline\0"


# ---------------------------------------------------------------------------- restart


def test_restart_on_failure_stops_after_retries(cli):
    cid = cli.detach("--restart", "on-failure:2", "busybox", "sh", "-c", "exit 4")

    def done():
        doc = cli.inspect(cid)
        return doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited" and doc

    doc = wait_until(done, 30, interval=0.1, message="two restarts, then exited")
    assert doc["State"]["ExitCode"] == 4
    # and no third: wait until its monitor is gone, then look again
    wait_until(lambda: not [m for m in monitors_of(cli.root) if cid in m], 10)
    time.sleep(0.5)
    doc = cli.inspect(cid)
    assert doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited"
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                  "MaximumRetryCount": 2}


def test_wait_does_not_take_the_restart_away(cli):
    """`wait` returns the first exit; the restart policy is still applied."""
    cid = cli.detach("--restart", "on-failure:1", "busybox", "sh", "-c",
                     "while [ ! -e /tmp/go ]; do sleep 0.02; done; rm /tmp/go; exit 3")
    w = cli.popen("wait", cid)
    cli.ok("exec", cid, "touch", "/tmp/go")
    out, _ = w.communicate(timeout=30)
    assert out.decode().strip() == "3"
    wait_until(lambda: (d := cli.inspect(cid))["RestartCount"] == 1
               and d["State"]["Status"] == "running", 15,
               message="the on-failure restart after a wait")
    cli.ok("exec", cid, "touch", "/tmp/go")  # the restarted one exits too: no more
    assert cli.ok("wait", cid).strip() == "3"
    wait_until(lambda: not processes_mentioning(cid), 15)
    doc = cli.inspect(cid)
    assert doc["RestartCount"] == 1 and doc["State"]["Status"] == "exited"


def test_restart_on_failure_not_after_success(cli):
    cid = cli.detach("--restart", "on-failure", "busybox", "true")
    assert cli.ok("wait", cid).strip() == "0"
    wait_until(lambda: not [m for m in monitors_of(cli.root) if cid in m], 10)
    assert cli.inspect(cid)["RestartCount"] == 0


def test_restart_always_then_stop(cli):
    cid = cli.detach("--restart", "always", "busybox", "sh", "-c", "sleep 0.1")
    wait_until(lambda: cli.inspect(cid)["RestartCount"] >= 2, 30, interval=0.1,
               message="restarted after successful exits")
    cli.ok("stop", "-t", "1", cid)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited"
    count = doc["RestartCount"]
    wait_until(lambda: not [m for m in monitors_of(cli.root) if cid in m], 10)
    time.sleep(1.0)  # longer than the back-off so far: a restart would have happened
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count


def test_stop_during_restart_back_off(cli):
    """`stop` while the container waits out its restart back-off (Docker's "restarting"):
    no restart after it."""
    cid = cli.detach("--restart", "always", "busybox", "true")
    wait_until(lambda: cli.inspect(cid)["RestartCount"] >= 3, 30, interval=0.1)
    cli.ok("stop", cid)  # the next back-off is >= 0.8 s: most likely in it now
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited"
    count = doc["RestartCount"]
    wait_until(lambda: not processes_mentioning(cid), 15,
               message="no monitor or pending restart of it")
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count


def test_restart_unless_stopped_after_kill(cli):
    cid = cli.detach("--restart", "unless-stopped", "busybox", "sleep", "1000")
    cli.ok("kill", cid)  # a user's kill counts as a stop: no restart
    assert cli.ok("wait", cid).strip() == "137"
    time.sleep(0.5)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == 0


# ---------------------------------------------------------------------------- labels, stop


def test_labels_and_filter(cli, tmp_path):
    lf = tmp_path / "labels"
    lf.write_text("from.file=yes\n")
    a = cli.create("--label", "team=blue", "--label", "flag", "--label-file", str(lf),
                   "busybox", "true")
    b = cli.create("--label", "team=red", "busybox", "true")
    labels = cli.inspect(a)["Config"]["Labels"]
    assert labels["team"] == "blue" and labels["flag"] == "" and labels["from.file"] == "yes"
    ids = lambda *f: {r["ID"] for r in cli.ps(*f)}  # noqa: E731
    assert ids("--filter", "label=team=blue") == {a}
    assert ids("--filter", "label=team") == {a, b}
    assert ids("--filter", "label=flag") == {a}
    assert ids("--filter", "label=team=green") == set()
    assert ids("--filter", "label=team", "--filter", "label=from.file") == {a}


def test_stop_signal_reaches_a_trap(cli):
    cid = cli.detach("--stop-signal", "USR1", "--stop-timeout", "20", "busybox", "sh", "-c",
                     "trap 'echo got-usr1; exit 7' USR1; echo ready; "
                     "while :; do sleep 0.05; done")
    wait_until(lambda: "ready" in cli("logs", cid).stdout, 10)
    doc = cli.inspect(cid)
    assert doc["Config"]["StopSignal"] == "SIGUSR1" and doc["Config"]["StopTimeout"] == 20
    cli.ok("stop", cid)
    assert cli.ok("logs", cid).splitlines() == ["ready", "got-usr1"]
    st = cli.inspect(cid)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 7


def test_stop_timeout_then_kill(cli):
    cid = cli.detach("--stop-timeout", "1", "busybox", "sh", "-c",
                     "trap 'echo ignoring' TERM; echo ready; while :; do sleep 0.05; done")
    wait_until(lambda: "ready" in cli("logs", cid).stdout, 10)
    cli.ok("stop", cid)
    assert "ignoring" in cli.ok("logs", cid)
    assert cli.inspect(cid)["State"]["ExitCode"] == 137


# ---------------------------------------------------------------------------- network, sysctl


def _interfaces(text: str) -> set[str]:
    return {line.split(":")[0].strip() for line in text.splitlines()[2:] if ":" in line}


def test_network_none(cli):
    out = cli.out("--network", "none", "busybox", "cat", "/proc/net/dev")
    assert _interfaces(out) == {"lo"}
    out = cli.out("busybox", "cat", "/proc/net/dev")  # the default: the bridge network
    assert _interfaces(out) == {"lo", "eth0"}


def test_network_host(cli):
    """The container sees the host's interfaces. Other tests make and remove veths and
    bridges meanwhile: what it sees lies between the host's lists before and after."""
    def host() -> set[str]:
        with open("/proc/net/dev") as f:
            return _interfaces(f.read())

    before = host()
    seen = _interfaces(cli.out("--network", "host", "busybox", "cat", "/proc/net/dev"))
    after = host()
    assert before & after - {"lo"}, "the host has no interface but lo"
    assert before & after <= seen <= before | after, (seen, before, after)
    cli.fails(125, "run", "--rm", "--network", "nosuchnet", "busybox", "true")


def test_sysctl(cli):
    out = cli.out("--network", "none", "--sysctl", "net.ipv4.ip_forward=1",
                  "--sysctl", "kernel.msgmax=12345", "busybox", "sh", "-c",
                  "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert out.split() == ["1", "12345"]
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read().strip() != "12345"  # the host's is untouched
    cli.fails(125, "run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1",
              "busybox", "true")
    cli.fails(125, "run", "--rm", "--sysctl", "vm.swappiness=1", "busybox", "true")


def test_device(cli):
    out = cli.out("--device", "/dev/null:/dev/xnull", "busybox", "sh", "-c",
                  "stat -c '%t %T %F' /dev/xnull; echo data > /dev/xnull && echo wrote")
    lines = out.splitlines()
    assert lines[0] == "1 3 character special file"
    assert lines[1] == "wrote"
    cli.fails(125, "run", "--rm", "--device", "/dev/no-such-device", "busybox", "true")


def test_device_read_only_permission(cli):
    # opening for writing must be refused by the device cgroup (kmsg is not among the
    # devices every container may use)
    r = cli("run", "--rm", "--device", "/dev/kmsg:/dev/rkmsg:r", "busybox", "sh", "-c",
            "stat -c '%t %T' /dev/rkmsg; echo sangja-test > /dev/rkmsg && echo WROTE")
    assert r.stdout.split()[:2] == ["1", "b"]
    assert "WROTE" not in r.stdout and "Operation not permitted" in r.stderr


def test_shm_size(cli):
    out = cli.out("--shm-size", "16m", "busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert "size=16384k" in out.split()[3].split(",")
    out = cli.out("busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert "size=65536k" in out.split()[3].split(",")


def test_pull_policies(cli):
    assert cli.out("--pull", "never", "busybox", "echo", "never") == "never\n"
    assert cli.out("--pull", "missing", "busybox", "echo", "missing") == "missing\n"
    line = cli.fails(125, "run", "--rm", "--pull", "always", "busybox", "true")
    assert "registry" in line
    line = cli.fails(125, "run", "--rm", "--pull", "never", "localhost/nope", "true")
    assert "localhost/nope" in line
    assert cli.ps() == []


# ---------------------------------------------------------------------------- runtimes


def test_runtime_runc(cli):
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    out = cli.out("--runtime", "runc", "--memory", "32m", "busybox", "sh", "-c",
                  "cat /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                  "2>/dev/null || cat /sys/fs/cgroup/memory.max")
    st = status_fields(out)
    assert int(st["CapEff"], 16) == DOCKER_CAPS and st["Seccomp"] == "2"
    assert out.splitlines()[-1] == str(32 << 20)
    cid = cli.detach("--runtime", "runc", "busybox", "sleep", "1000")
    assert cli.inspect(cid)["HostConfig"]["Runtime"] == "runc"
    assert cli.exec_out(cid, "echo", "exec-ok") == "exec-ok\n"
    cli.ok("stop", "-t", "0", cid)
    assert cli.inspect(cid)["State"]["ExitCode"] == 137
    cli.ok("rm", cid)


def test_runtime_crun(cli):
    if not shutil.which("crun"):
        pytest.skip("crun is not installed")
    r = cli("run", "--rm", "--runtime", "crun", "busybox", "echo", "crun-ok")
    if r.returncode != 0:
        # crun does not drive hybrid (v1 + unified) cgroup hierarchies: the error must say
        # so in one line, and nothing may be left (the fixture checks)
        lines = r.stderr.splitlines()
        assert r.returncode == 125 and len(lines) == 1 and lines[0].startswith("sangja: ")
        assert "crun" in lines[0]
        pytest.skip(f"crun cannot run containers on this host: {lines[0]}")
    assert r.stdout == "crun-ok\n"


# ---------------------------------------------------------------------------- OOM


def test_oom_killed(cli):
    r = cli("run", "--name", "hog", "--memory", "8m", "--memory-swap", "8m", "busybox",
            "tail", "/dev/zero")
    assert r.returncode == 137, r.stderr
    st = cli.inspect("hog")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137 and st["Status"] == "exited"
    # detached as well: the monitor's clean-up records it
    cid = cli.detach("--memory", "8m", "--memory-swap", "8m", "busybox", "tail",
                     "/dev/zero")
    assert cli.ok("wait", cid).strip() == "137"
    wait_until(lambda: cli.inspect(cid)["State"]["OOMKilled"], 10,
               message="OOMKilled recorded")


def test_not_oom_killed_when_killed(cli):
    cid = cli.detach("--memory", "64m", "busybox", "sleep", "1000")
    cli.ok("kill", cid)
    assert cli.ok("wait", cid).strip() == "137"
    assert cli.inspect(cid)["State"]["OOMKilled"] is False
