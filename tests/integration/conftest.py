"""Fixtures for the runtime integration tests.

Every test here drives a runc-compatible runtime through runc's command-line contract, so the
suite can be validated against real runc and then used against sangja-runtime:

    SANGJA_TEST_RUNTIME=/usr/sbin/runc python -m pytest tests/integration -n 2

Default runtime when SANGJA_TEST_RUNTIME is unset: <repo>/.venv/bin/sangja-runtime if it exists,
else `sangja-runtime` on PATH. Tests marked `sangja_only` are skipped when the runtime is runc
(set SANGJA_TEST_FORCE_SANGJA_ONLY=1 to run them anyway and watch them fail).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

BASE_CONFIG = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [DEFAULT_PATH, "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": list(DEFAULT_CAPS),
            "effective": list(DEFAULT_CAPS),
            "permitted": list(DEFAULT_CAPS),
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "sangja-test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}

# Sentinel for deep_merge: remove the key from the base config.
DELETE = object()


# --------------------------------------------------------------------------------------------
# runtime discovery, markers and skipping
# --------------------------------------------------------------------------------------------


@functools.cache
def runtime_binary() -> str | None:
    env = os.environ.get("SANGJA_TEST_RUNTIME")
    if env:
        found = env if os.path.isfile(env) else shutil.which(env)
        return os.path.abspath(found) if found else None
    venv = REPO / ".venv" / "bin" / "sangja-runtime"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which("sangja-runtime")


@functools.cache
def runtime_is_runc() -> bool:
    binary = runtime_binary()
    if binary is None:
        return False
    if os.path.basename(binary) == "runc":
        return True
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.lower().startswith("runc")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sangja_only: tests sangja-specific behaviour; skipped when the runtime under test is runc",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.root)
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="integration tests need root"))
            continue
        if runtime_binary() is None:
            item.add_marker(
                pytest.mark.skip(
                    reason="no runtime: set SANGJA_TEST_RUNTIME, or install sangja-runtime "
                    "into .venv or PATH"
                )
            )
            continue
        if (
            item.get_closest_marker("sangja_only")
            and runtime_is_runc()
            and not os.environ.get("SANGJA_TEST_FORCE_SANGJA_ONLY")
        ):
            item.add_marker(pytest.mark.skip(reason="sangja-specific behaviour; runtime is runc"))


def pytest_report_header(config):
    binary = runtime_binary()
    kind = "runc" if runtime_is_runc() else "sangja"
    return f"integration runtime: {binary or 'NOT FOUND'} ({kind if binary else '-'})"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def static_binary(tmp_path_factory, name: str, source: str) -> Path:
    """The C program `source` built static (so it runs in any rootfs, busybox's too) as
    <fresh dir>/NAME; the test is skipped where no C compiler with a static libc exists."""
    cc = shutil.which("musl-gcc") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip(f"needs a C compiler with a static libc to build {name}")
    d = tmp_path_factory.mktemp(name)
    (d / f"{name}.c").write_text(source)
    r = subprocess.run([cc, "-static", "-O2", "-o", str(d / name), str(d / f"{name}.c")],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static {name}: {r.stderr[-400:]}")
    return d / name


def deep_merge(base: dict, overrides: dict) -> dict:
    """Merge `overrides` into a copy of `base`: dicts recurse, everything else replaces.

    A value of DELETE removes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def parse_mountinfo(text: str) -> list[dict]:
    """Parse /proc/PID/mountinfo lines into dicts."""
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        fields = left.split()
        if len(fields) < 6:
            continue
        rfields = right.split()
        mounts.append(
            {
                "id": int(fields[0]),
                "parent": int(fields[1]),
                "majmin": fields[2],
                "root": _unescape(fields[3]),
                "mountpoint": _unescape(fields[4]),
                "options": fields[5].split(","),
                "optional": fields[6:],
                "fstype": rfields[0] if rfields else "",
                "source": _unescape(rfields[1]) if len(rfields) > 1 else "",
                "super_options": rfields[2].split(",") if len(rfields) > 2 else [],
                "line": line,
            }
        )
    return mounts


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_at(mounts: list[dict], mountpoint: str) -> dict:
    """The top-most (last) mount at `mountpoint`."""
    found = [m for m in mounts if m["mountpoint"] == mountpoint]
    assert found, f"no mount at {mountpoint} in:\n" + "\n".join(m["line"] for m in mounts)
    return found[-1]


def host_mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


# Processes of other tests that unshare a mount namespace of their own (a Debian bootstrap
# runs mmdebstrap/debootstrap in one): it copies every mount the host has at that moment,
# other tests' bundles included, without being anyone's container process.
_COPIES_EVERY_MOUNT = ("mmdebstrap", "debootstrap")


def _namespaces_copying_every_mount() -> set[str]:
    """The mount namespaces of those tools: every process in one (dpkg-deb, apt's methods,
    maintainer scripts under mmdebstrap) shows the copied mounts, not only the tool."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if any(os.path.basename(a).decode(errors="replace") in _COPIES_EVERY_MOUNT
                   for a in argv[:3]):
                out.add(os.readlink(f"/proc/{entry}/ns/mnt"))
        except OSError:
            continue
    return out


def processes_referencing(*needles: str) -> list[tuple[int, str]]:
    """Host processes that still belong to a container identified by `needles`.

    A process matches when its cmdline mentions a needle, when its cwd/root lies under a
    path needle, or when it lives in another mount namespace whose mount table mentions a
    path needle (that is how a container's init is found: its / is the bundle's rootfs)."""
    hits = []
    me = os.getpid()
    my_mnt = os.readlink("/proc/self/ns/mnt")
    copies = _namespaces_copying_every_mount()
    paths = [n.rstrip("/") for n in needles if n and n.startswith("/")]
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not pid_alive(pid):
            continue
        words = [n for n in needles if n and not n.startswith("/")]
        if any(w in cmdline for w in words) or any(
            p + "/" in cmdline or p + " " in cmdline or cmdline.rstrip().endswith(p)
            for p in paths
        ):
            hits.append((pid, cmdline))
            continue
        links = []
        for name in ("cwd", "root"):
            try:
                links.append(os.readlink(f"/proc/{pid}/{name}"))
            except OSError:
                pass
        if any(link == p or link.startswith(p + "/") for p in paths for link in links):
            hits.append((pid, f"{cmdline} (cwd/root {links})"))
            continue
        if not paths:
            continue
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
            if ns == my_mnt or ns in copies:
                continue
            with open(f"/proc/{pid}/mountinfo") as f:
                table = f.read()
        except OSError:
            continue
        if any(p + "/" in table or p + " " in table for p in paths):
            hits.append((pid, f"{cmdline} (mount namespace shows the bundle)"))
    return hits


def stop_private_daemon(proc, base: Path, fixed, fixed_before: set[str],
                        *needles: str) -> tuple[list[tuple[int, str]], list[str]]:
    """After a test's private dockerd or containerd: stop it (SIGTERM, then SIGKILL), kill
    what still runs from `base` (or names one of `needles`), unmount what it left below
    `base` and remove it, and remove the fixed paths it needs (/run/containerd/s, ...) that
    the test made, once empty. Returns (the processes, the mounts) left behind, for the
    test to assert on after cleaning up."""
    from fstree import mounts_under, unmount_all_under

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    leftovers = processes_referencing(str(base), *needles)
    for pid, _ in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leaked_mounts = mounts_under(base)
    unmount_all_under(base)
    if not mounts_under(base):
        shutil.rmtree(base, ignore_errors=True)
    for d in fixed:  # those we made, once empty (deepest first)
        if d not in fixed_before:
            try:
                os.rmdir(d)
            except OSError:
                pass
    return leftovers, leaked_mounts


def pid_alive(pid: int) -> bool:
    """True if /proc/PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def cap_mask(bits) -> str:
    return f"{sum(1 << b for b in bits):016x}"


# --------------------------------------------------------------------------------------------
# the runtime driver
# --------------------------------------------------------------------------------------------


_FD_WRAPPER = """
import os, sys
pairs = [tuple(map(int, p.split(":"))) for p in sys.argv[1].split(",")]
tmp = {src: os.dup(src) for _, src in pairs}  # avoid clobbering a source with a target
for target, src in pairs:
    if tmp[src] != target:
        os.dup2(tmp[src], target)
    os.set_inheritable(target, True)
for fd in set(tmp.values()) | {src for _, src in pairs}:
    if fd not in {t for t, _ in pairs}:
        os.close(fd)
os.execv(sys.argv[2], sys.argv[2:])
"""


class Spawned:
    """A runtime process whose stdout/stderr go to temporary files (or given sinks)."""

    def __init__(self, argv, input=None, stdout=None, stderr=None, pass_fds=(), cwd=None):
        self.argv = argv
        self._closers = []
        self._out, self._read_out = self._sink(stdout)
        self._err, self._read_err = self._sink(stderr)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
                pass_fds=pass_fds,
                cwd=cwd,
                start_new_session=True,  # so a timeout can kill the runtime's whole group
            )
        except BaseException:
            self._close()
            raise
        self._input = input.encode() if input is not None else None

    def _sink(self, spec):
        if spec is None:
            f = tempfile.TemporaryFile()
            self._closers.append(f)
            return f, True
        if isinstance(spec, (str, Path)):
            f = open(spec, "ab")
            self._closers.append(f)
            return f, False
        return spec, False

    def _close(self):
        for f in self._closers:
            f.close()
        self._closers = []

    def poll(self):
        return self.proc.poll()

    def kill(self):
        """SIGKILL the runtime and everything left in its process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def wait(self, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        try:
            self.proc.communicate(self._input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._close()
            raise
        texts = []
        for f, readable in ((self._out, self._read_out), (self._err, self._read_err)):
            if readable:
                f.seek(0)
                texts.append(f.read().decode(errors="replace"))
            else:
                texts.append("")
        self._close()
        result = subprocess.CompletedProcess(self.argv, self.proc.returncode, *texts)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.argv)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result


class Runtime:
    """Runs the runtime binary with a private --root state directory."""

    def __init__(self, binary: str, root: Path, is_runc: bool):
        self.binary = binary
        self.root = root
        self.is_runc = is_runc

    def argv(self, *args, global_args=()) -> list[str]:
        return [self.binary, "--root", str(self.root), *map(str, global_args), *map(str, args)]

    def run(self, *args, input: str | None = None, timeout: float = 30, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        """Run `<binary> --root <root> [global_args] args...` to completion.

        Output goes through temporary files, not pipes, so a detached container (create,
        run -d, exec -d) that inherits the runtime's stdio cannot keep us waiting for EOF.
        Keyword arguments are those of spawn()."""
        return self.spawn(*args, input=input, **kw).wait(timeout=timeout, check=check)

    def spawn(self, *args, input: str | None = None, global_args=(),
              fds: dict[int, int] | None = None, stdout=None, stderr=None,
              cwd=None) -> Spawned:
        """Start the runtime in the background; call .wait() on the result.

        `fds` maps a target fd number in the runtime process to an fd open in this process
        (used for --preserve-fds). `stdout`/`stderr` may be a path (str/Path) or an open
        file to send that stream elsewhere (it is then "" in the result)."""
        argv = self.argv(*args, global_args=global_args)
        pass_fds = ()
        if fds:
            # a tiny exec wrapper places each fd at its target number (dup2 clears CLOEXEC)
            mapping = ",".join(f"{target}:{src}" for target, src in sorted(fds.items()))
            argv = [sys.executable, "-c", _FD_WRAPPER, mapping, *argv]
            pass_fds = tuple(sorted(set(fds.values())))
        return Spawned(argv, input=input, stdout=stdout, stderr=stderr, pass_fds=pass_fds,
                       cwd=cwd)

    # -- conveniences --------------------------------------------------------------------

    def run_container(self, bundle, cid: str | None = None, *extra, **kw):
        """`run --bundle BUNDLE [extra] ID` in the foreground; the container's stdout is ours."""
        cid = cid or new_id()
        return self.run("run", "--bundle", bundle, *extra, cid, **kw)

    def create(self, bundle, cid: str, *extra, check=True, **kw):
        return self.run("create", "--bundle", bundle, *extra, cid, check=check, **kw)

    def start(self, cid: str, check=True, **kw):
        return self.run("start", cid, check=check, **kw)

    def state(self, cid: str) -> dict:
        return json.loads(self.run("state", cid, check=True).stdout)

    def list(self) -> list[dict]:
        out = self.run("list", "--format", "json", check=True).stdout.strip()
        return (json.loads(out) if out else None) or []  # runc prints "null" when empty

    def ids(self) -> list[str]:
        return [c["id"] for c in (self.list() or [])]

    def status(self, cid: str) -> str | None:
        r = self.run("state", cid)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)["status"]

    def wait_status(self, cid: str, status: str, timeout: float = 10.0) -> dict:
        def check():
            r = self.run("state", cid)
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["status"] == status:
                    return st
            return None

        return wait_until(check, timeout, message=f"{cid} to become {status}")

    def cleanup(self):
        try:
            ids = self.ids()
        except Exception:  # noqa: BLE001 - best effort
            ids = []
            if self.root.is_dir():
                ids = [p.name for p in self.root.iterdir() if p.is_dir()]
        for cid in ids:
            try:
                self.run("delete", "--force", cid, timeout=30)
            except Exception:  # noqa: BLE001 - best effort
                pass


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def runtime(tmp_path):
    binary = runtime_binary()
    if binary is None:
        pytest.skip("no runtime binary found")
    root = tmp_path / "state"
    root.mkdir()
    rt = Runtime(binary, root, runtime_is_runc())
    yield rt
    rt.cleanup()
    # Nothing may outlive the test: no process that mentions this test's directory (bundles,
    # state root) or whose mount namespace shows it. Leftovers are killed and reported.
    try:
        wait_until(lambda: not processes_referencing(str(tmp_path)), timeout=5)
    except AssertionError:
        leaked = processes_referencing(str(tmp_path))
        for pid, _ in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if leaked:
            pytest.fail(f"processes left behind after delete --force: {leaked}", pytrace=False)


