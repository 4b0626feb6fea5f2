"""`events` for images, networks and volumes: the commands that change them are run for
real and the event log is read back (`events --since --until --format '{{json .}}'`):
Docker's type, action, actor and attributes, each event once (the engine logs them; the
CLI and the API log none), and the type/image/network/volume filters. The API's
`GET /events` (the docker CLI through `sangja system service`) shows the same log."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections import Counter

import pytest
from api_service import service_fixture  # noqa: F401 - the module's `service`
from engine_cli import isolation_guard, wait_until

pytestmark = pytest.mark.root

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def events(cli, since: str, *filters: str) -> list[dict]:
    out = cli.ok("events", "--since", since, "--until", "0s", "--format", "{{json .}}",
                 *[a for f in filters for a in ("--filter", f)])
    return [json.loads(line) for line in out.splitlines()]


def brief(msgs: list[dict]) -> list[tuple[str, str, str, dict]]:
    return [(m["Type"], m["Action"], m["Actor"]["ID"], m["Actor"]["Attributes"])
            for m in msgs]


def image_id_of(cli, name: str) -> str:
    return json.loads(cli.ok("image", "inspect", name))[0]["Id"]


def since_now() -> str:
    """Now: what the tests before logged (their clean-up too) is left out."""
    return f"{time.time():.6f}"


# ---------------------------------------------------------------------------- volumes


def test_volume_events_create_mount_unmount_destroy(cli):
    since = since_now()
    cli.ok("volume", "create", "zz-evv")
    cid = cli.detach("--network", "none", "-v", "zz-evv:/data:ro", "-v", "/anon",
                     "busybox", "true")
    cli.wait_status(cid, "exited")
    vols = {v["Destination"]: v["Name"] for v in cli.inspect(cid)["Mounts"]}
    anon = vols["/anon"]
    assert HEX64.match(anon)

    def unmounted() -> bool:  # the container's clean-up logs them after its exit
        return len(events(cli, since, "type=volume", "event=unmount")) == 2

    wait_until(unmounted, 20, message="no unmount events")
    cli.ok("rm", "-v", cid)  # its anonymous volume goes with it
    cli.ok("volume", "rm", "zz-evv")
    got = brief(events(cli, since, "type=volume"))
    assert got == [
        ("volume", "create", "zz-evv", {"driver": "local"}),
        ("volume", "create", anon, {"driver": "local"}),
        ("volume", "mount", "zz-evv", {"driver": "local", "container": cid,
                                       "destination": "/data", "read/write": "false",
                                       "propagation": ""}),
        ("volume", "mount", anon, {"driver": "local", "container": cid,
                                   "destination": "/anon", "read/write": "true",
                                   "propagation": ""}),
        ("volume", "unmount", "zz-evv", {"driver": "local", "container": cid}),
        ("volume", "unmount", anon, {"driver": "local", "container": cid}),
        ("volume", "destroy", anon, {"driver": "local"}),
        ("volume", "destroy", "zz-evv", {"driver": "local"}),
    ], got
    # the mounts come before the container's start, the unmounts after its die
    order = [(m["Type"], m["Action"]) for m in events(cli, since)
             if m["Type"] == "volume" and m["Actor"]["ID"] == "zz-evv"
             or m["Type"] == "container" and m["Action"] in ("start", "die")]
    assert order == [("volume", "create"), ("volume", "mount"), ("container", "start"),
                     ("container", "die"), ("volume", "unmount"), ("volume", "destroy")]
    # volume=NAME: that volume's events only (a prefix too, as Docker's)
    assert [m["Action"] for m in events(cli, since, "volume=zz-evv")] == [
        "create", "mount", "unmount", "destroy"]
    assert {m["Actor"]["ID"] for m in events(cli, since, "volume=zz-ev")} == {"zz-evv"}
    assert events(cli, since, "volume=zz-evv", "type=container") == []


def test_volume_events_of_run_rm_and_prune(cli):
    since = since_now()
    cli.ok("run", "--rm", "--network", "none", "-v", "/scratch", "busybox", "true")
    got = brief(events(cli, since, "type=volume"))
    assert [a for _, a, _, _ in got] == ["create", "mount", "unmount", "destroy"], got
    assert len({vid for _, _, vid, _ in got}) == 1 and HEX64.match(got[0][2])
    # prune: a destroy per volume, then Docker's prune event with the bytes reclaimed
    since = since_now()
    cli.ok("volume", "create", "zz-evp")
    cli.ok("run", "--rm", "--network", "none", "-v", "zz-evp:/d", "busybox", "sh", "-c",
           "head -c 5000 /dev/zero > /d/f")
    cli.ok("volume", "prune", "-a", "-f")
    got = brief(events(cli, since, "type=volume", "event=destroy", "event=prune"))
    assert got[0] == ("volume", "destroy", "zz-evp", {"driver": "local"}), got
    assert got[-1][:3] == ("volume", "prune", "")
    assert int(got[-1][3]["reclaimed"]) >= 5000


def test_volume_create_twice_is_one_event_and_bad_input_none(cli):
    since = since_now()
    cli.ok("volume", "create", "zz-evtwice")
    cli.ok("volume", "create", "zz-evtwice")  # Docker's create is idempotent: no event
    cli.fails(None, "volume", "create", "-bad name")
    cli.fails(None, "volume", "rm", "zz-evnosuch")
    cli.ok("volume", "rm", "zz-evtwice")
    assert [(m["Action"], m["Actor"]["ID"]) for m in events(cli, since, "type=volume")] == [
        ("create", "zz-evtwice"), ("destroy", "zz-evtwice")]


# ---------------------------------------------------------------------------- networks


def test_network_events(cli):
    since = since_now()
    net_id = cli.ok("network", "create", "zz-evnet").strip()
    cid = cli.create("busybox", "true")  # on the default network: zz-evnet is connected
    cli.ok("network", "connect", "zz-evnet", cid)
    cli.ok("network", "disconnect", "zz-evnet", cid)
    cli.ok("rm", cid)
    with isolation_guard():
        cli.ok("network", "rm", "zz-evnet")
    base = {"name": "zz-evnet", "type": "bridge"}
    assert brief(events(cli, since, "type=network")) == [
        ("network", "create", net_id, base),
        ("network", "connect", net_id, {**base, "container": cid}),
        ("network", "disconnect", net_id, {**base, "container": cid}),
        ("network", "destroy", net_id, base),
    ]
    # network=NAME or an id prefix: that network's events, no container's
    by_name = events(cli, since, "network=zz-evnet")
    assert [m["Action"] for m in by_name] == ["create", "connect", "disconnect", "destroy"]
    assert events(cli, since, "network=" + net_id[:12]) == by_name
    assert events(cli, since, "network=zz-evnet", "type=container") == []
    # Docker's message of a network event has no status/id/from
    assert set(by_name[0]) == {"Type", "Action", "Actor", "scope", "time", "timeNano"}


def test_network_prune_events(cli):
    since = since_now()
    net_id = cli.ok("network", "create", "zz-evprune").strip()
    cli.fails(None, "network", "create", "zz-evprune")  # exists: no second create
    with isolation_guard():
        out = cli.ok("network", "prune", "-f")
    assert "zz-evprune" in out
    got = brief(events(cli, since, "type=network"))
    assert got[0] == ("network", "create", net_id, {"name": "zz-evprune", "type": "bridge"})
    assert got[1] == ("network", "destroy", net_id, {"name": "zz-evprune", "type": "bridge"})
    assert got[-1] == ("network", "prune", "", {"reclaimed": "0"})
    assert len(got) == 3, got


# ---------------------------------------------------------------------------- images


def _tarball(path) -> None:
    with tarfile.open(path, "w") as tf:
        data = b"imported\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def test_image_events_tag_save_load_rmi(cli, tmp_path):
    since = since_now()
    image_id = image_id_of(cli, "busybox")
    cli.ok("tag", "busybox", "zz-evimg:1")
    cli.ok("save", "-o", str(tmp_path / "i.tar"), "zz-evimg:1")
    cli.ok("rmi", "zz-evimg:1")  # busybox keeps its own tag: an untag, no delete
    cli.ok("load", "-i", str(tmp_path / "i.tar"))  # tags it again: no tag event (Docker's)
    cli.ok("rmi", "zz-evimg:1")
    assert brief(events(cli, since, "type=image")) == [
        ("image", "tag", image_id, {"name": "zz-evimg:1"}),
        ("image", "save", image_id, {"name": image_id}),
        ("image", "untag", image_id, {"name": "zz-evimg:1"}),
        ("image", "load", image_id, {"name": image_id}),
        ("image", "untag", image_id, {"name": "zz-evimg:1"}),
    ]
    msg = events(cli, since, "type=image")[0]
    assert (msg["status"], msg["id"]) == ("tag", image_id)  # Docker's older fields too
    # image=: by name (with or without the tag, or sangja's canonical name) and by id
    for value in ("zz-evimg:1", "zz-evimg", "localhost/zz-evimg:1"):
        assert [m["Action"] for m in events(cli, since, f"image={value}")] == [
            "tag", "untag", "untag"], value
    assert len(events(cli, since, f"image={image_id}")) == 5
    assert events(cli, since, "image=zz-evimg:2") == []
    assert events(cli, since, "image=zz-evi") == []  # a name is no prefix


def test_image_events_import_build_prune(cli, tmp_path):
    since = since_now()
    _tarball(tmp_path / "root.tar")
    imported = cli.ok("import", str(tmp_path / "root.tar"), "zz-evimp:1").strip()
    assert imported.startswith("sha256:")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM busybox\nLABEL evl=yes\nRUN echo > /f\n")
    cli.ok("build", "-q", "-t", "zz-evbuild:1", str(ctx))
    built = image_id_of(cli, "zz-evbuild:1")
    cli.ok("rmi", "zz-evimp:1")
    cli.ok("tag", "zz-evbuild:1", "zz-evbuild:2")
    cli.ok("rmi", "zz-evbuild:1")  # untag only: :2 still names it
    cli.ok("rmi", "zz-evbuild:2")
    got = brief(events(cli, since, "type=image"))
    assert got == [
        ("image", "tag", imported, {"name": "zz-evimp:1"}),
        ("image", "import", imported, {"name": imported}),
        ("image", "tag", built, {"evl": "yes", "name": "zz-evbuild:1"}),
        ("image", "untag", imported, {"name": "zz-evimp:1"}),
        ("image", "delete", imported, {"name": imported}),
        ("image", "tag", built, {"evl": "yes", "name": "zz-evbuild:2"}),
        ("image", "untag", built, {"evl": "yes", "name": "zz-evbuild:1"}),
        ("image", "untag", built, {"evl": "yes", "name": "zz-evbuild:2"}),
        ("image", "delete", built, {"name": built}),
    ], got
    # image prune: a dangling image's delete, then Docker's prune event
    since = since_now()
    imported = cli.ok("import", str(tmp_path / "root.tar")).strip()
    cli.ok("image", "prune", "-f")
    got = brief(events(cli, since, "type=image"))
    assert got[0] == ("image", "import", imported, {"name": imported})
    assert ("image", "delete", imported, {"name": imported}) in got
    assert got[-1][:3] == ("image", "prune", "") and "reclaimed" in got[-1][3]


def test_image_bad_input_logs_nothing(cli):
    since = since_now()
    cli.fails(None, "tag", "zz-evnosuch", "zz-evx:1")
    cli.fails(None, "rmi", "zz-evnosuch")
    cli.fails(None, "tag", "busybox", "Bad Name")
    assert events(cli, since, "type=image") == []


def test_image_push_pull_events(cli, tmp_path):
    from registry_fixtures import REGISTRY, Registry

    if REGISTRY is None:
        pytest.skip("docker-registry not installed")
    reg = Registry(tmp_path / "registry")
    try:
        since = since_now()
        image_id = image_id_of(cli, "busybox")
        cli.ok("push", "busybox", f"{reg.host}/ev/bb:1")
        cli.ok("pull", f"{reg.host}/ev/bb:1")
        cli.ok("rmi", f"{reg.host}/ev/bb:1")
    finally:
        reg.close()
    repo = f"{reg.host}/ev/bb"
    assert brief(events(cli, since, "type=image")) == [
        ("image", "push", f"{repo}:1", {"name": repo}),
        ("image", "pull", f"{repo}:1", {"name": repo}),
        ("image", "untag", image_id, {"name": f"{repo}:1"}),
    ]
    assert [m["Action"] for m in events(cli, since, f"image={repo}:1")] == [
        "push", "pull", "untag"]


# ---------------------------------------------------------------------------- the API


def test_api_events_show_volume_and_network_events(service, cli):
    since = str(int(time.time()) - 1)
    service.ok("volume", "create", "zz-evapi")  # through the API
    net_id = cli.ok("network", "create", "zz-evapinet").strip()  # through the CLI
    service.ok("volume", "rm", "zz-evapi")
    with isolation_guard():
        service.ok("network", "rm", "zz-evapinet")
    out = service.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "type=volume", "--filter", "type=network",
                     "--format", "{{json .}}")
    got = Counter((m["Type"], m["Action"], m["Actor"]["ID"],
                   json.dumps(m["Actor"]["Attributes"], sort_keys=True))
                  for m in map(json.loads, out.splitlines())
                  if m["Actor"]["ID"] in ("zz-evapi", net_id))
    net = json.dumps({"name": "zz-evapinet", "type": "bridge"}, sort_keys=True)
    vol = json.dumps({"driver": "local"}, sort_keys=True)
    assert got == Counter({("volume", "create", "zz-evapi", vol): 1,
                           ("volume", "destroy", "zz-evapi", vol): 1,
                           ("network", "create", net_id, net): 1,
                           ("network", "destroy", net_id, net): 1}), got
    # image events of the API's endpoints: once each, the name as the docker user typed it
    service.ok("tag", "busybox", "zz-evapitag:1")
    service.ok("rmi", "zz-evapitag:1")
    out = service.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "image=zz-evapitag:1", "--format",
                     "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert out.splitlines() == ["image tag zz-evapitag:1", "image untag zz-evapitag:1"]
    # the docker CLI's volume= and network= filters
    out = service.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "volume=zz-evapi", "--format", "{{.Type}} {{.Action}}")
    assert out.splitlines() == ["volume create", "volume destroy"]
    out = service.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "network=zz-evapinet", "--format",
                     "{{.Action}} {{.Actor.Attributes.type}}")
    assert out.splitlines() == ["create bridge", "destroy bridge"]
