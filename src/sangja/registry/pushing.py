"""``push``: an image from the store to a registry.

The image goes as it is stored: its manifest's exact bytes (so its digest is the same on the
registry) and the blobs it names. Each blob the repository has already is skipped (HEAD);
one that another repository of the same registry has (a repository this image is also tagged
in) is mounted from there (cross-repository mount) instead of uploaded; the others are
uploaded ``Options.jobs`` at a time, in one PUT or, with ``Options.chunk_size``, in PATCHes.
The manifest goes last, and the digest the registry reports for it must be the image's.
"""

from __future__ import annotations

import threading

from sangja.image import manifest as mf
from sangja.image.reference import parse
from sangja.image.store import ImageStore
from sangja.records import dataclass
from sangja.registry.client import Repository
from sangja.registry.errors import RegistryError, UnresolvableName
from sangja.registry.options import Options

__all__ = ["PushResult", "push"]


@dataclass(frozen=True)
class PushResult:
    name: str
    digest: str
    size: int


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def push(store: ImageStore, source: str, destination: str | None = None, *,
         options: Options | None = None, progress=None) -> PushResult:
    """Push the local image ``source`` to ``destination`` (default: the name it was given
    by), which must name a registry. ``oci-archive:FILE`` and ``docker-archive:FILE``
    destinations write an archive instead."""
    from sangja.image.archive import save, split_transport

    emit = progress or (lambda event: None)
    img, by_tag = store._resolve(source)
    dest = destination or by_tag or source
    transport = split_transport(dest)
    if transport is not None and transport[0] != "oci":
        from sangja.output import output_file

        kind, path = transport
        with output_file(path) as f:
            save(store, [source], f, format=kind)
        return PushResult(dest, img.manifest_digest or "", 0)
    own = options is None
    options = options or Options()
    config = options.registries()
    if transport is not None or not config.qualified(dest):
        raise UnresolvableName(f"cannot push to {dest!r}: the name must say which registry "
                               "(e.g. 127.0.0.1:5000/NAME:TAG or registry.example.com/"
                               "NAME:TAG)")
    ref = parse(dest)
    (ep,) = config.endpoints(ref, for_push=True)
    if not img.manifest_digest:
        raise RegistryError(f"image {img.id} has no stored manifest to push")
    data = store.blobs.read_bytes(img.manifest_digest)
    try:
        doc = mf.parse(data, where=f"stored manifest {img.manifest_digest}")
    except mf.ManifestError as e:
        raise RegistryError(str(e)) from None
    if not isinstance(doc, mf.ImageManifest):
        raise RegistryError(f"stored manifest {img.manifest_digest} is not an image manifest")
    try:
        repo = Repository(options.session_for(ep), ep.path)
        emit({"status": "Pushing", "id": str(ref), "to": str(ep)})
        # repositories of the same registry this image is also in: blobs to mount from
        siblings = []
        for t in img.tags:
            other = parse(t)
            if other.domain == ep.host and other.path != ep.path:
                siblings.append(other.path)
        descs = list({d.digest: d for d in (*doc.layers, doc.config)}.values())
        _blobs(store, repo, descs, siblings, options, emit)
        target = ref.tag or img.manifest_digest
        digest = repo.put_manifest(target, data, doc.media_type)
        if digest != img.manifest_digest:
            raise RegistryError(f"{repo}: the manifest went up as {digest}, not "
                                f"{img.manifest_digest}")
        emit({"status": "Pushed", "id": str(ref), "digest": digest, "size": len(data)})
        from sangja.engine.events import familiar_image

        store.event("push", img.id, ref.name, actor=familiar_image(str(ref)))
        return PushResult(str(ref), digest, len(data))
    finally:
        if own:
            options.close()


def _blobs(store: ImageStore, repo: Repository, descs: list[mf.Descriptor],
           siblings: list[str], options: Options, emit) -> None:
    from concurrent.futures import ThreadPoolExecutor

    abort = threading.Event()
    for d in descs:
        if not store.blobs.exists(d.digest):
            raise RegistryError(f"blob {d.digest} of the image is not in the store (see "
                                "sangja system check)")
        emit({"status": "Preparing", "id": _short(d.digest), "digest": d.digest,
              "total": d.size})

    def one(d: mf.Descriptor) -> None:
        short = _short(d.digest)
        if repo.blob_size(d.digest, repo.push_scope) is not None:
            emit({"status": "Layer already exists", "id": short, "digest": d.digest})
            return
        for path in siblings:
            if repo.mount(d.digest, path):
                emit({"status": f"Mounted from {path}", "id": short, "digest": d.digest})
                return
        sent = {"n": 0}

        def on_bytes(n: int) -> None:
            if abort.is_set():
                raise RegistryError("aborted")
            sent["n"] += n
            emit({"status": "Pushing", "id": short, "digest": d.digest, "current": sent["n"],
                  "total": d.size})

        def open_at(offset: int):
            sent["n"] = offset
            f = store.blobs.open(d.digest)
            f.seek(offset)
            return f

        repo.upload(d.digest, d.size, open_at, options.chunk_size, on_bytes)
        emit({"status": "Pushed", "id": short, "digest": d.digest, "current": d.size,
              "total": d.size})

    with ThreadPoolExecutor(max_workers=max(1, min(options.jobs, len(descs)))) as pool:
        futures = [pool.submit(one, d) for d in descs]
        error: BaseException | None = None
        for fut in futures:
            try:
                fut.result()
            except BaseException as e:
                if error is None:
                    error = e
                    abort.set()
        if error is not None:
            raise error
