"""Pull and push progress as users know it from docker and podman: on a terminal, one line
per layer redrawn in place (status, a bar, bytes, speed, time left); otherwise one line per
change of a layer's status (no bar, nothing redrawn); ``--format json`` one JSON object per
event on stdout, for tools. Events come from sangja.registry (any thread)."""

from __future__ import annotations

import sys
import threading
import time

from .common import human_size

_BAR = 30
_REDRAW = 0.1  # seconds between two redraws of the live view


def _rate(n: float) -> str:
    return f"{human_size(n)}/s"


def _eta(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Row:
    __slots__ = ("status", "current", "total", "started")

    def __init__(self) -> None:
        self.status, self.current, self.total, self.started = "", 0, 0, 0.0


class Progress:
    """Call with each event. mode: "tty" (live view on `stream`), "lines", "json" (on
    stdout) or "quiet"; "auto" picks tty or lines by whether `stream` is a terminal.
    ``defer``: lines mode says nothing until a layer is transferred (run and create: a pull
    that fails before, with a name no registry has, is one error line on stderr)."""

    def __init__(self, mode: str = "auto", stream=None, defer: bool = False):
        self.stream = stream or sys.stdout
        self.held: list[str] | None = [] if defer else None
        if mode == "auto":
            mode = "tty" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.rows: dict[str, _Row] = {}
        self.drawn = 0  # lines of the live view on screen
        self.last_draw = 0.0
        self.last_json: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        if self.mode == "quiet":
            return
        with self.lock:
            if self.mode == "json":
                self._json(event)
            else:
                self._human(event)

    # -- json ----------------------------------------------------------------------------
    def _json(self, event: dict) -> None:
        from ...jsonio import dumps

        if event.get("status") in ("Downloading", "Pushing") and "current" in event:
            key = event.get("id", "")
            now = time.monotonic()
            if now - self.last_json.get(key, 0) < 0.5 and event["current"] != event.get("total"):
                return
            self.last_json[key] = now
        sys.stdout.write(dumps(event) + "\n")
        sys.stdout.flush()

    # -- humans --------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        if self.held is not None and self.mode == "lines":
            self.held.append(line)
            return
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _release(self) -> None:
        """A layer moves: what was held back is worth saying now."""
        if self.held is not None:
            held, self.held = self.held, None
            for line in held:
                self._say(line)

    def _human(self, event: dict) -> None:
        status = event.get("status", "")
        ident = event.get("id", "")
        if "digest" in event and ident and len(ident) == 12:  # a layer's row
            row = self.rows.get(ident)
            if row is None:
                row = self.rows[ident] = _Row()
            changed = row.status != status
            if "total" in event and event["total"] is not None:
                row.total = event["total"]
            if "current" in event:
                if not row.started and status in ("Downloading", "Pushing"):
                    row.started = time.monotonic()
                row.current = event["current"]
            row.status = status
            if status in ("Downloading", "Pushing", "Extracting"):
                self._release()
            if self.held is not None and self.mode == "lines":
                return
            if self.mode == "tty":
                self._draw(force=changed)
            elif changed:
                self.stream.write(f"{ident}: {status}\n")
                self.stream.flush()
            return
        if status == "Unable to find image locally":
            self._say(f"Unable to find image '{ident}' locally")
        elif status == "Pulling":
            self._say(f"Pulling {ident} (from {event.get('from')})"
                      if event.get("from") and event["from"] != ident else f"Pulling {ident}")
        elif status == "Pushing":
            self._say(f"The push refers to repository [{ident.rpartition(':')[0] or ident}]")
        elif status == "Digest":
            self._finish()
            self._say(f"Digest: {event.get('digest')}")
        elif status == "Pushed":
            self._finish()
            tag = ident.rpartition(":")[2] if ":" in ident.rpartition("/")[2] else ident
            self._say(f"{tag}: digest: {event.get('digest')} size: {event.get('size')}")
        elif status == "Done":
            self._say(f"Status: Downloaded image for {event.get('name')}")

    def _line(self, ident: str, row: _Row) -> str:
        text = f"{ident}: {row.status}"
        if row.status in ("Downloading", "Pushing") and row.total:
            frac = min(1.0, row.current / row.total)
            filled = int(frac * _BAR)
            bar = "=" * filled + (">" if filled < _BAR else "") + " " * (_BAR - filled - 1)
            text += f" [{bar[:_BAR]}] {human_size(row.current)}/{human_size(row.total)}"
            elapsed = time.monotonic() - row.started if row.started else 0
            if elapsed > 0.2 and row.current:
                speed = row.current / elapsed
                text += f"  {_rate(speed)}  {_eta((row.total - row.current) / speed)}"
        return text

    def _clear(self) -> None:
        if self.mode == "tty" and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}A\x1b[J")
            self.drawn = 0

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < _REDRAW:
            return
        self.last_draw = now
        out = [f"\x1b[{self.drawn}A" if self.drawn else ""]
        for ident, row in self.rows.items():
            out.append(f"\x1b[2K{self._line(ident, row)}\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = len(self.rows)

    def _finish(self) -> None:
        """The layers' final state stays on screen; new lines go below it."""
        if self.mode == "tty" and self.rows:
            self._draw(force=True)
            self.drawn = 0
        self.rows.clear()
