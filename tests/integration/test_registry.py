"""The registry client against a real registry (Debian's docker-registry, Distribution 2.8)
started on 127.0.0.1 by the fixtures: no auth, htpasswd basic auth, token auth with the
tests' own token server, TLS with a CA the tests make; round trips with skopeo and podman;
a proxy that cuts a blob download short, serves a wrong blob or answers 503; kill -9 in the
middle of a pull. Every registry, proxy, store and certificate lives in the test's temp dir
and goes with it."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_cli import isolation_guard
from registry_fixtures import (
    HTPASSWD,
    OPENSSL,
    REGISTRY,
    FaultProxy,
    Registry,
    TokenServer,
    make_tls,
)
from test_image_archives import podman  # noqa: F401  (the isolated podman fixture)

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
SKOPEO = shutil.which("skopeo")
RUNC = shutil.which("runc") or "/usr/sbin/runc"


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


class Store:
    """`sangja --root R --runroot RR` with an environment of the test's own (auth files,
    registries config: nothing of the host's is read)."""

    def __init__(self, base: Path, env: dict):
        self.root, self.runroot, self.env = base / "root", base / "run", env

    def __call__(self, *args, input: str | None = None, timeout: float = 180,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*sangja_exe(), "--root", str(self.root), "--runroot",
                               str(self.runroot), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **(env or {})},
                              input=input, stdin=None if input is not None else
                              subprocess.DEVNULL)

    def ok(self, *args, **kw) -> str:
        r = self(*args, **kw)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def fails(self, *args, **kw) -> str:
        """A refusal: exit 125, one line on stderr, no traceback; returns the line."""
        r = self(*args, **kw)
        assert r.returncode == 125, (args, r.returncode, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
        return lines[0]

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("image", "inspect", name))[0]

    def check(self, *flags) -> tuple[int, list[str]]:
        r = self("system", "check", *flags)
        return r.returncode, r.stdout.splitlines()

    def close(self) -> None:
        """Take the store's containers and networks away (the default bridge's keeper
        holds a netns mount, a bridge and firewall rules that outlive the temp dir)."""
        ids = self("ps", "-a", "-q", "--no-trunc").stdout.split()
        if ids:
            self("rm", "-f", *ids)
        if (self.root / "networks.db").exists():
            with isolation_guard():
                r = self("network", "prune", "-f")
            assert r.returncode == 0, r.stderr

    def blobs(self) -> list[str]:
        d = self.root / "blobs" / "sha256"
        return sorted(os.listdir(d)) if d.exists() else []

    def layers(self) -> list[str]:
        d = self.root / "layers"
        return sorted(os.listdir(d)) if d.exists() else []


def _need(*tools):
    for name, path in tools:
        if path is None:
            pytest.skip(f"{name} not installed")


@pytest.fixture
def env(tmp_path):
    """An environment where auth files, docker config and registries config are the test's."""
    home = tmp_path / "home"
    (home / "xdg").mkdir(parents=True)
    e = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(home / "xdg"),
             XDG_CONFIG_HOME=str(home / ".config"),
             SANGJA_REGISTRIES_CONF=str(tmp_path / "registries.conf"),
             SANGJA_CERTS_D=str(tmp_path / "certs.d"))
    for k in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        e.pop(k, None)
    return e


@pytest.fixture
def busybox(tmp_path, env):
    """A store with busybox bootstrapped in it."""
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    s = Store(tmp_path / "src", env)
    s.ok("bootstrap", "busybox")
    yield s
    s.close()


@pytest.fixture
def fresh(tmp_path, env):
    s = Store(tmp_path / "dst", env)
    yield s
    s.close()


@pytest.fixture
def registry(tmp_path):
    _need(("docker-registry", REGISTRY))
    made: list = []

    def start(**kw) -> Registry:
        r = Registry(tmp_path / f"registry{len(made)}", **kw)
        made.append(r)
        return r

    yield start
    for r in made:
        r.close()
    for r in made:
        assert r.proc.poll() is not None  # nothing left running


@pytest.fixture
def proxy():
    made: list[FaultProxy] = []

    def start(reg: Registry) -> FaultProxy:
        p = FaultProxy(reg.port)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


# ---------------------------------------------------------------------------- basics


