"""Signals by number and by the names users write (KILL, SIGKILL, 9, sigterm, RTMIN+3).

Re-exports the C module `_signal` (what `signal` wraps): the stdlib wrapper imports `enum`,
which costs the runtime about 4 ms at every start. Use it as `signals.SIGKILL`,
`signals.signal(...)`, exactly like the stdlib module.
"""

from __future__ import annotations

try:
    import _signal as _mod
    from _signal import *  # noqa: F401,F403
except ImportError:  # pragma: no cover - other interpreters
    import signal as _mod
    from signal import *  # noqa: F401,F403

NAMES = {n: getattr(_mod, n) for n in dir(_mod)
         if n.startswith("SIG") and not n.startswith("SIG_") and n not in ("SIGRTMIN", "SIGRTMAX")}


def parse(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < _mod.NSIG:
            return n
        raise ValueError(f"invalid signal {text!r}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    for base, op in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if t.startswith(base) and t[len(base):].isdigit():
            ref = _mod.SIGRTMIN if op == 1 else _mod.SIGRTMAX
            n = ref + op * int(t[len(base):])
            if _mod.SIGRTMIN <= n <= _mod.SIGRTMAX:
                return n
            raise ValueError(f"invalid signal {text!r}")
    if t == "SIGRTMIN":
        return _mod.SIGRTMIN
    if t == "SIGRTMAX":
        return _mod.SIGRTMAX
    if t in NAMES:
        return NAMES[t]
    raise ValueError(f"invalid signal {text!r}")
