"""The container lifecycle of the daemonless engine: create, start, stop, kill, remove,
clean up after an exit, restart policies. Every change to one container happens under
that container's lock (an flock in its directory), so any number of CLI processes and
monitors can act at once; SQLite serialises the records.

`Engine` is also the library surface: `Engine(root, runroot).create(options)` does what
`sangja create` does."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import SangjaError
from ..linux import process as lp
from ..linux import signals
from .options import ContainerOptions
from .records import NoSuchContainer
from .status import (
    CREATED,
    EXITED,
    PAUSED,
    REMOVING,
    RUNNING,
    UNKNOWN_EXIT,
    live_state,
    monitor_alive,
)
from .status import STOPPED_FOR_RESTART as _RESTARTING
from .view import EngineView

DEFAULT_STOP_TIMEOUT = 10
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class EngineError(SangjaError):
    def __init__(self, message: str, code: int = 125):
        super().__init__(message)
        self.engine_exit_code = code


def validate_name(name: str) -> None:
    if len(name) < 2 or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise EngineError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                          "are allowed")


class Engine(EngineView):
    """The whole engine: EngineView's reading plus every change (the commands that only
    look use an EngineView: fewer imports)."""

    def __enter__(self) -> Engine:
        return self

    def runtime(self, row_or_opts):
        from .runtimes import runtime_for

        name = (row_or_opts.runtime if isinstance(row_or_opts, ContainerOptions)
                else self.options(row_or_opts).runtime)
        return runtime_for(name, self.paths)

    @contextmanager
    def locked(self, ref: str) -> Iterator:
        """Lock one container and yield its current row (re-read under the lock)."""
        row = self.db.get(ref)
        cid = row["id"]
        try:
            fd = os.open(self.paths.lock_path(cid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            # Its directory went with `rm`, or its `create` was killed between the record
            # and the directory: then make it, so that the container can be acted on.
            try:
                self.db.get(cid)
            except NoSuchContainer:
                raise NoSuchContainer(ref) from None
            os.makedirs(self.paths.container_dir(cid), mode=0o700, exist_ok=True)
            fd = os.open(self.paths.lock_path(cid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                row = self.db.get(cid)
            except NoSuchContainer:
                # Removed meanwhile, and that `rm` is over (it held the lock). What is left
                # is ours to take back: the directory made above, or the lock file that our
                # O_CREAT put back between the remover's unlink of it and its rmdir.
                import shutil

                shutil.rmtree(self.paths.container_dir(cid), ignore_errors=True)
                raise NoSuchContainer(ref) from None
            yield row
        finally:
            os.close(fd)

    # -- create ---------------------------------------------------------------------------
    def create(self, opts: ContainerOptions, *, progress=None) -> str:
        """Record a container and everything it needs except processes; return its id.
        The image is pulled as ``opts.pull`` says (``progress``: the pull's events, see
        sangja.registry). Nothing is left behind when it fails."""
        from .rules import check_options
        from .seccomp_profile import stored

        check_options(opts)
        opts.seccomp = stored(opts.seccomp)  # a profile file: its content, read once now
        if (opts.cidfile or opts.pid_mode or opts.ipc_mode or opts.volumes_from
                or opts.cdi_devices or opts.blkio_weight):
            from .create_checks import CidFile
            from .create_checks import check_options as check_references

            check_references(self, opts)
            with CidFile(opts.cidfile) as cidfile:
                cid = self._create_gc_locked(opts, progress)
                cidfile.write(cid)
        else:
            cid = self._create_gc_locked(opts, progress)
        from .events import container_event

        container_event(self, self.db.get(cid), "create", opts=opts)
        return cid

    def _create_gc_locked(self, opts: ContainerOptions, progress) -> str:
        # From resolving the image until the record exists, hold the store's gc lock
        # shared: `rmi`/`image prune` decide what is unused under it exclusively.
        with self.images.lock.shared():
            return self._create_locked(opts, progress)

    def _image(self, opts: ContainerOptions, progress):
        """The image to run, pulled when ``opts.pull`` says so (missing, always, never)."""
        from ..image.db import ImageNotFound

        if opts.pull != "always":
            try:
                return self.images.resolve(opts.image)
            except ImageNotFound:
                if opts.pull == "never":
                    raise EngineError(f"Unable to find image '{opts.image}' locally (and "
                                      "--pull never)") from None
            if progress is not None:
                progress({"status": "Unable to find image locally", "id": opts.image})
        from ..registry.errors import UnresolvableName
        from ..registry.pulling import image_for

        try:
            return image_for(self.images, opts.image, policy="always", progress=progress)
        except UnresolvableName as e:
            if opts.pull == "always":
                raise
            raise EngineError(f"Unable to find image '{opts.image}' locally: {e}") from None

    def _create_locked(self, opts: ContainerOptions, progress=None) -> str:
        import shutil

        from ..jsonio import dumps

        image = self._image(opts, progress)
        image_config = self.images.run_config(image.id)
        from .spec import command_args

        argv = command_args(opts, image_config)
        if opts.name is not None:
            validate_name(opts.name)
        if opts.network != "none" or opts.add_hosts:
            from .networking import check_network_mode

            check_network_mode(self, opts)
        opts.stop_signal = opts.stop_signal or image_config.get("StopSignal") or None
        self._add_image_volumes(opts, image_config)
        cid = os.urandom(32).hex()
        anonymous = []
        volumes: list[tuple[str, bool]] = []  # (name, anonymous)
        for m in opts.mounts:
            if m.type != "volume":
                continue
            if not m.source:
                m.source = os.urandom(32).hex()
                anonymous.append(m.source)
            volumes.append((m.source, m.source in anonymous))
        row = {"id": cid, "name": opts.name or self._random_name(), "image_id": image.id,
               "image_name": opts.image, "created": time.time(), "options": dumps(opts.to_dict()),
               "path": argv[0], "args": dumps(argv[1:]), "state": CREATED}
        from .volumes import ensure_volume, validate_volume_name

        for name, _ in volumes:
            validate_volume_name(name)
        # The record (with its volumes) first, in one transaction, then the directories: a
        # CLI killed in between leaves a record `rm` can remove (`locked` makes a missing
        # directory), never a directory no record names.
        new_volumes = self.db.insert(row, volumes)
        try:
            os.makedirs(self.paths.container_dir(cid), mode=0o700, exist_ok=True)
            for name, anon in volumes:
                ensure_volume(self.db, self.paths, name, anonymous=anon)
            from .events import volume_event

            for name in new_volumes:  # recorded with the container: made now
                volume_event(self.paths.runroot, "create", name)
        except BaseException:
            self.db.delete(cid)
            shutil.rmtree(self.paths.container_dir(cid), ignore_errors=True)
            from .volumes import remove_volume

            for name in anonymous:
                remove_volume(self.db, self.paths, name, missing_ok=True)
            raise
        return cid

    @staticmethod
    def _add_image_volumes(opts: ContainerOptions, image_config: dict) -> None:
        """The image's VOLUME paths get anonymous volumes unless a mount covers them."""
        from .options import MountRequest

        taken = {m.target.rstrip("/") or "/" for m in opts.mounts}
        for target in sorted(image_config.get("Volumes") or {}):
            t = target.rstrip("/") or "/"
            if t not in taken:
                opts.mounts.append(MountRequest(type="volume", target=t, source=""))
                taken.add(t)

    def _random_name(self) -> str:
        from .names import random_name

        for attempt in range(20):
            name = random_name(attempt >= 10)
            if not self.db.conn.execute("SELECT 1 FROM containers WHERE name = ?",
                                        (name,)).fetchone():
                return name
        return random_name(True) + os.urandom(2).hex()

    # -- start ----------------------------------------------------------------------------
    def start(self, ref: str, *, attach: bool = False,
              console_size: tuple[int, int] | None = None):
        """Start a created or exited container. With ``attach``, return an AttachClient
        connected (as the clean-up owner) before the program starts, so no output is lost;
        the caller must then call `cleanup` when told the exit code. ``console_size``
        (rows, columns): the terminal's size before the program starts (with ``attach``
        and a tty)."""
        with self.locked(ref) as row:
            state = live_state(row)
            if state == RUNNING:
                return None
            if state == PAUSED:
                raise EngineError(f"cannot start a paused container {row['name']}: "
                                  "try unpause instead")
            if state == REMOVING:
                raise EngineError(f"container {row['name']} is marked for removal")
            if row["state"] in (RUNNING, PAUSED):  # died unobserved: finish that first
                self._cleanup_locked(row, apply_policy=False)
                row = self.db.get(row["id"])
            if self._adopt_interrupted_start(row):
                return None
            return self._start_locked(row, attach=attach, console_size=console_size)

    def _adopt_interrupted_start(self, row) -> bool:
        """A start whose CLI was killed after the runtime started the program but before
        the record said so: the program runs under its monitor. Record it as running rather
        than kill it and start it again."""
        cid = row["id"]
        run_dir = self.paths.run_dir(cid)
        if os.path.exists(self.paths.cleaned_file(cid)) or not monitor_alive(self.paths, cid):
            return False
        try:
            with open(os.path.join(run_dir, "init.pid")) as f:
                pid = int(f.read().strip())
            with open(os.path.join(run_dir, "monitor.pid")) as f:
                mon = int(f.read().strip())
        except (OSError, ValueError):
            return False
        if self.runtime(row).status(cid) not in (RUNNING, PAUSED):
            return False  # still waiting for `start`: _discard_interrupted_start handles it
        self.db.update(cid, state=RUNNING, pid=pid, pid_start=lp.start_time(pid),
                       monitor_pid=mon, started_at=time.time(), finished_at=None, exit_code=0,
                       oom_killed=0, stopped_by_user=0, error="")
        return True

    def _start_locked(self, row, *, attach: bool,
                      console_size: tuple[int, int] | None = None):
        from .launch import LaunchPlan, launch
        from .monitor import monitor_path

        cid = row["id"]
        opts = self.options(row)
        monitor = monitor_path()
        runtime = self.runtime(opts)
        if runtime.name == "sangja-runtime":
            # The kernel's wait before the first cgroup move of a quiet spell (an RCU grace
            # period, holding cgroup_mutex) is paid now, while the bundle is prepared, not
            # when the runtime makes and joins the container's cgroup.
            from ..linux.cgroups import prime_migration

            prime_migration()
        bundle = self.paths.container_dir(cid)
        self._discard_interrupted_start(cid, runtime)
        from .networking import NetworkStart

        net = NetworkStart(self, row, opts)  # its backend works while the bundle is made
        try:
            image_config = self._prepare_bundle(row, opts, bundle, net.spec_net,
                                                console_size)
        except BaseException:
            net.abort()
            raise
        health = None
        if opts.healthcheck or image_config.get("Healthcheck"):
            from .health import HealthPlan

            health = HealthPlan.for_container(self, row, opts, image_config)
        plan = LaunchPlan(
            cid=cid, bundle=bundle, run_dir=self.paths.run_dir(cid),
            log_path=self.paths.log_path(cid) if opts.log_driver != "none" else None,
            log_max_size=opts.log_max_size, log_max_file=opts.log_max_file,
            tty=opts.tty, stdin=opts.interactive, exit_command=self.exit_command(cid),
            health_interval_ms=health.interval_ms if health else 0,
            health_command=health.command if health else [],
            health_start_interval_ms=health.start_interval_ms if health else 0,
            health_start_period_ms=health.start_period_ms if health else 0)
        try:
            launched = launch(runtime, plan, monitor)
        except BaseException:
            self._release_rootfs(cid)
            net.abort()
            raise
        client = None
        try:
            net.wait()  # the network is ready before the program runs
            if attach:
                from .monitor import AttachClient

                client = AttachClient(self.paths.attach_socket(cid))
                client.claim_cleanup()
            runtime.start(cid)
        except BaseException as e:
            if client is not None:
                client.close()
            self._abort_start(row, runtime, launched, str(e))
            raise
        self.db.update(cid, state=RUNNING, pid=launched.init_pid,
                       pid_start=lp.start_time(launched.init_pid),
                       monitor_pid=launched.monitor_pid, started_at=time.time(),
                       finished_at=None, exit_code=0, oom_killed=0, stopped_by_user=0, error="")
        if any(m.type == "volume" for m in opts.mounts):  # (no import on the plain run path)
            from .volumes import mount_events

            mount_events(self.paths, cid, opts.mounts, "mount")
        from .events import container_event

        container_event(self, row, "start", opts=opts)
        return client

    def _discard_interrupted_start(self, cid: str, runtime) -> None:
        """A start whose CLI was killed between the launch and the record of `running`
        leaves the runtime's container (its init waiting for `start`) and maybe its monitor,
        while the row still says created or exited: without this, the next start fails with
        "already exists". Every finished attempt leaves `cleaned` (clean-up, abort); a
        launch removes it first. Costs two stats when there is nothing to do."""
        run_dir = self.paths.run_dir(cid)
        if not os.path.isdir(run_dir) or os.path.exists(self.paths.cleaned_file(cid)):
            return
        if monitor_alive(self.paths, cid):  # it must not write an exit file for us later
            try:
                with open(os.path.join(run_dir, "monitor.pid")) as f:
                    mon = int(f.read().strip())
                os.kill(mon, signals.SIGKILL)
                lp.wait_gone(mon, None, 5)
            except (OSError, ValueError):
                pass
        _ignore(runtime.delete, cid)
        _touch(self.paths.cleaned_file(cid))

    def _abort_start(self, row, runtime, launched, error: str) -> None:
        """The runtime could not start the program: nothing of this attempt may remain."""
        cid = row["id"]
        try:
            os.kill(launched.init_pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        _ignore(runtime.delete, cid)
        self._release_rootfs(cid)
        self._network_down(cid)
        _touch(self.paths.cleaned_file(cid))  # the monitor must not run the clean-up
        code = 127 if "not found" in error or "no such file" in error else 126
        self.db.update(cid, state=EXITED if row["state"] != CREATED else CREATED,
                       exit_code=code if row["state"] != CREATED else 0, error=error)

    def _prepare_bundle(self, row, opts: ContainerOptions, bundle: str,
                        net: dict | None = None,
                        console_size: tuple[int, int] | None = None) -> dict:
        """Mount the root filesystem and write config.json (and the /etc files); `net`:
        what the network gives (networking.NetworkStart.spec_net); `console_size`: the
        terminal's (rows, columns) from the start (process.consoleSize). Returns the
        image's run config."""
        from ..fs import write_atomic
        from ..jsonio import dumps
        from .spec import build_spec

        cid = row["id"]
        layers = self.images.unpacked_layers(row["image_id"])
        joined = None
        if opts.pid_mode or opts.ipc_mode:
            from .sharing import namespace_paths

            joined = namespace_paths(self, opts)
        rootfs = self.snapshots().prepare(cid, layers)
        try:
            if opts.ipc_mode == "shareable":
                from .shm import mount_shm

                joined = dict(joined or {}, shm=mount_shm(self.paths, cid, opts.shm_size))
            image_config = self.images.run_config(row["image_id"])
            mounts = self._resolve_mounts(cid, opts, rootfs)
            init_path = None
            if opts.init:
                init_path = _init_binary()
            spec = build_spec(opts, image_config, container_id=cid, rootfs=rootfs,
                              container_dir=bundle, mounts=mounts, init_path=init_path,
                              net=net, joined=joined)
            if console_size and opts.tty:
                spec["process"]["consoleSize"] = {"height": console_size[0],
                                                  "width": console_size[1]}
            write_atomic(os.path.join(bundle, "config.json"), dumps(spec), durable=False)
        except BaseException:
            self._release_rootfs(cid)
            raise
        return image_config

    def _resolve_mounts(self, cid: str, opts: ContainerOptions, rootfs: str) -> list:
        from .spec import ResolvedMount
        from .volumes import copy_up

        out = []
        for m in opts.mounts:
            source: str | None
            if m.type == "volume":
                assert m.source is not None  # create named every volume
                data = self.paths.volume_data(m.source)
                os.makedirs(data, mode=0o755, exist_ok=True)
                if "nocopy" not in m.options:
                    copy_up(self.db, rootfs, m.target, m.source, data)
                source = data
            else:
                source = m.source
                if (m.create_source and m.type == "bind" and source is not None
                        and not os.path.lexists(source)):
                    os.makedirs(source, mode=0o755, exist_ok=True)  # Docker's -v does
            options = [o for o in m.options if o != "nocopy"]
            if m.readonly:
                options.append("ro")
            out.append(ResolvedMount(type="tmpfs" if m.type == "tmpfs" else "bind",
                                     source=source, destination=m.target, options=options))
        return out

    def _network_down(self, cid: str, started=None) -> None:
        """Undo the container's networking (`started`: the second half of a teardown
        begun with networking.start_network_down). A failure is reported, not raised:
        `system check --repair` finishes it."""
        try:
            if started is None:
                from .networking import start_network_down

                started = start_network_down(self.paths, cid)
            started()
        except (SangjaError, OSError) as e:
            import sys

            print(f"sangja: container {cid[:12]}: network clean-up: {e}", file=sys.stderr)

    def _start_network_down(self, cid: str):
        from .networking import start_network_down

        try:
            return start_network_down(self.paths, cid)
        except (SangjaError, OSError):
            return None

    def _release_rootfs(self, cid: str) -> None:
        # Detached: nothing uses the root any more once the init is gone, and a synchronous
        # overlay unmount costs ~30 ms of the container's exit path.
        _ignore(self.snapshots().unmount, cid, True)
        self._release_shm(cid)

    def _release_shm(self, cid: str) -> None:
        if os.path.isdir(os.path.join(self.paths.container_dir(cid), "shm")):
            from .shm import unmount_shm  # a --ipc shareable container's /dev/shm

            unmount_shm(self.paths, cid)

    def exit_command(self, cid: str) -> list[str]:
        from .runtimes import installed_command

        return [installed_command("sangja"), "--root", self.paths.root, "--runroot",
                self.paths.runroot, "container", "cleanup", cid]

    # -- after an exit ----------------------------------------------------------------------
    def cleanup(self, ref: str, *, apply_policy: bool = True) -> None:
        """Record the exit of a container whose init has gone, release what it held, and
        apply --rm or the restart policy. Safe to call many times, from anyone."""
        try:
            with self.locked(ref) as row:
                restart = self._cleanup_locked(row, apply_policy=apply_policy)
        except NoSuchContainer:
            return
        if restart == "remove":
            self.remove(row["id"], force=True, volumes=True, anonymous_only=True)
        elif restart == "restart":
            self._restart_after_exit(row["id"])

    def _cleanup_locked(self, row, *, apply_policy: bool) -> str | None:
        cid = row["id"]
        if row["state"] not in (RUNNING, PAUSED):
            return None
        if row["pid"] and lp.is_alive(row["pid"], row["pid_start"]):
            return None  # still running: nothing to clean
        from .status import read_exit

        ex = read_exit(self.paths, cid)
        # the monitor writes the status as soon as it reaps the init; on a loaded machine
        # that can take seconds, and without it the exit code is lost (255)
        deadline = time.monotonic() + 15
        while ex is None and monitor_alive(self.paths, cid) and time.monotonic() < deadline:
            time.sleep(0.01)
            ex = read_exit(self.paths, cid)
        from ..humanize import parse_time

        code = int(ex["exit_code"]) if ex else UNKNOWN_EXIT
        finished = (parse_time(ex.get("finished_at")) if ex else None) or time.time()
        opts = self.options(row)
        oom = _oom_killed(cid)
        net_down = self._start_network_down(cid)  # netavark works while the rest is done
        _ignore(self.runtime(opts).delete, cid)
        self._release_rootfs(cid)
        self._network_down(cid, net_down)
        _touch(self.paths.cleaned_file(cid))
        decision = self._after_exit(row, opts, code) if apply_policy else None
        if decision == "restart":  # "restarting" from the moment the row says exited
            self._mark_restarting(cid)
        self.db.update(cid, state=EXITED, exit_code=code, finished_at=finished,
                       oom_killed=int(oom), pid=0,
                       error="" if ex else "exit status unknown: the container's monitor "
                       "was gone when it exited")
        from .events import container_event

        if oom:
            container_event(self, row, "oom", opts=opts)
        container_event(self, row, "die", {"exitCode": str(code)}, opts=opts)
        if any(m.type == "volume" for m in opts.mounts):
            from .volumes import mount_events

            mount_events(self.paths, cid, opts.mounts, "unmount")
        return decision

    @staticmethod
    def _after_exit(row, opts: ContainerOptions, code: int) -> str | None:
        """What --rm or the restart policy does after an exit: "remove", "restart", None."""
        from .status import after_exit

        return after_exit(row, opts, code)

    def _mark_restarting(self, cid: str) -> None:
        """This process will start the container again after the back-off: leave its pid
        and start time where status.is_restarting finds them (a process that dies
        meanwhile leaves the container shown as exited, not restarting for ever)."""
        from ..fs import write_atomic
        from .status import restarting_file

        try:
            write_atomic(restarting_file(self.paths, cid),
                         f"{os.getpid()} {lp.start_time(os.getpid())}\n", durable=False)
        except OSError:
            pass  # shown as exited meanwhile: no harm

    def _restart_after_exit(self, cid: str) -> None:
        """Docker's back-off: 100 ms doubling per restart, at most a minute. Meanwhile the
        container shows as "restarting" (status.is_restarting)."""
        from .status import restarting_file

        row = self.db.get(cid)
        mark = restarting_file(self.paths, cid)
        time.sleep(min(0.1 * (2 ** min(row["restart_count"], 10)), 60.0))
        # The mark goes while the lock is held: the started container may exit at once,
        # and its clean-up (another process, next to take the lock) writes its own mark.
        try:
            with self.locked(cid) as row:
                try:
                    if row["state"] != EXITED or row["stopped_by_user"]:
                        return
                    self.db.update(cid, restart_count=row["restart_count"] + 1)
                    self._start_locked(self.db.get(cid), attach=False)
                finally:
                    _drop_own_mark(mark)
        except NoSuchContainer:
            _drop_own_mark(mark)

    # -- stop, kill -----------------------------------------------------------------------
    def stop(self, ref: str, timeout: int | None = None, *, restarting: bool = False,
             signal: int | None = None) -> str:
        """Stop with `signal` (default: the container's stop signal), SIGKILL after the
        timeout. A stopped container is not restarted by its policy; --rm removes it (unless
        this stop is `restart`'s)."""
        # Marked under the lock, whatever the state: a restart in progress finishes first
        # (and is then stopped), one waiting out its back-off sees the mark and gives up.
        with self.locked(ref) as row:
            self.db.update(row["id"], stopped_by_user=_RESTARTING if restarting else 1)
        opts = self.options(row)
        if live_state(row) not in (RUNNING, PAUSED):
            if row["state"] in (RUNNING, PAUSED):
                self.cleanup(row["id"])
            return row["id"]
        timeout = timeout if timeout is not None else (
            opts.stop_timeout if opts.stop_timeout is not None else DEFAULT_STOP_TIMEOUT)
        runtime = self.runtime(opts)
        sig = signal or signals.parse(opts.stop_signal or "SIGTERM")
        if row["state"] == PAUSED or live_state(row) == PAUSED:
            _ignore(runtime.resume, row["id"])
            self.db.update(row["id"], state=RUNNING)
        if timeout > 0:
            _ignore(runtime.kill, row["id"], sig)
        if not lp.wait_gone(row["pid"], row["pid_start"], max(timeout, 0)):
            _ignore(runtime.kill, row["id"], signals.SIGKILL, True)
            lp.wait_gone(row["pid"], row["pid_start"], 10)
        self.cleanup(row["id"])
        from .events import container_event

        container_event(self, row, "stop", opts=opts)
        return row["id"]

    def kill(self, ref: str, sig: int) -> str:
        with self.locked(ref) as row:  # see stop
            state = live_state(row)
            if state not in (RUNNING, PAUSED):
                raise EngineError(f"cannot kill container: {ref}: container "
                                  f"{row['id'][:12]} is not running", 1)
            self.db.update(row["id"], stopped_by_user=1)
        runtime = self.runtime(row)
        runtime.kill(row["id"], sig)
        from .events import container_event

        container_event(self, row, "kill", {"signal": str(sig)})
        if state == PAUSED and sig in (signals.SIGKILL, signals.parse(
                self.options(row).stop_signal or "SIGTERM")):
            # Docker's: a frozen process gets the signal once thawed, so thaw it
            _ignore(runtime.resume, row["id"])
            with self.locked(row["id"]) as now:
                if now["state"] == PAUSED:
                    self.db.update(row["id"], state=RUNNING)
        return row["id"]

    def restart(self, ref: str, timeout: int | None = None) -> str:
        cid = self.stop(ref, timeout, restarting=True)
        self.start(cid)
        from .events import container_event

        container_event(self, self.db.get(cid), "restart")
        return cid

    def pause(self, ref: str) -> str:
        with self.locked(ref) as row:
            if live_state(row) != RUNNING:
                raise EngineError(f"container {row['id'][:12]} is not running", 1)
            self.runtime(row).pause(row["id"])
            self.db.update(row["id"], state=PAUSED)
            from .events import container_event

            container_event(self, row, "pause")
            return row["id"]

    def unpause(self, ref: str) -> str:
        with self.locked(ref) as row:
            if live_state(row) != PAUSED:
                raise EngineError(f"container {row['id'][:12]} is not paused", 1)
            self.runtime(row).resume(row["id"])
            self.db.update(row["id"], state=RUNNING)
            from .events import container_event

            container_event(self, row, "unpause")
            return row["id"]

    def rename(self, ref: str, new: str) -> None:
        row = self.db.get(ref)  # docker looks the container up first
        validate_name(new)
        if row["name"] == new:
            raise EngineError(f"Renaming a container with the same name as its current "
                              f"name: {new}", 1)
        self.db.rename(row["id"], new)
        from .events import container_event

        container_event(self, self.db.get(row["id"]), "rename", {"oldName": "/" + row["name"]})

    # -- wait -----------------------------------------------------------------------------
    def wait(self, ref: str) -> int:
        """Block until the container has exited and its exit is recorded; its exit code."""
        row = self.db.get(ref)
        cid = row["id"]
        if row["state"] == CREATED:  # docker 20.10's wait (not-running): at once, 0
            return 0
        told = None  # the code the monitor told us, for a record that goes with --rm
        if row["pid"]:
            told = self._told_exit(row)
            _wait_pid_gone(row["pid"], row["pid_start"])
        deadline = time.monotonic() + 5
        while True:
            try:
                row = self.db.get(cid)
            except NoSuchContainer:
                from .status import read_exit

                ex = read_exit(self.paths, cid)
                if ex:
                    return int(ex["exit_code"])
                return told if told is not None else UNKNOWN_EXIT
            if row["state"] in (EXITED, CREATED):
                return row["exit_code"]
            if row["pid"] and live_state(row) in (RUNNING, PAUSED):  # restarted
                told = self._told_exit(row)
                _wait_pid_gone(row["pid"], row["pid_start"])
                deadline = time.monotonic() + 5
                continue
            late = time.monotonic() > deadline
            if late or not monitor_alive(self.paths, cid):
                from .status import read_exit

                # An exit file without a monitor: its exit command (`container cleanup`,
                # which applies --rm and the restart policy) is on its way; step in only
                # when it is late, and then do all it would have done. No exit file: the
                # monitor was killed, nobody else will clean up, and no policy applies
                # (docs/engine.md).
                seen = read_exit(self.paths, cid) is not None
                if late or not seen:
                    self.cleanup(cid, apply_policy=seen)
                    deadline = time.monotonic() + 5
            time.sleep(0.02)

    def _told_exit(self, row) -> int | None:
        """For a --rm container (its record and exit file go with it): block until its
        monitor tells the exit code to us as an attached client; None without a monitor.
        Other containers keep their record, and an attach slot is not spent on them."""
        if not self.options(row).rm or live_state(row) not in (RUNNING, PAUSED):
            return None
        from .monitor import EXIT, AttachClient

        try:
            client = AttachClient(self.paths.attach_socket(row["id"]))
        except OSError:
            return None
        with client:
            try:
                while (msg := client.recv()) is not None:
                    if msg[0] == EXIT:
                        return int(msg[1])
            except (OSError, ValueError):
                pass
        return None

    # -- remove ---------------------------------------------------------------------------
    def remove(self, ref: str, *, force: bool = False, volumes: bool = False,
               anonymous_only: bool = True) -> str:
        import shutil

        with self.locked(ref) as row:
            cid = row["id"]
            state = live_state(row)
            if state in (RUNNING, PAUSED):
                if not force:
                    raise EngineError(
                        f"cannot remove container \"/{row['name']}\": container is {state}: "
                        "stop the container before removing or force remove", 1)
                self.db.update(cid, stopped_by_user=1)
                runtime = self.runtime(row)
                if state == PAUSED:
                    _ignore(runtime.resume, cid)
                _ignore(runtime.kill, cid, signals.SIGKILL, True)
                lp.wait_gone(row["pid"], row["pid_start"], 10)
            if row["state"] in (RUNNING, PAUSED):
                self._cleanup_locked(row, apply_policy=False)
            self.db.update(cid, state=REMOVING)
            _ignore(self.runtime(row).delete, cid)
            self._release_shm(cid)
            self._network_down(cid)
            self.snapshots().remove(cid)
            vols = [v["name"] for v in self.db.container_volumes(cid)
                    if v["anonymous"] or not anonymous_only]
            shutil.rmtree(self.paths.run_dir(cid), ignore_errors=True)
            self.db.delete(cid)
            shutil.rmtree(self.paths.container_dir(cid), ignore_errors=True)
            from .events import container_event

            container_event(self, row, "destroy")
        if volumes:
            from .records import VolumeInUse
            from .volumes import remove_volume

            for name in vols:
                try:
                    remove_volume(self.db, self.paths, name, missing_ok=True)
                except VolumeInUse:
                    pass  # another container still uses it
        return cid

    def prune(self, select=None) -> list[str]:
        """Remove the stopped containers (those `select(created, labels)` accepts: the
        prune filters, sangja.engine.filters.PruneFilter); their ids."""
        gone = []
        for row in self.db.all():
            if live_state(row) in (EXITED, CREATED) and row["state"] != REMOVING:
                if select is not None and not select(row["created"], self.options(row).labels):
                    continue
                try:
                    self.remove(row["id"], volumes=False)
                    gone.append(row["id"])
                except (NoSuchContainer, EngineError):
                    pass
        return gone

    # -- file system access ---------------------------------------------------------------
    @contextmanager
    def rootfs(self, ref: str) -> Iterator[tuple[object, str]]:
        """The container's root filesystem on the host, mounted for the duration (a stopped
        container's is mounted and released again)."""
        row = self.db.get(ref)
        snaps = self.snapshots()
        cid = row["id"]
        if live_state(row) in (RUNNING, PAUSED):
            yield row, snaps.merged_dir(cid)
            return
        with self.locked(cid) as row:
            merged = snaps.prepare(cid, self.images.unpacked_layers(row["image_id"]))
            try:
                yield row, merged
            finally:
                if live_state(self.db.get(cid)) not in (RUNNING, PAUSED):
                    _ignore(snaps.unmount, cid)


def mounted_source(engine, row, rootfs: str, path: str, *, writing: bool = False
                   ) -> tuple[str, str]:
    """Where a container path lives on the host, for `cp`: under a volume or bind mount
    (the longest target that contains it) its source, else the root filesystem. Returns
    (root, path inside that root), keeping the path's trailing "/" or "/." (cp's rules
    depend on them). A read-only mount refuses writes, as in Docker."""
    import posixpath

    opts = engine.options(row)
    norm = posixpath.normpath("/" + path.lstrip("/"))
    best = None
    for m in opts.mounts:
        if m.type not in ("volume", "bind"):
            continue
        target = posixpath.normpath("/" + m.target.lstrip("/"))
        if norm == target or norm.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, m)
    if best is None:
        return _etc_file_source(engine, row, norm) or (rootfs, path)
    target, m = best
    if writing and m.readonly:
        raise EngineError(f"mounted volume is marked read-only: {target}", 1)
    source = engine.paths.volume_data(m.source) if m.type == "volume" else m.source
    inner = norm[len(target):] or "/"
    if path.endswith("/.") and inner != "/":
        inner += "/."
    elif path.endswith("/") and not inner.endswith("/"):
        inner += "/"
    return source, inner


