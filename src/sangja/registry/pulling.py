"""``pull``: an image from a registry into the store, through the one ingest path.

1. The name: local-first rules and the registries config give the references to try
   (:mod:`sangja.registry.config`), each at its mirrors, then at its registry.
2. The manifest: asked for in every media type sangja reads (OCI and Docker schema 2, indexes
   and lists), checked against its digest; an index picks the host's platform (or
   ``platform``) and the chosen manifest is fetched by digest.
3. The config (checked against its digest and size, its fields checked as ``load`` does),
   then the layers, ``Options.jobs`` at a time: each streams from the registry through
   :meth:`sangja.image.ingest.Ingest.layer` (stored, hashed, decompressed and checked at
   once; unpacked under the unpack limits). Layers the store has are not downloaded.
4. The records last, in one transaction (the manifest, the index it came from, the config,
   the tag). Any failure leaves the store as it was.

Progress goes to ``progress(event)`` as dicts (``{"status": "Downloading", "id": "<12 hex>",
"digest": ..., "current": n, "total": n}``, see docs/registry.md); the CLI draws them.
"""

from __future__ import annotations

import threading

from sangja.image import manifest as mf
from sangja.image.db import Image, ImageNotFound
from sangja.image.ingest import MAX_CONFIG, Ingest, StreamSource, image_record, parse_config
from sangja.image.layers import UnpackLimits
from sangja.image.reference import InvalidReference, Reference, parse
from sangja.image.store import ImageStore
from sangja.records import dataclass
from sangja.registry.client import Repository
from sangja.registry.config import Endpoint
from sangja.registry.errors import NotFound, RegistryError, UnresolvableName
from sangja.registry.options import Options
from sangja.registry.resolving import first_answer

__all__ = ["POLICIES", "PullResult", "image_for", "pull"]

POLICIES = ("missing", "always", "never")


@dataclass(frozen=True)
class PullResult:
    name: str  # the canonical tag recorded (or name@digest)
    image_id: str
    manifest_digest: str


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


class _Aborted(Exception):
    pass


def pull(store: ImageStore, name: str, *, platform: str | mf.Platform | None = None,
         all_tags: bool = False, options: Options | None = None, progress=None
         ) -> list[PullResult]:
    """Pull ``name`` (every tag of its repository with ``all_tags``); return what was
    recorded. ``name`` may also be a transport reference (``oci:DIR[:NAME]``,
    ``oci-archive:FILE``, ``docker-archive:FILE``), loaded through the same ingest path."""
    from sangja.image.archive import load_transport, split_transport

    emit = progress or (lambda event: None)
    transport = split_transport(name)
    if transport is not None:
        kind, rest = transport
        if kind == "oci" and ":" not in rest:
            rest += ":"  # one image: the only one the layout has
        names = load_transport(store, kind, rest)
        out = []
        for n in names:
            img = store.resolve(n)
            out.append(PullResult(n, img.id, img.manifest_digest or ""))
        return out  # the loader logged Docker's `load` events
    if isinstance(platform, str):
        platform = mf.Platform.parse_string(platform)
    if all_tags and ("@" in name or ":" in name.rpartition("/")[2]):
        raise UnresolvableName("--all-tags takes a repository name without a tag or digest")
    own = options is None
    options = options or Options()
    try:
        def attempt(ref: Reference, ep: Endpoint) -> list[PullResult]:
            if all_tags:
                repo = Repository(options.session_for(ep), ep.path)
                tags = repo.tags()
                if not tags:
                    raise NotFound(f"{repo}: has no tags")
                results = [_pull(store, ep, _tagged(ref, t), platform, options, emit)
                           for t in tags]
            else:
                results = [_pull(store, ep, ref, platform, options, emit)]
            _pull_events(store, results)
            return results

        return first_answer(options, name, "pull", attempt)
    finally:
        if own:
            options.close()


def _pull_events(store: ImageStore, results: list[PullResult]) -> None:
    """Docker's `pull` event per reference: the reference is the actor, `name` its
    repository (`busybox:latest`, name `busybox`)."""
    from sangja.engine.events import familiar_image

    for r in results:
        shown = familiar_image(r.name)
        store.event("pull", r.image_id, parse(r.name).name, actor=shown)


def _tagged(ref: Reference, tag: str) -> Reference:
    """``ref`` with a tag a registry listed (checked: it becomes a name in the store)."""
    try:
        tagged = parse(f"{ref.name}:{tag}")
    except InvalidReference as e:
        raise RegistryError(f"the registry lists an invalid tag: {e}") from None
    if tagged.name != ref.name or tagged.tag != tag or tagged.digest is not None:
        raise RegistryError(f"the registry lists an invalid tag {tag!r}")
    return tagged


def image_for(store: ImageStore, name: str, *, policy: str = "missing",
              platform: str | None = None, options: Options | None = None, progress=None
              ) -> Image:
    """The image ``name`` names, pulled as ``policy`` says: ``missing`` (only when the
    store has no such image), ``always`` (a registry is asked every time; the pulled image
    wins) or ``never`` (the store only). What ``run``, ``create`` and ``build`` use."""
    if policy not in POLICIES:
        raise RegistryError(f"invalid pull policy {policy!r} (want {', '.join(POLICIES)})")
    if policy != "always":
        try:
            return store.resolve(name)
        except ImageNotFound:
            if policy == "never":
                raise ImageNotFound(name) from None
    results = pull(store, name, platform=platform, options=options, progress=progress)
    return store.resolve(results[0].image_id)


