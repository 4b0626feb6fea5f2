"""What a registry says an image name is, without pulling it: the descriptor of the
manifest or index the name points at (media type, digest, size) and the platforms it
offers. Docker's ``GET /distribution/{name}/json`` (``docker buildx imagetools``,
docker-py's ``images.get_registry_data``).

The name is resolved as ``pull`` resolves it (the registries config: candidates, then
mirrors before the registry). An index gives its entries' platforms; a single image
manifest gives the platform of its config (read by digest and checked, as ``pull`` does).
"""

from __future__ import annotations

from sangja.image import manifest as mf
from sangja.records import dataclass
from sangja.registry.client import Repository
from sangja.registry.errors import RegistryError
from sangja.registry.options import Options
from sangja.registry.resolving import first_answer

__all__ = ["RemoteImage", "describe"]


@dataclass(frozen=True)
class RemoteImage:
    name: str  # the reference that answered (registry/path:tag or @digest)
    media_type: str
    digest: str
    size: int
    platforms: tuple[mf.Platform, ...]


def describe(name: str, *, options: Options | None = None) -> RemoteImage:
    """The registry's descriptor and platforms of ``name``. NotFound, Unauthorized or
    RegistryError (UnresolvableName for a name that cannot go to a registry)."""
    own = options is None
    options = options or Options()
    try:
        def attempt(ref, ep) -> RemoteImage:
            repo = Repository(options.session_for(ep), ep.path)
            return _describe(repo, ref.digest or ref.tag or "latest",
                             f"{ref.name}@{ref.digest}" if ref.digest else str(ref))

        return first_answer(options, name, "describe", attempt)
    finally:
        if own:
            options.close()


def _describe(repo: Repository, target: str, name: str) -> RemoteImage:
    data, media, digest = repo.manifest(target)
    try:
        doc = mf.parse(data, media or None, where=f"manifest {digest}")
    except mf.ManifestError as e:
        raise RegistryError(f"{repo}: {e}") from None
    if isinstance(doc, mf.ImageIndex):
        platforms = tuple(doc.platforms())
    else:
        platforms = (_config_platform(repo, doc),)
    return RemoteImage(name, doc.media_type, digest, len(data), platforms)


def _config_platform(repo: Repository, doc: mf.ImageManifest) -> mf.Platform:
    from sangja.image.ingest import MAX_CONFIG, IngestError, parse_config

    what = f"config {doc.config.digest}"
    try:
        config = parse_config(repo.read_blob(doc.config.digest, doc.config.size, MAX_CONFIG),
                              what)
    except IngestError as e:
        raise RegistryError(f"{repo}: {e}") from None
    os_name, arch = config.get("os"), config.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        raise RegistryError(f"{repo}: {what}: no os or architecture")
    variant, version = config.get("variant"), config.get("os.version")
    return mf.Platform(os_name, arch, variant if isinstance(variant, str) and variant else None,
                       version if isinstance(version, str) and version else None)