@pytest.fixture(scope="session")
def nobody_bin():
    """A bin directory with `sangja` and `sangja-runtime` any user can run: this checkout
    may sit where only root can enter (CI's clone in a mktemp directory), so tests of what
    non-root users are told run a copy of the package from a world-readable directory."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="sangja-nobody-bin-", dir="/tmp"))
    try:
        d.chmod(0o755)
        shutil.copytree(REPO / "src" / "sangja", d / "src" / "sangja",
                        ignore=shutil.ignore_patterns("__pycache__"))
        python = os.path.realpath(REPO / ".venv" / "bin" / "python3")
        for cmd, module in (("sangja-runtime", "runtime"), ("sangja", "engine")):
            script = d / cmd
            script.write_text(f"#!{python} -S\nimport sys\n"
                              f"sys.path.insert(0, {str(d / 'src')!r})\n"
                              f"from sangja.cli.{module} import main\n"
                              "from sangja.cli import leave\nleave(main())\n")
            script.chmod(0o755)
        for sub in d.rglob("*"):
            sub.chmod(0o755 if sub.is_dir() else sub.stat().st_mode | 0o444)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    from sangja.image.busybox import BusyboxNotFound, build_busybox_rootfs

    dest = tmp_path_factory.mktemp("busybox") / "rootfs"
    try:
        build_busybox_rootfs(str(dest))
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    return dest


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs):
    """Factory: make_bundle(*mutators, args=None, name=None, **overrides) -> bundle Path.

    `overrides` are deep-merged into the base config (dicts merge, lists replace, DELETE
    removes); `args` is a shortcut for process.args; each mutator is called with the config
    dict (after merging) and may edit it in place or return a replacement."""
    counter = iter(range(1_000_000))

    def factory(*mutators, args=None, name=None, **overrides):
        bundle = tmp_path / (name or f"bundle{next(counter)}")
        bundle.mkdir()
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
        config = deep_merge(BASE_CONFIG, overrides)
        if args is not None:
            config["process"]["args"] = list(args)
        for mutate in mutators:
            result = mutate(config)
            if result is not None:
                config = result
        write_config(bundle, config)
        return bundle

    return factory


def write_config(bundle: Path, config) -> None:
    (Path(bundle) / "config.json").write_text(json.dumps(config, indent=2))


def read_config(bundle: Path) -> dict:
    return json.loads((Path(bundle) / "config.json").read_text())


@pytest.fixture
def run_container(runtime):
    """run_container(bundle, id=None, *extra_run_flags, **run_kw) -> CompletedProcess."""
    return runtime.run_container


@pytest.fixture
def host_dir(tmp_path):
    """Factory for a fresh host directory (world-writable) to bind into containers."""
    counter = iter(range(1_000_000))

    def factory(name=None):
        d = tmp_path / (name or f"hostdir{next(counter)}")
        d.mkdir()
        d.chmod(0o777)
        return d

    return factory


def bind(src, dest, *options) -> dict:
    return {
        "destination": dest,
        "type": "bind",
        "source": str(src),
        "options": ["rbind", *options] if not any(o in ("bind", "rbind") for o in options)
        else list(options),
    }


def add_mounts(*mounts):
    """A make_bundle mutator appending mounts to the base mounts."""

    def mutate(config):
        config["mounts"].extend(mounts)

    return mutate


@pytest.fixture
def netns():
    """Create a named network namespace under /var/run/netns; removed in teardown."""
    if not shutil.which("ip"):
        pytest.skip("iproute2 `ip` not installed")
    name = f"sangja-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name, f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.fixture
def short_tmp():
    """A short temporary directory (for unix socket paths, which are limited to 108 bytes)."""
    d = tempfile.mkdtemp(prefix="sj-", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def assert_clean(runtime: Runtime, cid: str, bundle: Path | None = None, before_root=None):
    """Nothing of container `cid` is left: not listed, no state dir, no process, no mount."""
    assert cid not in runtime.ids(), runtime.list()
    assert runtime.status(cid) is None
    if before_root is not None:
        now = sorted(os.listdir(runtime.root)) if runtime.root.exists() else []
        assert now == sorted(before_root), f"state root changed: {before_root} -> {now}"
    else:
        leftovers = [p.name for p in runtime.root.iterdir()] if runtime.root.exists() else []
        assert cid not in leftovers, leftovers
    needles = [cid] + ([str(bundle)] if bundle else [])
    procs = processes_referencing(*needles)
    assert not procs, f"processes left behind: {procs}"
    if bundle is not None:
        mounts = [line for line in host_mountinfo().splitlines() if str(bundle) in line]
        assert not mounts, f"host mounts left behind: {mounts}"


# ---------------------------------------------------------------------------- the engine CLI


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An isolated engine (its own --root/--runroot, busybox bootstrapped) per test module;
    checked for leaks at the end (see engine_cli.py)."""
    from engine_cli import engine_fixture

    yield from engine_fixture(tmp_path_factory)


