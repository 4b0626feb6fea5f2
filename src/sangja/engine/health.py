"""Healthchecks without a daemon (docs/engine.md, "Healthchecks").

Docker's daemon runs a container's HEALTHCHECK (or `--health-cmd`) on a timer. Here the
container's monitor (native/monitor) is the timer: started with `--health-interval MS`
and the command `sangja ... healthcheck run --monitor ID`, it runs that command
`Interval` after the start and then `Interval` after each probe ends (never two at once),
while the container runs. Each probe:

- runs the test in the container as an exec (`CMD` argv, or `CMD-SHELL` through the
  image's shell, /bin/sh -c by default) with the container's user, environment and
  working directory; stdout and stderr together, the first 4096 bytes kept; killed after
  `Timeout` (exit code -1, "Health check exceeded timeout (30s)");
- updates the state Docker keeps (State.Health): Status starting -> healthy on a success
  (exit 0); a failure adds to FailingStreak, except while the status is still starting
  within StartPeriod, and makes the status unhealthy at `Retries`; Log keeps the last 5
  results. The state lives in R/containers/<id>/health.json (reset to starting at every
  start), written atomically under the container's lock;
- appends a `health_status: STATUS` event when the status changes.

`sangja healthcheck run ID` runs one probe by hand (podman's command): exit 0 healthy,
1 with "unhealthy" printed otherwise."""

from __future__ import annotations

import os
import time

from sangja.records import dataclass, field

from ..errors import SangjaError

DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096
MAX_LOG = 5
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
_NS = 1_000_000_000


class HealthError(SangjaError):
    exit_code = 125
    engine_exit_code = 125