def _pull(store: ImageStore, ep: Endpoint, ref: Reference, platform: mf.Platform | None,
          options: Options, emit) -> PullResult:
    repo = Repository(options.session_for(ep), ep.path)
    target = ref.digest or ref.tag or "latest"
    emit({"status": "Pulling", "id": str(ref), "from": str(ep)})
    data, media, digest = repo.manifest(target)
    where = f"manifest {digest}"
    extra: list[tuple[bytes, str]] = []  # indexes on the way to the image manifest
    doc = _parse(data, media, where)
    depth = 0
    while isinstance(doc, mf.ImageIndex):
        if depth > 4:
            raise RegistryError(f"{repo}: {where}: indexes nested too deeply")
        try:
            chosen = doc.select(platform)
        except mf.ManifestError as e:
            raise RegistryError(f"{repo}: {e}") from None
        extra.append((data, digest))
        data, media, digest = repo.manifest(chosen.digest)
        if digest != chosen.digest:
            raise RegistryError(f"{repo}: manifest {chosen.digest}: the registry sent "
                                f"{digest}")
        where = f"manifest {digest}"
        doc = _parse(data, media or chosen.media_type, where)
        depth += 1
    try:
        doc.check_image()
    except mf.ManifestError as e:
        raise RegistryError(f"{repo}: {e}") from None
    for i, layer in enumerate(doc.layers):
        if layer.foreign:
            raise RegistryError(f"{repo}: {where}: layers[{i}] is a foreign layer; sangja "
                                "does not download foreign layers")
    config_bytes = repo.read_blob(doc.config.digest, doc.config.size, MAX_CONFIG)
    config = parse_config(config_bytes, f"config {doc.config.digest}")
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(doc.layers):
        raise RegistryError(f"{repo}: {where}: {len(doc.layers)} layers, but its config has "
                            f"{len(diff_ids)} diff_ids")
    tag = None if ref.digest else str(ref)
    with store.lock.shared():  # gc lock: files first, records last
        ingest = Ingest(store, UnpackLimits.from_env())
        try:
            layers = _layers(ingest, repo, doc, diff_ids, options.jobs, emit)
            blobs = [d for _, d in extra]
            blobs += [la.digest for la, got in zip(doc.layers, layers, strict=True)
                      if got.blob_digest != la.digest]
            for idata, idigest in extra:
                ingest.put(idata, idigest, len(idata))
            ingest.put(config_bytes, doc.config.digest, doc.config.size)
            ingest.put(data, digest, len(data))
            ingest.add_image(image_record(doc.config.digest, digest, layers, config,
                                          tuple(dict.fromkeys(blobs))),
                             [tag] if tag else [])
            ingest.commit()
        except BaseException:
            ingest.rollback()
            raise
    emit({"status": "Digest", "digest": digest})
    name = tag or f"{ref.name}@{digest}"
    emit({"status": "Done", "id": doc.config.digest, "name": name})
    return PullResult(name, doc.config.digest, digest)


def _parse(data: bytes, media: str, where: str):
    try:
        return mf.parse(data, media or None, where=where)
    except mf.ManifestError as e:
        raise RegistryError(str(e)) from None


def _layers(ingest: Ingest, repo: Repository, doc: mf.ImageManifest, diff_ids: list[str],
            jobs: int, emit) -> list:
    """Ingest every layer, ``jobs`` at once; each diff_id once (an image may repeat one)."""
    from concurrent.futures import ThreadPoolExecutor

    abort = threading.Event()
    unique: dict[str, mf.Descriptor] = {}
    for ld, diff_id in zip(doc.layers, diff_ids, strict=True):
        unique.setdefault(diff_id, ld)
    for ld in unique.values():
        emit({"status": "Waiting", "id": _short(ld.digest), "digest": ld.digest,
              "total": ld.size})

    def one(diff_id: str, ld: mf.Descriptor):
        short = _short(ld.digest)
        state = {"opened": False, "current": 0}

        def on_bytes(n: int) -> None:
            if abort.is_set():
                raise _Aborted()
            state["current"] += n
            emit({"status": "Downloading", "id": short, "digest": ld.digest,
                  "current": state["current"], "total": ld.size})
            if state["current"] == ld.size:
                emit({"status": "Extracting", "id": short, "digest": ld.digest,
                      "current": ld.size, "total": ld.size})

        def open_stream():
            state["opened"] = True
            return repo.open_blob(ld.digest, ld.size, on_bytes)

        if abort.is_set():
            raise _Aborted()
        layer = ingest.layer(StreamSource(open_stream, ld.size), diff_id,
                             f"layer {ld.digest}", ld)
        emit({"status": "Pull complete" if state["opened"] else "Already exists",
              "id": short, "digest": ld.digest, "current": ld.size, "total": ld.size})
        return layer

    done: dict[str, object] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(unique) or 1))) as pool:
        futures = {d: pool.submit(one, d, ld) for d, ld in unique.items()}
        error: BaseException | None = None
        for d, fut in futures.items():
            try:
                done[d] = fut.result()
            except _Aborted:
                continue
            except BaseException as e:
                if error is None:
                    error = e
                    abort.set()
        if error is not None:
            raise error
    return [done[d] for d in diff_ids]