@pytest.fixture
def cli(engine):
    """The `sangja` command line of that engine; what a test leaves is removed and checked."""
    from engine_cli import cli_fixture

    yield from cli_fixture(engine)


@pytest.fixture(autouse=True)
def _no_network_left_in_tmp(request):
    """A store made in a test's temp dir and dropped with it must not leave its networks
    behind: a bridge's keeper (a netns mount, the bridge, its NAT and isolation rules)
    outlives the directory. After each test that used `tmp_path`, any keeper mount under
    it fails the test, after `network prune` of its store has taken it away."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    base = str(request.getfixturevalue("tmp_path")) + "/"
    yield
    with open("/proc/self/mounts") as f:
        keepers = [m.split()[1] for m in f if "/netns/keeper-" in m.split()[1]
                   and m.split()[1].startswith(base)]
    if not keepers:
        return
    sangja = REPO / ".venv" / "bin" / "sangja"
    for runroot in {os.path.dirname(os.path.dirname(k)) for k in keepers}:
        root = os.path.join(os.path.dirname(runroot), "root")
        subprocess.run([str(sangja), "--root", root, "--runroot", runroot, "network",
                        "prune", "-f"], capture_output=True, timeout=120)
    pytest.fail(f"networks left in the test's temp dir (prune its store): {keepers}")