def parse_duration(text: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms"; "0") in nanoseconds; ValueError if not."""
    from .logs import _parse_duration_ns

    t = text.strip()
    if t == "0":
        return 0
    ns = _parse_duration_ns(t) if t else None
    if ns is None:
        raise ValueError(f"time: invalid duration \"{text}\"")
    return ns


def effective_config(opts, image_config: dict) -> dict | None:
    """The container's healthcheck: its own fields over the image's (Docker's merge);
    None when there is none or it is NONE."""
    image = image_config.get("Healthcheck") or {}
    own = opts.healthcheck
    if own is None:
        check = dict(image)
    else:
        check = dict(own)
        if not check.get("Test"):
            check["Test"] = image.get("Test")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not check.get(key) and image.get(key):
                check[key] = image[key]
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        return None
    return check


def health_file(paths, cid: str) -> str:
    return os.path.join(paths.container_dir(cid), "health.json")


def read_state(paths, cid: str) -> dict | None:
    """State.Health as inspect shows it, or None (no healthcheck)."""
    from ..jsonio import load_file

    try:
        doc = load_file(health_file(paths, cid))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def status_suffix(paths, cid: str) -> str:
    """`ps`'s " (healthy)", " (health: starting)", " (unhealthy)", or ""."""
    state = read_state(paths, cid)
    if not state:
        return ""
    status = state.get("Status")
    return f" (health: {status})" if status == STARTING else f" ({status})" if status else ""


def _write_state(paths, cid: str, state: dict) -> None:
    from ..fs import write_atomic
    from ..jsonio import dumps

    write_atomic(health_file(paths, cid), dumps(state), mode=0o600, durable=False)


@dataclass
class HealthPlan:
    """What the monitor needs: how often, and the command of one probe."""

    interval_ms: int
    command: list[str] = field(default_factory=list)
    start_interval_ms: int = 0
    start_period_ms: int = 0

    @classmethod
    def for_container(cls, engine, row, opts, image_config: dict) -> HealthPlan | None:
        """At start: the plan (and the state reset to starting), or None (and no state)."""
        cid = row["id"]
        check = effective_config(opts, image_config)
        if check is None:
            try:
                os.unlink(health_file(engine.paths, cid))
            except FileNotFoundError:
                pass
            return None
        _write_state(engine.paths, cid, {"Status": STARTING, "FailingStreak": 0, "Log": []})
        from .runtimes import installed_command

        interval = check.get("Interval") or DEFAULT_INTERVAL
        return cls(max(1, interval // 1_000_000), [
            installed_command("sangja"), "--root", engine.paths.root, "--runroot",
            engine.paths.runroot, "healthcheck", "run", "--monitor", cid],
            max(0, (check.get("StartInterval") or 0) // 1_000_000),
            max(0, (check.get("StartPeriod") or 0) // 1_000_000))


def _argv(test: list[str], image_config: dict) -> list[str]:
    if test[0] == "CMD":
        return list(test[1:])
    shell = image_config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, test[1]]


def _rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // _NS)) + f".{ns % _NS:09d}Z"


class _StopOnSigterm:
    """SIGTERM during a probe (the monitor's, when the container's init exits) stops it:
    the signal only writes to a pipe (signal.set_wakeup_fd) that the probe's wait watches,
    so the probe kills its process in the container, removes its exec directory and
    records nothing. No exception is raised from the handler: one landing in a clean-up
    would leave that clean-up half done. Outside the main thread it does nothing."""

    def __enter__(self) -> _StopOnSigterm:
        from ..linux import signals

        self.fired = False
        self.fd: int | None = None
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

        def note(_sig, _frame):
            self.fired = True

        try:
            self._old_handler = signals.signal(signals.SIGTERM, note)
        except ValueError:  # not the main thread
            self._old_handler = None
            return self
        self._old_fd = signals.set_wakeup_fd(self._w)
        self.fd = self._r
        return self

    def __exit__(self, *exc) -> None:
        from ..linux import signals

        if self._old_handler is not None:
            signals.set_wakeup_fd(self._old_fd)
            signals.signal(signals.SIGTERM, self._old_handler)
        os.close(self._r)
        os.close(self._w)


def run_probe(engine, ref: str) -> dict:
    """One probe of a running container, recorded; returns State.Health after it."""
    from .exec import ExecError, exec_captured
    from .status import RUNNING, live_state

    row = engine.get(ref)
    if live_state(row) != RUNNING:
        raise HealthError(f"container {ref} is not running")
    opts = engine.options(row)
    try:
        image_config = engine.images.run_config(row["image_id"])
    except Exception:  # noqa: BLE001 - the image may be gone (rmi -f): the container's own
        image_config = {}
    check = effective_config(opts, image_config)
    if check is None:
        raise HealthError(f"container {ref} has no defined healthcheck")
    timeout = check.get("Timeout") or DEFAULT_TIMEOUT
    start = time.time_ns()
    with _StopOnSigterm() as stop:  # until the result is written: no half-written file
        try:
            code, output = exec_captured(engine, row, _argv(check["Test"], image_config),
                                         timeout / _NS, MAX_OUTPUT, stop.fd)
            if code is None:
                code, output = -1, f"Health check exceeded timeout ({_human(timeout)})"
        except ExecError as e:
            code, output = -1, str(e)
        if stop.fired:
            raise HealthError(f"the probe of container {ref} was stopped")
        if code != 0 and (live_state(engine.get(row["id"])) != RUNNING or
                          _init_exiting(row)):
            # stopped meanwhile (the probe died with it): no result, as Docker's
            raise HealthError(f"container {ref} is not running")
        end = time.time_ns()
        entry = {"Start": _rfc3339(start), "End": _rfc3339(end), "ExitCode": code,
                 "Output": output}
        return _record(engine, row, check, entry, start)


_PF_EXITING = 0x4


def _init_exiting(row) -> bool:
    """The container's init has begun to exit. It is not a zombie yet while its pid
    namespace is torn down: it waits until the processes it killed there, our probe
    among them, are reaped; but the kernel marks it PF_EXITING (stat's flags) first."""
    from ..linux import process as lp

    pid = row["pid"]
    if not pid or lp.start_time(pid) != row["pid_start"]:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return bool(int(data[data.rindex(b")") + 2:].split()[6]) & _PF_EXITING)
    except (OSError, ValueError, IndexError):
        return True


def _human(ns: int) -> str:
    """Go's time.Duration.String(): 200ms, 30s, 1m30s, 1h0m0s."""
    def trim(value: int, unit: int) -> str:
        whole, frac = divmod(value, unit)
        digits = f"{frac:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return trim(ns, 1_000) + "µs"
    if ns < _NS:
        return trim(ns, 1_000_000) + "ms"
    h, rest = divmod(ns, 3600 * _NS)
    m, rest = divmod(rest, 60 * _NS)
    sec = trim(rest, _NS) + "s"
    if h:
        return f"{h}h{m}m{sec}"
    return f"{m}m{sec}" if m else sec


def _record(engine, row, check: dict, entry: dict, start_ns: int) -> dict:
    cid = row["id"]
    with engine.locked(cid) as now:
        if now["started_at"] != row["started_at"]:
            return read_state(engine.paths, cid) or {}  # restarted meanwhile: not ours
        state = read_state(engine.paths, cid) or {"Status": STARTING, "FailingStreak": 0,
                                                    "Log": []}
        old = state.get("Status")
        if entry["ExitCode"] == 0:
            state["Status"], state["FailingStreak"] = HEALTHY, 0
        else:
            in_start = (old == STARTING and row["started_at"] is not None and
                        start_ns / _NS - row["started_at"] < (check.get("StartPeriod") or 0)
                        / _NS)
            if not in_start:
                state["FailingStreak"] = int(state.get("FailingStreak") or 0) + 1
                retries = check.get("Retries") or DEFAULT_RETRIES
                if state["FailingStreak"] >= retries:
                    state["Status"] = UNHEALTHY
        state["Log"] = [*(state.get("Log") or []), entry][-MAX_LOG:]
        _write_state(engine.paths, cid, state)
    if state["Status"] != old:
        from .events import container_event

        container_event(engine, row, f"health_status: {state['Status']}")
    return state