def test_push_pull_run_round_trip(registry, busybox, fresh, tmp_path):
    """push, then pull into an empty store: the same image (id, manifest digest, files), and
    it runs; pulled again, nothing is downloaded; --digestfile, -q and --format json."""
    reg = registry()
    src = busybox.inspect("busybox")
    out = busybox.ok("push", "--digestfile", tmp_path / "digest", "busybox",
                     f"{reg.host}/t/bb:1")
    assert (tmp_path / "digest").read_text() == src["Digest"]
    assert f"1: digest: {src['Digest']}" in out
    image_id = fresh.ok("pull", f"{reg.host}/t/bb:1").splitlines()[-1]
    assert image_id == src["Id"]
    got = fresh.inspect(f"{reg.host}/t/bb:1")
    assert (got["Digest"], got["RootFS"]) == (src["Digest"], src["RootFS"])
    assert fresh.ok("run", "--rm", f"{reg.host}/t/bb:1", "echo", "pulled") == "pulled\n"
    # again: the layer is there, nothing is transferred
    out = fresh.ok("pull", f"{reg.host}/t/bb:1")
    assert "Already exists" in out and "Downloading" not in out
    assert fresh.ok("pull", "-q", f"{reg.host}/t/bb:1") == f"{src['Id']}\n"
    # by digest
    assert fresh.ok("pull", "-q", f"{reg.host}/t/bb@{src['Digest']}") == f"{src['Id']}\n"
    events = [json.loads(line) for line in
              fresh.ok("pull", "--format", "json", f"{reg.host}/t/bb:1").splitlines()]
    assert events[0]["status"] == "Pulling" and events[-1]["status"] == "Done"
    assert events[-1]["id"] == src["Id"]
    assert fresh.check() == (0, ["no problems found"])


def test_progress_on_a_terminal(registry, busybox, fresh):
    """On a terminal: one line per layer redrawn in place, with a bar, then what docker
    prints at the end; the image id last."""
    from engine_cli import Pty

    reg = registry()
    busybox.ok("push", "busybox", f"{reg.host}/tty/bb:1")
    t = Pty([*sangja_exe(), "--root", str(fresh.root), "pull", f"{reg.host}/tty/bb:1"])
    t.expect(rf"Pulling {reg.host}/tty/bb:1")
    t.expect(r"[0-9a-f]{12}: Downloading \[[=> ]+\] [0-9.]+[kM]?B/[0-9.]+[kM]?B")
    t.expect(r"\x1b\[1A\x1b\[2K[0-9a-f]{12}: Pull complete")
    t.expect(r"Status: Downloaded image for ")
    t.expect(busybox.inspect("busybox")["Id"])
    assert t.wait() == 0


def test_skopeo_and_podman_round_trips(registry, busybox, fresh, tmp_path, podman):  # noqa: F811
    """skopeo pushes (OCI, and Docker schema 2), sangja pulls and runs; sangja pushes, skopeo
    and podman pull, podman runs it."""
    _need(("skopeo", SKOPEO))
    reg = registry()
    archive = tmp_path / "bb.tar"
    busybox.ok("save", "--format", "oci-archive", "-o", archive, "busybox")
    src = busybox.inspect("busybox")
    for tag, flags in (("oci", []), ("v2s2", ["--format", "v2s2"])):
        subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", *flags,
                        f"oci-archive:{archive}", f"docker://{reg.host}/sk/bb:{tag}"],
                       check=True, capture_output=True, timeout=120)
        raw = subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false",
                              f"docker://{reg.host}/sk/bb:{tag}"], check=True,
                             capture_output=True, timeout=60).stdout
        assert fresh.ok("pull", "-q", f"{reg.host}/sk/bb:{tag}").strip() == src["Id"]
        got = fresh.inspect(f"{reg.host}/sk/bb:{tag}")
        import hashlib

        assert got["Digest"] == f"sha256:{hashlib.sha256(raw).hexdigest()}"  # kept as sent
        assert fresh.ok("run", "--rm", f"{reg.host}/sk/bb:{tag}", "echo", tag) == f"{tag}\n"
    # sangja pushes what it pulled (a Docker schema-2 image) and what it made
    fresh.ok("push", f"{reg.host}/sk/bb:v2s2", f"{reg.host}/back/bb:v2s2")
    busybox.ok("push", "busybox", f"{reg.host}/back/bb:made")
    for tag in ("v2s2", "made"):
        subprocess.run([SKOPEO, "copy", "-q", "--src-tls-verify=false",
                        f"docker://{reg.host}/back/bb:{tag}", f"oci:{tmp_path / 'l'}:{tag}"],
                       check=True, capture_output=True, timeout=120)
        podman("pull", "--tls-verify=false", f"{reg.host}/back/bb:{tag}")
        out = podman("run", "--rm", "--network", "none", f"{reg.host}/back/bb:{tag}", "echo",
                     f"podman-{tag}")
        assert out.stdout == f"podman-{tag}\n"


