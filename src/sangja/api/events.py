"""Docker's event stream (`GET /events`) for what happens through the service, and the
wake-up of waiters (`wait`) when a container changes. What the CLI does meanwhile is not
seen here (there is no daemon that sees everything): docs/api.md."""

from __future__ import annotations

import threading
import time
from collections import deque


class EventBus:
    def __init__(self, keep: int = 1024):
        self._cond = threading.Condition()
        self._events: deque[tuple[int, dict]] = deque(maxlen=keep)
        self._seq = 0
        self.closed = False

    def publish(self, kind: str, action: str, actor: str, attributes: dict | None = None
                ) -> None:
        now = time.time_ns()
        event = {"Type": kind, "Action": action,
                 "Actor": {"ID": actor, "Attributes": attributes or {}},
                 "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if kind == "container":
            event.update(status=action, id=actor, **(
                {"from": attributes["image"]} if attributes and "image" in attributes else {}))
        with self._cond:
            self._seq += 1
            self._events.append((self._seq, event))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return self._seq

    def since(self, seq: int) -> list[tuple[int, dict]]:
        with self._cond:
            return [(s, e) for s, e in self._events if s > seq]

    def wait(self, seq: int, timeout: float) -> int:
        """Block until an event after `seq` or the timeout; the newest sequence number."""
        with self._cond:
            if self._seq == seq and not self.closed:
                self._cond.wait(timeout)
            return self._seq

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
