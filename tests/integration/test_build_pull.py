"""`sangja build` of a FROM image that is not in the store: pulled through the registry
client from a loopback registry (Debian's docker-registry, the fixtures of
test_registry.py) into a fresh store; `--pull=never` refuses it in one line and the store
is left as it was."""

from __future__ import annotations

import pytest
from engine_cli import mounts_under
from test_registry import busybox, env, fresh, registry  # noqa: F401  (fixtures)

pytestmark = pytest.mark.root


def test_from_an_image_not_local_is_pulled(registry, busybox, fresh, tmp_path):  # noqa: F811
    reg = registry()
    name = f"{reg.host}/x/busybox:1"
    busybox.ok("push", "busybox", name)
    pushed = busybox.inspect("busybox")["Id"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {name}\nRUN echo built > /built\n")

    # --pull=never: one line, nothing pulled, nothing tagged
    line = fresh.fails("build", "--pull=never", "-t", "localhost/never:1", ctx)
    assert "Containerfile:1" in line and name in line and "--pull=never" in line, line
    assert fresh.ok("images", "-a", "-q").split() == []

    r = fresh("build", "--network", "none", "-t", "localhost/pulled:1", ctx)
    assert r.returncode == 0, r.stderr
    assert f"Pulling {name}" in r.stdout + r.stderr
    assert fresh.inspect(name)["Id"] == pushed  # the base image, pulled into the store
    assert fresh.ok("run", "--rm", "--network", "none", "localhost/pulled:1",
                    "cat", "/built") == "built\n"
    assert fresh.check() == (0, ["no problems found"])

    # now local: --pull=never builds it from the cache
    out = fresh.ok("build", "--network", "none", "--pull=never", ctx)
    assert "Using cache" in out and "Pulling" not in out
    fresh.ok("rmi", "-f", "localhost/pulled:1")
    assert mounts_under(fresh.root, fresh.runroot) == []  # no snapshot, no netns left
