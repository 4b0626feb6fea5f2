"""Image manifests and indexes, OCI and Docker schema 2, read into one model.

Four documents describe images, two per family::

    OCI image manifest       application/vnd.oci.image.manifest.v1+json
    OCI image index          application/vnd.oci.image.index.v1+json
    Docker manifest (v2s2)   application/vnd.docker.distribution.manifest.v2+json
    Docker manifest list     application/vnd.docker.distribution.manifest.list.v2+json

:func:`parse` takes the bytes and, when known, the media type they came with (an HTTP
``Content-Type``, a descriptor's ``mediaType``) and returns an :class:`ImageManifest` or an
:class:`ImageIndex`. Both families end in the same shape: descriptors (media type, digest,
size, urls, annotations, platform) whose layer descriptors say how they are compressed
(:attr:`Descriptor.compression`) and whether they are foreign (Docker's foreign layers, OCI's
non-distributable ones: blobs a registry does not serve). Every problem raises
:class:`ManifestError` naming the document and the field (``manifest sha256:...:
layers[2].size: ...``). Docker schema 1 is refused with a clear message.

The same module serves archive loading (OCI layouts written by sangja, podman, skopeo, umoci,
docker) and a registry client: ``ACCEPT`` is the ``Accept`` header to send, ``parse`` what to
call on the reply, :meth:`ImageIndex.select` picks the host's platform from an index or list
(an error lists the platforms it has when none fits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sangja import jsonio
from sangja.errors import SangjaError
from sangja.image.blobs import InvalidDigest, parse_digest
from sangja.records import dataclass, field

__all__ = [
    "ACCEPT",
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "ManifestError",
    "Platform",
    "check_manifest_type",
    "host_platform",
    "layer_media_type",
    "oci_manifest_bytes",
    "parse",
    "parse_descriptor",
]

# ---------------------------------------------------------------------------- media types

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_FOREIGN_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_FOREIGN_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_FOREIGN_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# media type -> (compression, foreign)
LAYER_TYPES: dict[str, tuple[str, bool]] = {
    OCI_LAYER: ("none", False),
    OCI_LAYER_GZIP: ("gzip", False),
    OCI_LAYER_ZSTD: ("zstd", False),
    OCI_FOREIGN_LAYER: ("none", True),
    OCI_FOREIGN_LAYER_GZIP: ("gzip", True),
    OCI_FOREIGN_LAYER_ZSTD: ("zstd", True),
    DOCKER_LAYER: ("none", False),
    DOCKER_LAYER_GZIP: ("gzip", False),
    DOCKER_LAYER_ZSTD: ("zstd", False),
    DOCKER_FOREIGN_LAYER: ("gzip", True),
}
_OCI_LAYER_FOR = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
_SCHEMA1_TYPES = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json")

# What a registry client asks for, preferred first (schema 1 deliberately absent).
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

MAX_MANIFEST_BYTES = 4 << 20  # what registries (distribution) accept for a manifest
REF_NAME = "org.opencontainers.image.ref.name"


class ManifestError(SangjaError, ValueError):
    """A manifest, index or descriptor is malformed, unsupported or not what was asked for."""


# ---------------------------------------------------------------------------- platforms

_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "i386": "386", "i686": "386", "armv8l": "arm", "armv7l": "arm", "armv6l": "arm",
    "armv5tel": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    "mips64": "mips64", "loongarch64": "loong64",
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse_string(cls, text: str) -> Platform:
        """``os/arch[/variant]``, e.g. ``linux/arm64/v8``."""
        parts = text.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise ManifestError(f"invalid platform {text!r} (want os/arch[/variant])")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        return out

    def compatible_variants(self) -> list[str | None]:
        """Variants an image may have to run here, best first (None: no variant given)."""
        arch, v = self.architecture, self.variant
        if arch == "arm64":
            return ["v8", None]  # v8 is arm64's default, spelled or not
        if arch == "arm":
            n = int(v[1:]) if v and v[1:].isdigit() else 7
            return [*(f"v{i}" for i in range(n, 4, -1)), None]
        if arch == "amd64":
            n = int(v[1:]) if v and v[1:].isdigit() else 1
            return [*(f"v{i}" for i in range(n, 0, -1)), None]
        return [v, None] if v else [None]


def _amd64_level() -> int:
    """x86-64 micro-architecture level (1-4) from the CPU flags the kernel reports."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    break
            else:
                return 1
    except OSError:
        return 1
    levels = [
        {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"},
        {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
        {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
    ]
    level = 1
    for needed in levels:
        if not needed <= flags:
            break
        level += 1
    return level


def host_platform(machine: str | None = None) -> Platform:
    """The platform images must have to run here (``linux/<GOARCH>[/variant]``)."""
    machine = machine or os.uname().machine
    arch = _GOARCH.get(machine, machine)
    variant = None
    if arch == "arm64":
        variant = "v8"
    elif arch == "arm":
        variant = {"armv8l": "v8", "armv7l": "v7", "armv6l": "v6", "armv5tel": "v5"}.get(
            machine, "v7")
    elif arch == "amd64":
        level = _amd64_level()
        variant = f"v{level}" if level > 1 else None
    return Platform("linux", arch, variant)


def _platform_rank(p: Platform, want: Platform) -> int | None:
    """Lower is better; None: cannot run on ``want``."""
    if p.os != want.os or p.architecture != want.architecture:
        return None
    try:
        return want.compatible_variants().index(p.variant)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- descriptors


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _str(obj: Mapping, key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ManifestError(f"{_where(where, key)}: missing")
        return None
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{_where(where, key)}: expected a non-empty string, got {value!r}")
    return value


def _required_str(obj: Mapping, key: str, where: str) -> str:
    value = _str(obj, key, where)
    assert value is not None  # required: _str raised ManifestError
    return value


def _str_list(obj: Mapping, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{_where(where, key)}: expected a list of strings")
    return tuple(value)


def _annotations(obj: Mapping, where: str) -> dict[str, str]:
    value = obj.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError(f"{_where(where, 'annotations')}: expected a string-to-string map")
    return dict(value)


def parse_platform(obj: Any, where: str) -> Platform:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected an object, got {type(obj).__name__}")
    return Platform(
        os=_required_str(obj, "os", where),
        architecture=_required_str(obj, "architecture", where),
        variant=_str(obj, "variant", where, required=False),
        os_version=_str(obj, "os.version", where, required=False),
        os_features=_str_list(obj, "os.features", where),
        features=_str_list(obj, "features", where),
    )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str | None = None

    @property
    def compression(self) -> str | None:
        """"none", "gzip" or "zstd" for a layer media type, None for anything else. A hint:
        docker-archive sources label plain tars as gzip, so readers still sniff the bytes."""
        kind = LAYER_TYPES.get(self.media_type)
        return kind[0] if kind else None

    @property
    def foreign(self) -> bool:
        """A Docker foreign or OCI non-distributable layer (registries may not serve it)."""
        kind = LAYER_TYPES.get(self.media_type)
        return bool(kind and kind[1])

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def is_manifest(self) -> bool:
        return self.media_type in MANIFEST_TYPES

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get(REF_NAME)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


def parse_descriptor(obj: Any, where: str, *, media_type_required: bool = True) -> Descriptor:
    """A descriptor object (``{"mediaType", "digest", "size", ...}``); ``where`` names it in
    errors (``manifest sha256:...: layers[0]``)."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a descriptor object, got {type(obj).__name__}")
    media_type = _str(obj, "mediaType", where, required=media_type_required) or ""
    digest = obj.get("digest")
    if digest is None:
        raise ManifestError(f"{_where(where, 'digest')}: missing")
    try:
        parse_digest(digest)
    except InvalidDigest as e:
        raise ManifestError(f"{_where(where, 'digest')}: {e}") from None
    size = obj.get("size")
    if size is None:
        raise ManifestError(f"{_where(where, 'size')}: missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{_where(where, 'size')}: expected a non-negative integer, "
                            f"got {size!r}")
    platform = obj.get("platform")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=_str_list(obj, "urls", where),
        annotations=_annotations(obj, where),
        platform=parse_platform(platform, _where(where, "platform"))
        if platform is not None else None,
        artifact_type=_str(obj, "artifactType", where, required=False),
    )


# ---------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class ImageManifest:
    """One image: a config and its layers, bottom first (OCI manifest or Docker v2s2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    where: str = "manifest"

    @property
    def docker(self) -> bool:
        return self.media_type == DOCKER_MANIFEST

    def check_image(self) -> None:
        """Refuse what is not a container image (artifacts, unknown layer types)."""
        if self.config.media_type not in CONFIG_TYPES:
            raise ManifestError(
                f"{self.where}: config.mediaType {self.config.media_type!r} is not an image "
                f"config (want {' or '.join(CONFIG_TYPES)}): not a container image"
            )
        for i, layer in enumerate(self.layers):
            if layer.media_type not in LAYER_TYPES:
                raise ManifestError(
                    f"{self.where}: layers[{i}].mediaType {layer.media_type!r} is not a "
                    "layer type this engine can apply"
                )

    def to_oci(self) -> dict[str, Any]:
        """The same image as an OCI manifest document (Docker media types mapped)."""
        layers = []
        for layer in self.layers:
            d = layer.to_dict()
            comp = layer.compression or "none"
            d["mediaType"] = (
                {"none": OCI_FOREIGN_LAYER, "gzip": OCI_FOREIGN_LAYER_GZIP,
                 "zstd": OCI_FOREIGN_LAYER_ZSTD}[comp] if layer.foreign
                else _OCI_LAYER_FOR[comp]
            )
            layers.append(d)
        config = self.config.to_dict()
        if config["mediaType"] == DOCKER_CONFIG:
            config["mediaType"] = OCI_CONFIG
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": config, "layers": layers}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ImageIndex:
    """Several manifests, usually one per platform (OCI index or Docker manifest list)."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    where: str = "index"

    @property
    def docker(self) -> bool:
        return self.media_type == DOCKER_LIST

    def platforms(self) -> list[Platform]:
        """Platforms of the image entries (attestations' unknown/unknown left out)."""
        return [d.platform for d in self.manifests
                if d.platform is not None and d.platform.os != "unknown"
                and (d.is_manifest or d.is_index)]

    def select(self, want: Platform | None = None) -> Descriptor:
        """The entry to use on ``want`` (default: this host): an exact variant beats a lower
        compatible one, which beats an entry without a platform. ManifestError listing what
        the index has when nothing fits."""
        want = want or host_platform()
        best: tuple[int, int, Descriptor] | None = None
        for n, d in enumerate(self.manifests):
            if not (d.is_manifest or d.is_index):
                continue
            if d.platform is None:
                rank = 1000  # no platform given: usable, but any real match is better
            else:
                r = _platform_rank(d.platform, want)
                if r is None:
                    continue
                rank = r
            if best is None or (rank, n) < best[:2]:
                best = (rank, n, d)
        if best is None:
            have = ", ".join(dict.fromkeys(str(p) for p in self.platforms())) or "none"
            raise ManifestError(f"{self.where}: no image for {want} (available platforms: "
                                f"{have})")
        return best[2]


def _decode(data: bytes | str, where: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = jsonio.loads(data, source=where)
    except ValueError as e:  # jsonio.JSONError: names the document and the position
        raise ManifestError(str(e)) from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    return doc


def parse(data: bytes | str, media_type: str | None = None, *,
          where: str = "manifest") -> ImageManifest | ImageIndex:
    """Parse a manifest or index. ``media_type``: what the bytes were served or described as
    (None: decide from the document); it must agree with the document's own ``mediaType``.
    ``where`` prefixes every error (e.g. ``manifest sha256:...``)."""
    if media_type is not None:
        media_type = media_type.split(";")[0].strip() or None  # Content-Type parameters
    if media_type in _SCHEMA1_TYPES[:2]:
        raise ManifestError(f"{where}: Docker schema 1 manifests ({media_type}) are not "
                            "supported; convert the image to schema 2 or OCI")
    doc = _decode(data, where)
    inner = doc.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise ManifestError(f"{where}: mediaType: expected a string, got {inner!r}")
    schema = doc.get("schemaVersion")
    if schema == 1 and not isinstance(schema, bool):
        raise ManifestError(f"{where}: Docker schema 1 manifests are not supported; convert "
                            "the image to schema 2 or OCI")
    if schema != 2 or isinstance(schema, bool):
        raise ManifestError(f"{where}: schemaVersion: expected 2, got {schema!r}")
    if media_type == "application/json":  # what some servers send for anything
        media_type = None
    if media_type is not None and inner is not None and media_type != inner:
        raise ManifestError(f"{where}: mediaType {inner!r} in the document, but it was "
                            f"given as {media_type!r}")
    kind = media_type or inner
    if kind is None:  # OCI documents may omit mediaType: go by shape, refuse ambiguity
        if "manifests" in doc and ("config" in doc or "layers" in doc):
            raise ManifestError(f"{where}: has both manifests and config/layers: ambiguous")
        kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if kind in MANIFEST_TYPES:
        return _parse_manifest(doc, kind, where)
    if kind in INDEX_TYPES:
        return _parse_index(doc, kind, where)
    raise ManifestError(f"{where}: unsupported manifest media type {kind!r}")


def _parse_manifest(doc: dict, media_type: str, where: str) -> ImageManifest:
    if "manifests" in doc:
        raise ManifestError(f"{where}: an image manifest must not have a manifests field")
    if media_type == DOCKER_MANIFEST and doc.get("mediaType") != DOCKER_MANIFEST:
        raise ManifestError(f"{where}: mediaType: missing (required in Docker schema 2)")
    if "config" not in doc:
        raise ManifestError(f"{where}: config: missing")
    config = parse_descriptor(doc["config"], f"{where}: config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError(f"{where}: layers: expected a list, got "
                            f"{'nothing' if layers is None else type(layers).__name__}")
    subject = doc.get("subject")
    return ImageManifest(
        media_type=media_type,
        config=config,
        layers=tuple(parse_descriptor(d, f"{where}: layers[{i}]") for i, d in enumerate(layers)),
        annotations=_annotations(doc, where),
        subject=parse_descriptor(subject, f"{where}: subject") if subject is not None else None,
        artifact_type=_str(doc, "artifactType", where, required=False),
        where=where,
    )


def _parse_index(doc: dict, media_type: str, where: str) -> ImageIndex:
    if "config" in doc or "layers" in doc:
        raise ManifestError(f"{where}: an index must not have config or layers fields")
    if media_type == DOCKER_LIST and doc.get("mediaType") != DOCKER_LIST:
        raise ManifestError(f"{where}: mediaType: missing (required in a Docker manifest list)")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ManifestError(f"{where}: manifests: expected a list, got "
                            f"{'nothing' if entries is None else type(entries).__name__}")
    manifests = []
    for i, d in enumerate(entries):
        desc = parse_descriptor(d, f"{where}: manifests[{i}]")
        if media_type == DOCKER_LIST:
            if desc.media_type not in MANIFEST_TYPES:
                raise ManifestError(f"{where}: manifests[{i}].mediaType {desc.media_type!r} "
                                    "is not an image manifest")
            if desc.platform is None:
                raise ManifestError(f"{where}: manifests[{i}].platform: missing (required "
                                    "in a Docker manifest list)")
        manifests.append(desc)
    return ImageIndex(media_type=media_type, manifests=tuple(manifests),
                      annotations=_annotations(doc, where), where=where)


def check_manifest_type(media_type: str, where: str) -> None:
    """Refuse a descriptor that does not point at an image manifest or index (clearly so
    for Docker schema 1)."""
    if media_type in _SCHEMA1_TYPES[:2]:
        raise ManifestError(f"{where}: Docker schema 1 manifests ({media_type}) are not "
                            "supported; convert the image to schema 2 or OCI")
    if media_type not in MANIFEST_TYPES + INDEX_TYPES:
        raise ManifestError(f"{where}: mediaType {media_type!r} is neither an image "
                            "manifest nor an index")


# ---------------------------------------------------------------------------- building


def layer_media_type(compression: str) -> str:
    """OCI layer media type for "none", "gzip" or "zstd"."""
    try:
        return _OCI_LAYER_FOR[compression]
    except KeyError:
        raise ManifestError(f"unknown layer compression {compression!r}") from None


def oci_manifest_bytes(config: Descriptor, layers: list[Descriptor],
                       annotations: Mapping[str, str] | None = None) -> bytes:
    """Serialized OCI image manifest for a config and layers (descriptors as given)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": config.to_dict(),
                           "layers": [la.to_dict() for la in layers]}
    if annotations:
        doc["annotations"] = dict(annotations)
    return jsonio.dumps(doc).encode()
