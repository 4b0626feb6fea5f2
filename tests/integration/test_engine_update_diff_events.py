"""`update`, `diff` and `events` against real containers: the limits `update` sets are read
from the container's own cgroup files (and survive a restart), `diff` is compared with
what the container did, `events` with what the commands did (and a follower sees what
happens after it started). Bad input: one line, exit 125 (a missing container: 1, as
Docker's)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from engine_cli import wait_until

pytestmark = pytest.mark.root

NONE = ("--network", "none")
CG = ("cd /sys/fs/cgroup; if [ -d memory ]; then cat memory/memory.limit_in_bytes "
      "memory/memory.soft_limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.shares pids/pids.max; "
      "else cat memory.max memory.low; cut -d' ' -f1 cpu.max; cat cpu.weight pids.max; fi")


def limits(cli, ref: str) -> list[str]:
    return cli.exec_out(ref, "sh", "-c", CG).split()


def test_update_running_container(cli):
    cid = cli.detach(*NONE, "-m", "64m", "busybox", "sleep", "300")
    out = cli.ok("update", "--memory", "96m", "--memory-swap", "200m",
                 "--memory-reservation", "32m", "--cpus", "0.5", "--cpu-shares", "512",
                 "--pids-limit", "40", "--restart", "on-failure:2", cid)
    assert out.strip() == cid
    mem, low, quota, shares, pids = limits(cli, cid)
    assert int(mem) == 96 << 20 and int(low) == 32 << 20
    assert int(quota) == 50000 and pids == "40"
    if os.path.isdir("/sys/fs/cgroup/cpu"):
        assert shares == "512"
    host = cli.inspect(cid)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["MemoryReservation"]) == (
        96 << 20, 200 << 20, 32 << 20)
    assert (host["NanoCpus"], host["CpuShares"], host["PidsLimit"]) == (500_000_000, 512, 40)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    # recorded: a restart builds the same limits again
    cli.ok("restart", "-t", "0", cid)
    mem, low, quota, _, pids = limits(cli, cid)
    assert (int(mem), int(low), int(quota), pids) == (96 << 20, 32 << 20, 50000, "40")


def test_update_through_runc(cli):
    """Another runtime gets the limits through its own `update --resources -`."""
    if not shutil.which("runc"):
        pytest.skip("no runc")
    cid = cli.detach(*NONE, "--runtime", "runc", "-m", "64m", "busybox", "sleep", "300")
    cli.ok("update", "--memory", "72m", "--pids-limit", "21", cid)
    mem, _, _, _, pids = limits(cli, cid)
    assert int(mem) == 72 << 20 and pids == "21"


def test_update_stopped_container_applies_at_start(cli):
    cid = cli.create(*NONE, "busybox", "sleep", "300")
    cli.ok("update", "--memory", "80m", "--pids-limit", "33", cid)
    cli.ok("start", cid)
    mem, _, _, _, pids = limits(cli, cid)
    assert int(mem) == 80 << 20 and pids == "33"


def test_update_bad_input(cli):
    cid = cli.detach(*NONE, "-m", "64m", "--memory-swap", "128m", "busybox", "sleep", "300")
    assert "one or more flags" in cli.fails(125, "update", cid)
    cli.fails(125, "update", "--memory", "lots", cid)
    cli.fails(125, "update", "--cpus", "9999", cid)
    cli.fails(125, "update", "--restart", "sometimes", cid)
    # Docker's rule: a memory limit above the swap limit needs the swap limit too
    assert "memoryswap" in cli.fails(1, "update", "--memory", "256m", cid)
    assert "No such container" in cli.fails(1, "update", "--memory", "80m", "zz-missing")
    mem = limits(cli, cid)[0]
    assert int(mem) == 64 << 20  # nothing changed
    rm = cli.create(*NONE, "--rm", "busybox", "true")
    assert "AutoRemove" in cli.fails(1, "update", "--restart", "always", rm)


def test_diff(cli):
    cid = cli.create(*NONE, "busybox", "sh", "-c",
                     "touch /etc/added; rm /bin/ls; mkdir -p /new/sub; echo x > /new/sub/f; "
                     "echo changed >> /etc/passwd")
    assert cli.ok("diff", cid) == ""
    cli.ok("start", "-a", cid)
    assert cli.ok("diff", cid).splitlines() == [
        "C /bin", "D /bin/ls", "C /etc", "A /etc/added", "C /etc/passwd", "A /new",
        "A /new/sub", "A /new/sub/f"]


def test_diff_does_not_follow_container_links(cli, tmp_path):
    """A running container swaps a changed directory for a link to the host's /: the walk
    neither follows it nor lists what is behind it."""
    secret = tmp_path / "secret-name-xyz"
    secret.write_text("s")
    cid = cli.detach(*NONE, "busybox", "sh", "-c",
                     f"mkdir -p /d/e; touch /d/e/f; rm -r /d/e; ln -s {tmp_path} /d/e; "
                     "sleep 300")
    wait_until(lambda: "A /d/e" in cli.ok("diff", cid))
    out = cli.ok("diff", cid)
    assert "secret-name-xyz" not in out
    assert out.splitlines() == ["A /d", "A /d/e"]


def test_diff_bad_input(cli):
    assert "No such container" in cli.fails(None, "diff", "zz-missing")
    cli.fails(125, "diff")


def events(cli, *args: str) -> list[dict]:
    out = cli.ok("events", "--until", "0s", "--format", "{{json .}}", *args)
    return [json.loads(line) for line in out.splitlines()]


def test_events_of_a_lifecycle(cli):
    since = str(time.time() - 1)
    cid = cli.detach(*NONE, "--name", "zz-ev1", "--label", "tier=web", "busybox", "sleep",
                     "300")
    cli.ok("pause", cid)
    cli.ok("unpause", cid)
    cli.ok("rename", cid, "zz-ev2")
    cli.ok("kill", "-s", "USR1", cid)
    cli.ok("stop", "-t", "0", cid)
    cli.ok("rm", cid)
    got = events(cli, "--since", since, "--filter", f"container={cid}")
    assert [e["Action"] for e in got] == ["create", "start", "pause", "unpause", "rename",
                                          "kill", "die", "stop", "destroy"]
    first = got[0]
    assert first["Type"] == "container" and first["Actor"]["ID"] == cid
    assert first["Actor"]["Attributes"] == {"image": "busybox", "name": "zz-ev1",
                                            "tier": "web"}
    assert first["from"] == "busybox" and first["status"] == "create"
    assert got[4]["Actor"]["Attributes"]["oldName"] == "/zz-ev1"
    assert got[5]["Actor"]["Attributes"]["signal"] == str(signal.SIGUSR1)
    assert got[6]["Actor"]["Attributes"]["exitCode"] == "137"
    # filters: by name, by event, by type and image; the default text line
    assert [e["Action"] for e in events(cli, "--since", since, "--filter", "container=zz-ev2",
                                        "--filter", "event=die")] == ["die"]
    assert events(cli, "--since", since, "--filter", "type=image", "--filter",
                  f"container={cid}") == []
    line = cli.ok("events", "--since", since, "--until", "0s", "--filter",
                  f"container={cid}", "--filter", "event=create").strip()
    assert line.endswith(f" container create {cid} (image=busybox, name=zz-ev1, tier=web)")
    assert cli.ok("events", "--since", since, "--until", "0s", "--filter",
                  f"container={cid}", "--format", "{{.Action}} {{.Actor.Attributes.name}}"
                  ).splitlines()[:2] == ["create zz-ev1", "start zz-ev1"]


def test_image_events(cli):
    since = str(time.time() - 1)
    image_id = json.loads(cli.ok("image", "inspect", "busybox"))[0]["Id"]
    cli.ok("tag", "busybox", "localhost/zz-ev:1")
    cli.ok("rmi", "localhost/zz-ev:1")
    got = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in
           events(cli, "--since", since, "--filter", "type=image")]
    assert got == [("tag", image_id, {"name": "zz-ev:1"}),  # familiar, as Docker's
                   ("untag", image_id, {"name": "zz-ev:1"})]
    assert events(cli, "--since", since, "--filter", "image=localhost/zz-ev:1",
                  "--filter", "event=untag")[0]["Action"] == "untag"


def test_events_follow(cli):
    """Without --until, `events` waits for what comes next, like docker's."""
    p = cli.popen("events", "--format", "{{.Action}} {{.Actor.Attributes.name}}",
                  "--filter", "container=zz-follow")
    try:
        time.sleep(0.5)
        cli.ok("run", "--rm", *NONE, "--name", "zz-follow", "busybox", "true")
        buf = b""

        def got_destroy():
            nonlocal buf
            import select

            while select.select([p.stdout], [], [], 0.1)[0]:
                data = os.read(p.stdout.fileno(), 65536)
                if not data:
                    break
                buf += data
            return b"destroy zz-follow" in buf

        wait_until(got_destroy, 15)
        assert buf.decode().splitlines() == ["create zz-follow", "start zz-follow", "die zz-follow",
                        "destroy zz-follow"]
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("args", [
    ["--filter", "colour=red"], ["--filter", "nokey"], ["--since", "yesterday"],
    ["--until", "soon"], ["extra-arg"],
])
def test_events_bad_input(cli, args):
    r = subprocess.run(cli.argv("events", "--until", "0s", *args), capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 125 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("sangja: ")
