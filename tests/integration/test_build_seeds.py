"""The seeds' story (000, 001: the container diet) with `sangja build`: a Debian toolchain
bootstrapped from Debian's packages, a multi-stage build of a static musl `hello` into
`FROM scratch` and into the busybox base, next to a glibc-dynamic build on Debian; each
image runs and greets, `images` lists them with sizes tens of kB / about 2 MB / a
distribution, and --no-cache rebuilds give the same id. Seed 001's own Dockerfiles
(Rust, cloned from GitHub: no network here) are parsed and planned as written. Needs
root, mmdebstrap or debootstrap and the Debian mirror (about 30 s to bootstrap)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sangja.build.parser import parse
from sangja.build.stages import plan

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def toolchain(engine):
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
        pytest.skip("neither mmdebstrap nor debootstrap installed")
    r = engine("image", "inspect", "localhost/toolchain:latest")
    if r.returncode != 0:
        engine.ok("bootstrap", "debian", "--include", "gcc,musl-tools,libc6-dev",
                  "localhost/toolchain:latest", timeout=900)
    return engine


def _size(cli, name: str) -> int:
    (doc,) = json.loads(cli.ok("image", "inspect", name))
    return doc["Size"]


def test_the_container_diet(toolchain, cli):
    hello = EXAMPLES / "hello"
    for kind in ("scratch", "busybox", "glibc"):
        cli.ok("build", "-q", "-t", f"localhost/hello:{kind}", "-f",
               str(hello / f"Containerfile.{kind}"),
               "--build-arg", "RUNTIME=localhost/toolchain:latest", str(hello), timeout=300)
        assert cli.out(f"localhost/hello:{kind}") == "Hello, world!\n"
    scratch, busybox, glibc = (_size(cli, f"localhost/hello:{k}")
                               for k in ("scratch", "busybox", "glibc"))
    assert 5_000 < scratch < 100_000  # the binary alone
    assert 1_000_000 < busybox < 3_000_000  # busybox's ~2 MB and the binary
    assert glibc > 50_000_000  # a distribution
    listing = cli.ok("images")
    for kind in ("scratch", "busybox", "glibc"):
        assert any(line.split()[:2] == ["localhost/hello", kind]
                   for line in listing.splitlines())
    # static: nothing but the binary in the image, and no loader needed to run it
    (doc,) = json.loads(cli.ok("image", "inspect", "localhost/hello:scratch"))
    assert len(doc["RootFS"]["Layers"]) == 1 and doc["Config"]["Entrypoint"] == ["/hello"]
    # reproducible: two --no-cache builds, one id
    ids = {cli.ok("build", "-q", "--no-cache", "-f", str(hello / "Containerfile.scratch"),
                  str(hello), timeout=300).strip() for _ in range(2)}
    assert ids == {doc["Id"]}
    for kind in ("scratch", "busybox", "glibc"):
        cli.ok("rmi", f"localhost/hello:{kind}")


@pytest.mark.parametrize("name", ["glibc-ubuntu", "musl-ubuntu", "musl-alpine"])
def test_seed_dockerfiles_parse_and_plan_as_written(name):
    text = (EXAMPLES / "seed001" / f"{name}.Dockerfile").read_text()
    p = plan(parse(text, f"{name}.Dockerfile"), {}, None, {})
    assert [s.name for s in p.stages] == ["builder", None]
    assert p.stages[0].base == "rust:latest" and p.stages[1].deps == {0}
    assert p.needed == [0, 1]
    assert p.stages[1].instructions[-1].json == ["slice"]
