"""Docker's prune filters (until=, label=, label!=, volumes' all=, images' dangling=) and its
prompt, for containers, volumes, networks, images, the build cache and `system prune`,
through the real `sangja` CLI and through the API socket (docker-py and the docker CLI
against `sangja system service`). Objects are made with labels and at different times; an
until= between two creations (a Unix time taken between them) tells them apart. What is
left is read back with `ls` each time; refused filters remove nothing."""

from __future__ import annotations

import json
import time

import pytest
from api_service import docker_client_fixture, service_fixture  # noqa: F401 - the module's fixtures

pytestmark = pytest.mark.root


def between() -> str:
    """A Unix time strictly between what was made before and what is made after."""
    time.sleep(0.05)
    t = f"{time.time():.6f}"
    time.sleep(0.05)
    return t


def containers(cli) -> set[str]:
    return set(cli.ok("ps", "-a", "-q", "--no-trunc").split())


def volumes(cli) -> set[str]:
    return set(cli.ok("volume", "ls", "-q").split())


def networks(cli) -> set[str]:
    return {n["Name"] for n in map(json.loads, cli.ok("network", "ls", "--format", "json")
                                   .splitlines())}


def images(cli) -> set[str]:
    return set(cli.ok("images", "-a", "-q", "--no-trunc").split())


def refused(cli, *args: str) -> str:
    """A prune the filters make fail: one line, exit 125."""
    return cli.fails(125, *args)


# ---------------------------------------------------------------------------- CLI


def test_container_prune_filters(cli):
    a = cli.create("--label", "tier=x", "--label", "keep=1", "busybox", "true")
    t = between()
    b = cli.create("--label", "tier=y", "busybox", "true")
    c = cli.create("busybox", "true")
    running = cli.detach("--label", "tier=y", "busybox", "sleep", "1000")
    out = cli.ok("container", "prune", "-f", "--filter", "label=tier=y")
    assert out == f"Deleted Containers:\n{b}\n\nTotal reclaimed space: 0B\n"
    assert containers(cli) == {a, c, running}
    cli.ok("container", "prune", "-f", "--filter", f"until={t}")
    assert containers(cli) == {c, running}
    d = cli.create("--label", "keep=1", "busybox", "true")
    cli.ok("container", "prune", "-f", "--filter", "label!=keep")  # c has no keep label
    assert containers(cli) == {d, running}
    # RFC 3339 and Go durations: d is younger than 10 minutes
    cli.ok("container", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z")
    cli.ok("container", "prune", "-f", "--filter", "until=1h30m")
    assert containers(cli) == {d, running}
    assert cli.ok("container", "prune", "-f", "--filter", "until=0s") == \
        f"Deleted Containers:\n{d}\n\nTotal reclaimed space: 0B\n"
    assert containers(cli) == {running}
    assert cli.ok("container", "prune", "-f") == "Total reclaimed space: 0B\n"


def test_bad_prune_filters_are_refused_and_remove_nothing(cli):
    a = cli.create("--label", "x=1", "busybox", "true")
    for args in (["container", "prune"], ["network", "prune"], ["image", "prune"],
                 ["volume", "prune"], ["builder", "prune"], ["system", "prune"]):
        assert refused(cli, *args, "-f", "--filter", "foo=bar") == \
            "sangja: invalid filter 'foo'"
    assert refused(cli, "container", "prune", "-f", "--filter", "until=yesterday") \
        .startswith("sangja: invalid time 'yesterday'")
    assert refused(cli, "container", "prune", "-f", "--filter", "until=1h",
                   "--filter", "until=2h") == "sangja: more than one until filter specified"
    assert refused(cli, "volume", "prune", "-f", "--filter", "until=1h") == \
        "sangja: invalid filter 'until'"
    assert refused(cli, "volume", "prune", "-f", "-a", "--filter", "all=1") == \
        "sangja: conflicting options: cannot specify both --all and --filter all=1"
    assert refused(cli, "system", "prune", "-f", "--volumes", "--filter", "until=1h") == \
        'sangja: ERROR: The "until" filter is not supported with "--volumes"'
    assert refused(cli, "container", "prune", "-f", "--filter", "label") == \
        ('sangja: invalid argument "label" for "--filter" flag: bad format of filter '
         "(expected name=value)")
    # asked nothing: refused before the prompt
    r = cli("container", "prune", "--filter", "foo=bar", input="y\n")
    assert r.returncode == 125 and r.stdout == ""
    assert containers(cli) == {a}


def test_prune_asks_as_docker(cli):
    a = cli.create("busybox", "true")
    for answer in ("n\n", "\n", "yes\n", ""):  # only y/Y says yes
        r = cli("container", "prune", input=answer)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert r.stdout.startswith("WARNING! This will remove all stopped containers.\n"
                                   "Are you sure you want to continue? [y/N] ")
        assert "Deleted" not in r.stdout
        assert containers(cli) == {a}
    out = cli.ok("container", "prune", input=" Y \n")
    assert out == ("WARNING! This will remove all stopped containers.\nAre you sure you "
                   f"want to continue? [y/N] Deleted Containers:\n{a}\n\n"
                   "Total reclaimed space: 0B\n")
    assert containers(cli) == set()
    cli.ok("network", "create", "--label", "p=1", "prompt-net")
    r = cli("network", "prune", "--filter", "label=p", input="n\n")
    assert r.stdout == ("WARNING! This will remove all custom networks not used by at "
                        "least one container.\nAre you sure you want to continue? [y/N] ")
    assert "prompt-net" in networks(cli)
    assert cli.ok("network", "prune", "--filter", "label=p", input="y\n").endswith(
        "[y/N] Deleted Networks:\nprompt-net\n\n")
    cli.ok("volume", "create", "prompt-vol")
    r = cli("volume", "prune", "-a", input="n\n")
    assert r.stdout == ("WARNING! This will remove all local volumes not used by at least "
                        "one container.\nAre you sure you want to continue? [y/N] ")
    assert volumes(cli) == {"prompt-vol"}
    r = cli("builder", "prune", input="n\n")
    assert r.stdout == ("WARNING! This will remove all dangling build cache. Are you sure "
                        "you want to continue? [y/N] ")
    r = cli("system", "prune", "--filter", "label=a=1", "--filter", "until=1h", input="n\n")
    assert r.returncode == 0 and r.stdout == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n  - all dangling images\n"
        "  - unused build cache\n\n  Items to be pruned will be filtered with:\n"
        "  - label=a=1\n  - until=1h\n\nAre you sure you want to continue? [y/N] ")
    assert volumes(cli) == {"prompt-vol"}


