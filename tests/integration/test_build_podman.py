"""`sangja build` against `podman build` (buildah) on the same Containerfile and context:
the image podman made, saved as a docker archive and loaded into sangja's store, has the same
files with the same types, modes, owners, link targets and content in its root filesystem
(both exported from a created container), and the same Config (Env as a mapping, Cmd, Entrypoint,
WorkingDir, User, ExposedPorts, Labels but buildah's own, Volumes, StopSignal,
Healthcheck, Shell). The Containerfile covers COPY's directory semantics, globs,
--chown/--chmod, .dockerignore with ! exceptions, ADD of a local tar, ENV/ARG
substitution, WORKDIR creation, USER, SHELL and a multi-stage COPY --from."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from test_build import context
from test_image_archives import podman  # noqa: F401  (the isolated podman fixture)

pytestmark = pytest.mark.root

CONTAINERFILE = """\
FROM busybox AS builder
ARG VERSION=1.2
ENV APP=/opt/app NAME=demo-${VERSION}
WORKDIR $APP/build
RUN echo "$NAME" > made.txt && mkdir -p out/sub && echo deep > out/sub/deep.txt \\
    && chmod 0750 out/sub && ln -s made.txt link-to-made

FROM busybox
ARG VERSION=1.2
ARG UNSET
ENV GREETING="hello ${VERSION}" EMPTY= SUFFIX=${UNSET:-fallback} PATH=/opt/bin:$PATH
LABEL org.example.name="compat test" version=$VERSION
COPY dir /copied/
COPY dir /copied-as-new
COPY *.txt /globbed/
COPY *.log /logs/
COPY --chown=1000:1000 --chmod=0640 a.txt /owned/a.txt
COPY --chown=1000:1000 dir /owned-dir/
ADD archive.tar /unpacked/
COPY --from=builder /opt/app/build/ /from-builder/
COPY --from=builder /opt/app/build/made.txt /from-builder-file
WORKDIR /work/deeper
SHELL ["/bin/sh", "-ec"]
RUN mkdir -p /var/made && echo "$GREETING/$SUFFIX" > /var/made/env && chown 1000:1000 /var/made
USER 1000:1000
RUN id -u > /var/made/uid
USER root
EXPOSE 8080/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["true"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"""

IGNORE = "*.log\nsecret/\nignored-dir\n!keep.log\n"

# what buildah adds on its own: not part of what the Containerfile says
BUILDAH_LABELS = {"io.buildah.version"}
EMPTY = hashlib.sha256(b"").hexdigest()
# buildah keeps the empty file it bind-mounted /etc/hostname on during RUN (docker's
# builders, and sangja's, remove such mount points from the step's layer)
BUILDAH_STUBS = {"/etc/hostname": (tarfile.REGTYPE, oct(0o755), 0, 0, "", EMPTY)}
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels",
               "Volumes", "StopSignal", "Healthcheck", "Shell")


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, mode, uid in (("t/one", b"1\n", 0o600, 0), ("t/two", b"22\n", 0o755, 7)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
            t.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("t/empty")
        d.type, d.mode = tarfile.DIRTYPE, 0o711
        t.addfile(d)
        s = tarfile.TarInfo("t/sym")
        s.type, s.linkname = tarfile.SYMTYPE, "one"
        t.addfile(s)
    return buf.getvalue()


def _context(tmp_path: Path) -> Path:
    ctx = context(tmp_path, CONTAINERFILE, {
        "a.txt": "a\n", "b.txt": "b\n", "dir/x": "x\n", "dir/sub/y": "y\n",
        "keep.log": "kept\n", "drop.log": "dropped\n", "secret/k": "k\n",
        "ignored-dir/z": "z\n", "archive.tar": _archive(), ".dockerignore": IGNORE})
    (ctx / "dir" / "sub" / "y").chmod(0o755)
    (ctx / "dir" / "sub").chmod(0o700)
    return ctx


def _rootfs(cli, tmp_path: Path, image: str, name: str) -> dict[str, tuple]:
    """Every entry of the image's root filesystem: (type, mode, uid, gid, link, sha256)."""
    cid = cli.ok("create", "--network", "none", image).strip()
    out = tmp_path / f"{name}.tar"
    try:
        cli.ok("export", "-o", str(out), cid, timeout=120)
    finally:
        cli.ok("rm", "-f", cid)
    entries = {}
    with tarfile.open(out) as t:
        for m in t:
            data = t.extractfile(m).read() if m.isreg() else b""
            entries["/" + m.name.lstrip("./").rstrip("/")] = (
                m.type, oct(m.mode), m.uid, m.gid, m.linkname, hashlib.sha256(data).hexdigest())
    return entries


def _config(cli, image: str) -> dict:
    (doc,) = json.loads(cli.ok("image", "inspect", image))
    config = doc["Config"]
    out = {k: config.get(k) or None for k in CONFIG_KEYS}
    out["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items()
                     if k not in BUILDAH_LABELS} or None
    # as a mapping: ENV of a variable the base has replaces it in place in docker's
    # builders and sangja's, buildah moves it to the end
    out["Env"] = dict(e.partition("=")[::2] for e in config.get("Env") or [])
    return out


def test_same_image_as_podman_build(cli, tmp_path, podman):  # noqa: F811
    ctx = _context(tmp_path)
    archive = tmp_path / "busybox.tar"
    cli.ok("save", "-o", str(archive), "busybox")
    podman("load", "-i", str(archive))
    podman("build", "--format", "docker", "--pull=never", "--network", "none",
           "-t", "localhost/compat:1", str(ctx))
    theirs = tmp_path / "podman-image.tar"
    # docker-archive: the OCI config has no Healthcheck or Shell, podman drops them there
    podman("save", "--format", "docker-archive", "-o", str(theirs), "localhost/compat:1")
    cli.ok("load", "-i", str(theirs), timeout=120)
    cli.ok("build", "-q", "--network", "none", "-t", "localhost/compat-sangja:1", str(ctx),
           timeout=180)
    try:
        ours_fs = _rootfs(cli, tmp_path, "localhost/compat-sangja:1", "ours")
        theirs_fs = _rootfs(cli, tmp_path, "localhost/compat:1", "theirs")
        for path, entry in BUILDAH_STUBS.items():
            if path not in ours_fs and theirs_fs.get(path) == entry:
                del theirs_fs[path]
        only_ours = {k: v for k, v in ours_fs.items() if theirs_fs.get(k) != v}
        only_theirs = {k: v for k, v in theirs_fs.items() if ours_fs.get(k) != v}
        assert only_ours == only_theirs == {}, (only_ours, only_theirs)
        assert _config(cli, "localhost/compat-sangja:1") == _config(cli, "localhost/compat:1")
        # and what the Containerfile asked for is there, not just the same on both sides
        assert ours_fs["/logs/keep.log"][5] == hashlib.sha256(b"kept\n").hexdigest()
        assert "/logs/drop.log" not in ours_fs and "/copied/sub/y" in ours_fs
        assert ours_fs["/owned/a.txt"][1:4] == (oct(0o640), 1000, 1000)
        assert ours_fs["/unpacked/t/two"][1:4] == (oct(0o755), 7, 7)
        assert ours_fs["/work/deeper"][0] == tarfile.DIRTYPE
    finally:
        cli.ok("rmi", "localhost/compat-sangja:1", "localhost/compat:1")
