"""`create`: validate the bundle, claim the id, make the cgroup, fork the init and drive
it through setup (see init.py). On any failure everything made so far is undone."""

from __future__ import annotations

import os

from ..errors import ConfigError, SangjaError
from ..linux import process as lp
from ..linux import signals as signal
from .bundle import Bundle
from .hooks import HookFailed, run_hooks, run_warn
from .store import Container, Store, now_rfc3339
from .sync import Channel


def _owner() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return str(os.geteuid())


def create(store: Store, cid: str, bundle: Bundle | str, *, pid_file: str | None = None,
           console_socket: str | None = None, console_fd: int | None = None,
           no_pivot: bool = False, preserve_fds: int = 0, systemd_cgroup: bool = False,
           warn=None) -> Container:
    """Create container `cid` from the bundle; return it locked, in state "created"."""
    if not isinstance(bundle, Bundle):
        bundle = Bundle(bundle, seccomp_cache=store.seccomp_cache)
    spec = bundle.spec
    assert spec.process is not None  # Bundle refuses a config without one
    if spec.process.terminal and console_socket is None and console_fd is None:
        raise ConfigError("process.terminal is true: a --console-socket is needed to hand "
                          "over the terminal (or use `run` in the foreground)")
    if console_socket is not None and not spec.process.terminal:
        raise ConfigError("--console-socket given but process.terminal is false")
    if preserve_fds < 0:
        raise SangjaError("--preserve-fds must not be negative")
    record: dict = {"id": cid, "pid": 0, "bundle": bundle.path, "rootfs": bundle.rootfs,
                    "created": now_rfc3339(), "owner": _owner(),
                    "annotations": spec.annotations, "hooks": _hooks_for_later(spec),
                    "process": spec.process.raw,
                    "namespaces": [n.type for n in spec.linux.namespaces],  # what exec joins
                    "seccomp": (spec.raw.get("linux") or {}).get("seccomp")}
    from .store import validate_id

    validate_id(cid)
    cgroup = _plan_cgroup(cid, spec, systemd_cgroup)
    if cgroup is not None:
        # Recorded before anything is made there: after a crash `delete --force` cleans up.
        record["cgroup"] = cgroup.rel
        record["cgroup_dirs"] = cgroup.paths
    c = store.reserve(cid, record)
    child = init_pid = 0
    chan = None
    helper_fd = None
    hook_failed = False
    try:
        os.mkfifo(c.fifo, 0o622)
        os.chmod(c.fifo, 0o622)
        if console_socket is not None:
            try:
                from ..linux.pty import connect_unix

                console_fd = connect_unix(console_socket)
            except OSError as e:
                raise SangjaError(f"cannot connect to console socket {console_socket}: "
                                  f"{e.strerror}") from None
        from .sealed_exec import sealed_helper

        helper_fd = sealed_helper()
        chan, child_chan = Channel.pair()
        fd_sock = child_fd_sock = None
        if idmap_indexes(spec):
            import socket

            fd_sock, child_fd_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        from .init import InitJob

        job = InitJob(cid=cid, spec=spec, bundle=bundle.path, rootfs_path=bundle.rootfs,
                      fifo=c.fifo, chan=child_chan, cgroup=cgroup, console_fd=console_fd,
                      no_pivot=no_pivot, preserve_fds=preserve_fds, helper_fd=helper_fd,
                      fd_sock=child_fd_sock.fileno() if child_fd_sock else None)
        # Orphans of this command come to us: if setup fails we reap the init ourselves
        # (an unreaped zombie keeps a v1 cgroup busy, so it could not be removed).
        lp.set_subreaper()
        child = os.fork()
        if child == 0:
            chan.close()
            os.close(c.lockfd)  # the lock belongs to this command, not to the container
            from .init import child_main

            child_main(job)
        child_chan.close()
        os.close(helper_fd)
        helper_fd = None
        if spec.seccomp_filter is not None:  # the init has its own copy (fork)
            spec.seccomp_filter.release()
        if child_fd_sock is not None:
            child_fd_sock.close()
        if console_socket is not None:
            assert console_fd is not None  # connected above
            os.close(console_fd)
        if cgroup is not None:  # made while the child prepares; joined once its init exists
            cgroup.create()
        msg = chan.expect_any(("userns", "pid"))
        if msg["t"] == "userns":
            write_id_maps(child, spec.linux.raw)
            if fd_sock is not None:
                _send_idmapped_mounts(fd_sock, child, spec, bundle.path)
            chan.send("mapped")
            msg = chan.expect("pid")
        init_pid = msg["pid"]
        if fd_sock is not None:
            fd_sock.close()
        record["pid"] = init_pid
        record["init_start"] = lp.start_time(init_pid)
        if cgroup is not None:  # joined while the init mounts; see init.enter_cgroup
            cgroup.join(init_pid)
        chan.send("cgroup")
        if cgroup is not None:  # while the init mounts; they hold before its program runs
            _apply_limits(cgroup, spec)
        c.save()
        while True:
            msg = chan.expect_any(("hooks", "created", "seccomp"))
            if msg["t"] == "created":
                break
            if msg["t"] == "seccomp":
                from ..linux import seccomp

                sc = record["seccomp"]
                nfd = seccomp.take_fd(init_pid, msg["fd"])
                try:
                    seccomp.notify_listener(sc["listenerPath"], nfd, c.oci_state() | {
                        "status": "creating", "pid": init_pid},
                        sc.get("listenerMetadata") or "")
                finally:
                    os.close(nfd)
                chan.send("seccompDone")
                continue
            state = c.oci_state() | {"status": "creating", "pid": init_pid}
            try:
                run_hooks(spec.hooks["prestart"], "prestart", state)
                run_hooks(spec.hooks["createRuntime"], "createRuntime", state)
            except HookFailed:
                hook_failed = True
                raise
            chan.send("state", state=state)
        if cgroup is not None:
            _apply_device_rules(cgroup, spec)
        if child != init_pid:
            os.waitpid(child, 0)
            child = 0
        if pid_file:
            from ..fs import write_atomic

            write_atomic(os.path.abspath(pid_file), str(init_pid), 0o644)
        chan.send("go", state=c.oci_state())
        chan.close()
        return c
    except BaseException as e:
        hook_failed = hook_failed or getattr(e, "hook", False)
        _undo(c, cgroup, init_pid, child, warn, poststop=hook_failed)
        if chan is not None:
            chan.close()
        if helper_fd is not None:
            os.close(helper_fd)
        raise


