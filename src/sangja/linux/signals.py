"""Signal names and numbers as users write them: KILL, SIGKILL, 9, sigterm, RTMIN+3."""

from __future__ import annotations

import signal


def parse(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
        raise ValueError(f"invalid signal {text!r}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    for base, op in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if t.startswith(base) and t[len(base):].isdigit():
            ref = signal.SIGRTMIN if op == 1 else signal.SIGRTMAX
            n = ref + op * int(t[len(base):])
            if signal.SIGRTMIN <= n <= signal.SIGRTMAX:
                return n
            raise ValueError(f"invalid signal {text!r}")
    try:
        return int(getattr(signal.Signals, t))
    except AttributeError:
        raise ValueError(f"invalid signal {text!r}") from None
