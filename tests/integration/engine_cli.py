"""Shared helpers of the engine's command-line tests (test_engine_run.py,
test_engine_lifecycle.py, test_engine_robustness.py): the real `sangja` command against an
isolated --root/--runroot, a pty driver, and the leak checks.

Busybox is bootstrapped once per xdist worker; every test gets the worker's engine through
its module's `cli` fixture (`cli_fixture`), which removes whatever the test left and then
checks that nothing of it remains (mounts under the roots, monitors, cgroups and processes
named after its containers, state directories). Each module's `engine` fixture
(`engine_fixture`) checks once more at the module's end."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANGJA = REPO / ".venv" / "bin" / "sangja"
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


class Cli:
    """`sangja --root R --runroot RR ...` as a subprocess. Every 64-hex id it prints is
    remembered (`seen`), so the leak checks know which cgroups and processes are ours."""

    def __init__(self, root: Path, runroot: Path):
        self.root, self.runroot = Path(root), Path(runroot)
        self.seen: set[str] = set()

    def argv(self, *args: str) -> list[str]:
        return [str(SANGJA), "--root", str(self.root), "--runroot", str(self.runroot),
                *map(str, args)]

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
                 text: bool = True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv(*args), input=input, capture_output=True, text=text,
                           timeout=timeout, **kw)
        out = r.stdout if text else r.stdout.decode(errors="replace")
        self.seen.update(HEX64.findall(out))
        return r

    def ok(self, *args: str, **kw) -> str:
        r = self(*args, **kw)
        assert r.returncode == 0, (f"sangja {' '.join(map(str, args))}: exit {r.returncode}\n"
                                   f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r.stdout

    def fails(self, code: int | None, *args: str, **kw) -> str:
        """Run a command that must fail with one line on stderr; return that line."""
        r = self(*args, **kw)
        assert r.returncode != 0, f"sangja {' '.join(args)} succeeded:\n{r.stdout}"
        if code is not None:
            assert r.returncode == code, (f"sangja {' '.join(args)}: exit {r.returncode}, "
                                          f"expected {code}\n{r.stderr}")
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
        assert "Traceback" not in r.stderr
        return lines[0]

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.argv(*args), **kw)

    def out(self, *run_args: str, **kw) -> str:
        """`run --rm ARGS`: its stdout (must exit 0)."""
        return self.ok("run", "--rm", *run_args, **kw)

    def detach(self, *run_args: str) -> str:
        cid = self.ok("run", "-d", *run_args).strip()
        assert HEX64.fullmatch(cid), cid
        return cid

    def create(self, *args: str) -> str:
        cid = self.ok("create", *args).strip()
        assert HEX64.fullmatch(cid), cid
        return cid

    def inspect(self, ref: str) -> dict:
        (doc,) = json.loads(self.ok("inspect", "--type", "container", ref))
        self.seen.add(doc["Id"])
        return doc

    def status(self, ref: str) -> str:
        return self.inspect(ref)["State"]["Status"]

    def ps(self, *extra: str) -> list[dict]:
        out = self.ok("ps", "-a", "--no-trunc", "--format", "json", *extra)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.seen.update(r["ID"] for r in rows)
        return rows

    def wait_status(self, ref: str, *want: str, timeout: float = 15) -> dict:
        doc = {}

        def ok():
            nonlocal doc
            r = self("inspect", "--type", "container", ref)
            if r.returncode != 0:  # not made yet
                return False
            (doc,) = json.loads(r.stdout)
            self.seen.add(doc["Id"])
            return doc["State"]["Status"] in want

        wait_until(ok, timeout, message=f"{ref} to be {want} (last: {doc.get('State')})")
        return doc

    def exec_out(self, ref: str, *cmd: str) -> str:
        return self.ok("exec", ref, *cmd)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{message or predicate}")
        time.sleep(interval)


def status_fields(text: str) -> dict[str, str]:
    """/proc/PID/status lines -> {key: value}."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


# ------------------------------------------------------------------------------ a pty driver