def _etc_file_source(engine, row, norm: str) -> tuple[str, str] | None:
    """/etc/hosts, /etc/hostname and /etc/resolv.conf are bind mounts of the engine's files
    in the container's directory (once it started): `cp` reads and writes those, as the
    container sees them, not the image's copies under them."""
    from .etc_files import MOUNTS

    for ctr, name in MOUNTS:
        if norm == ctr:
            cdir = engine.paths.container_dir(row["id"])
            if os.path.isfile(os.path.join(cdir, name)):
                return cdir, "/" + name
    return None


def _wait_pid_gone(pid: int, started: int | None) -> None:
    """Sleep until the process exits (pidfd when the kernel has it)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        while lp.is_alive(pid, started):
            time.sleep(0.05)
        return
    try:
        if lp.is_alive(pid, started):
            import select

            select.select([fd], [], [])
    finally:
        os.close(fd)


def _oom_killed(cid: str) -> bool:
    """Did the kernel's OOM killer kill anything in the container's memory cgroup? Read
    before the runtime removes the cgroup."""
    from ..linux.cgroups import Cgroup, read_file

    try:
        cg = Cgroup.for_path(f"/sangja/{cid}", f"/sangja/{cid}")
    except (OSError, ValueError):
        return False
    for h, d in cg.dirs:
        name = "memory.oom_control" if h.version == 1 else "memory.events"
        if h.version == 1 and "memory" not in h.controllers:
            continue
        try:
            text = read_file(d, name)
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
    return False


def _init_binary() -> str:
    for p in ("/usr/bin/tini-static", "/usr/bin/catatonit"):
        if os.access(p, os.X_OK):
            return p
    raise EngineError("--init needs a static init: install Debian's tini (tini-static)")


def _drop_own_mark(path: str) -> None:
    """Remove the restarting mark if this process wrote it: the container started again
    may have exited meanwhile, and its clean-up's mark (another process's) must stay."""
    try:
        with open(path) as f:
            owner = f.read().split()
    except OSError:
        return
    if owner[:1] == [str(os.getpid())]:
        _ignore(os.unlink, path)


def _ignore(fn, *args) -> None:
    try:
        fn(*args)
    except (SangjaError, OSError):
        pass


def _touch(path: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w"):
            pass
    except OSError:
        pass
