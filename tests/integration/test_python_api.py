"""`from sangja import Engine`: the typed Python API on the test's engine, checked
against the sangja CLI (the same containers and images) and from inside the container."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_engine_records(cli):
    from sangja import Container, Engine, Image

    with Engine(str(cli.root), str(cli.runroot)) as eng:
        c = eng.create("busybox", ["sh", "-c", "echo $X; exit 3"], name="pyapi",
                       env=["X=typed"], labels={"k": "v"})
        cli.seen.add(c.id)  # for the leak checks
        assert isinstance(c, Container) and c.state == "created" and c.labels == {"k": "v"}
        assert cli.inspect("pyapi")["Id"] == c.id  # the CLI sees it
        eng.start(c.id)
        assert eng.wait("pyapi") == 3
        done = eng.container("pyapi")
        assert (done.state, done.exit_code) == ("exited", 3)
        assert done.finished_at is not None and done.finished_at >= done.started_at
        assert cli.status("pyapi") == "exited"
        assert cli.ok("logs", "pyapi") == "typed\n"  # its environment, from inside
        assert [x.id for x in eng.containers() if x.name == "pyapi"] == [c.id]
        assert not [x for x in eng.containers(all=False) if x.name == "pyapi"]
        assert eng.inspect("pyapi")["Config"]["Labels"]["k"] == "v"
        img = eng.image("busybox")
        assert isinstance(img, Image) and "localhost/busybox:latest" in img.tags
        assert img.id == c.image_id and img.id in [i.id for i in eng.images()]
        eng.remove("pyapi")
    assert "pyapi" not in cli.ok("ps", "-a", "--format", "{{.Names}}")


def test_import_sangja_stays_lean():
    """The CLIs import `sangja`: the typed API (and the engine) only load when asked for."""
    code = ("import sys, sangja; assert 'sangja.python_api' not in sys.modules; "
            "assert 'sangja.engine.containers' not in sys.modules; "
            "from sangja import Engine; assert 'sangja.python_api' in sys.modules; "
            "import sangja as s\n"
            "try:\n    s.Nope\nexcept AttributeError: pass\nelse: raise SystemExit(1)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
