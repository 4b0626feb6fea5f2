"""The wake-up of the service's waiters (`wait`) when something changed through the
service. The events themselves are the engine's (sangja.engine.events: the log that
`sangja events` reads too); `GET /events` reads that log (sangja.api.system.events), so
what the CLI does is seen there as well."""

from __future__ import annotations

import threading


class Changes:
    def __init__(self):
        self._cond = threading.Condition()
        self._seq = 0
        self.closed = False

    def notify(self) -> None:
        with self._cond:
            self._seq += 1
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, seq: int, timeout: float) -> int:
        """Block until a change after `seq` or the timeout; the newest sequence number."""
        with self._cond:
            if self._seq == seq and not self.closed:
                self._cond.wait(timeout)
            return self._seq

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