# ---------------------------------------------------------------------------- auth


def test_basic_auth_login_logout(registry, busybox, fresh, tmp_path, env):
    _need(("htpasswd", HTPASSWD), ("skopeo", SKOPEO))
    reg = registry(htpasswd=("alice", "s3cret"))
    name = f"{reg.host}/private/bb:1"
    line = busybox.fails("push", "busybox", name)
    assert "sangja login" in line
    auth_file = Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    line = busybox.fails("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n")
    assert "refused" in line and not auth_file.exists()
    assert busybox.ok("login", "-u", "alice", "--password-stdin", reg.host,
                      input="s3cret\n") == "Login Succeeded!\n"
    entry = json.loads(auth_file.read_text())["auths"][reg.host]
    assert base64.b64decode(entry["auth"]) == b"alice:s3cret"
    assert oct(auth_file.stat().st_mode & 0o777) == "0o600"
    busybox.ok("push", "busybox", name)
    fresh.ok("pull", name)  # the same auth file
    # skopeo reads our login (the same file)
    subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{name}"], env=env,
                   check=True, capture_output=True, timeout=60)
    assert busybox.ok("logout", reg.host) == f"Removed login credentials for {reg.host}\n"
    assert reg.host not in json.loads(auth_file.read_text())["auths"]
    assert "sangja login" in fresh.fails("pull", name)
    assert "not logged into" in busybox.fails("logout", reg.host)
    # Docker's config.json is read when podman's file has nothing
    docker_dir = Path(env["HOME"]) / ".docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(json.dumps(
        {"auths": {f"http://{reg.host}/v1/": {"auth": base64.b64encode(b"alice:s3cret")
                                                .decode()}}}))
    fresh.ok("pull", name)
    # ... and a credential helper named there is called as docker calls it
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "helper-calls"
    helper = bindir / "docker-credential-sjtest"
    helper.write_text(f"#!/bin/sh\nread server\necho \"$1 $server\" >> {calls}\n"
                      "echo '{\"ServerURL\":\"x\",\"Username\":\"alice\","
                      "\"Secret\":\"s3cret\"}'\n")
    helper.chmod(0o755)
    (docker_dir / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "sjtest"}}))
    fresh.ok("rmi", name)
    fresh.ok("pull", name, env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert calls.read_text().startswith(f"get {reg.host}")
    # --creds on the command line, without any file
    (docker_dir / "config.json").unlink()
    fresh.ok("pull", "--creds", "alice:s3cret", name)
    assert "refused" in fresh.fails("pull", "--creds", "alice:nope", name)


def test_token_auth(registry, busybox, fresh, tmp_path):
    """Bearer tokens from the challenge's token server, for the request's scope, reused."""
    _need(("openssl", OPENSSL))
    tokens = TokenServer(tmp_path / "tokens", "bob", "pw")
    try:
        reg = registry(token=tokens)
        name = f"{reg.host}/tok/bb:1"
        assert "sangja login" in busybox.fails("push", "busybox", name)
        busybox.ok("login", "-u", "bob", "-p", "pw", reg.host)
        busybox.ok("push", "busybox", name)
        tokens.requests.clear()
        fresh.ok("pull", name)
        # one token for the repository's pull scope, reused by every request of the pull
        asked = [r for r in tokens.requests if r["scopes"]]
        assert len(asked) == 1 and asked[0]["scopes"] == ["repository:tok/bb:pull"], asked
        assert asked[0]["user"] == "bob"
        assert fresh.ok("run", "--rm", name, "echo", "token") == "token\n"
        assert "refused" in fresh.fails("login", "-u", "bob", "-p", "bad", reg.host)
    finally:
        tokens.close()


# ---------------------------------------------------------------------------- TLS


def test_tls_verified_against_the_registry_ca(registry, busybox, fresh, tmp_path, env):
    _need(("openssl", OPENSSL))
    tls = make_tls(tmp_path / "tls")
    reg = registry(tls=tls)
    name = f"{reg.host}/tls/bb:1"
    # not trusted: refused, and never retried over plain HTTP
    line = busybox.fails("push", "busybox", name)
    assert "certificate" in line.lower() and "certs.d" in line
    # --cert-dir, then the per-registry directory, then --tls-verify=false
    certs = tmp_path / "mycerts"
    certs.mkdir()
    shutil.copy(tls["ca"], certs / "ca.crt")
    busybox.ok("push", "--cert-dir", certs, "busybox", name)
    line = fresh.fails("pull", name)
    assert "certificate" in line.lower()
    per_host = Path(env["SANGJA_CERTS_D"]) / reg.host
    per_host.mkdir(parents=True)
    shutil.copy(tls["ca"], per_host / "ca.crt")
    fresh.ok("pull", name)
    shutil.rmtree(per_host)
    fresh.ok("rmi", name)
    fresh.ok("pull", "--tls-verify=false", name)


def test_plain_http_only_where_allowed(registry, busybox):
    """A loopback registry without TLS is reached over plain HTTP by default, but not when
    --tls-verify=true asks for verified TLS."""
    reg = registry()
    busybox.ok("push", "busybox", f"{reg.host}/p/bb:1")
    line = busybox.fails("push", "--tls-verify=true", "busybox", f"{reg.host}/p/bb:1")
    assert reg.host in line


# ---------------------------------------------------------------------------- faults


def _big_image(store: Store, tmp_path: Path, name: str, mb: int = 24) -> str:
    """A busybox image with a layer of `mb` MiB of random bytes on top (incompressible)."""
    from sangja.image.busybox import find_static_busybox

    ctx = tmp_path / "big-rootfs"
    (ctx / "data").mkdir(parents=True)
    (ctx / "bin").mkdir()
    shutil.copy(find_static_busybox(), ctx / "bin" / "ls")  # busybox runs the applet ls
    rng = random.Random(7)
    for i in range(4):
        (ctx / "data" / f"r{i}").write_bytes(rng.randbytes(mb << 18))
    tarball = tmp_path / "big.tar"
    subprocess.run(["tar", "-C", ctx, "-cf", tarball, "."], check=True)
    return store.ok("import", tarball, name).strip()


def test_dropped_connection_resumes_with_range(registry, proxy, busybox, fresh, tmp_path):
    reg = registry()
    _big_image(busybox, tmp_path, "big", mb=8)
    busybox.ok("push", "big", f"{reg.host}/f/big:1")
    p = proxy(reg)
    p.drop_after = 1_000_000
    image_id = fresh.ok("pull", "-q", f"{p.host}/f/big:1").strip()
    assert image_id == busybox.inspect("big")["Id"]
    ranges = [rng for m, path, rng in p.seen if m == "GET" and "/blobs/" in path and rng]
    assert "bytes=1000000-" in ranges, p.seen
    assert fresh.check() == (0, ["no problems found"])


def test_wrong_blob_refused_and_nothing_kept(registry, proxy, busybox, fresh):
    reg = registry()
    busybox.ok("push", "busybox", f"{reg.host}/f/bb:1")
    p = proxy(reg)
    p.wrong_blob = 4096  # the layer, not the config
    fresh.ok("images")
    line = fresh.fails("pull", f"{p.host}/f/bb:1")
    manifest = json.loads(subprocess.run(
        [sys.executable, "-c", "import sys, urllib.request; sys.stdout.write(urllib.request."
         f"urlopen(urllib.request.Request('http://{reg.host}/v2/f/bb/manifests/1', headers="
         "{'Accept': 'application/vnd.oci.image.manifest.v1+json'})).read().decode())"],
        capture_output=True, text=True, check=True).stdout)
    digest = manifest["layers"][0]["digest"]
    assert digest in line and "does not match its digest" in line, line
    assert fresh.blobs() == [] and fresh.layers() == []
    assert os.listdir(fresh.root / "blobs" / "tmp") == []
    assert fresh.check() == (0, ["no problems found"])
    assert fresh.ok("images", "-q") == ""
    # a wrong config: refused too, naming it
    p.wrong_blob = 1
    line = fresh.fails("pull", f"{p.host}/f/bb:1")
    assert manifest["config"]["digest"] in line and "does not match" in line, line
    assert fresh.blobs() == [] and fresh.layers() == []
    # the same content compressed otherwise: the digest (and size) still refuse it
    p.wrong_blob = None
    p.recompress = True
    line = fresh.fails("pull", f"{p.host}/f/bb:1")
    assert digest in line and ("mismatch" in line or "does not match" in line), line
    assert fresh.blobs() == [] and fresh.layers() == []
    # served right, the same pull works
    p.recompress = False
    fresh.ok("pull", f"{p.host}/f/bb:1")


def test_server_errors_retried(registry, proxy, busybox, fresh, monkeypatch):
    reg = registry()
    p = proxy(reg)
    p.fail_first = 1  # the first request of each kind gets a 503
    busybox.ok("push", "busybox", f"{p.host}/f/bb:1")
    p.failed.clear()
    fresh.ok("pull", f"{p.host}/f/bb:1")
    manifest_gets = [s for s in p.seen if s[0] == "GET" and "/manifests/" in s[1]]
    assert len(manifest_gets) >= 2  # one 503, then the answer


def test_chunked_upload_and_cross_repository_mount(registry, proxy, busybox, fresh, tmp_path):
    reg = registry()
    _big_image(busybox, tmp_path, "big", mb=1)
    p = proxy(reg)
    busybox.ok("push", "big", f"{p.host}/c/big:1", env={"SANGJA_PUSH_CHUNK_SIZE": "256k"})
    patches = [s for s in p.seen if s[0] == "PATCH"]
    assert len(patches) >= 4, p.seen
    fresh.ok("pull", f"{p.host}/c/big:1")
    p.seen.clear()
    # the same image to another repository: its blobs are mounted, not sent again
    out = fresh.ok("push", f"{p.host}/c/big:1", f"{p.host}/other/big:1")
    assert "Mounted from c/big" in out
    assert [s for s in p.seen if s[0] == "POST" and "mount=" in s[1]]
    assert not [s for s in p.seen if s[0] in ("PATCH",) or (s[0] == "PUT" and "/blobs/" in s[1])]
    # and a third push finds everything there already
    out = fresh.ok("push", f"{p.host}/c/big:1", f"{p.host}/other/big:2")
    assert "Layer already exists" in out


def test_kill_9_during_pull(registry, busybox, fresh, tmp_path):
    """kill -9 at moments spread over a pull: `system check` finds nothing but what it may
    repair (a kill while blobs download leaves nothing at all), the next pull finishes the
    job, and the image runs."""
    reg = registry()
    _big_image(busybox, tmp_path, "big", mb=24)
    name = f"{reg.host}/k/big:1"
    busybox.ok("push", "big", name)
    want = busybox.inspect("big")["Id"]
    t0 = time.monotonic()
    fresh.ok("pull", name)
    full = time.monotonic() - t0
    fresh.ok("rmi", name)
    fresh.ok("system", "prune", "-a", "-f")
    assert fresh.check() == (0, ["no problems found"])
    repairable = {"temp", "unreferenced blob", "unreferenced layer", "orphan layer dir"}
    rng = random.Random(3)
    clean_after_kill = 0
    for n in range(6):
        delay = (0.15 + 0.1 * n) * full if n < 3 else rng.uniform(0.05, full)
        proc = subprocess.Popen([*sangja_exe(), "--root", str(fresh.root), "pull", name],
                                env=fresh.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rc, lines = fresh.check()
        findings = lines[:-2] if rc else []
        assert {line.split(":")[0] for line in findings} <= repairable, lines
        clean_after_kill += rc == 0
        assert fresh.ok("pull", "-q", name).strip() == want  # the next pull finishes
        assert fresh.ok("run", "--rm", name, "/bin/ls", "/data") == "r0\nr1\nr2\nr3\n"
        assert fresh.check("--repair")[0] == 0
        assert fresh.check() == (0, ["no problems found"])
        fresh.ok("rmi", name)
        fresh.ok("system", "prune", "-a", "-f")
    assert clean_after_kill  # killed while downloading: nothing to find


# ---------------------------------------------------------------------------- names


def test_names_config_search_alias_mirror_blocked(registry, busybox, fresh, tmp_path, env):
    reg = registry()
    busybox.ok("push", "busybox", f"{reg.host}/library/bb:1")
    busybox.ok("push", "busybox", f"{reg.host}/bb:1")
    conf = Path(env["SANGJA_REGISTRIES_CONF"])
    # no registries configured: an unqualified name that is not local is refused, naming
    # the fix; nothing was sent anywhere
    line = fresh.fails("pull", "bb:1")
    assert "unqualified-search-registries" in line and str(conf) in line
    line = fresh.fails("run", "--rm", "bb:1", "true")
    assert "Unable to find image 'bb:1' locally: " in line and "names no registry" in line
    line = busybox.fails("push", "busybox")
    assert "must say which registry" in line
    # a search registry
    conf.write_text(f'unqualified-search-registries = ["{reg.host}"]\n')
    assert fresh.ok("pull", "-q", "bb:1").strip() == busybox.inspect("busybox")["Id"]
    assert fresh.inspect(f"{reg.host}/bb:1")
    fresh.ok("rmi", f"{reg.host}/bb:1")
    # an alias
    conf.write_text(f'[aliases]\n"mybox" = "{reg.host}/library/bb"\n')
    fresh.ok("pull", "mybox:1")
    fresh.inspect(f"{reg.host}/library/bb:1")
    fresh.ok("rmi", f"{reg.host}/library/bb:1")
    # a mirror for a registry that does not exist here
    conf.write_text('[[registry]]\nprefix = "registry.invalid/lib"\n'
                    'location = "registry.invalid/lib"\n'
                    f'[[registry.mirror]]\nlocation = "{reg.host}/library"\n')
    fresh.ok("pull", "registry.invalid/lib/bb:1")
    assert fresh.ok("run", "--rm", "registry.invalid/lib/bb:1", "echo", "m") == "m\n"
    # blocked
    conf.write_text(f'[[registry]]\nlocation = "{reg.host}"\nblocked = true\n')
    assert "blocked" in fresh.fails("pull", f"{reg.host}/library/bb:1")
    conf.write_text("unqualified-search-registries = [\n")
    assert str(conf) in fresh.fails("pull", "bb:1")


def test_run_and_create_pull_policies(registry, busybox, fresh):
    reg = registry()
    name = f"{reg.host}/run/bb:1"
    line = fresh.fails("run", "--rm", "--pull", "never", name, "true")
    assert "Unable to find image" in line
    busybox.ok("push", "busybox", name)
    r = fresh("run", "--rm", name, "echo", "pulled")
    assert r.returncode == 0 and r.stdout == "pulled\n", r.stderr
    assert "Unable to find image" in r.stderr and "Pull complete" in r.stderr
    cid = fresh.ok("create", "--pull", "always", name, "true").strip()
    fresh.ok("rm", cid)
    assert fresh.ok("run", "--rm", "--pull", "never", name, "echo", "local") == "local\n"
    assert "not found" in fresh.fails("run", "--rm", "--pull", "always",
                                      f"{reg.host}/run/nope:1", "true")
    line = fresh.fails("run", "--rm", "127.0.0.1:1/x/y:1", "true")
    assert "connection refused" in line


def test_all_tags_platform_and_indexes(registry, busybox, fresh, tmp_path):
    """An index (pushed by skopeo --all from a layout with a manifest list) picks this host;
    --platform another one is refused listing what there is; --all-tags pulls each tag."""
    _need(("skopeo", SKOPEO))
    from sangja.image.manifest import DOCKER_LIST, DOCKER_MANIFEST, host_platform

    reg = registry()
    archive = tmp_path / "bb.tar"
    busybox.ok("save", "--format", "oci-archive", "-o", archive, "busybox")
    subprocess.run([SKOPEO, "copy", "-q", "--format", "v2s2", "--dest-tls-verify=false",
                    f"oci-archive:{archive}", f"docker://{reg.host}/idx/bb:single"],
                   check=True, capture_output=True, timeout=60)
    raw = subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false",
                          f"docker://{reg.host}/idx/bb:single"], check=True,
                         capture_output=True, timeout=60).stdout
    import hashlib
    import urllib.request

    entry = {"digest": f"sha256:{hashlib.sha256(raw).hexdigest()}", "size": len(raw)}
    host = host_platform()
    listing = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 500,
         "platform": {"architecture": "s390x" if host.architecture != "s390x" else "arm64",
                      "os": "linux"}},
        {"mediaType": DOCKER_MANIFEST, "digest": entry["digest"], "size": entry["size"],
         "platform": {"architecture": host.architecture, "os": "linux",
                      **({"variant": host.variant} if host.variant else {})}}]}
    listing["manifests"] = listing["manifests"][1:]  # the registry wants what it lists
    for tag in ("multi", "other"):
        req = urllib.request.Request(f"http://{reg.host}/v2/idx/bb/manifests/{tag}",
                                     data=json.dumps(listing).encode(), method="PUT",
                                     headers={"Content-Type": DOCKER_LIST})
        urllib.request.urlopen(req, timeout=30).read()
    name = f"{reg.host}/idx/bb:multi"
    assert fresh.ok("pull", "-q", name).strip() == busybox.inspect("busybox")["Id"]
    assert fresh.inspect(name)["Digest"] == entry["digest"]
    other = "linux/s390x" if host.architecture != "s390x" else "linux/arm64"
    line = fresh.fails("pull", "--platform", other, name)
    assert f"no image for {other}" in line and f"linux/{host.architecture}" in line
    out = fresh.ok("pull", "-a", f"{reg.host}/idx/bb")
    assert fresh.inspect(f"{reg.host}/idx/bb:other")["Id"] == busybox.inspect("busybox")["Id"]
    assert out.strip()
    assert "without a tag" in fresh.fails("pull", "-a", name)


