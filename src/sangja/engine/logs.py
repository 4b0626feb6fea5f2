"""Read a container's json-file log (`sangja logs`), with Docker's options.

The monitor writes one JSON object per line, ``{"log": ..., "stream": ..., "time": ...}``,
to ``ctr.log`` and rotates it to ``ctr.log.1``, ``ctr.log.2``... (the highest number is the
oldest). Reading:

- all files, oldest first, in 1 MiB blocks; a line that does not end in ``\\n`` (a writer in
  the middle of a write) is never emitted half, a line that is not a valid entry is skipped;
- ``tail``: the files are read *backwards* in blocks from the end, so the last N entries of a
  huge log cost a few blocks, not a parse of the whole file;
- ``since``/``until`` (unix seconds, see :func:`parse_timestamp` for the text forms) keep the
  entries with ``since <= time <= until``; with ``tail`` the N entries are the last N that
  pass these filters;
- ``follow``: keep reading what is appended, through rotations (the renamed file is finished,
  then any newer rotated file, then the new ``ctr.log``) and truncation (``--log-max-file
  1``), until ``is_running()`` is false and everything written before that has been read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from sangja import jsonio

TYPE_CHECKING = False  # typing itself costs 5 ms of start-up: only for the type checker
if TYPE_CHECKING:
    from sangja.output import ByteSink

__all__ = ["format_timestamp", "parse_timestamp", "read_logs", "rotated_files"]

_FORWARD_CHUNK = 1 << 20
_BACKWARD_BLOCK = 64 << 10
_NS = 1_000_000_000

# ---------------------------------------------------------------------------- time


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def format_timestamp(ns: int) -> str:
    """RFC 3339 in UTC with exactly nine fraction digits (Docker's RFC3339NanoFixed)."""
    secs, frac = divmod(ns, _NS)
    days, rem = divmod(secs, 86400)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{frac:09d}Z"


def _digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _parse_rfc3339_ns(text: str, local_ok: bool) -> int | None:
    """Nanoseconds since the epoch of ``YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]``, or None.

    Without a zone the time is local (only when `local_ok`); a date alone is midnight."""
    if len(text) < 10 or text[4] != "-" or text[7] != "-":
        return None
    ys, ms, ds = text[0:4], text[5:7], text[8:10]
    if not (_digits(ys) and _digits(ms) and _digits(ds)):
        return None
    y, mo, d = int(ys), int(ms), int(ds)
    if not 1 <= mo <= 12 or not 1 <= d <= _month_days(y, mo):
        return None
    hh = mm = ss = 0
    frac_ns = 0
    rest = text[10:]
    if rest:
        if rest[0] not in "Tt":
            return None
        rest = rest[1:]
        if len(rest) < 5 or rest[2] != ":" or not (_digits(rest[0:2]) and _digits(rest[3:5])):
            return None
        hh, mm = int(rest[0:2]), int(rest[3:5])
        rest = rest[5:]
        if rest.startswith(":"):
            if len(rest) < 3 or not _digits(rest[1:3]):
                return None
            ss = int(rest[1:3])
            rest = rest[3:]
            if rest.startswith("."):
                i = 1
                while i < len(rest) and rest[i].isascii() and rest[i].isdigit():
                    i += 1
                frac = rest[1:i]
                if not frac or len(frac) > 9:
                    return None
                frac_ns = int(frac.ljust(9, "0"))
                rest = rest[i:]
        if hh > 23 or mm > 59 or ss > 60:
            return None
    if rest in ("Z", "z"):
        offset = 0
    elif rest and rest[0] in "+-":
        z = rest[1:]
        if len(z) == 5 and z[2] == ":" and _digits(z[0:2]) and _digits(z[3:5]):
            zh, zm = int(z[0:2]), int(z[3:5])
        elif len(z) == 4 and _digits(z):
            zh, zm = int(z[0:2]), int(z[2:4])
        else:
            return None
        if zh > 23 or zm > 59:
            return None
        offset = (zh * 3600 + zm * 60) * (1 if rest[0] == "+" else -1)
    elif rest == "":
        if not local_ok:
            return None
        try:
            secs = int(time.mktime((y, mo, d, hh, mm, ss, 0, 0, -1)))
        except (OverflowError, ValueError):
            return None
        return secs * _NS + frac_ns
    else:
        return None
    secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - offset
    return secs * _NS + frac_ns


_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": _NS, "m": 60 * _NS, "h": 3600 * _NS}


def _parse_duration_ns(text: str) -> int | None:
    """A Go duration ("1h30m", "1.5s", "-10m", "300ms") in nanoseconds, or None."""
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        return None
    total = 0
    while s:
        i = 0
        while i < len(s) and (s[i].isascii() and s[i].isdigit()):
            i += 1
        whole = s[:i]
        frac = ""
        if i < len(s) and s[i] == ".":
            j = i + 1
            while j < len(s) and (s[j].isascii() and s[j].isdigit()):
                j += 1
            frac = s[i + 1:j]
            i = j
        if not whole and not frac:
            return None
        j = i
        while j < len(s) and not (s[j].isascii() and (s[j].isdigit() or s[j] == ".")):
            j += 1
        unit = _UNITS.get(s[i:j])
        if unit is None:
            return None
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        s = s[j:]
    return sign * total


def _parse_ns(text: str, now: float | None) -> int:
    t = text.strip()
    if not t:
        raise ValueError("empty time value")
    if t != "0":  # Docker reads a lone "0" as the unix time 0, not as a duration
        dur = _parse_duration_ns(t)
        if dur is not None:
            ref = time.time_ns() if now is None else round(now * _NS)
            return ref - dur
    ns = _parse_rfc3339_ns(t, local_ok=True)
    if ns is not None:
        return ns
    whole, dot, frac = t.partition(".")
    if _digits(whole) and (not dot or (_digits(frac) and len(frac) <= 9)):
        return int(whole) * _NS + (int(frac.ljust(9, "0")) if dot else 0)
    raise ValueError(
        f"invalid time {text!r}: expected an RFC 3339 date (2006-01-02T15:04:05Z, "
        "2006-01-02T15:04:05.999999999+02:00, 2006-01-02), a unix timestamp "
        "(1700000000 or 1700000000.123) or a duration before now (42s, 10m, 1h30m)")


def parse_timestamp(text: str, now: float | None = None) -> float:
    """Docker's ``--since``/``--until`` forms, as unix seconds.

    - a duration (Go syntax: ``42s``, ``10m``, ``1h30m``, ``1.5h``, ``300ms``): `now` (default
      the current time) minus it;
    - RFC 3339, with or without fraction and zone: ``2006-01-02T15:04:05Z``,
      ``2006-01-02T15:04:05.999999999+07:00``, ``2006-01-02T15:04:05``, ``2006-01-02T15:04``,
      ``2006-01-02``; without a zone the time is local;
    - a unix timestamp ``seconds[.nanoseconds]`` (at most nine fraction digits).

    Raises ValueError naming the value otherwise.
    """
    return _parse_ns(text, now) / _NS


# ---------------------------------------------------------------------------- files


def rotated_files(log_path: str) -> list[tuple[int, str]]:
    """(number, path) of the rotated files ``log_path.N``, newest (lowest N) first."""
    d, base = os.path.split(log_path)
    prefix = base + "."
    out = []
    try:
        names = os.listdir(d or ".")
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith(prefix) and _digits(name[len(prefix):]):
            n = int(name[len(prefix):])
            if n > 0:
                out.append((n, os.path.join(d, name)))
    out.sort()
    return out


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _complete_end(fd: int, size: int) -> int:
    """The offset just past the last newline before `size` (0 if there is none)."""
    pos = size
    while pos > 0:
        n = min(_BACKWARD_BLOCK, pos)
        block = os.pread(fd, n, pos - n)
        i = block.rfind(b"\n")
        if i >= 0:
            return pos - n + i + 1
        pos -= n
    return 0


def _lines_backward(fd: int, end: int) -> Iterator[bytes]:
    """The complete lines of fd[:end] (end is just past a newline), last first."""
    pos = end
    rest = b""
    while pos > 0:
        n = min(_BACKWARD_BLOCK, pos)
        pos -= n
        block = os.pread(fd, n, pos)
        if len(block) != n:  # truncated under us: what is left is gone
            return
        parts = (block + rest).split(b"\n")
        rest = parts[0]
        for line in reversed(parts[1:]):
            if line:
                yield line
    if rest:
        yield rest


class _Source:
    """One open log file being read forward: what was read, and a partial last line."""

    def __init__(self, fd: int, pos: int = 0):
        self.fd = fd
        self.pos = pos
        self.partial = b""
        self.ident = _ident(os.fstat(fd))

    def close(self) -> None:
        os.close(self.fd)

    def read_lines(self) -> Iterator[list[bytes]]:
        """Batches of the complete lines appended since the last call."""
        while True:
            data = os.pread(self.fd, _FORWARD_CHUNK, self.pos)
            if not data:
                return
            self.pos += len(data)
            if self.partial:
                data = self.partial + data
            cut = data.rfind(b"\n")
            if cut < 0:
                self.partial = data
                continue
            self.partial = data[cut + 1:]
            yield data[:cut].split(b"\n")


# ---------------------------------------------------------------------------- output


class _Stop(Exception):
    """An entry later than `until` was met: nothing after it is wanted."""


def _bound_ns(value: float | None, up: bool) -> int | None:
    """A float bound in whole nanoseconds, rounded to the microsecond (float error at unix
    times is ~0.2 µs): down for `since`, up for `until`, so boundaries stay inclusive."""
    if value is None:
        return None
    us = value * 1e6
    r = round(us)
    if abs(us - r) > 0.001:
        r = int(-(-us // 1)) if up else int(us // 1)
    return r * 1000


def _fixed(t: str) -> bool:
    """The monitor's own format: fixed nine digits, UTC (comparable as a string)."""
    return len(t) == 30 and t[19] == "." and t[29] == "Z" and t[10] == "T"


class _Emitter:
    def __init__(self, out: ByteSink, err: ByteSink, since_ns: int | None,
                 until_ns: int | None, timestamps: bool):
        self.streams = {"stdout": out, "stderr": err}
        self.since_ns, self.until_ns = since_ns, until_ns
        self.since_s = format_timestamp(since_ns) if since_ns is not None else None
        self.until_s = format_timestamp(until_ns) if until_ns is not None else None
        self.timestamps = timestamps
        self._stream: str | None = None
        self._pending: list[bytes] = []
        self._touched: set[str] = set()

    def parse(self, line: bytes) -> tuple[str, str, str] | None:
        """(stream, text, time) of a valid entry, else None (corrupt lines are skipped)."""
        try:
            obj = jsonio.loads(line.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        text, stream, t = obj.get("log"), obj.get("stream"), obj.get("time")
        if not (isinstance(text, str) and isinstance(t, str)) or stream not in self.streams:
            return None
        return stream, text, t

    def _ns(self, t: str) -> int | None:
        return _parse_rfc3339_ns(t, local_ok=False)

    def position(self, t: str) -> int | None:
        """-1 before `since`, 1 after `until`, 0 inside, None: unreadable time."""
        if self.since_ns is None and self.until_ns is None:
            return 0
        if _fixed(t):
            if self.since_s is not None and t < self.since_s:
                return -1
            if self.until_s is not None and t > self.until_s:
                return 1
            return 0
        ns = self._ns(t)
        if ns is None:
            return None
        if self.since_ns is not None and ns < self.since_ns:
            return -1
        if self.until_ns is not None and ns > self.until_ns:
            return 1
        return 0

    def emit(self, stream: str, text: str, t: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        if self.timestamps:
            if not _fixed(t):
                ns = self._ns(t)
                t = format_timestamp(ns) if ns is not None else t
            data = t.encode() + b" " + data
        if stream != self._stream:
            self.flush_pending()
            self._stream = stream
        self._pending.append(data)
        if len(self._pending) >= 4096:
            self.flush_pending()

    def line(self, raw: bytes) -> None:
        entry = self.parse(raw)
        if entry is None:
            return
        where = self.position(entry[2])
        if where is None or where < 0:
            return
        if where > 0:
            raise _Stop
        self.emit(*entry)

    def flush_pending(self) -> None:
        if self._pending and self._stream is not None:
            self.streams[self._stream].write(b"".join(self._pending))
            self._touched.add(self._stream)
            self._pending = []

    def flush(self) -> None:
        self.flush_pending()
        for name in self._touched:
            self.streams[name].flush()
        self._touched.clear()


# ---------------------------------------------------------------------------- reading


def _snapshot(log_path: str) -> tuple[list[int], int | None]:
    """Open every log file, newest first (so a rotation meanwhile duplicates rather than
    loses one), drop duplicates; return (rotated fds oldest first, live fd or None)."""
    seen: set[tuple[int, int]] = set()
    live = _open(log_path)
    if live is not None:
        seen.add(_ident(os.fstat(live)))
    rotated: list[int] = []
    for _n, path in rotated_files(log_path):
        fd = _open(path)
        if fd is None:
            continue
        ident = _ident(os.fstat(fd))
        if ident in seen:
            os.close(fd)
            continue
        seen.add(ident)
        rotated.append(fd)
    rotated.reverse()
    return rotated, live


def _tail(em: _Emitter, fds_newest_first: list[int], n: int) -> list[int]:
    """Emit the last `n` entries passing the filters; return each file's complete end."""
    ends = []
    picked: list[tuple[str, str, str]] = []
    done = n <= 0
    for fd in fds_newest_first:
        end = _complete_end(fd, os.fstat(fd).st_size)
        ends.append(end)
        if done:
            continue
        for raw in _lines_backward(fd, end):
            entry = em.parse(raw)
            if entry is None:
                continue
            where = em.position(entry[2])
            if where is None or where > 0:
                continue
            if where < 0:
                done = True
                break
            picked.append(entry)
            if len(picked) >= n:
                done = True
                break
    for entry in reversed(picked):
        em.emit(*entry)
    em.flush()
    return ends


def _drain(em: _Emitter, src: _Source) -> bool:
    """Emit the complete lines appended to src; True if anything was read."""
    before = src.pos
    for batch in src.read_lines():
        for raw in batch:
            if raw:
                em.line(raw)
        em.flush_pending()
    em.flush()
    return src.pos != before


def _read_whole(em: _Emitter, fd: int) -> None:
    src = _Source(fd)
    _drain(em, src)  # a partial last line of a finished file is corrupt: dropped


def _successors(log_path: str, old: tuple[int, int], live: int | None) -> list[int]:
    """Fds of the rotated files newer than the file `old` (oldest first), not counting the
    live file. If `old` is gone (rotated out), every rotated file is newer than it."""
    live_ident = _ident(os.fstat(live)) if live is not None else None
    found: list[tuple[int, tuple[int, int]]] = []
    for _n, path in rotated_files(log_path):  # newest first
        fd = _open(path)
        if fd is None:
            continue
        found.append((fd, _ident(os.fstat(fd))))
    keep: list[int] = []
    for fd, ident in found:
        if ident == old:
            break
        if ident != live_ident:
            keep.append(fd)
    for fd, _ in found:
        if fd not in keep:
            os.close(fd)
    keep.reverse()
    return keep


def read_logs(
    log_path: str,
    out_stdout: ByteSink,
    out_stderr: ByteSink,
    *,
    since: float | None = None,
    until: float | None = None,
    tail: int | None = None,
    timestamps: bool = False,
    follow: bool = False,
    is_running: Callable[[], bool] = lambda: False,
    poll_interval: float = 0.1,
) -> None:
    """Write the log's stdout entries to out_stdout and stderr entries to out_stderr.

    since/until: unix seconds (inclusive bounds); tail: the last N entries (None: all, 0:
    none); timestamps: prefix each entry with its RFC 3339 nano time and a space; follow:
    go on with what is appended until `is_running()` is false and all is read (or the
    clock passes `until`).
    """
    em = _Emitter(out_stdout, out_stderr, _bound_ns(since, up=False), _bound_ns(until, up=True),
                  timestamps)
    until_ns = em.until_ns
    rotated, live_fd = _snapshot(log_path)
    live: _Source | None = None
    try:
        try:
            if tail is not None:
                files = ([live_fd] if live_fd is not None else []) + rotated[::-1]
                ends = _tail(em, files, tail)
                if live_fd is not None:
                    live = _Source(live_fd, ends[0])
            else:
                for fd in rotated:
                    _read_whole(em, fd)
                if live_fd is not None:
                    live = _Source(live_fd)
                    _drain(em, live)
            live_fd = None  # owned by `live` now
            if follow:
                following, live = live, None
                _follow(em, log_path, following, is_running, poll_interval, until_ns)
        except _Stop:
            em.flush()
    finally:
        for fd in rotated:
            os.close(fd)
        if live is not None:
            live.close()
        elif live_fd is not None:
            os.close(live_fd)


def _follow(em: _Emitter, log_path: str, live: _Source | None, is_running: Callable[[], bool],
            poll_interval: float, until_ns: int | None) -> None:
    try:
        while True:
            running = is_running()
            progressed = False
            if live is not None:
                progressed = _drain(em, live)
            try:
                st = os.stat(log_path)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None and (live is None or _ident(st) != live.ident):
                # rotated (or first created): finish the old file, then the newer rotated
                # files, then the new live file, pinned before looking for the others
                new_fd = _open(log_path)
                if new_fd is not None:
                    if live is not None:
                        _drain(em, live)
                        old = live.ident
                        live.close()
                        live = None
                        for fd in _successors(log_path, old, new_fd):
                            try:
                                _read_whole(em, fd)
                            finally:
                                os.close(fd)
                    live = _Source(new_fd)
                    continue
            if live is not None and os.fstat(live.fd).st_size < live.pos:
                live.pos, live.partial = 0, b""  # truncated in place (max-file 1)
                continue
            if not running:
                return
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if not progressed:
                em.flush()  # a follower sees each line as it comes, on a terminal or a pipe
                time.sleep(poll_interval)
    finally:
        if live is not None:
            live.close()