class Pty:
    """A command with a controlling terminal: `expect` output, `send` keys."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80):
        import fcntl
        import pty
        import struct
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.buf = b""
        self.code: int | None = None

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child side closed
            return False
        if not data:
            return False
        self.buf += data
        return True

    def expect(self, pattern: bytes | str, timeout: float = 15) -> bytes:
        """Wait until `pattern` (a regex) appears in the output after what was consumed;
        consume up to its end."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m.group(0)
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                if (m := rx.search(self.buf)):
                    self.buf = self.buf[m.end():]
                    return m.group(0)
                raise AssertionError(f"no {pattern!r} in the terminal output: {self.buf!r}")

    def send(self, data: bytes | str) -> None:
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def wait(self, timeout: float = 15) -> int:
        """Drain the output until the child exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self.code is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the terminal's command did not exit: {self.buf!r}")
            self._read(0.05)
        while self._read(0):
            if not select.select([self.fd], [], [], 0)[0]:
                break
        return self.code

    def kill(self) -> None:
        if self.code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                _, st = os.waitpid(self.pid, 0)
                self.code = os.waitstatus_to_exitcode(st)
            except ChildProcessError:
                self.code = -9

    def close(self) -> None:
        self.kill()
        try:
            os.close(self.fd)
        except OSError:
            pass


# ------------------------------------------------------------------------------ leak checks


def mounts_under(*tops: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    prefixes = [str(t).rstrip("/") + "/" for t in tops]
    return [p for p in points if any(p.startswith(x) or p + "/" == x for x in prefixes)]


def monitors_of(root: Path) -> list[str]:
    out = []
    needle = str(root).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"sangja-monitor" and any(
                needle in a for a in argv):
            out.append(f"{entry}: {b' '.join(argv).decode(errors='replace')}")
    return out


def processes_mentioning(text: str) -> list[str]:
    """Live processes with `text` in their command line (a container's monitor, its
    clean-up, a restart waiting out its back-off)."""
    out = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(entry)
        except OSError:
            pass
    return out


def processes_in(ids: set[str]) -> list[str]:
    """Processes whose cgroup is named after one of `ids` (a container's)."""
    if not ids:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                text = f.read()
            if any(i in text for i in ids):
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":  # zombies run nothing
                        out.append(entry)
        except OSError:
            continue
    return out


def cgroups_of(ids: set[str]) -> list[str]:
    found = glob.glob("/sys/fs/cgroup/*/sangja/*") + glob.glob("/sys/fs/cgroup/sangja/*")
    return [d for d in found if os.path.basename(d) in ids]


def state_dirs(cli: Cli) -> list[str]:
    out = []
    for d in (cli.root / "containers", cli.root / "snapshots" / "overlay",
              cli.runroot / "engine",
              cli.runroot / "runtime", cli.runroot / "runc", cli.runroot / "crun"):
        if d.is_dir():
            out += [str(d / n) for n in os.listdir(d) if HEX64.fullmatch(n)]
    return out


@contextlib.contextmanager
def isolation_guard(exclusive: bool = False):
    """netavark 1.4 removes the FORWARD jump that every isolated network shares when one
    network's bridge goes (sangja restores it for its own store, a container start
    restores it): a test that checks isolation holds this exclusively, and the helpers that
    delete networks (network rm, prune) hold it shared, so another xdist worker's clean-up
    does not open that window in the middle of the check."""
    import fcntl

    fd = os.open("/tmp/sangja-tests-netavark-isolation.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def network_state(cli: Cli, keepers: bool = True) -> list[str]:
    """Network namespaces and network state files left in the run root, and IP leases
    left in the store (sangja.network). `keepers`: the bridges' keepers too (they stay
    between tests of a module, like docker0, and go with `network prune`, which
    `remove_everything(networks=True)` runs at a module's end)."""
    out = []
    d = cli.runroot / "netns"
    if d.is_dir():
        out += [str(d / n) for n in os.listdir(d) if not n.startswith(".")
                and (keepers or not n.startswith("keeper-"))]
    db = cli.root / "networks.db"
    if db.exists():
        import sqlite3

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            out += [f"lease {a} of {c[:12]}" for a, c in
                    conn.execute("SELECT address, container_id FROM leases")
                    if keepers or not c.startswith("keeper-")]
        finally:
            conn.close()
    return out


def _shared(cli: Cli) -> bool:
    """A worker's engine (shared by the tests of a module): its networks' keepers stay
    from test to test and go at the module's end; any other store is checked whole."""
    return any(cli is e for e in _ENGINES.values())


def leaks(cli: Cli, keepers: bool | None = None) -> dict[str, list[str]]:
    if keepers is None:
        keepers = not _shared(cli)
    found = {
        "network": network_state(cli, keepers),
        "mounts": [m for m in mounts_under(cli.root, cli.runroot) if keepers or
                   not m.startswith(str(cli.runroot / "netns" / "keeper-"))],
        "monitors": monitors_of(cli.root),
        "cgroups": cgroups_of(cli.seen),
        "processes": processes_in(cli.seen),
        "state dirs": state_dirs(cli),
    }
    return {k: v for k, v in found.items() if v}


def wait_no_leaks(cli: Cli, timeout: float = 10, keepers: bool | None = None) -> None:
    """Nothing of ours remains (waits a little: a monitor may still be exiting)."""
    last: dict = {}

    def clean():
        nonlocal last
        last = leaks(cli, keepers)
        return not last

    try:
        wait_until(clean, timeout, interval=0.1)
    except AssertionError:
        purge(cli, last)
        raise AssertionError(f"left behind: {json.dumps(last, indent=1)}") from None


def purge(cli: Cli, found: dict[str, list[str]]) -> None:
    """Best effort: take away what `leaks` found, so that one test's leak is reported
    once, by that test, and not again by every test after it."""
    import shutil

    if found.get("network") or any("/netns/" in m for m in found.get("mounts", [])):
        # first, while the namespaces are there: netavark's teardown needs them to take
        # the veths, rules and bridges away
        subprocess.run(cli.argv("network", "prune", "-f"), capture_output=True)
        subprocess.run(cli.argv("system", "check", "--repair"), capture_output=True)
    for line in found.get("monitors", []):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for pid in found.get("processes", []):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for m in sorted(found.get("mounts", []), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    time.sleep(0.2)
    for d in found.get("cgroups", []):
        try:
            os.rmdir(d)
        except OSError:
            pass
    for d in found.get("state dirs", []):
        shutil.rmtree(d, ignore_errors=True)



def remove_everything(cli: Cli, networks: bool | None = None) -> None:
    """Remove every container and volume of this engine (a test's leftovers), and with
    `networks` every user network and the bridges' keepers (network prune; by default
    for every store but a worker's shared engine, whose module fixture does it)."""
    if networks is None:
        networks = not _shared(cli)
    r = cli("ps", "-a", "-q", "--no-trunc")
    ids = r.stdout.split()
    cli.seen.update(ids)
    if ids:
        r = cli("rm", "-f", "-v", *ids, timeout=120)
        assert r.returncode == 0, f"rm -f of the leftovers failed: {r.stderr}"
    vols = cli("volume", "ls", "-q").stdout.split()
    if vols:
        cli("volume", "rm", "-f", *vols)
    if networks and (cli.root / "networks.db").exists():
        with isolation_guard():
            r = cli("network", "prune", "-f", timeout=120)
        assert r.returncode == 0, f"network prune failed: {r.stderr}"


# ------------------------------------------------------------------------------ fixtures

_ENGINES: dict[str, Cli] = {}


def worker_engine(tmp_path_factory) -> Cli:
    """This worker's engine with busybox bootstrapped (once per worker)."""
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    if not SANGJA.exists():
        pytest.skip("run `make install` first: no .venv/bin/sangja")
    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    base = str(tmp_path_factory.getbasetemp())
    if base not in _ENGINES:
        top = tmp_path_factory.mktemp("engine")
        cli = Cli(top / "root", top / "run")
        cli.ok("bootstrap", "busybox")
        _ENGINES[base] = cli
    return _ENGINES[base]


def engine_fixture(tmp_path_factory):
    """Body of each module's `engine` fixture (module scope): the worker's engine; after
    the module, nothing of its containers may remain."""
    cli = worker_engine(tmp_path_factory)
    forwarding = _forwarding()
    yield cli
    remove_everything(cli, networks=True)
    wait_no_leaks(cli, keepers=True)
    _restore_forwarding(forwarding)


_FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def _forwarding() -> dict[str, str]:
    """The host's forwarding sysctls, which netavark turns on when it makes a bridge (it
    needs them for NAT and never turns them off): a test module leaves them as it found
    them."""
    out = {}
    for p in _FORWARDING:
        try:
            out[p] = Path(p).read_text()
        except OSError:
            pass
    return out


def _restore_forwarding(saved: dict[str, str]) -> None:
    for p, value in saved.items():
        try:
            if Path(p).read_text() != value:
                Path(p).write_text(value)
        except OSError:
            pass


def cli_fixture(engine: Cli):
    """Body of each module's `cli` fixture: the engine for one test; afterwards its
    containers and volumes are removed, and nothing of them may remain."""
    yield engine
    remove_everything(engine, networks=False)
    wait_no_leaks(engine, keepers=False)
