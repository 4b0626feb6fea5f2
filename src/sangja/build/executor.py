"""Build a Containerfile: each needed stage, step by step, into images of the store.

A stage's state is an image config (Env, Cmd, history...), its layers and a cache key.
Instructions that only change the config (ENV, LABEL, CMD...) change the state in memory.
Instructions that change files make a layer:

- RUN is a container of the engine (`Engine.create`/`start`, its output relayed as the
  progress), made from the state's image; its writable layer becomes the step's layer
  (`engine.commit.container_layer`, the upper dir adopted: no copy), without the stubs
  the runtime made as mount points.
- COPY, ADD and WORKDIR work on a snapshot of the state's layers mounted on the host (a
  fresh upper dir), through the root-confined copier (`build.copy`), and that upper dir
  becomes the layer the same way.

Each such step's cache key is the previous key, the instruction, the build args declared
so far (in the key through the ARG steps) and, for COPY/ADD, the content of what it reads;
the key names the image the step made (the store's build cache). Layers are reproducible:
entries sorted, numeric owners, times clamped to SOURCE_DATE_EPOCH (default: the newest
creation time of the build's base images, 0 for FROM scratch), no host names; so two
--no-cache builds of the same Containerfile and context give the same image id.

Stages the target does not need are not built. The others run here, one after the other,
with the build's one store, for as long as each is wholly in the cache (a *probe*: its
progress is held back until the stage is done); at the first step that must do work while
other stages are still to build, the stages not done yet are built in threads, each as
soon as the stages it needs are done, each with a store and an engine of its own (SQLite
connections are per thread). So a cached build starts no thread, opens one database and
writes once at its end (the cache hits' last use, not synced: losing it loses nothing).
The store's gc lock is held shared for the whole build, so no prune removes a step's image
before the build is over.
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock

from ..digest import sha256
from ..errors import SangjaError
from ..image.db import ImageNotFound, Layer
from ..records import dataclass, field
from .errors import BuildError
from .lexer import expand, split_words
from .parser import Containerfile, Instruction, parse, parse_line
from .progress import HeldProgress, Progress
from .stages import Plan, Stage, plan

TYPE_CHECKING = False  # annotations only: threading, the watchdog... load when used
if TYPE_CHECKING:
    from collections.abc import Callable
    from threading import Event

    from ..engine.containers import Engine
    from ..image.commit import StoredLayer
    from .digest_cache import DigestCache
    from .ignore import Ignore
    from .watchdog import Watchdog

__all__ = ["BuildOptions", "Builder", "build"]

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
CONFIG_INSTRUCTIONS = ("ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "USER",
                       "STOPSIGNAL", "ONBUILD")
DEFAULT_SHELL = ["/bin/sh", "-c"]
HISTORY_COMMENT = "sangja build"
# what the runtime mounts in every container: its mount points are not the step's files
RUN_MOUNT_POINTS = ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: str = "missing"  # missing | always | never
    labels: dict[str, str] = field(default_factory=dict)
    network: str | None = None  # None: the engine's default for containers
    platform: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)  # id -> file
    epoch: int | None = None  # SOURCE_DATE_EPOCH


@dataclass
class State:
    """A stage's image so far."""

    config: dict  # the whole image config but rootfs
    layers: list[Layer]
    descs: list[dict]
    size: int
    key: str
    image_id: str | None = None  # an image of the store that is exactly this state
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope
    cmd_set: bool = False
    layers_of: str | None = None  # an image of the store whose layers are `layers`

    def copy(self) -> State:
        return State(_clone(self.config), list(self.layers), list(self.descs), self.size,
                     self.key, self.image_id, dict(self.args), self.cmd_set, self.layers_of)

    @property
    def inner(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.inner.get("Env") or []:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out


def _clone(value):
    """A deep copy of a JSON value (`copy.deepcopy` costs an import and is slower)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


class _Miss(Exception):
    """A probed stage reached a step that is not in the cache."""


def _key(*parts: str) -> str:
    h = sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _epoch_of(created: str | None) -> int:
    from ..humanize import parse_time

    t = parse_time(created) if created else None
    return int(t) if t else 0


def pull_image(store, name: str, progress: Progress | None = None) -> str:
    """The one call site for fetching an image a build needs that the store lacks (FROM,
    COPY --from, --pull): the registry client's pull (the registries config decides where
    an unqualified name may come from). Returns the image id."""
    from ..registry.errors import RegistryError
    from ..registry.pulling import pull

    if progress is not None:
        progress.line(f"Pulling {name}")
    try:
        results = pull(store, name)
    except RegistryError as e:
        raise BuildError(str(e)) from None
    return results[0].image_id


class Builder:
    def __init__(self, root: str, runroot: str, text: str, name: str, context: str | None,
                 opts: BuildOptions, progress: Progress, containerfile_path: str | None = None):
        self.root, self.runroot = root, runroot
        self.text, self.name = text, name
        self.context = context
        self.opts = opts
        self.progress = progress
        self.containerfile_path = containerfile_path
        self.failed: Event | None = None  # set once stages run in threads
        self.finals: dict[int, State] = {}
        self.done: dict[int, Event] = {}  # for stages built in threads
        self.used_args: set[str] = set()
        self.ignore: Ignore | None = None
        self.hits: set[str] = set()  # cache keys used: their last use recorded at the end
        self.digests: DigestCache | None = None  # the context files' digests by stat
        self.watchdog: Watchdog | None = None  # from the first RUN step on
        self._watchdog_lock = allocate_lock()

    # -- entry ---------------------------------------------------------------------------
    def build(self) -> str:
        from ..image.store import goarch

        arch = goarch()
        self._check_platform(self.opts.platform)
        builtin = {"TARGETPLATFORM": f"linux/{arch}", "TARGETOS": "linux",
                   "TARGETARCH": arch, "TARGETVARIANT": "", "BUILDPLATFORM": f"linux/{arch}",
                   "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": ""}
        self.builtin = builtin
        self.file: Containerfile = parse(self.text, self.name)
        self.plan: Plan = plan(self.file, self.opts.build_args, self.opts.target, builtin)
        if self.context is not None:
            from .ignore import read_ignore_file

            self.ignore = read_ignore_file(self.context, self.containerfile_path)
        from .digest_cache import DigestCache

        self.digests = DigestCache(self.root)
        normal = False
        try:
            image_id = self._build()
            normal = True
        except (SangjaError, OSError):  # the steps ended and removed their containers
            normal = True
            raise
        finally:
            if self.watchdog is not None:
                self.watchdog.close(normal)
        unused = sorted(set(self.opts.build_args) - self.used_args - PROXY_ARGS
                        - set(self.builtin))
        if unused:
            self.progress.line(f"[Warning] one or more build args were not consumed: "
                               f"{', '.join(unused)}")
        return image_id

    def run_label(self) -> str:
        """The label value of this build's RUN containers (see build.watchdog), its
        watchdog started at the first call."""
        if self.watchdog is None:
            from .watchdog import Watchdog

            with self._watchdog_lock:
                if self.watchdog is None:
                    self.watchdog = Watchdog(self.root, self.runroot)
        return self.watchdog.token()

    def _build(self) -> str:
        from ..image.store import ImageStore

        with ImageStore(self.root, self.runroot) as store:
            tags = [store.canonical(t) for t in self.opts.tags]  # bad names fail first
            with store.lock.shared():  # every step's image is kept until the build ends
                self.bases = self._resolve_bases(store)
                self.epoch = self._epoch(store)
                self._build_stages(store)
                final = self.finals[self.plan.target]
                image_id = self._finish(store, final, tags)
                if self.hits:  # a lost last-use time costs nothing: no fsync for it, and
                    store.db.conn.execute("PRAGMA synchronous = NORMAL")  # to the minute
                    store.db.cache_touch(sorted(self.hits), granularity=60)
        assert self.digests is not None  # made by build() before this
        self.digests.save()
        return image_id

    @staticmethod
    def _check_platform(platform: str | None) -> None:
        if not platform:
            return
        from ..image.store import goarch

        want = platform.lower().split("/")
        if want[0] != "linux" or (len(want) > 1 and want[1] != goarch()) or len(want) > 3:
            raise BuildError(f"platform {platform!r} cannot be built here: only "
                             f"linux/{goarch()} (no emulation)")

    def _resolve_bases(self, store) -> dict[int, str]:
        """Image id of each needed stage's FROM image (not scratch, not a stage)."""
        out = {}
        for n in self.plan.needed:
            st = self.plan.stages[n]
            if st.base_stage is not None or st.base == "scratch":
                continue
            try:
                self._check_platform(st.platform)
                out[n] = self._image(store, st.base)
            except BuildError as e:
                raise e.at(self.file.where(st.from_ins)) from None
        return out

    def _image(self, store, name: str) -> str:
        if self.opts.pull == "always":
            return pull_image(store, name, self.progress)
        try:
            return store.resolve(name).id
        except ImageNotFound:
            if self.opts.pull == "never":
                raise BuildError(f"image {name!r} not found locally (--pull=never)") from None
            return pull_image(store, name, self.progress)
        except SangjaError as e:
            raise BuildError(str(e)) from None

    def _epoch(self, store) -> int:
        if self.opts.epoch is not None:
            return self.opts.epoch
        newest = 0
        for image_id in self.bases.values():
            newest = max(newest, _epoch_of(store.db.get_image(image_id).created))
        return newest

    # -- stages --------------------------------------------------------------------------
    def _build_stages(self, store) -> None:
        """Each needed stage (in index order, which is an order their dependencies allow):
        here while they are cached, then in threads (see the module's docstring)."""
        pending = list(self.plan.needed)
        while pending:
            alone = len(pending) == 1
            if not alone and self.opts.no_cache:
                break
            run = _StageRun(self, store, self.plan.stages[pending[0]], probe=not alone)
            try:
                self.finals[pending[0]] = run.run()
            except _Miss:
                break
            finally:
                run.close()
            pending.pop(0)
        if pending:
            self._threads(pending)

    def _threads(self, pending: list[int]) -> None:
        import threading

        failed = self.failed = threading.Event()
        for n in pending:
            self.done[n] = threading.Event()
        errors: list[BaseException] = []
        # plain threads: concurrent.futures would bring logging and enum to every build
        threads = [threading.Thread(target=self._stage_thread, args=(n, errors), daemon=True)
                   for n in pending]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # an interrupt: the threads' RUN containers are stopped and
            failed.set()  # removed now, their steps end, and so do they
            if self.watchdog is not None:
                self.watchdog.close(normal=False)
            for t in threads:
                t.join(60)
            raise
        if errors:
            raise errors[0]

    def _stage_thread(self, n: int, errors: list[BaseException]) -> None:
        failed = self.failed
        assert failed is not None  # set by _threads before any thread starts
        try:
            for dep in self.plan.stages[n].deps:
                if dep not in self.done:
                    continue  # built before the threads started
                while not self.done[dep].wait(0.1):
                    if failed.is_set():
                        return
                if dep not in self.finals:
                    return
            if not failed.is_set():
                self._stage(n)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            if not failed.is_set():
                errors.append(e)
            failed.set()
        finally:
            self.done[n].set()

    def _stage(self, n: int) -> None:
        from ..image.store import ImageStore

        with ImageStore(self.root, self.runroot) as store:
            run = _StageRun(self, store, self.plan.stages[n])
            try:
                self.finals[n] = run.run()
            finally:
                run.close()
        self.done[n].set()

    def stopped(self) -> bool:
        return self.failed is not None and self.failed.is_set()

    # -- the end -------------------------------------------------------------------------
    def _finish(self, store, final: State, tags: list[str]) -> str:
        state = final
        if self.opts.labels:
            state = final.copy()
            labels = dict(state.inner.get("Labels") or {})
            labels.update(self.opts.labels)
            state.inner["Labels"] = labels
            state.image_id = None
        image_id = materialize(store, state, self.epoch)
        for t in tags:
            try:
                if store.db.resolve(t).id == image_id:  # a rebuild: the tag is there
                    store.event("tag", image_id, t)  # already; Docker logs it all the same
                    continue
            except ImageNotFound:
                pass
            store.tag(t, image_id)
        return image_id


