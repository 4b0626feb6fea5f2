"""The COPY and ADD steps: their flags and sources, their cache key, and the copy itself
(through `build.copy`, on a snapshot of the stage mounted on the host).

Sources: the build context (``.dockerignore`` applied; wildcards), another stage or an
image (``--from``), a heredoc (``COPY <<EOF /file``); ADD also extracts a local tar
archive (plain, gzip, bzip2, xz, zstd) into the destination and downloads an http(s) URL
(``--checksum=sha256:...`` checks it). Flags: ``--from``, ``--chown``, ``--chmod``
(octal), ``--link``, ``--parents``.

``--link``: the layer is made in an empty directory, never looking at the stage's files
(a destination is created, not followed if the stage has a link there; a destination
without a trailing ``/`` is a file name, whatever the stage has there), with times clamped
to SOURCE_DATE_EPOCH or 0 as on scratch, and ``--chown`` only by number (no /etc/passwd
to read). Its cache key leaves the stage's layers out: the layer is kept in the build cache
on its own and put on top of a changed parent as it is.
"""

from __future__ import annotations

import os
import posixpath
import stat
from contextlib import contextmanager

from .errors import BuildError
from .lexer import expand, split_words

TYPE_CHECKING = False  # annotations only (typing is not imported at run time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from types import TracebackType
    from typing import BinaryIO

    from .copy import Copier
    from .executor import State, _StageRun
    from .parser import Heredoc, Instruction

__all__ = ["copy_step"]

_FLAGS = {"COPY": {"from", "chown", "chmod", "link", "parents"},
          "ADD": {"from", "chown", "chmod", "link", "checksum"}}