def test_oci_layout_and_archive_sources(busybox, fresh, tmp_path):
    """pull and push speak skopeo's transports too: oci:DIR[:NAME], docker-archive:FILE."""
    archive = tmp_path / "bb.tar"
    busybox.ok("push", "busybox", f"docker-archive:{archive}")
    assert fresh.ok("pull", "-q", f"docker-archive:{archive}").strip() == \
        busybox.inspect("busybox")["Id"]
    if SKOPEO is not None:
        layout = tmp_path / "l"
        for tag in ("a", "b"):
            subprocess.run([SKOPEO, "copy", "-q", f"docker-archive:{archive}",
                            f"oci:{layout}:{tag}"], check=True, capture_output=True)
        fresh.ok("pull", f"oci:{layout}:b")
        fresh.inspect("localhost/b:latest")
        assert "name one" in fresh.fails("pull", f"oci:{layout}")


# ---------------------------------------------------------------------------- bad registries


class FakeRegistry:
    """A registry of the test's own that serves exactly what it is told (path -> status,
    headers, body): for what a real one would never send."""

    def __init__(self):
        import http.server
        import threading

        from registry_fixtures import free_port

        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.port = free_port()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                status, headers, body = fake.routes.get(
                    self.path.split("?")[0], (404, {}, b'{"errors":[{"code":"NOT_FOUND"}]}'))
                self.send_response(status)
                headers = {"Docker-Distribution-Api-Version": "registry/2.0", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.routes["/v2/"] = (200, {}, b"{}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blob(self, data: bytes, extra: bytes = b"") -> dict:
        import hashlib

        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        self.routes[f"/v2/bad/img/blobs/{digest}"] = (200, {}, data + extra)
        return {"digest": digest, "size": len(data)}

    def image(self, layer_tar: bytes, *, diff_ids: list[str] | None = None,
              extra: bytes = b"") -> dict:
        import gzip
        import hashlib

        gz = gzip.compress(layer_tar, mtime=0)
        layer = self.blob(gz, extra)
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids or [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]}})
        cfg = self.blob(config.encode())
        return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            **layer}]}

    def manifest(self, doc, media: str = "application/vnd.oci.image.manifest.v1+json",
                 digest: str | None = None) -> None:
        import hashlib

        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        headers = {"Content-Type": media,
                   "Docker-Content-Digest": digest or
                   f"sha256:{hashlib.sha256(body).hexdigest()}"}
        self.routes["/v2/bad/img/manifests/1"] = (200, headers, body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tar_of(entries: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _bad_cases():
    good = _tar_of({"hello": b"hi\n"})

    def plain(f):  # a valid image, then `f` spoils it
        img = f.image(good)
        f.manifest(img)
        return img

    cases = {}
    cases["not json"] = (lambda f: f.manifest(b"{not json"), "manifest")
    cases["schema 1"] = (lambda f: f.manifest(
        {"schemaVersion": 1, "name": "bad/img", "fsLayers": []},
        "application/vnd.docker.distribution.manifest.v1+prettyjws"), "schema 1")
    cases["type mismatch"] = (lambda f: f.manifest(
        f.image(good), "application/vnd.oci.image.index.v1+json"), "mediaType")
    cases["wrong digest header"] = (lambda f: f.manifest(
        f.image(good), digest="sha256:" + "0" * 64), "does not match its digest")
    cases["huge manifest"] = (lambda f: f.manifest(
        {**f.image(good), "annotations": {"x": "y" * (5 << 20)}}), "larger than")
    cases["layer count"] = (lambda f: f.manifest(f.image(good, diff_ids=[
        "sha256:" + "1" * 64, "sha256:" + "2" * 64])), "diff_ids")

    def wrong_config(f):
        img = plain(f)
        route = f"/v2/bad/img/blobs/{img['config']['digest']}"
        status, headers, body = f.routes[route]
        f.routes[route] = (status, headers, body.replace(b"amd64", b"arm64"))

    def short_config(f):
        img = plain(f)
        f.routes[f"/v2/bad/img/blobs/{img['config']['digest']}"] = (200, {}, b'{"os":"x"}')

    cases["wrong config"] = (wrong_config, "does not match its digest")
    cases["short config"] = (short_config, "ended at byte 10 of")
    cases["longer blob"] = (lambda f: f.manifest(f.image(good, extra=b"more")), "size")

    def unsafe(f):
        f.manifest(f.image(_tar_of({"../escape": b"x"})))

    cases["unsafe layer"] = (unsafe, "unsafe layer entry")

    def bomb(f):
        f.manifest(f.image(_tar_of({"zeros": b"\0" * (300 << 20)})))

    cases["bomb"] = (bomb, "expands past")

    def bad_realm(f):
        f.routes["/v2/"] = (401, {"WWW-Authenticate": 'Bearer realm="ftp://x/token"'}, b"")
        f.routes["/v2/bad/img/manifests/1"] = (
            401, {"WWW-Authenticate": 'Bearer realm="ftp://x/token"'}, b"")

    cases["bad realm"] = (bad_realm, "realm")

    def no_challenge(f):
        f.routes["/v2/bad/img/manifests/1"] = (401, {}, b"")

    cases["401 without challenge"] = (no_challenge, "sangja login")

    def clear_text_realm(f):  # with credentials (--creds): never sent in clear elsewhere
        challenge = {"WWW-Authenticate": 'Bearer realm="http://sangja-test.invalid/token"'}
        f.routes["/v2/"] = (401, challenge, b"")
        f.routes["/v2/bad/img/manifests/1"] = (401, challenge, b"")

    cases["clear-text realm"] = (clear_text_realm, "credentials are not sent there")
    return cases


BAD_REGISTRY = _bad_cases()


@pytest.mark.parametrize("case", list(BAD_REGISTRY))
def test_bad_registry_answers_refused(case, fresh):
    """What a broken or hostile registry sends: one line, exit 125, the store as it was."""
    fake = FakeRegistry()
    try:
        spoil, mentions = BAD_REGISTRY[case]
        spoil(fake)
        fresh.ok("images")
        creds = ["--creds", "u:p"] if case == "clear-text realm" else []
        line = fresh.fails("pull", *creds, f"{fake.host}/bad/img:1",
                           env={"SANGJA_LAYER_MAX_SIZE": "64m"} if case == "bomb" else None)
        assert mentions in line, line
        assert fresh.blobs() == [] and fresh.layers() == [] and fresh.ok("images", "-q") == ""
        assert os.listdir(fresh.root / "blobs" / "tmp") == []
        assert fresh.check() == (0, ["no problems found"])
    finally:
        fake.close()


def test_invalid_tags_from_a_registry_refused(fresh):
    fake = FakeRegistry()
    try:
        for tag in ("../../x", "a" * 200, "x@sha256:" + "1" * 64, "-bad"):
            fake.routes["/v2/bad/img/tags/list"] = (200, {}, json.dumps(
                {"name": "bad/img", "tags": [tag]}).encode())
            line = fresh.fails("pull", "-a", f"{fake.host}/bad/img")
            assert "invalid tag" in line, line
        assert fresh.ok("images", "-q") == "" and fresh.blobs() == []
    finally:
        fake.close()