def materialize(store, state: State, epoch: int) -> str:
    """The state as an image of the store (written once; the same state, the same id)."""
    if state.image_id is None:
        from ..image.commit import write_image

        config = dict(state.config)
        config["created"] = _rfc3339(epoch)
        state.image_id = write_image(store, config, state.layers, state.descs,
                                     size=state.size)
    return state.image_id


def state_of_image(store, image_id: str, key: str) -> State:
    """A state that is exactly the stored image `image_id` (a full id)."""
    from ..image.commit import base_layers
    from ..jsonio import loads

    img = store.db.get_image(image_id)
    config = loads(store.blobs.read_bytes(img.id), source=f"image config {img.id}")
    layers, descs = base_layers(store, img, config)
    config = {k: v for k, v in config.items() if k != "rootfs"}
    return State(config=config, layers=layers, descs=descs, size=img.size, key=key,
                 image_id=img.id, layers_of=img.id)


class _StageRun:
    """One stage, in one thread, with that thread's store and an engine made when a step
    needs one (SQLite connections are per thread). A probe (`probe`) stops with _Miss at
    the first step that is not in the cache, its progress held back until it is done."""

    def __init__(self, builder: Builder, store, stage: Stage, probe: bool = False):
        self.b = builder
        self.store = store
        self.stage = stage
        self.probe = probe
        self.held = HeldProgress() if probe else None  # a probe's progress, held back
        self.progress: Progress = builder.progress if self.held is None else self.held
        self._engine: Engine | None = None
        n_stages = len(builder.plan.needed)
        pos = builder.plan.needed.index(stage.index) + 1
        self.label = f"[{pos}/{n_stages}] " if n_stages > 1 else ""

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ..engine.containers import Engine

            self._engine = Engine(self.b.root, self.b.runroot)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def where(self, ins: Instruction) -> str:
        return self.b.file.where(ins)

    # -- FROM ----------------------------------------------------------------------------
    def initial(self) -> State:
        st = self.stage
        b = self.b
        if st.base_stage is not None:
            state = b.finals[st.base_stage].copy()
            state.key = _key("from-stage", state.key)
            state.args = {}
            state.cmd_set = False
            return state
        if st.base == "scratch":
            from ..image.store import DEFAULT_PATH_ENV, goarch

            config = {"architecture": goarch(), "os": "linux",
                      "config": {"Env": [DEFAULT_PATH_ENV]}, "history": []}
            return State(config=config, layers=[], descs=[], size=0, key=_key("scratch"))
        image_id = b.bases[st.index]
        return state_of_image(self.store, image_id, _key("from", image_id))

    def run(self) -> State:
        state = self._run()
        if self.held is not None:  # a probe, done: what it would have shown, shown now
            self.held.release(self.b.progress)
        return state

    def _run(self) -> State:
        stage = self.stage
        total = 1 + len(stage.instructions)
        self.progress.step(self.label, 1, total, stage.from_ins.original)
        state = self.initial()
        triggers = list(state.inner.get("OnBuild") or [])
        if triggers:
            state.inner.pop("OnBuild", None)
            state.image_id = None
            for text in triggers:
                ins = parse_line(text, stage.from_ins.line, self.b.file.escape, self.b.name)
                self.progress.line(f"--> ONBUILD {text}")
                state = self.step(state, ins, where=f"{self.where(stage.from_ins)} (ONBUILD "
                                  f"{text.split()[0].upper()} of the base image)")
        for i, ins in enumerate(stage.instructions, start=2):
            if self.b.stopped():
                raise BuildError("stopped: another stage failed")
            self.progress.step(self.label, i, total, ins.original)
            state = self.step(state, ins)
        return state

    def step(self, state: State, ins: Instruction, where: str | None = None) -> State:
        where = where or self.where(ins)
        try:
            handler = getattr(self, f"do_{ins.cmd.lower()}")
            return handler(state, ins)
        except BuildError as e:
            raise e.at(where) from None
        except (SangjaError, OSError) as e:
            raise BuildError(f"{ins.cmd}: {e}", where) from None

    # -- helpers -------------------------------------------------------------------------
    def env(self, state: State) -> dict[str, str]:
        """What $NAME means in this instruction: ARGs in scope, then ENV over them."""
        return {**state.args, **state.env()}

    def expand(self, state: State, word: str) -> str:
        return expand(word, self.env(state), self.b.file.escape)

    def history(self, state: State, ins: Instruction, *, empty: bool,
                text: str | None = None) -> None:
        entry: dict[str, object] = {"created": _rfc3339(self.b.epoch),
                 "created_by": text if text is not None else ins.original,
                 "comment": HISTORY_COMMENT}
        if empty:
            entry["empty_layer"] = True
        state.config.setdefault("history", []).append(entry)

    def config_step(self, state: State, ins: Instruction, *, text: str | None = None
                    ) -> State:
        state = state.copy()
        state.key = _key(state.key, ins.original)
        state.image_id = None
        self.history(state, ins, empty=True, text=text)
        return state

    def cached(self, key: str, state: State) -> State | None:
        """The state a step with this key made before (its image from the build cache),
        with the ARGs in scope of `state`; None on a miss or with --no-cache (a probe
        stops there: _Miss)."""
        image_id = None if self.b.opts.no_cache else self.store.db.cache_get(key)
        if image_id:
            try:
                hit: State | None = state_of_image(self.store, image_id, key)
            except (SangjaError, OSError, ValueError):  # its image is gone or damaged
                hit = None
            if hit is not None:
                hit.args, hit.cmd_set = dict(state.args), state.cmd_set
                self.b.hits.add(key)
                self.progress.cached(image_id)
                return hit
        if self.probe:
            raise _Miss(key)
        return None

    def add_layer(self, state: State, stored: StoredLayer | None, ins: Instruction, key: str,
                  text: str | None = None) -> State:
        """The state after a step that made `stored` (None: no change), as an image,
        recorded in the build cache under `key`."""
        new = state.copy()
        new.key = key
        new.image_id = None
        if stored is not None:
            new.layers.append(stored.layer)
            new.descs.append(stored.descriptor)
            new.size += stored.layer.content_size or 0
        self.history(new, ins, empty=stored is None, text=text)
        image_id = materialize(self.store, new, self.b.epoch)
        new.layers_of = image_id
        self.store.db.cache_put(key, image_id, text or ins.original)
        self.progress.made(image_id)
        return new

    # -- config instructions -------------------------------------------------------------
    def _config(self, state: State, ins: Instruction) -> State:
        from ..image.changes import ChangeError, apply_instruction

        new = self.config_step(state, ins)
        try:
            new.cmd_set = apply_instruction(
                new.inner, ins.cmd, ins.rest, self.env(new), escape=self.b.file.escape,
                cmd_set=state.cmd_set, exec_form=ins.json)
        except ChangeError as e:
            raise BuildError(str(e)) from None
        self._note_args(new, ins.rest)
        return new

    do_env = do_label = do_cmd = do_entrypoint = do_expose = do_volume = _config
    do_user = do_stopsignal = do_onbuild = _config

    def _note_args(self, state: State, text: str) -> None:
        from .lexer import uses

        self.b.used_args.update(uses(text, self.b.file.escape) & set(state.args))

    def do_maintainer(self, state: State, ins: Instruction) -> State:
        new = self.config_step(state, ins)
        new.config["author"] = self.expand(new, ins.rest)
        return new

    def do_shell(self, state: State, ins: Instruction) -> State:
        if ins.json is None or not ins.json:
            raise BuildError('SHELL requires the arguments to be a JSON array, such as '
                             '["/bin/sh", "-c"]')
        new = self.config_step(state, ins)
        new.inner["Shell"] = list(ins.json)
        return new

    def do_arg(self, state: State, ins: Instruction) -> State:
        new = state.copy()
        words = split_words(ins.rest, self.b.file.escape)
        if not words:
            raise BuildError("ARG requires at least one argument")
        parts = []
        for word in words:
            name, eq, default = word.partition("=")
            if not name:
                raise BuildError(f"ARG: invalid name in {word!r}")
            value: str | None
            if name in self.b.opts.build_args:
                value = self.b.opts.build_args[name]
                self.b.used_args.add(name)
            elif eq:
                value = expand(default, self.env(new), self.b.file.escape)
            elif name in self.b.plan.meta_args:
                value = self.b.plan.meta_args[name]
            else:
                value = None
            if value is not None:
                new.args[name] = value
            else:
                new.args.pop(name, None)
            parts.append(f"{name}={value}" if value is not None else name)
        new.key = _key(new.key, "ARG", *parts)
        return new

    def do_workdir(self, state: State, ins: Instruction) -> State:
        from ..image.changes import ChangeError, apply_instruction

        cfg = state.copy()
        cfg.image_id = None
        try:
            apply_instruction(cfg.inner, "WORKDIR", ins.rest, self.env(cfg),
                              escape=self.b.file.escape)
        except ChangeError as e:
            raise BuildError(str(e)) from None
        self._note_args(cfg, ins.rest)
        path = cfg.inner["WorkingDir"]
        key = _key(state.key, ins.original, path)
        hit = self.cached(key, state)
        if hit is not None:
            return hit

        def make(root: int) -> None:  # Docker makes it, used or not
            from ..linux.paths import mkdir_all_in_root

            os.close(mkdir_all_in_root(root, path))

        return self.add_layer(cfg, self.workspace(cfg, make), ins, key)

    def do_healthcheck(self, state: State, ins: Instruction) -> State:
        from .healthcheck import parse_healthcheck

        new = self.config_step(state, ins)
        new.inner["Healthcheck"] = parse_healthcheck(ins, new.inner.get("Shell")
                                                     or DEFAULT_SHELL)
        return new

    # -- file steps ----------------------------------------------------------------------
    def workspace(self, state: State | None, work: Callable[[int], None],
                  epoch: int | None = None) -> StoredLayer | None:
        """Run work(root_fd) on a fresh snapshot of the state's layers mounted on the host
        (state None: an empty directory, for COPY --link); the files it changed as a stored
        layer (None: no change), times clamped to `epoch` (default: the build's)."""
        from ..image.commit import store_upper_layer

        snaps = self.engine.snapshots()
        sid = os.urandom(32).hex()
        dirs = self.store.unpacked_layers(state.layers_of) if state and state.layers_of else []
        try:
            rootfs = snaps.prepare(sid, dirs)
            if snaps.kind(sid) != "overlay":
                raise BuildError("building needs overlayfs (the store's filesystem cannot "
                                 "be an overlay lower/upper)")
            fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                work(fd)
            finally:
                os.close(fd)
            snaps.unmount(sid)
            return store_upper_layer(self.store, snaps.diff_dir(sid), adopt=True,
                                     epoch=self.b.epoch if epoch is None else epoch)
        finally:
            snaps.remove(sid)

    def linked_layer(self, layer_key: str, make: Callable[[], StoredLayer | None],
                     ins: Instruction) -> StoredLayer | None:
        """The layer of a COPY/ADD --link: made apart from any image (`make()`, which
        returns a stored layer or None) and kept in the build cache under `layer_key` as an
        image of that one layer, so that a rebuild on another parent reuses it as is."""
        from ..engine.commit import StoredLayer
        from ..image.store import goarch

        image_id = None if self.b.opts.no_cache else self.store.db.cache_get(layer_key)
        if image_id is not None:
            try:
                made = state_of_image(self.store, image_id, layer_key)
            except (SangjaError, OSError, ValueError):
                made = None
            if made is not None and len(made.layers) <= 1:
                self.b.hits.add(layer_key)
                self.progress.line(f"--> Using linked layer {image_id.partition(':')[2]}")
                if not made.layers:
                    return None
                self.store.unpacked_layers(image_id)
                return StoredLayer(made.layers[0], made.descs[0])
        stored = make()
        alone = State(config={"architecture": goarch(), "os": "linux", "config": {},
                              "history": []}, layers=[], descs=[], size=0, key=layer_key)
        self.history(alone, ins, empty=stored is None)
        if stored is not None:
            alone.layers.append(stored.layer)
            alone.descs.append(stored.descriptor)
            alone.size = stored.layer.content_size or 0
        self.store.db.cache_put(layer_key, materialize(self.store, alone, self.b.epoch),
                                f"{ins.original} (the linked layer)")
        return stored

    def do_copy(self, state: State, ins: Instruction) -> State:
        from .copy_step import copy_step

        return copy_step(self, state, ins, add=False)

    def do_add(self, state: State, ins: Instruction) -> State:
        from .copy_step import copy_step

        return copy_step(self, state, ins, add=True)

    def do_run(self, state: State, ins: Instruction) -> State:
        from .run_step import run_step

        return run_step(self, state, ins)

    def do_from(self, state: State, ins: Instruction) -> State:  # pragma: no cover
        raise BuildError("FROM inside a stage")  # the planner splits stages at FROM


def build(root: str, runroot: str, *, context, opts: BuildOptions, progress: Progress) -> str:
    """Build `context` (a build.context.Context); return the image id."""
    return Builder(root, runroot, context.containerfile, context.containerfile_name,
                   context.path, opts, progress, context.containerfile_path).build()


def key_json(value) -> str:
    from ..jsonio import dumps

    return dumps(_sorted_keys(value))


def _sorted_keys(value):
    """The same value with every object's keys in order: one text per value, for keys."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_keys(v) for v in value]
    return value