def _is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def _bool_flag(ins: Instruction, name: str) -> bool:
    value = ins.flag(name)
    if value is None:
        return False
    if value.lower() in ("", "true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BuildError(f"{ins.cmd} --{name}={value}: expected true or false")


def _numeric_owner(spec: str) -> tuple[int, int]:
    """--chown UID[:GID] for --link (no image files to look names up in)."""
    user, sep, group = spec.partition(":")
    if not user.isdigit() or (sep and not group.isdigit()):
        raise BuildError(f"--chown={spec} with --link: give numeric ids (the layer is made "
                         "apart from the image, whose /etc/passwd it does not read)")
    return int(user), int(group) if sep else int(user)


def _owner(spec: str, rootfs: str) -> tuple[int, int]:
    """--chown USER[:GROUP] against the image's /etc/passwd and /etc/group; a user alone
    gives its uid as the gid too (Docker's rule)."""
    from ..engine.users import UserError, resolve

    user, sep, group = spec.partition(":")
    try:
        uid = resolve(rootfs, user).uid
        gid = resolve(rootfs, f"{user}:{group}").gid if sep and group else uid
    except UserError as e:
        raise BuildError(f"--chown={spec}: {e}") from None
    return uid, gid


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise BuildError(f"--chmod={text}: invalid mode (an octal number such as 0755)"
                         ) from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={text}: invalid mode")
    return mode


@contextmanager
def _mounted(run: _StageRun, state: State) -> Iterator[int]:
    """A stage's or image's root filesystem mounted on the host for reading (a snapshot
    removed afterwards)."""
    from .executor import materialize

    snaps = run.engine.snapshots()
    sid = os.urandom(32).hex()
    image_id = materialize(run.store, state, run.b.epoch)
    try:
        rootfs = snaps.prepare(sid, run.store.unpacked_layers(image_id))
        fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        snaps.remove(sid)


def _source_state(run: _StageRun, ref: str) -> tuple[State, str]:
    """(state, cache part) of --from: an earlier stage, else an image."""
    from .executor import state_of_image
    from .stages import _stage_ref

    b = run.b
    n = _stage_ref(b.plan.stages, ref, run.stage.index)
    if n is not None:
        final = b.finals[n]
        return final, f"stage:{final.key}"
    image_id = b._image(run.store, ref)
    return state_of_image(run.store, image_id, image_id), f"image:{image_id}"


def copy_step(run: _StageRun, state: State, ins: Instruction, *, add: bool) -> State:
    b = run.b
    cmd = ins.cmd
    for name, _ in ins.flags:
        if name not in _FLAGS[cmd]:
            raise BuildError(f"{cmd}: unknown flag --{name}")
    env = run.env(state)
    esc = b.file.escape

    def x(word: str) -> str:
        return expand(word, env, esc)

    raw = ins.json if ins.json is not None else split_words(ins.rest, esc)
    docs = {d.name: d for d in ins.heredocs}
    words: list[tuple[str, Heredoc | None]] = []  # (expanded word, heredoc or None)
    for w in raw:
        doc = None
        if w.startswith("<<"):
            name = w.lstrip("<").lstrip("-").strip("'\"")
            doc = docs.get(name)
        words.append((w if doc else x(w), doc))
    if len(words) < 2:
        raise BuildError(f"{cmd} requires at least two arguments, but got {len(words)}")
    sources, dest = words[:-1], words[-1][0]
    workdir = state.inner.get("WorkingDir") or "/"
    dest_path = dest if dest.startswith("/") else posixpath.join(workdir, dest)
    dir_syntax = dest.endswith("/") or dest.endswith("/.") or dest in (".", "..")
    from_ref = x(v) if (v := ins.flag("from")) else None
    chown = x(v) if (v := ins.flag("chown")) else None
    chmod = _mode(x(v)) if (v := ins.flag("chmod")) else None
    checksum = x(v) if (v := ins.flag("checksum")) else None
    link = _bool_flag(ins, "link")
    parents = _bool_flag(ins, "parents")
    if link and chown:
        _numeric_owner(chown)  # refused now, before any work
    run._note_args(state, ins.rest)
    for flag in ("from", "chown", "chmod"):
        if v := ins.flag(flag):
            run._note_args(state, v)
    if len(sources) > 1 and not dir_syntax:
        raise BuildError(f"When using {cmd} with more than one source file, the destination "
                         "must be a directory and end with a /")
    if checksum is not None and not (len(sources) == 1 and _is_url(sources[0][0])):
        raise BuildError("ADD --checksum is for a single URL source")

    src_state, src_part = (None, "context")
    if from_ref is not None:
        src_state, src_part = _source_state(run, from_ref)
    file_sources = [s for s, doc in sources if doc is None and not (add and _is_url(s))]
    if file_sources and src_state is None and b.context is None:
        raise BuildError(f"{cmd} needs a build context: the Containerfile came on standard "
                         "input alone")
    for src, doc in sources:
        if doc is None and add and _is_git(src):
            raise BuildError(f"ADD of a git repository ({src}) is not supported: clone it "
                             "into the build context and COPY it")
    # --link: the layer's key leaves the parent out (its epoch is its own, as on scratch)
    parts = ["link", str(b.opts.epoch or 0)] if link else [state.key]
    parts += [ins.original, dest_path, str(chown), str(chmod), src_part]
    for src, doc in sources:
        if doc is not None:
            parts.append(f"heredoc:{doc.content if not doc.expand else x(doc.content)}")
        elif add and _is_url(src):
            parts.append(f"url:{src}:{checksum}")  # a URL is fetched again only when
            # the step's inputs change: Docker's rule is to check Last-Modified too
        elif src_state is not None:  # a stage's or image's content is named by its key
            parts.append(_clean(src))
    if src_state is not None or not file_sources:  # the key is known before any reading:
        key, layer_key = _keys(parts, state, link)  # a --from stage is mounted only when
        hit = run.cached(key, state)  # the step is not cached
        if hit is not None:
            return hit

    with _SourceRoot(run, src_state) as root:
        # what the step reads, resolved now: its content is part of the cache key
        plan: list[tuple[str, Heredoc | None]] = []
        for src, doc in sources:
            if doc is not None or (add and _is_url(src)):
                plan.append((src, doc))
                continue
            rel = _clean(src)
            if any(ch in rel for ch in "*?["):
                from .copy import glob_sources

                hits = glob_sources(root.dir_fd, rel, root.skip)
                if not hits:
                    raise BuildError(f"{cmd}: no source files match {src!r} {root.where}")
                if len(hits) > 1 and not dir_syntax:
                    raise BuildError(f"When using {cmd} with more than one source file, the "
                                     "destination must be a directory and end with a /")
                plan.extend((h, None) for h in hits)
                continue
            if root.skip is not None and rel != "." and root.skip(rel) and not (
                    root.descend is not None and root.descend(rel)):
                raise BuildError(f"{cmd}: source {src!r} not found {root.where} "
                                 "(.dockerignore excludes it)")
            from ..linux.paths import O_PATH, open_in_root

            try:
                os.close(open_in_root(root.dir_fd, rel, O_PATH))
            except (FileNotFoundError, NotADirectoryError):
                raise BuildError(f"{cmd}: source {src!r} not found {root.where}") from None
            plan.append((rel, None))
        if src_state is None and file_sources:  # the context's files: their content
            from .context import digest_sources

            rels = [s for s, doc in plan if doc is None and not (add and _is_url(s))]
            try:
                parts.append(digest_sources(root.dir_fd, rels, root.skip, root.descend,
                                            b.digests))
            except BuildError as e:
                raise BuildError(f"{cmd}: source {e} {root.where}") from None
            key, layer_key = _keys(parts, state, link)
            hit = run.cached(key, state)
            if hit is not None:
                return hit

        def work(dst_root: int) -> None:
            from .copy import Copier, CopySpec

            owner = None if not chown else _numeric_owner(chown) if link else \
                _owner(chown, f"/proc/self/fd/{dst_root}")
            copier = Copier(dst_root, CopySpec(owner, chmod, reset_owner=src_state is None),
                            root.skip, root.descend)
            try:
                for src, doc in plan:
                    _copy_one(copier, root, src, doc, dest_path, dir_syntax, add, x,
                              checksum, len(plan) > 1, parents)
            finally:
                copier.close()

        if link:
            assert layer_key is not None  # _keys gives a --link step its layer's key
            stored = run.linked_layer(
                layer_key, lambda: run.workspace(None, work, epoch=b.opts.epoch or 0), ins)
            return run.add_layer(state, stored, ins, key)
        return run.add_layer(state, run.workspace(state, work), ins, key)


def _keys(parts: list[str], state: State, link: bool) -> tuple[str, str | None]:
    """(the step's cache key, the --link layer's own key or None)."""
    from .executor import _key

    if not link:
        return _key(*parts), None
    layer_key = _key(*parts)
    return _key(state.key, "link", layer_key), layer_key


def _clean(src: str) -> str:
    """A source path as the step reads it: relative to its root, no '..' above it."""
    return posixpath.normpath("/" + src).lstrip("/") or "."


def _is_git(src: str) -> bool:
    return src.startswith(("git@", "git://")) or src.endswith(".git") and (
        _is_url(src) or "://" in src)


class _SourceRoot:
    """Where sources are read: the context directory, or a mounted stage/image."""

    def __init__(self, run: _StageRun, state: State | None) -> None:
        self.run, self.state = run, state
        self.fd: int | None = None
        self.skip: Callable[[str], bool] | None = None
        self.descend: Callable[[str], bool] | None = None
        self.where = "in the build context"
        self._mount: AbstractContextManager[int] | None = None

    def __enter__(self) -> _SourceRoot:
        b = self.run.b
        if self.state is not None:
            self._mount = _mounted(self.run, self.state)
            self.fd = self._mount.__enter__()
            self.where = "in the --from stage or image"
        elif b.context is not None:
            self.fd = os.open(b.context, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if b.ignore is not None and b.ignore.rules:
                self.skip, self.descend = b.ignore.excluded, b.ignore.descend
        return self

    @property
    def dir_fd(self) -> int:
        """The root's directory fd, for reading a file source: there is one then (a step
        with file sources and neither a context nor --from is refused before)."""
        assert self.fd is not None
        return self.fd

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._mount is not None:
            self._mount.__exit__(kind, exc, tb)
        elif self.fd is not None:
            os.close(self.fd)


def _copy_one(copier: Copier, root: _SourceRoot, src: str, doc: Heredoc | None,
              dest_path: str, dir_syntax: bool, add: bool, x: Callable[[str], str],
              checksum: str | None, many: bool, parents: bool = False) -> None:
    parents = parents and doc is None and not (add and _is_url(src)) and src != "."
    if parents:  # --parents: the source's directories below its root come along
        dest_path = posixpath.join(dest_path, posixpath.dirname(src))
        dir_syntax = True
    into_dir = dir_syntax or many or copier.dest_is_dir(dest_path)
    if doc is not None:
        content = x(doc.content) if doc.expand else doc.content
        if into_dir:
            parent, name = copier.dest_dir(dest_path), doc.name
        else:
            parent, name = copier.dest_dir(posixpath.dirname(dest_path) or "/"), \
                posixpath.basename(dest_path)
        try:
            copier.write_file(parent, name, content.encode("utf-8", "surrogateescape"))
        finally:
            os.close(parent)
        return
    if add and _is_url(src):
        _add_url(copier, src, dest_path, into_dir, checksum)
        return
    from ..linux.paths import O_PATH, open_in_root

    pfd = open_in_root(root.dir_fd, src, O_PATH)
    try:
        st = os.fstat(pfd)
        if stat.S_ISDIR(st.st_mode):
            if parents:
                dest_path = posixpath.join(dest_path, posixpath.basename(src))
            parent = copier.dest_dir(dest_path)
            try:
                copier.copy_resolved(pfd, st, parent, None, src if src != "." else "")
            finally:
                os.close(parent)
            return
        if add and stat.S_ISREG(st.st_mode) and _extract(copier, pfd, dest_path):
            return
        if into_dir:
            parent, name = copier.dest_dir(dest_path), posixpath.basename(src)
        else:
            parent = copier.dest_dir(posixpath.dirname(dest_path) or "/")
            name = posixpath.basename(dest_path)
        try:
            copier.copy_resolved(pfd, st, parent, name, src)
        finally:
            os.close(parent)
    finally:
        os.close(pfd)


def _extract(copier: Copier, pfd: int, dest_path: str) -> bool:
    """ADD of a local tar archive: its entries into DEST (checked as an image layer's
    are: no absolute names, no '..', no link leading out). False: not an archive."""
    from ..image.layers import LayerError, apply_layer
    from ..linux.paths import reopen_regular
    from .context import _is_tar

    fd = reopen_regular(pfd)
    with os.fdopen(fd, "rb") as f:
        if not _is_tar(f.read(512)):
            return False
        f.seek(0)
        parent = copier.dest_dir(dest_path)
        try:
            # the resolved directory's name on the host: nothing else writes to this
            # snapshot while the step runs, and apply_layer never follows a link below it
            target = os.readlink(f"/proc/self/fd/{parent}")
            head = f.read(6)
            f.seek(0)
            src: BinaryIO = f
            if head[:3] == b"BZh" or head == b"\xfd7zXZ\x00":
                import bz2
                import lzma
                import tempfile

                tmp = tempfile.TemporaryFile()
                tmp.write((bz2 if head[:3] == b"BZh" else lzma).decompress(f.read()))
                tmp.seek(0)
                src = tmp
            try:
                apply_layer(src, target)
            except LayerError as e:
                raise BuildError(f"ADD: {e}") from None
        finally:
            os.close(parent)
    return True


def _add_url(copier: Copier, url: str, dest_path: str, into_dir: bool, checksum: str | None
             ) -> None:
    import hashlib
    import tempfile
    import urllib.parse
    import urllib.request

    name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
    with tempfile.TemporaryFile() as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - http(s) only
                h = hashlib.sha256()
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    tmp.write(chunk)
        except OSError as e:
            raise BuildError(f"ADD {url}: {e}") from None
        if checksum is not None and checksum != f"sha256:{h.hexdigest()}":
            raise BuildError(f"ADD {url}: checksum mismatch: expected {checksum}, got "
                             f"sha256:{h.hexdigest()}")
        tmp.seek(0)
        data = tmp.read()
    if into_dir:
        parent = copier.dest_dir(dest_path)
    else:
        parent = copier.dest_dir(posixpath.dirname(dest_path) or "/")
        name = posixpath.basename(dest_path)
    try:
        copier.write_file(parent, name, data, mode=0o600)
    finally:
        os.close(parent)