def test_volume_prune_filters(cli):
    cli.ok("volume", "create", "--label", "a=1", "v1")
    cli.ok("volume", "create", "--label", "a=2", "v2")
    cli.ok("volume", "create", "v3")
    used = cli.create("-v", "v1:/data", "busybox", "true")
    cli.ok("volume", "create", "--label", "a=1", "v4")
    # named volumes only with all (-a or all=true), and never one in use (v1)
    assert cli.ok("volume", "prune", "-f", "--filter", "label=a=1") == \
        "Total reclaimed space: 0B\n"
    out = cli.ok("volume", "prune", "-f", "--filter", "all=true", "--filter", "label=a=1")
    assert out.startswith("Deleted Volumes:\nv4\n\nTotal reclaimed space: ")
    assert volumes(cli) == {"v1", "v2", "v3"}
    cli.ok("volume", "prune", "-f", "-a", "--filter", "label!=a")
    assert volumes(cli) == {"v1", "v2"}
    cli.ok("volume", "prune", "-f", "--filter", "all=1", "--filter", "label!=a=2")
    assert volumes(cli) == {"v1", "v2"}  # v1 in use, v2 has a=2
    cli.ok("rm", used)
    cli.ok("volume", "prune", "-f", "-a", "--filter", "label!=a=2")
    assert volumes(cli) == {"v2"}


def test_network_prune_filters(cli):
    cli.ok("network", "create", "--label", "pf=1", "pf-a")
    t = between()
    cli.ok("network", "create", "--label", "pf=2", "pf-b")
    cli.ok("network", "create", "--label", "other=1", "pf-c")
    mine = {"pf-a", "pf-b", "pf-c"}
    try:
        out = cli.ok("network", "prune", "-f", "--filter", f"until={t}",
                     "--filter", "label=pf")
        assert out == "Deleted Networks:\npf-a\n\n"
        assert networks(cli) & mine == {"pf-b", "pf-c"}
        assert cli.ok("network", "prune", "-f", "--filter", "label=pf=1") == ""
        cli.ok("network", "prune", "-f", "--filter", "label!=other")
        assert networks(cli) & mine == {"pf-c"}
    finally:
        for n in networks(cli) & mine:
            cli("network", "rm", n)


def commit(cli, cid: str, label: str, tag: str) -> str:
    out = cli.ok("commit", "-c", f"LABEL prunetest={label}", cid, tag).strip()
    return out if out.startswith("sha256:") else "sha256:" + out


