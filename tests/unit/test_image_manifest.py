"""OCI and Docker schema-2 manifests, indexes and manifest lists: parsing, validation with the
field named, one normalized model, platform selection."""

import json

import pytest

from sangja.image import manifest as mf
from sangja.image.manifest import ManifestError, Platform

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def desc(media_type, digest=D1, size=10, **extra):
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def oci_manifest(**over):
    doc = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
           "config": desc(mf.OCI_CONFIG),
           "layers": [desc(mf.OCI_LAYER_GZIP, D2, 100), desc(mf.OCI_LAYER, D3, 200)]}
    doc.update(over)
    return json.dumps(doc).encode()


def docker_manifest(**over):
    doc = {"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
           "config": desc(mf.DOCKER_CONFIG),
           "layers": [desc(mf.DOCKER_LAYER_GZIP, D2, 100),
                      desc(mf.DOCKER_FOREIGN_LAYER, D3, 300, urls=["https://example.com/l"])]}
    doc.update(over)
    return json.dumps(doc).encode()


def index(entries, media_type=mf.OCI_INDEX):
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return json.dumps(doc).encode()


def plat(arch, variant=None, os="linux"):
    p = {"architecture": arch, "os": os}
    if variant:
        p["variant"] = variant
    return p


def test_oci_manifest():
    m = mf.parse(oci_manifest(), mf.OCI_MANIFEST)
    assert isinstance(m, mf.ImageManifest) and not m.docker
    assert m.config == mf.Descriptor(mf.OCI_CONFIG, D1, 10)
    assert [(la.digest, la.size, la.compression, la.foreign) for la in m.layers] == [
        (D2, 100, "gzip", False), (D3, 200, "none", False)]
    m.check_image()


def test_docker_manifest_normalized():
    m = mf.parse(docker_manifest())  # media type from the document itself
    assert isinstance(m, mf.ImageManifest) and m.docker
    assert m.config.media_type == mf.DOCKER_CONFIG
    gz, foreign = m.layers
    assert (gz.compression, gz.foreign) == ("gzip", False)
    assert (foreign.compression, foreign.foreign, foreign.urls) == (
        "gzip", True, ("https://example.com/l",))
    m.check_image()
    oci = m.to_oci()
    assert oci["mediaType"] == mf.OCI_MANIFEST
    assert oci["config"]["mediaType"] == mf.OCI_CONFIG
    assert [la["mediaType"] for la in oci["layers"]] == [mf.OCI_LAYER_GZIP,
                                                         mf.OCI_FOREIGN_LAYER_GZIP]
    assert mf.parse(json.dumps(oci)).layers == tuple(
        mf.parse_descriptor(la, "x") for la in oci["layers"])


def test_oci_manifest_without_media_type():
    doc = json.loads(oci_manifest())
    del doc["mediaType"]
    assert isinstance(mf.parse(json.dumps(doc)), mf.ImageManifest)
    del doc["config"], doc["layers"]
    doc["manifests"] = []
    assert isinstance(mf.parse(json.dumps(doc)), mf.ImageIndex)


@pytest.mark.parametrize(("data", "media_type", "message"), [
    (oci_manifest(schemaVersion=1), None, "schema 1"),
    (b'{"schemaVersion": 1, "fsLayers": []}', mf.DOCKER_SCHEMA1_SIGNED, "schema 1"),
    (oci_manifest(schemaVersion=3), None, "schemaVersion: expected 2, got 3"),
    (oci_manifest(schemaVersion=True), None, "schemaVersion"),
    (oci_manifest(), mf.DOCKER_MANIFEST, "given as"),
    (oci_manifest(mediaType="text/plain"), None, "unsupported manifest media type"),
    (oci_manifest(config={"mediaType": mf.OCI_CONFIG, "digest": "sha256:xyz", "size": 1}),
     None, "config.digest: invalid digest"),
    (oci_manifest(config={"mediaType": mf.OCI_CONFIG, "digest": D1}), None, "config.size: missing"),
    (oci_manifest(config={"mediaType": mf.OCI_CONFIG, "digest": D1, "size": -1}), None,
     "config.size: expected a non-negative integer"),
    (oci_manifest(config={"digest": D1, "size": 1}), None, "config.mediaType: missing"),
    (oci_manifest(layers=[desc(mf.OCI_LAYER, size="7")]), None, "layers[0].size"),
    (oci_manifest(layers=[desc(mf.OCI_LAYER), desc(mf.OCI_LAYER, urls="x")]), None,
     "layers[1].urls: expected a list of strings"),
    (oci_manifest(layers=[desc(mf.OCI_LAYER, annotations={"a": 1})]), None,
     "layers[0].annotations"),
    (oci_manifest(layers={}), None, "layers: expected a list"),
    (oci_manifest(manifests=[]), None, "must not have a manifests field"),
    (json.dumps({"schemaVersion": 2, "config": desc(mf.OCI_CONFIG), "layers": [],
                 "manifests": []}).encode(), None, "ambiguous"),
    (docker_manifest(mediaType=None), mf.DOCKER_MANIFEST, "mediaType: missing"),
    (b"[1, 2]", None, "expected a JSON object"),
    (b"{not json", None, "invalid JSON"),
    (b" " * (mf.MAX_MANIFEST_BYTES + 1), None, "larger than"),
])
def test_bad_manifests_name_the_field(data, media_type, message):
    with pytest.raises(ManifestError) as info:
        mf.parse(data, media_type, where="manifest sha256:abc")
    assert str(info.value).startswith("manifest sha256:abc")
    assert message in str(info.value)


