"""`/images/...` and `/build`: list, inspect, history, tag, remove, pull (create), load,
get (save), prune, build. The image store and the registry client are the CLI's."""

from __future__ import annotations

from .errors import bad_request
from .http import Request
from .names import familiar, local_name, lookup_name


def _summary(img_rows: list[dict]) -> list[dict]:
    by_id: dict[str, dict] = {}
    for r in img_rows:
        e = by_id.setdefault(r["id"], {
            "Id": r["id"], "ParentId": "", "RepoTags": [], "RepoDigests": [],
            "Created": _epoch(r["created"]), "Size": r["size"], "VirtualSize": r["size"],
            "SharedSize": -1, "Labels": {}, "Containers": -1})
        if r["repository"] != "<none>":
            e["RepoTags"].append(f"{r['repository']}:{r['tag']}")
            if r["digest"]:
                e["RepoDigests"].append(f"{r['repository']}@{r['digest']}")
    return list(by_id.values())


def _epoch(created) -> int:
    """Seconds since the epoch of an image's creation time (RFC 3339 in the store)."""
    if isinstance(created, int | float):
        return int(created)
    from ..humanize import parse_time

    return int(parse_time(created) or 0) if created else 0


def list_images(req: Request):
    store = req.engine.images
    out = _summary(store.images(all_images=req.flag("all")))
    filters = req.filters()
    for ref in filters.get("reference", []):
        import fnmatch

        out = [e for e in out if any(fnmatch.fnmatch(t, ref) or fnmatch.fnmatch(
            t.rsplit(":", 1)[0], ref) or fnmatch.fnmatch(t.split("/", 1)[-1], ref)
            for t in e["RepoTags"])]
    if "dangling" in filters:
        want = filters["dangling"][-1].lower() in ("true", "1")
        out = [e for e in out if (not e["RepoTags"]) == want]
    if "label" in filters:
        for e in out:
            e["Labels"] = (store.config(e["Id"]).get("config") or {}).get("Labels") or {}
        for v in filters["label"]:
            k, eq, val = v.partition("=")
            out = [e for e in out if k in e["Labels"] and (not eq or e["Labels"][k] == val)]
    return out


def inspect(req: Request, name: str):
    store = req.engine.images
    doc = store.inspect(lookup_name(store, name))
    doc.setdefault("Parent", "")
    doc.setdefault("Comment", "")
    doc.setdefault("Author", "")
    doc.setdefault("ContainerConfig", doc.get("Config", {}))
    doc.setdefault("VirtualSize", doc.get("Size", 0))
    doc.setdefault("GraphDriver", {"Name": "overlay2", "Data": None})
    doc.setdefault("Metadata", {"LastTagTime": "0001-01-01T00:00:00Z"})
    return doc


def history(req: Request, name: str):
    rows = req.engine.images.history(lookup_name(req.engine.images, name))
    out = []
    for r in rows:
        out.append({"Id": r.get("id", "<missing>"), "Created": _epoch(r.get("created")),
                    "CreatedBy": r.get("created_by", ""), "Tags": r.get("tags") or None,
                    "Size": int(r.get("size") or 0), "Comment": r.get("comment", "")})
    return out


def tag(req: Request, name: str):
    repo = req.arg("repo")
    if not repo:
        raise bad_request("repo is required")
    target = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
    store = req.engine.images
    image_id = store.resolve(lookup_name(store, name)).id
    store.tag(local_name(store, target), image_id)
    req.send_empty(201)


def remove(req: Request, name: str):
    from ..engine.usage import remove_image

    store = req.engine.images
    name = lookup_name(store, name)
    out = []
    for line in remove_image(store, name, force=req.flag("force")):
        kind, _, what = line.partition(": ")
        out.append({kind: what})
    return out


def prune(req: Request):
    from ..engine.usage import prune_unused_images

    dangling = req.filters().get("dangling", ["true"])[-1].lower() not in ("false", "0")
    report = prune_unused_images(req.engine.images, all_images=not dangling)
    return {"ImagesDeleted": [{"Untagged" if k == "untagged" else "Deleted": v}
                              for k, v in report.events],
            "SpaceReclaimed": report.reclaimed}


# ---------------------------------------------------------------------------- pull, push


class _JSONProgress:
    """sangja.registry progress events -> Docker's JSON progress lines."""

    def __init__(self, out):
        self.out = out

    def __call__(self, event: dict) -> None:
        e = {k: v for k, v in event.items() if k in ("status", "id", "progress")}
        if "current" in event or "total" in event:
            e["progressDetail"] = {"current": event.get("current", 0),
                                   "total": event.get("total", 0)}
        e.setdefault("status", str(event.get("status", "")))
        self.out.write_json(e)


def create(req: Request):
    """Pull (`fromImage`, `tag`), with Docker's JSON progress; an error after the reply
    started is an `errorDetail` line, as dockerd sends it."""
    image = req.arg("fromImage")
    if req.arg("fromSrc"):
        raise bad_request("import (fromSrc) is not supported through the API yet")
    if not image:
        raise bad_request("fromImage is required")
    tag = req.arg("tag")
    if tag:
        image = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
    from ..image.archive import split_transport
    from ..registry.pulling import pull

    if split_transport(image) is not None:  # oci:DIR, docker-archive:FILE: the CLI's, not ours
        raise bad_request(f"invalid reference format: {image}")
    options = _registry_options(req)
    out = req.stream("application/json")
    try:
        results = pull(req.engine.images, image, platform=req.arg("platform") or None,
                       progress=_JSONProgress(out), options=options)
        for r in results:
            out.write_json({"status": f"Digest: {getattr(r, 'digest', '')}"})
        out.write_json({"status": f"Status: Downloaded newer image for {image}"})
    except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
        out.write_json({"errorDetail": {"message": str(e)}, "error": str(e)})
    finally:
        options.close()
    out.close()


