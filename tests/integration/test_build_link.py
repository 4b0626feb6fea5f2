"""COPY/ADD --link and COPY --parents, observed in the image's layers and in a container:
a --link layer holds only what it copied, made without looking at the stage (a link in
the stage is not followed), and is reused as is on top of a changed parent; --chown by
name is refused with --link. ADD of a git URL is refused in one line."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from test_build import build, context

pytestmark = pytest.mark.root


def layers(cli, image: str) -> list[str]:
    (doc,) = json.loads(cli.ok("image", "inspect", image))
    return doc["RootFS"]["Layers"]


def layer_names(cli, tmp_path: Path, image: str, index: int) -> dict[str, tarfile.TarInfo]:
    """The entries of the image's layer `index`, from `sangja save` (docker-archive)."""
    archive = tmp_path / "saved.tar"
    cli.ok("save", "-o", str(archive), image, timeout=120)
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        member = manifest[0]["Layers"][index]
        data = outer.extractfile(member).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


def test_copy_link_is_made_apart_and_reused_on_another_parent(cli, tmp_path):
    base = ("FROM busybox\nRUN mkdir -p /d && echo {} > /d/keep && ln -s /etc /lnk\n"
            "COPY --link a.txt /d/\nCOPY --link --chown=7:8 --chmod=0640 a.txt /lnk/a\n")
    ctx = context(tmp_path, base.format("one"), {"a.txt": "top\n"})
    one = build(cli, ctx, "-t", "localhost/link:1")
    # the link layer holds only what it copied: /d/a.txt, not the stage's /d/keep
    names = layer_names(cli, tmp_path, "localhost/link:1", -2)
    assert set(names) == {"d", "d/a.txt"}, names
    # the stage's /lnk -> /etc was not followed: a directory in the layer, /etc untouched
    names = layer_names(cli, tmp_path, "localhost/link:1", -1)
    assert set(names) == {"lnk", "lnk/a"} and names["lnk"].isdir()
    assert (names["lnk/a"].uid, names["lnk/a"].gid, names["lnk/a"].mode) == (7, 8, 0o640)
    out = cli.ok("run", "--rm", "--network", "none", one, "sh", "-c",
                 "cat /d/keep /d/a.txt; test -e /etc/a && echo LEAKED; stat -c %u:%g /lnk/a")
    assert out == "one\ntop\n7:8\n"

    # another parent: the two --link layers are reused as they are
    (ctx / "Containerfile").write_text(base.format("two"))
    r = cli("build", "-t", "localhost/link:2", str(ctx), timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Using linked layer") == 2, r.stdout
    first, second = layers(cli, "localhost/link:1"), layers(cli, "localhost/link:2")
    assert first[-2:] == second[-2:] and first[-3] != second[-3]
    assert cli.ok("run", "--rm", "--network", "none", "localhost/link:2", "cat",
                  "/d/keep") == "two\n"
    # a changed source makes a new link layer
    (ctx / "a.txt").write_text("changed\n")
    r = cli("build", "-t", "localhost/link:3", str(ctx), timeout=180)
    assert r.returncode == 0 and "Using linked layer" not in r.stdout, r.stdout
    assert layers(cli, "localhost/link:3")[-2] != second[-2]
    cli.ok("rmi", "localhost/link:1", "localhost/link:2", "localhost/link:3")


def test_copy_link_chown_by_name_refused(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nCOPY --link --chown=nobody a /a\n", {"a": "x"})
    line = cli.fails(125, "build", str(ctx))
    assert "Containerfile:2" in line and "numeric" in line, line


def test_copy_parents(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nCOPY --parents x/y/f.txt x/z/ /p/\n"
                  "COPY --parents */g.txt /q/\n",
                  {"x/y/f.txt": "f\n", "x/z/h.txt": "h\n", "m/g.txt": "g1\n", "n/g.txt": "g2\n"})
    image = build(cli, ctx)
    out = cli.ok("run", "--rm", "--network", "none", image, "sh", "-c",
                 "cat /p/x/y/f.txt /p/x/z/h.txt /q/m/g.txt /q/n/g.txt; ls /p/x; ls /q")
    assert out == "f\nh\ng1\ng2\ny\nz\nm\nn\n"


def test_add_of_a_git_url_refused_in_one_line(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nADD https://example.com/x/repo.git /src\n")
    line = cli.fails(125, "build", str(ctx))
    assert "Containerfile:2" in line and "git repository" in line, line
