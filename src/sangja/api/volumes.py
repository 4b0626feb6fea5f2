"""`/volumes`: list, create, inspect, remove, prune (sangja.engine.volumes)."""

from __future__ import annotations

import os

from .errors import bad_request
from .http import Request


def _info(eng, row) -> dict:
    from ..engine.volumes import volume_info

    return volume_info(eng.paths, row)


def list_volumes(req: Request):
    eng = req.engine
    db = eng.db
    rows = db.volumes()
    infos = [_info(eng, r) for r in rows]
    filters = req.filters()
    for v in filters.get("dangling", []):
        want = v.lower() in ("true", "1")
        infos = [i for i in infos if (not db.volume_users(i["Name"])) == want]
    for v in filters.get("name", []):
        infos = [i for i in infos if v in i["Name"]]
    for v in filters.get("label", []):
        k, eq, val = v.partition("=")
        infos = [i for i in infos if k in i["Labels"] and (not eq or i["Labels"][k] == val)]
    for key in filters:
        if key not in ("dangling", "name", "label", "driver"):
            raise bad_request(f"invalid filter '{key}'")
    return {"Volumes": infos, "Warnings": []}


def create(req: Request):
    from ..engine.volumes import ensure_volume

    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise bad_request("the volume create body must be a JSON object")
    if body.get("Driver") not in (None, "", "local"):
        raise bad_request(f"volume driver {body['Driver']!r} is not available (only local)")
    if body.get("DriverOpts"):
        raise bad_request("volume driver options are not supported by the local driver yet")
    name = body.get("Name") or os.urandom(32).hex()
    eng = req.engine
    ensure_volume(eng.db, eng.paths, name, labels=body.get("Labels") or {})
    req.send_json(_info(eng, eng.db.volume(name)), 201)


def inspect(req: Request, name: str):
    eng = req.engine
    return _info(eng, eng.db.volume(name))


def remove(req: Request, name: str):
    from ..engine.records import NoSuchVolume
    from ..engine.volumes import remove_volume

    eng = req.engine
    try:
        remove_volume(eng.db, eng.paths, name)
    except NoSuchVolume:
        if not req.flag("force"):
            raise
    req.send_empty(204)


def prune(req: Request):
    from ..engine.filters import PruneFilter
    from ..engine.volumes import prune_volumes

    eng = req.engine
    keep = PruneFilter("volume", req.filters())
    # API < 1.42 pruned every unused volume, as all=true does now (Docker keeps that)
    every = keep.all if keep.all is not None else not req.at_least("1.42")
    gone, size = prune_volumes(eng.db, eng.paths, anonymous_only=not every,
                               select=keep or None)
    return {"VolumesDeleted": gone, "SpaceReclaimed": size}