def test_image_prune_filters(cli):
    """Every image here has the label prunetest; each prune names it, so the worker's
    busybox is never a candidate."""
    cid = cli.create("busybox", "true")
    try:
        a = commit(cli, cid, "1", "localhost/prunetest:a")
        t = between()
        b = commit(cli, cid, "2", "localhost/prunetest:b")
        b2 = commit(cli, cid, "3", "localhost/prunetest:b")  # b is dangling now
        before = images(cli)
        assert {a, b, b2} <= before
        assert "deleted" not in cli.ok("image", "prune", "-f", "--filter", "label=prunetest=9")
        out = cli.ok("image", "prune", "-f", "--filter", "label=prunetest")
        assert f"deleted: {b}" in out and a not in out and b2 not in out
        assert images(cli) == before - {b}
        out = cli.ok("image", "prune", "-f", "-a", "--filter", "label=prunetest",
                     "--filter", f"until={t}")
        assert "untagged: localhost/prunetest:a" in out and f"deleted: {a}" in out
        assert images(cli) == before - {a, b}
        cli.ok("image", "prune", "-f", "--filter", "label=prunetest",
               "--filter", "label!=prunetest=3")
        assert b2 in images(cli)
        out = cli.ok("image", "prune", "-f", "--filter", "dangling=false",
                     "--filter", "label=prunetest=3")  # dangling=false is -a
        assert f"deleted: {b2}" in out
        assert images(cli) == before - {a, b, b2}
    finally:
        cli.ok("rm", cid)
        for tag in ("localhost/prunetest:a", "localhost/prunetest:b"):
            cli("rmi", tag)


def test_system_prune_filters(cli):
    """One filter for every pruner (Docker refuses all= here: containers do not know it)."""
    a = cli.create("busybox", "true")
    b = cli.create("--label", "keep=1", "busybox", "true")
    cli.ok("network", "create", "sp-net")
    cli.ok("network", "create", "--label", "keep=1", "sp-other")
    anon_user = cli.create("-v", "/anon", "busybox", "true")
    anon = cli.inspect(anon_user)["Mounts"][0]["Name"]
    cli.ok("container", "rm", anon_user)  # keeps its anonymous volume
    cli.ok("volume", "create", "sp-vol")
    try:
        out = cli.ok("system", "prune", "-f", "--volumes", "--filter", "label!=keep")
        assert f"Deleted Containers:\n{a}\n\n" in out and b not in out
        assert "Deleted Networks:\nsp-net\n" in out and "sp-other" not in out
        assert f"Deleted Volumes:\n{anon}\n\n" in out
        assert containers(cli) == {b}
        assert {"sp-net", "sp-other"} & networks(cli) == {"sp-other"}
        assert volumes(cli) == {"sp-vol"}  # named: only all=true would take it
        assert "busybox" in cli.ok("images")
        assert refused(cli, "system", "prune", "-f", "--volumes", "--filter", "all=true") \
            == "sangja: invalid filter 'all'"
    finally:
        cli("network", "rm", "sp-net", "sp-other")


def test_builder_prune_until(cli, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo prune > /f\n"
                                         "RUN echo until > /g\n")
    cli.ok("build", "-t", "localhost/prune-until:1", str(tmp_path), timeout=120)
    cli.ok("rmi", "localhost/prune-until:1")
    t = between()
    # until=: entries unused since before it; this build's were used just now
    assert cli.ok("builder", "prune", "-f", "--filter", "until=1h") == \
        "Total reclaimed space: 0B\n"
    assert cli.ok("builder", "prune", "-f", "--filter", "label=x") == \
        "Total reclaimed space: 0B\n"  # entries have no labels
    out = cli.ok("builder", "prune", "-f", "--filter", f"until={t}")
    assert out.startswith("Deleted build cache objects:\n")
    assert "Deleted" not in cli.ok("builder", "prune", "-f", "--filter", f"until={t}")


# ---------------------------------------------------------------------------- API