def _registry_options(req: Request):
    """The registry options of a pull or push: the client's credentials
    (X-Registry-Auth, base64url JSON), else the service's own auth files."""
    import base64

    from ..jsonio import loads
    from ..registry.auth import Credentials
    from ..registry.options import Options

    header = req.handler.headers.get("X-Registry-Auth")
    creds = None
    if header:
        try:
            doc = loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (ValueError, TypeError):
            raise bad_request("invalid X-Registry-Auth header") from None
        if isinstance(doc, dict) and doc.get("username") and doc.get("password"):
            creds = Credentials(doc["username"], doc["password"])
    return Options(creds=creds)


def push(req: Request, name: str):
    from ..registry.pushing import push as do_push

    target = f"{name}:{req.arg('tag')}" if req.arg("tag") else name
    options = _registry_options(req)
    out = req.stream("application/json")
    try:
        do_push(req.engine.images, target, progress=_JSONProgress(out), options=options)
    except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
        out.write_json({"errorDetail": {"message": str(e)}, "error": str(e)})
    finally:
        options.close()
    out.close()


# ---------------------------------------------------------------------------- save, load


def _save(req: Request, names: list[str]):
    from ..image.archive import save
    from .streams import ChunkSink

    store = req.engine.images
    names = [lookup_name(store, n) for n in names]
    for n in names:
        store.resolve(n)
    out = req.stream("application/x-tar")
    save(store, names, ChunkSink(out), format="docker-archive")
    out.close()


def get_one(req: Request, name: str):
    _save(req, [name])


def get_many(req: Request):
    names = req.query.get("names", [])
    if not names:
        raise bad_request("names is required")
    _save(req, names)


def load(req: Request):
    from ..image.archive import load as do_load

    names = do_load(req.engine.images, req.body_stream())
    out = req.stream("application/json")
    for n in names:
        out.write_json({"stream": (f"Loaded image ID: {n}\n" if n.startswith("sha256:")
                                   else f"Loaded image: {n}\n")})
    out.close()


# ---------------------------------------------------------------------------- build


class _BuildOut:
    """The builder's output as Docker's `{"stream": ...}` lines."""

    def __init__(self, out):
        self.out = out

    def write(self, data) -> int:
        if data:
            self.out.write_json({"stream": bytes(data).decode("utf-8", "replace")})
        return len(data)

    def flush(self) -> None:
        pass


def build(req: Request):
    """A tar context in the body; `t`, `dockerfile`, `buildargs`, `target`, `nocache`,
    `labels`, `networkmode`, `pull`, `q`."""
    from ..build.context import open_context
    from ..build.executor import BuildOptions
    from ..build.executor import build as run_build
    from ..build.progress import Progress
    from ..jsonio import loads

    def json_arg(name: str) -> dict:
        v = req.arg(name)
        if not v:
            return {}
        try:
            d = loads(v)
        except ValueError as e:
            raise bad_request(f"invalid {name}: {e}") from None
        if not isinstance(d, dict):
            raise bad_request(f"invalid {name}: not an object")
        return {str(k): str(x) for k, x in d.items() if x is not None}

    network = req.arg("networkmode") or None
    if network in ("default", ""):
        network = None
    tags = [familiar(t) for t in req.query.get("t", [])]  # as `sangja build -t` names them
    bopts = BuildOptions(tags=tags, build_args=json_arg("buildargs"),
                         target=req.arg("target") or None, no_cache=req.flag("nocache"),
                         pull="always" if req.flag("pull") else "missing",
                         labels=json_arg("labels"), network=network,
                         platform=req.arg("platform") or None, secrets={}, epoch=None)
    dockerfile = req.arg("dockerfile") or None
    body = req.body()
    out = req.stream("application/json")
    sink = _BuildOut(out)
    progress = Progress(sink, quiet=req.flag("q"))
    try:
        with open_context("-", dockerfile, _Bytes(body), scratch_dir=None) as ctx:
            image_id = run_build(req.service.root, req.service.runroot, context=ctx,
                                 opts=bopts, progress=progress)
        out.write_json({"aux": {"ID": image_id}})
        out.write_json({"stream": f"Successfully built {image_id.partition(':')[2][:12]}\n"})
        for t in bopts.tags:
            from ..image.store import ImageStore

            out.write_json({"stream": f"Successfully tagged {ImageStore.canonical(t)}\n"})
    except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
        out.write_json({"errorDetail": {"message": str(e)}, "error": str(e)})
    out.close()


class _Bytes:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, n: int = -1) -> bytes:
        return self.data


def build_prune(req: Request):
    from ..engine.usage import images_in_use
    from ..image.gc import prune_build_cache

    store = req.engine.images
    report = prune_build_cache(store, all_entries=req.flag("all"),
                               in_use=images_in_use(store.root))
    return {"CachesDeleted": list(report.deleted_cache), "SpaceReclaimed": report.reclaimed}
