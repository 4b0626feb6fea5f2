"""A container's status, derived: the row says what the last command recorded, the kernel
says whether the init it recorded is still the same live process."""

from __future__ import annotations

import os
import time

from ..linux import process as lp

CREATED, RUNNING, PAUSED, EXITED, REMOVING = "created", "running", "paused", "exited", "removing"
RESTARTING = "restarting"  # shown, never recorded: an exited row waiting out its back-off


STOPPED_FOR_RESTART = 2  # stopped_by_user during `restart`: a user's stop, but --rm must not apply


def after_exit(row, opts, code: int) -> str | None:
    """What --rm or the restart policy does after an exit with ``code``: "remove",
    "restart" or None (Docker's rules; `opts`: the container's options)."""
    if opts.rm:  # also after a user's stop (Docker's), but not within `restart`
        return None if row["stopped_by_user"] == STOPPED_FOR_RESTART else "remove"
    policy = opts.restart
    if row["stopped_by_user"] or policy.name == "no":
        return None
    if policy.name == "on-failure":
        if code == 0 or (policy.maximum_retry_count and
                         row["restart_count"] >= policy.maximum_retry_count):
            return None
    return "restart"


def live_state(row) -> str:
    """Docker's State.Status: created, running, paused, exited or removing."""
    state = row["state"]
    if state in (RUNNING, PAUSED):
        if row["pid"] and lp.is_alive(row["pid"], row["pid_start"]):
            return state
        return EXITED
    return state


def read_exit(paths, cid: str) -> dict | None:
    """The monitor's exit file: {"exit_code": N, "finished_at": "..."}, or None."""
    from ..jsonio import load_file

    try:
        return load_file(paths.exit_file(cid))
    except (FileNotFoundError, ValueError):
        return None


UNKNOWN_EXIT = 255  # the init is gone and no monitor saw its status


def finished(paths, row) -> tuple[int, float | None]:
    """(exit code, finish time) of a container that is no longer running."""
    if row["state"] in (RUNNING, PAUSED):  # died without a clean-up yet: ask the monitor
        ex = read_exit(paths, row["id"])
        # the monitor writes the exit file once the output is drained (at most ~2 s)
        deadline = time.monotonic() + 2.5
        while ex is None and monitor_alive(paths, row["id"]) and time.monotonic() < deadline:
            time.sleep(0.01)
            ex = read_exit(paths, row["id"])
        if ex is not None:
            from ..humanize import parse_time

            return int(ex.get("exit_code", UNKNOWN_EXIT)), parse_time(ex.get("finished_at"))
        return UNKNOWN_EXIT, None  # what the clean-up will record
    return row["exit_code"], row["finished_at"]


def restarting_file(paths, cid: str) -> str:
    return os.path.join(paths.run_dir(cid), "restarting")


def is_restarting(paths, row) -> bool:
    """An exited container that its restart policy is about to start again: the process
    waiting out the back-off left its pid and start time in RUN/<id>/restarting (so a
    killed one does not leave the container "restarting" for ever). Also one whose init
    has just exited, before its clean-up ran, when the policy will start it again."""
    if row["state"] in (RUNNING, PAUSED):
        return live_state(row) == EXITED and _policy_restarts(paths, row)
    if row["state"] != EXITED or row["stopped_by_user"]:
        return False  # a stop during the back-off: the waiting process will give up
    try:
        with open(restarting_file(paths, row["id"])) as f:
            pid, start = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return False
    return lp.is_alive(pid, start)


def _policy_restarts(paths, row) -> bool:
    from ..jsonio import loads
    from .options import ContainerOptions

    ex = read_exit(paths, row["id"])
    if ex is None:
        return False  # no status yet: the clean-up will decide
    opts = ContainerOptions.from_dict(loads(row["options"]))
    return after_exit(row, opts, int(ex.get("exit_code", UNKNOWN_EXIT))) == "restart"


def view_state(paths, row) -> str:
    """live_state, and "restarting" between restart tries (Docker's State.Status)."""
    state = live_state(row)
    if state == EXITED and is_restarting(paths, row):
        return RESTARTING
    return state


def docker_status(paths, row, now: float | None = None) -> str:
    """The STATUS column of `ps`: "Up 3 seconds", "Exited (0) 2 minutes ago", ..."""
    from ..humanize import human_duration

    now = now or time.time()
    state = live_state(row)
    if state in (RUNNING, PAUSED):
        up = f"Up {human_duration(now - (row['started_at'] or now))}"
        if state == PAUSED:
            return up + " (Paused)"
        from .health import status_suffix

        return up + status_suffix(paths, row["id"])
    if state == CREATED:
        return "Created"
    if state == REMOVING:
        return "Removal In Progress"
    code, when = finished(paths, row)
    if state == EXITED and is_restarting(paths, row):
        return f"Restarting ({code}) {human_duration(max(0.0, now - (when or now)))} ago"
    if when is None:
        return f"Exited ({code})"
    return f"Exited ({code}) {human_duration(max(0.0, now - when))} ago"


def monitor_alive(paths, cid: str) -> bool:
    """Is this container's monitor still there? (Checked by its command line, so a reused
    pid is not mistaken for it.)"""
    try:
        with open(os.path.join(paths.run_dir(cid), "monitor.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return False
    return cid.encode() in argv and os.path.basename(argv[0]) == b"sangja-monitor"
