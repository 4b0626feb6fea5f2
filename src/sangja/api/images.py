"""`/images/...`, `/build` and `/distribution`: list, inspect, history, tag, remove, pull and
import (create), search, load, get (save), prune, build, a registry's descriptor of a name.
The image store, the importer and the registry client are the CLI's."""

from __future__ import annotations

from .errors import ApiError, bad_request
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
    from ..engine.filters import PruneFilter
    from ..engine.usage import prune_unused_images

    store = req.engine.images
    keep = PruneFilter("image", req.filters())
    report = prune_unused_images(store, all_images=keep.dangling is False,
                                 select=keep.image_selector(store) if keep else None)
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
    if req.arg("fromSrc") is not None:
        return _import(req)
    image = req.arg("fromImage")
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


# ---------------------------------------------------------------------------- import


def _import(req: Request):
    """`docker import`: the rootfs tarball is the body (`fromSrc=-`) or at an http(s)
    URL; `repo`, `tag`, `message`, `changes` (one Dockerfile instruction each), `platform`.
    Done before the reply starts, so a refused tarball is a 4xx `{"message": ...}` and the
    importer has left the store as it was; then `{"status": "sha256:..."}`, as dockerd
    ends its import stream."""
    from ..image.changes import ChangeError
    from ..image.importer import ImportError_, import_tarball
    from ..image.layers import LayerError

    src = req.arg("fromSrc") or ""
    try:
        if src != "-" and src.partition("://")[0].lower() not in ("http", "https"):
            raise bad_request(f"invalid fromSrc {src!r}: want - (the request body) or an "
                              "http(s) URL")
        repo, tag = req.arg("repo") or "", req.arg("tag") or ""
        if tag and not repo:
            raise bad_request("tag given without repo")
        if tag.startswith("sha256:") or "@" in tag:
            raise bad_request(f"invalid tag {tag!r}: cannot import by digest")
        store = req.engine.images
        reference = local_name(store, f"{repo}:{tag}" if tag else repo) if repo else None
        image_id = import_tarball(store, req.body_stream() if src == "-" else src,
                                  reference=reference, changes=req.query.get("changes", []),
                                  message=req.arg("message") or None,
                                  platform=req.arg("platform") or None)
    except Exception as e:
        _drain(req)  # refused before the body was read: the client is still sending it
        if isinstance(e, ImportError_ | ChangeError | LayerError):
            raise bad_request(str(e)) from None
        raise
    out = req.stream("application/json")
    out.write_json({"status": image_id})
    out.close()


def _drain(req: Request) -> None:
    """Read the rest of the body, so that the client, still sending it, gets the error
    reply rather than a reset connection."""
    try:
        req.drain()
    except Exception:  # noqa: BLE001 - a broken body: the error reply is all there is
        pass


# ---------------------------------------------------------------------------- search


def search(req: Request):
    """`docker search`: `term`, `limit` (1-100, 25), `filters` (is-official, is-automated,
    stars), through sangja.registry.searching (Docker's v1 search API, else the registry's
    catalog). Docker's result fields."""
    term = req.arg("term")
    if not term:
        raise bad_request("term is required")
    limit = req.int_arg("limit", 25)
    assert limit is not None
    if not 1 <= limit <= 100:
        raise bad_request(f"limit {limit} is outside the range of [1, 100]")
    official, automated, stars = _search_filters(req.filters())
    from ..registry.errors import RegistryError
    from ..registry.searching import search as do_search

    options = _registry_options(req)
    try:
        results = do_search(term, limit=limit, options=options)[:limit]
    except RegistryError as e:
        raise _registry_error(e) from None
    finally:
        options.close()
    return [{"name": r.name, "description": r.description, "star_count": r.stars,
             "is_official": r.official, "is_automated": r.automated}
            for r in results
            if (official is None or r.official == official)
            and (automated is None or r.automated == automated) and r.stars >= stars]


def _search_filters(filters: dict[str, list[str]]) -> tuple[bool | None, bool | None, int]:
    """(is-official, is-automated: None for either; stars: the least wanted), checked as
    dockerd checks them."""
    for key in filters:
        if key not in ("is-official", "is-automated", "stars"):
            raise bad_request(f"invalid filter '{key}'")

    def boolean(key: str) -> bool | None:
        values = {v.lower() for v in filters.get(key, [])}
        if not values:
            return None
        if not values <= {"true", "false", "1", "0"}:
            raise bad_request(f"invalid filter '{key}={filters[key][-1]}'")
        if len(values) > 1:
            raise bad_request(f"conflicting filter '{key}'")
        return values.pop() in ("true", "1")
    stars = 0
    for v in filters.get("stars", []):
        try:
            stars = max(stars, int(v))
        except ValueError:
            raise bad_request(f"invalid filter 'stars={v}'") from None
    return boolean("is-official"), boolean("is-automated"), stars


def _registry_error(e: Exception) -> ApiError:
    """A registry client error -> the status dockerd gives it: the caller's mistake 400,
    a refused login 401, what the registry does not have 404, anything else 500."""
    from ..registry.errors import NotFound, Unauthorized, UnresolvableName
    from ..registry.searching import InvalidSearch

    if isinstance(e, InvalidSearch | UnresolvableName):
        return ApiError(400, str(e))
    if isinstance(e, Unauthorized):
        return ApiError(401, str(e))
    if isinstance(e, NotFound):
        return ApiError(404, str(e))
    return ApiError(500, str(e))


# ---------------------------------------------------------------------------- distribution


def distribution(req: Request, name: str):
    """`GET /distribution/{name}/json`: the registry's descriptor of what `name` points
    at, and the platforms it offers (sangja.registry.describing)."""
    from ..registry.describing import describe
    from ..registry.errors import RegistryError

    options = _registry_options(req)
    try:
        found = describe(name, options=options)
    except RegistryError as e:
        raise _registry_error(e) from None
    finally:
        options.close()
    return {"Descriptor": {"mediaType": found.media_type, "digest": found.digest,
                           "size": found.size},
            "Platforms": [p.to_dict() for p in found.platforms]}


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
    from ..engine.filters import PruneFilter
    from ..engine.usage import images_in_use
    from ..image.gc import prune_build_cache

    store = req.engine.images
    keep = PruneFilter("build", req.filters())
    keep_bytes = req.int_arg("keep-storage") or None  # Docker: 0 is "no limit"
    report = prune_build_cache(store, all_entries=req.flag("all"),
                               in_use=images_in_use(store.root), select=keep or None,
                               keep_bytes=keep_bytes)
    return {"CachesDeleted": list(report.deleted_cache), "SpaceReclaimed": report.reclaimed}