def test_api_prune_filters(client, cli):
    a = client.containers.create("busybox", ["true"], labels={"api": "1"}).id
    t = between()
    b = client.containers.create("busybox", ["true"], labels={"api": "2"}).id
    c = client.containers.create("busybox", ["true"]).id
    assert client.containers.prune(filters={"label": "api=2"}) == \
        {"ContainersDeleted": [b], "SpaceReclaimed": 0}
    assert client.containers.prune(filters={"until": t})["ContainersDeleted"] == [a]
    assert containers(cli) == {c}
    assert client.containers.prune(filters={"label!": "api"})["ContainersDeleted"] == [c]

    client.volumes.create("av1", labels={"api": "1"})
    client.volumes.create("av2")
    assert client.volumes.prune(filters={"label": "api=1"})["VolumesDeleted"] == []
    assert client.volumes.prune(filters={"all": "true", "label": "api=1"})[
        "VolumesDeleted"] == ["av1"]
    assert volumes(cli) == {"av2"}

    client.networks.create("api-a", labels={"api": "1"})
    t = between()
    client.networks.create("api-b", labels={"api": "1"})
    try:
        assert client.networks.prune(filters={"until": t, "label": "api"}) == \
            {"NetworksDeleted": ["api-a"]}
        assert "api-b" in networks(cli) and "api-a" not in networks(cli)
    finally:
        cli("network", "rm", "api-b")

    cid = cli.create("busybox", "true")
    try:
        img = commit(cli, cid, "api", "localhost/prunetest:api")
        got = client.images.prune(filters={"dangling": False, "label": "prunetest=api"})
        assert {"Untagged": "localhost/prunetest:api"} in got["ImagesDeleted"]
        assert got["ImagesDeleted"][-1] == {"Deleted": img}
        assert img not in images(cli)
    finally:
        cli.ok("rm", cid)


def test_api_bad_prune_filters_are_400(client, service, cli):
    import docker

    a = cli.create("busybox", "true")
    cli.ok("volume", "create", "bad-filter-vol")
    for call, filters, msg in (
            (client.containers.prune, {"foo": "bar"}, "invalid filter 'foo'"),
            (client.networks.prune, {"dangling": "true"}, "invalid filter 'dangling'"),
            (client.volumes.prune, {"until": "1h", "all": "true"}, "invalid filter 'until'"),
            (client.images.prune, {"until": "never"}, "invalid time 'never'"),
            (client.containers.prune, {"label": "x", "until": ["1h", "2h"]},
             "more than one until filter specified")):
        with pytest.raises(docker.errors.APIError) as e:
            call(filters=filters)
        assert e.value.status_code == 400 and msg in e.value.explanation
    status, _, body = service.request("POST", "/v1.45/build/prune?filters=" +
                                      '{"foo":["1"]}'.replace('"', "%22"))
    assert status == 400 and json.loads(body) == {"message": "invalid filter 'foo'"}
    assert containers(cli) == {a} and volumes(cli) == {"bad-filter-vol"}
    # the docker CLI against the socket: the daemon's refusal, and a working filter
    r = service.docker("container", "prune", "-f", "--filter", "foo=bar")
    assert r.returncode == 1 and "invalid filter 'foo'" in r.stderr
    out = service.ok("container", "prune", "-f", "--filter", "until=10m")
    assert out == "Total reclaimed space: 0B\n"
    out = service.ok("container", "prune", "-f", "--filter", "until=0s")
    assert out == f"Deleted Containers:\n{a}\n\nTotal reclaimed space: 0B\n"
    # docker system prune calls every prune endpoint with the same filters
    b = cli.create("--label", "sys=1", "busybox", "true")
    c = cli.create("busybox", "true")
    out = service.ok("system", "prune", "-f", "--filter", "label=sys=1")
    assert f"Deleted Containers:\n{b}\n" in out and c not in out
    assert containers(cli) == {c}
    r = service.docker("volume", "prune", "-f", "--filter", "until=1h")
    assert r.returncode == 1 and "invalid filter 'until'" in r.stderr
    assert volumes(cli) == {"bad-filter-vol"}


def cache_descriptions(cli) -> str:
    return cli.ok("system", "df", "-v")


def test_builder_prune_keep_storage(cli, tmp_path):
    """--keep-storage: the least recently used entries go until the cache's own layers
    fit (each build's big step has 300 kB of random bytes)."""
    for n in (1, 2):
        ctx = tmp_path / f"ctx{n}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo z{n}; head -c 300000 "
                                        f"/dev/urandom > /z\nRUN echo {n} > /n\n")
        cli.ok("build", "-t", f"localhost/keep-storage:{n}", str(ctx), timeout=120)
        between()
    cli.ok("rmi", "localhost/keep-storage:1", "localhost/keep-storage:2")
    assert "echo z1;" in cache_descriptions(cli) and "echo z2;" in cache_descriptions(cli)
    assert "Deleted" not in cli.ok("builder", "prune", "-f", "--keep-storage", "10m")
    out = cli.ok("builder", "prune", "-f", "--keep-storage", "400k")
    assert out.startswith("Deleted build cache objects:\n")
    left = cache_descriptions(cli)
    assert "echo z1;" not in left and "echo z2;" in left
    assert "invalid size" in cli.fails(125, "builder", "prune", "-f", "--keep-storage", "lots")
    cli.ok("builder", "prune", "-f", "--filter", "until=0s")
    assert "echo z2;" not in cache_descriptions(cli)
