"""The Docker CLI's shape, from the outside (issue 13, part C): filters, --format on every
listing, and the behaviours scripts rely on (restarting, stop in parallel, cp of the /etc
files, -v making a missing directory, -it without a terminal, a closed terminal). The
comparisons with a private dockerd (inspect's keys, info, exit codes) are in
test_cli_docker.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from engine_cli import Pty, wait_until

pytestmark = pytest.mark.root

IMAGE = "localhost/busybox:latest"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- filters


def test_ps_filters(cli, tmp_path):
    a = cli.detach("--name", "fa", "--network", "none", "-l", "tier=web",
                   "-v", f"{tmp_path}:/data", IMAGE, "sleep", "1000")
    b = cli.detach("--name", "fb", IMAGE, "sleep", "1000")
    c = cli.create("--name", "fc", "--network", "none", IMAGE, "true")

    def names(*f: str) -> list[str]:
        return cli.ok("ps", "-a", "--format", "{{.Names}}", *f).split()

    assert names("--filter", f"since={a[:12]}") == ["fc", "fb"]
    assert names("--filter", "before=fc") == ["fb", "fa"]
    assert names("--filter", "since=fa", "--filter", "before=fc") == ["fb"]
    assert names("--filter", "volume=/data") == names("--filter", f"volume={tmp_path}") == ["fa"]
    assert names("--filter", "network=none") == ["fc", "fa"]
    assert names("--filter", "network=bridge") == ["fb"]
    assert names("--filter", "label=tier=web") == ["fa"]
    assert names("--filter", "health=none") == ["fc", "fb", "fa"]
    assert names("--filter", "health=healthy") == []
    assert names("--filter", "name=^f[ab]$") == ["fb", "fa"]
    assert names("--filter", "status=created") == ["fc"]
    assert names("--filter", "expose=80") == []
    del b, c


def test_ps_publish_and_expose_filters(cli):
    cli.detach("--name", "pub", "-p", "127.0.0.1:18089:80", IMAGE, "sleep", "1000")
    cli.detach("--name", "nopub", IMAGE, "sleep", "1000")

    def names(*f: str) -> list[str]:
        return cli.ok("ps", "--format", "{{.Names}}", *f).split()

    assert names("--filter", "publish=18089") == ["pub"]
    assert names("--filter", "publish=18080-18090/tcp") == ["pub"]
    assert names("--filter", "publish=18089/udp") == []
    assert names("--filter", "expose=80/tcp") == ["pub"]
    assert names("--filter", "expose=81") == []


def test_images_filters_and_reference(cli, tmp_path):
    tarball = tmp_path / "rootfs.tar"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    subprocess.run(["tar", "-C", str(tmp_path / "d"), "-cf", str(tarball), "."], check=True)
    first = cli.ok("import", "-c", "LABEL kind=one", str(tarball), "example.com/flt/a:1").strip()
    time.sleep(1.1)  # image creation times have whole seconds: order them
    (tmp_path / "d" / "g").write_text("y")
    subprocess.run(["tar", "-C", str(tmp_path / "d"), "-cf", str(tarball), "."], check=True)
    cli.ok("import", "-c", "LABEL kind=two", str(tarball), "example.com/flt/b:2")
    cli.ok("tag", "example.com/flt/b:2", "example.com/flt/b:latest")
    try:
        def rows(*args: str) -> list[str]:
            return cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}", *args).split()

        assert rows("example.com/flt/b") == ["example.com/flt/b:2", "example.com/flt/b:latest"]
        assert rows("example.com/flt/b:2") == ["example.com/flt/b:2"]
        assert rows("--filter", "reference=example.com/flt/*:1") == ["example.com/flt/a:1"]
        assert rows("--filter", "reference=*/a") == []  # `*` stops at a `/`
        assert rows("--filter", "label=kind=one") == ["example.com/flt/a:1"]
        assert rows("--filter", "label=kind", "--filter", "reference=*/*/b") == [
            "example.com/flt/b:2", "example.com/flt/b:latest"]
        assert rows("--filter", "since=example.com/flt/a:1") == [
            "example.com/flt/b:2", "example.com/flt/b:latest"]
        assert "example.com/flt/a:1" in rows("--filter", "before=example.com/flt/b:2")
        # the worker's engine may hold other tests' dangling images: none of these
        assert not [r for r in rows("--filter", "dangling=true") if "flt" in r]
        assert cli.ok("images", "--no-trunc", "-q", "example.com/flt/a") == f"{first}\n"
        # image prune --filter: only what the filter selects, dangling ones by default
        cli.ok("tag", "example.com/flt/a:1", "example.com/flt/keep:1")
        cli.ok("rmi", "example.com/flt/a:1")
        cli.ok("rmi", "example.com/flt/keep:1")  # a's image: dangling? no, removed
        out = cli.ok("image", "prune", "-a", "-f", "--filter", "label=kind=nothing")
        assert rows("example.com/flt/b") == ["example.com/flt/b:2", "example.com/flt/b:latest"]
        assert out.strip().endswith("Total reclaimed space: 0B")
        cli.ok("image", "prune", "-a", "-f", "--filter", "label=kind=two")
        assert rows("example.com/flt/b") == []
        assert cli("image", "prune", "-f", "--filter", "reference=x").returncode == 125
        assert cli("image", "prune", "-f", "--filter", "until=nonsense").returncode == 125
    finally:
        for name in ("example.com/flt/a:1", "example.com/flt/b:2", "example.com/flt/b:latest",
                     "example.com/flt/keep:1"):
            cli("rmi", "-f", name)


# ---------------------------------------------------------------------------- --format


def test_every_listing_takes_format(cli):
    cli.ok("volume", "create", "--label", "a=b", "fmtvol")
    cid = cli.detach("--name", "fmtstats", IMAGE, "sleep", "1000")
    try:
        assert cli.ok("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}",
                      "--filter", "name=fmtvol") == "fmtvol local a=b\n"
        (vol,) = json_lines(cli.ok("volume", "ls", "--format", "json", "-f", "name=fmtvol"))
        assert set(vol) == {"Availability", "Driver", "Group", "Labels", "Links",
                            "Mountpoint", "Name", "Scope", "Size", "Status"}
        table = cli.ok("volume", "ls", "--format", "table {{.Name}}\t{{.Scope}}").splitlines()
        assert table[0].split() == ["VOLUME", "NAME", "SCOPE"]
        nets = json_lines(cli.ok("network", "ls", "--format", "json"))
        assert {"ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels"} <= set(nets[0])
        assert "bridge bridge\n" in cli.ok("network", "ls", "--format",
                                            "{{.Name}} {{.Driver}}")
        hist = json_lines(cli.ok("history", "--format", "json", IMAGE))
        assert set(hist[0]) == {"ID", "CreatedSince", "CreatedAt", "CreatedBy", "Size",
                                "Comment"}
        assert cli.ok("history", "--format", "{{.CreatedBy}}", IMAGE).strip() == \
            "sangja bootstrap busybox"
        stats = cli.ok("stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", cid)
        assert stats == "fmtstats:1\n"
        df = json_lines(cli.ok("system", "df", "--format", "json"))
        assert [d["Type"] for d in df] == ["Images", "Containers", "Local Volumes",
                                           "Build Cache"]
        assert all(isinstance(v, str) for d in df for v in d.values())  # docker's strings
        assert cli.ok("system", "df", "--format", "{{.Type}}").splitlines()[0] == "Images"
        assert int(cli.ok("system", "df", "-v", "--format", "{{len .Images}}")) >= 1
        assert cli.fails(64, "volume", "ls", "--format", "{{.Name").startswith(
            "sangja: template parsing error")
    finally:
        cli("rm", "-f", cid)
        cli("volume", "rm", "fmtvol")


# ---------------------------------------------------------------------------- behaviour


def test_v_makes_a_missing_host_directory_when_the_container_starts(cli, tmp_path):
    src = tmp_path / "made" / "here"
    cid = cli.create("-v", f"{src}:/x", IMAGE, "sh", "-c", "echo hi > /x/f")
    assert not src.exists()  # docker: made at start, not at create
    cli.ok("start", "-a", cid)
    assert (src / "f").read_text() == "hi\n"
    assert oct(src.stat().st_mode & 0o777) == "0o755"
    # --mount keeps refusing a missing source, as docker does
    r = cli("create", "--mount", f"type=bind,src={tmp_path}/nope,dst=/x", IMAGE)
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr
    assert not (tmp_path / "nope").exists()


def test_cp_reads_the_etc_files_the_container_sees(cli, tmp_path):
    cid = cli.detach("--hostname", "seen-host", "--add-host", "cp-test:10.1.2.3", IMAGE,
                     "sleep", "1000")
    for path in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
        out = tmp_path / path.rpartition("/")[2]
        cli.ok("cp", f"{cid}:{path}", str(out))
        assert out.read_text() == cli.exec_out(cid, "cat", path), path
    assert "10.1.2.3\tcp-test" in (tmp_path / "hosts").read_text()
    assert (tmp_path / "hostname").read_text() == "seen-host\n"


def test_restarting_shows_between_tries(cli):
    cid = cli.detach("--restart", "always", "--network", "none", IMAGE, "sh", "-c", "exit 3")
    wait_until(lambda: cli.inspect(cid)["RestartCount"] >= 4, 30, message="restarts")

    def restarting() -> bool:
        s = cli.inspect(cid)["State"]
        return s["Status"] == "restarting" and s["Restarting"] and s["ExitCode"] == 3

    wait_until(restarting, 30, 0.02, message="State restarting")
    status = cli.ok("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}")
    assert status.startswith(("Restarting (3)", "Up ")), status
    assert cli.ok("ps", "-a", "--filter", "status=restarting", "--format", "{{.ID}}",
                  "--no-trunc") in ("", f"{cid}\n")
    cli.ok("rm", "-f", cid)


def test_stop_stops_containers_in_parallel(cli, tmp_path):
    """The first container ignores the stop signal (sh as pid 1): stopping it waits out the
    timeout. The second exits on it, writing a mark: with docker's parallel stop the mark
    appears while the first is still running."""
    slow = cli.detach("--network", "none", IMAGE, "sh", "-c", "sleep 1000")
    fast = cli.detach("--network", "none", "-v", f"{tmp_path}:/m", IMAGE, "sh", "-c",
                      "trap 'touch /m/termed; exit 0' TERM; while :; do sleep 0.05; done")
    p = cli.popen("stop", "-t", "10", slow, fast)
    try:
        wait_until(lambda: (tmp_path / "termed").exists(), 8, message="the second stop")
        assert cli.inspect(slow)["State"]["Running"]  # still within its timeout
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.decode().split() == [slow, fast]  # in the order given


def test_exec_it_without_a_terminal_is_refused_as_docker(cli):
    cid = cli.detach(IMAGE, "sleep", "1000")
    assert cli.fails(1, "exec", "-it", cid, "true", input="") == \
        "sangja: the input device is not a TTY"
    assert cli.fails(1, "run", "--rm", "-it", IMAGE, "true", input="") == \
        "sangja: the input device is not a TTY"


def test_closing_the_terminal_of_run_it_leaves_the_container_running(cli):
    name = "hup-it"
    term = Pty(cli.argv("run", "-it", "--name", name, "--network", "none", IMAGE, "sh"))
    try:
        term.expect(r"/ # ")
        term.send("echo ready-$((40+2))\n")
        term.expect("ready-42")
        os.kill(term.pid, signal.SIGHUP)  # what closing the terminal window does
        term.wait()
    finally:
        term.close()
    doc = cli.inspect(name)
    assert doc["State"]["Running"], doc["State"]
    assert cli.exec_out(name, "echo", "alive") == "alive\n"
    pid = doc["State"]["Pid"]
    assert os.path.exists(f"/proc/{pid}")