def test_check_image_refuses_artifacts_and_unknown_layers():
    m = mf.parse(oci_manifest(config=desc("application/vnd.example.thing+json")))
    with pytest.raises(ManifestError, match="config.mediaType .* not a container image"):
        m.check_image()
    m = mf.parse(oci_manifest(layers=[desc("application/vnd.example.blob")]))
    with pytest.raises(ManifestError, match=r"layers\[0\].mediaType"):
        m.check_image()


def test_content_type_parameters_and_application_json():
    assert isinstance(mf.parse(oci_manifest(), f"{mf.OCI_MANIFEST}; charset=utf-8"),
                      mf.ImageManifest)
    assert isinstance(mf.parse(docker_manifest(), "application/json"), mf.ImageManifest)


def test_docker_list_requires_platforms():
    good = index([desc(mf.DOCKER_MANIFEST, platform=plat("amd64"))], mf.DOCKER_LIST)
    assert mf.parse(good).docker
    bad = index([desc(mf.DOCKER_MANIFEST)], mf.DOCKER_LIST)
    with pytest.raises(ManifestError, match=r"manifests\[0\].platform: missing"):
        mf.parse(bad)
    bad = index([desc(mf.DOCKER_MANIFEST, platform={"os": "linux"})], mf.DOCKER_LIST)
    with pytest.raises(ManifestError, match=r"manifests\[0\].platform.architecture: missing"):
        mf.parse(bad)
    with pytest.raises(ManifestError, match="must not have config"):
        mf.parse(json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [],
                             "config": desc(mf.OCI_CONFIG)}))


AMD64 = Platform("linux", "amd64", "v3")
ARM64 = Platform("linux", "arm64", "v8")
ARMV7 = Platform("linux", "arm", "v7")


def test_select_platform():
    idx = mf.parse(index([
        desc(mf.OCI_MANIFEST, D1, platform=plat("arm64", "v8")),
        desc(mf.OCI_MANIFEST, D2, platform=plat("amd64")),
        desc(mf.OCI_MANIFEST, D3, platform=plat("arm", "v6")),
        desc(mf.OCI_MANIFEST, "sha256:" + "4" * 64, platform=plat("arm", "v7")),
        desc(mf.OCI_MANIFEST, "sha256:" + "5" * 64, platform=plat("unknown", os="unknown"),
             annotations={"vnd.docker.reference.type": "attestation-manifest"}),
    ]))
    assert idx.select(AMD64).digest == D2
    assert idx.select(ARM64).digest == D1
    assert idx.select(ARMV7).digest == "sha256:" + "4" * 64  # exact variant beats v6
    assert idx.select(Platform("linux", "arm", "v6")).digest == D3
    with pytest.raises(ManifestError) as info:
        idx.select(Platform("linux", "s390x"))
    msg = str(info.value)
    assert "no image for linux/s390x" in msg
    assert "linux/arm64/v8, linux/amd64, linux/arm/v6, linux/arm/v7" in msg
    assert "unknown" not in msg


def test_select_variants_and_unlabelled():
    idx = mf.parse(index([
        desc(mf.OCI_MANIFEST, D1),  # no platform: usable, but a real match wins
        desc(mf.OCI_MANIFEST, D2, platform=plat("amd64", "v2")),
        desc(mf.OCI_MANIFEST, D3, platform=plat("amd64", "v4")),
    ]))
    assert idx.select(AMD64).digest == D2  # v4 needs a v4 CPU
    assert idx.select(Platform("linux", "amd64", "v4")).digest == D3
    assert idx.select(ARM64).digest == D1
    arm = mf.parse(index([desc(mf.OCI_MANIFEST, D1, platform=plat("arm64"))]))
    assert arm.select(ARM64).digest == D1  # arm64 without a variant is v8


def test_host_platform():
    assert mf.host_platform("x86_64").architecture == "amd64"
    assert mf.host_platform("aarch64") == Platform("linux", "arm64", "v8")
    assert mf.host_platform("armv7l") == Platform("linux", "arm", "v7")
    assert str(Platform.parse_string("linux/arm64/v8")) == "linux/arm64/v8"
    with pytest.raises(ManifestError):
        Platform.parse_string("linux")


def test_build_manifest_round_trip():
    data = mf.oci_manifest_bytes(mf.Descriptor(mf.OCI_CONFIG, D1, 5),
                                 [mf.Descriptor(mf.layer_media_type("none"), D2, 7)])
    m = mf.parse(data, mf.OCI_MANIFEST)
    assert m.layers[0].compression == "none" and m.config.size == 5
    assert "manifest.v1+json" in mf.ACCEPT and "list.v2+json" in mf.ACCEPT
