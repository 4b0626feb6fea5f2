"""What a container takes from another: `--pid container:X`, `--ipc container:X` (its
namespaces, joined at every start) and `--volumes-from X[:ro|rw]` (its mounts, copied at
create, as Docker does).

At create the names are resolved to ids (a later rename of X changes nothing); at start X
must be running, and its namespace files are taken from its init, checked against the
init's recorded start time (a reused pid is never joined)."""

from __future__ import annotations

from .options import ContainerOptions, MountRequest


def _error(message: str):
    from .containers import EngineError

    return EngineError(message)


def resolve_at_create(engine, opts: ContainerOptions) -> None:
    """Names -> ids for --pid/--ipc container:X; --volumes-from X's mounts added (a mount
    the user gave at the same place wins). NoSuchContainer (exit 125) for a missing X."""
    from .records import NoSuchContainer

    for attr, what in (("pid_mode", "PID"), ("ipc_mode", "IPC")):
        mode = getattr(opts, attr)
        if not mode or not mode.startswith("container:"):
            continue
        ref = mode[len("container:"):]
        try:
            row = engine.get(ref)
        except NoSuchContainer:
            raise _error(f"cannot join {what} of a non running container: {ref}: No such "
                         "container") from None
        if attr == "ipc_mode":
            other = engine.options(row)
            if other.ipc_mode not in ("shareable", "host"):
                raise _error(f"cannot join IPC of a non-shareable container {ref}: start it "
                             "with --ipc shareable")
        setattr(opts, attr, f"container:{row['id']}")
    if opts.volumes_from:
        taken = {m.target for m in opts.mounts}
        resolved = []
        for spec in opts.volumes_from:
            ref, _, mode = spec.partition(":")
            try:
                row = engine.get(ref)
            except NoSuchContainer:
                raise _error(f"--volumes-from {ref}: No such container") from None
            for m in engine.options(row).mounts:
                if m.type not in ("volume", "bind") or m.target in taken:
                    continue
                readonly = m.readonly if not mode else mode == "ro"
                opts.mounts.append(MountRequest(m.type, m.target, m.source, readonly,
                                                list(m.options)))
                taken.add(m.target)
            resolved.append(f"{row['id']}{':' + mode if mode else ''}")
        opts.volumes_from = resolved


def namespace_paths(engine, opts: ContainerOptions) -> dict[str, str]:
    """At start: {"pid"/"ipc": /proc/<X's init>/ns/...} for the modes that join another
    container, and "shm": the /dev/shm to bind (the host's for --ipc host, X's for --ipc
    container:X, see shm.py)."""
    from ..linux import process as lp
    from .records import NoSuchContainer
    from .status import PAUSED, RUNNING, live_state

    out: dict[str, str] = {}
    if opts.ipc_mode == "host":
        out["shm"] = "/dev/shm"
    for t, mode in (("pid", opts.pid_mode), ("ipc", opts.ipc_mode)):
        if not mode or not mode.startswith("container:"):
            continue
        ref = mode[len("container:"):]
        what = t.upper()
        try:
            row = engine.get(ref)
        except NoSuchContainer:
            raise _error(f"cannot join {what} of a non running container: {ref[:12]}: it "
                         "was removed") from None
        if live_state(row) not in (RUNNING, PAUSED):
            raise _error(f"cannot join {what} of a non running container: {row['name']}")
        pid = row["pid"]
        out[t] = f"/proc/{pid}/ns/{t}"
        if t == "ipc":  # X is shareable (checked at create): its /dev/shm too
            from .shm import is_mounted, shm_dir

            if is_mounted(shm_dir(engine.paths, row["id"])):
                out["shm"] = shm_dir(engine.paths, row["id"])
        if not lp.is_alive(pid, row["pid_start"]):
            raise _error(f"cannot join {what} of a non running container: {row['name']}")
    return out