def _hooks_for_later(spec) -> dict:
    """poststart/poststop run from later commands: keep them with the state."""
    return {k: [h.to_dict() for h in spec.hooks[k]] for k in ("poststart", "poststop")
            if spec.hooks[k]}


def idmap_indexes(spec) -> list[int]:
    """Which mounts are idmapped (option idmap/ridmap, or mappings of their own)."""
    out = []
    for i, m in enumerate(spec.mounts):
        raw = spec.raw["mounts"][i]
        if "idmap" in m.options or "ridmap" in m.options or raw.get("uidMappings") \
                or raw.get("gidMappings"):
            out.append(i)
    return out


def _send_idmapped_mounts(sock, child: int, spec, bundle: str) -> None:
    """Make each idmapped mount (privileged: done here) and pass it to the init."""
    from ..linux.mounts import idmapped_tree
    from ..linux.pty import send_fds

    userns = os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds = []
    try:
        for i in idmap_indexes(spec):
            m = spec.mounts[i]
            src = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
            recursive = "ridmap" in m.options or "rbind" in m.options
            try:
                fds.append(idmapped_tree(src, userns, recursive))
            except OSError as e:
                raise SangjaError(f"mounts[{i}] (idmapped {src}): {e.strerror}") from None
        send_fds(sock.fileno(), fds)
    finally:
        os.close(userns)
        for fd in fds:
            os.close(fd)


def write_id_maps(pid: int, linux: dict) -> None:
    """uid_map and gid_map of a child's new user namespace, written from outside it."""
    for key, name in (("gidMappings", "gid_map"), ("uidMappings", "uid_map")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                        for m in linux.get(key) or [])
        try:
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise SangjaError(f"linux.{key}: cannot write {name}: {e.strerror}") from None


def _plan_cgroup(cid: str, spec, systemd: bool):
    """Where the container's cgroup goes (nothing is made yet)."""
    from ..linux.cgroups import Cgroup, systemd_path

    path = spec.linux.cgroups_path or None
    if path and systemd:
        path = systemd_path(path)
    try:
        cg = Cgroup.for_path(path, f"/sangja/{cid}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cg if cg.dirs else None


def _apply_limits(cg, spec) -> None:
    """linux.resources but the device rules on the container's cgroup."""
    from ..linux.cgroups.resources import apply

    apply(cg, spec.linux.resources)  # on v2 this also enables the controllers stats read


def _apply_device_rules(cg, spec) -> None:
    """linux.resources.devices: the v1 devices controller, or a BPF program on v2. Applied
    once the init has made and opened its device nodes (runc applies them at procReady):
    v1 rules are rewritten one by one from "deny all", and an init making /dev/null in
    between would be refused."""
    rules = spec.linux.resources.get("devices")
    if not rules:
        return
    from ..linux.cgroups.devices import apply_v1

    v1 = [d for h, d in cg.dirs if "devices" in h.controllers]
    for d in v1:
        apply_v1(d, rules)
    v2_dirs = [d for h, d in cg.dirs if h.version == 2]
    if v2_dirs and not v1:
        # cgroup v2 has no devices controller: the same rules as a BPF program. On a
        # hybrid host the v1 devices controller already enforces them (as with runc),
        # and loading a program would cost every start ~2 ms for nothing.
        from ..linux.cgroups.bpf_devices import attach, compile_rules

        program = compile_rules(rules)
        for d in v2_dirs:
            try:
                os.close(attach(d, program))
            except OSError as e:
                raise SangjaError(f"linux.resources.devices: cannot attach the device "
                                  f"program to {d}: {e.strerror or e}") from None


def _undo(c: Container, cgroup, init_pid: int, child: int, warn, poststop: bool) -> None:
    """Take back a failed create: processes, cgroup, poststop hooks (after a hook
    failure, as the spec asks), state directory. A cgroup that cannot be removed keeps
    the state record, so that `delete --force` can finish the job later."""
    for pid in (init_pid, child):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if child:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass
    if init_pid and init_pid != child:
        try:
            os.waitpid(init_pid, 0)  # ours as subreaper once C1 exited
        except ChildProcessError:
            lp.wait_gone(init_pid, None, 5.0)
    if cgroup is not None:
        try:
            cgroup.destroy()
        except OSError as e:
            if warn is not None:
                warn(f"{e}; kept the record of container {c.id}: "
                     f"`delete --force {c.id}` removes it")
            return
    hooks = c.record.get("hooks", {}).get("poststop")
    if poststop and hooks:
        run_warn(hooks, "poststop", c.oci_state() | {"status": "stopped"},
                 warn or (lambda m: None))
    c.remove()
