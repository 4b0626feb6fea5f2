"""Docker's human-readable figures: sizes ("1.98MB"), durations ("2 minutes"), "N ago", and
RFC 3339 parsing. Shared by the CLI's tables and the engine's documents."""

from __future__ import annotations


def human_size(size: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, `precision` significant digits
    (3 in listings; 4, Docker's HumanSize, for `Total reclaimed space` and `system df`)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def docker_time(when: str | float | None) -> str:
    """Docker's CLI timestamps (`CreatedAt`): "2026-12-03 09:30:17 +0000 UTC"."""
    import time

    ts = when if isinstance(when, int | float) else parse_time(when)
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def since(created: str | float | None) -> str:
    """"3 minutes ago", from an RFC 3339 string or a unix time."""
    import time

    ts = created if isinstance(created, int | float) else parse_time(created)
    if ts is None:
        return "N/A"
    delta = time.time() - ts
    if delta < 0:
        return "Less than a second ago"
    return f"{human_duration(delta)} ago"
