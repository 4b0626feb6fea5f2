"""Dockerfile instructions applied to an image config: `import --change`, `commit --change`.

``apply_changes(config, changes)`` takes the ``config`` object of an image config (Cmd, Env,
...), applies each change and returns the updated copy (the input is not modified). The
instructions and their meaning are Docker's (``docker commit --change``):

    CMD / ENTRYPOINT   JSON array (exec form) or text, which becomes Shell + [text]
                       (Shell defaults to ["/bin/sh", "-c"]); ENTRYPOINT clears Cmd unless a
                       CMD came before it in the same changes
    ENV                ``ENV k=v k2="v 2"`` or ``ENV k the rest of the line``
    LABEL              ``LABEL k=v ...`` (or ``LABEL k v``)
    WORKDIR            relative paths are joined to the current WorkingDir
    USER, STOPSIGNAL   the (expanded) text; STOPSIGNAL must name a signal
    EXPOSE             ``80``, ``53/udp``, ``8000-8010/tcp`` -> ExposedPorts
    VOLUME             JSON array or words -> Volumes
    ONBUILD            a trigger instruction, kept as written

Words of ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME and STOPSIGNAL get Docker's quote removal,
backslash escapes and ``$VAR``/``${VAR}``/``${VAR:-default}``/``${VAR:+alt}`` expansion
against the Env in effect before the instruction. Any other instruction, or a malformed one,
raises :class:`ChangeError` naming it.
"""

from __future__ import annotations

from sangja.errors import SangjaError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any  # a config object is JSON; image.config.check checks its shapes

__all__ = ["ALLOWED", "ChangeError", "apply_changes", "apply_instruction"]

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")
DOCKERFILE_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
DEFAULT_SHELL = ["/bin/sh", "-c"]
# `re`, `json`, `signal` and `copy` are imported where used: a cached build applies
# its ENV, CMD... lines here and should not pay for them
_PORT_RE = r"(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?"
_PROTOCOLS = ("tcp", "udp", "sctp")


class ChangeError(SangjaError, ValueError):
    """A --change that is not a Dockerfile instruction we can apply (one line, names it)."""


# ---------------------------------------------------------------------------- words


def _process(text: str, env: dict[str, str], what: str, escape: str = "\\") -> str:
    """Docker's word processing (sangja.build.lexer: quotes, escapes, substitution)."""
    from sangja.build.errors import BuildError
    from sangja.build.lexer import expand

    try:
        return expand(text, env, escape)
    except BuildError as e:
        raise ChangeError(f"{what}: {e}") from None


def _split_words(text: str, escape: str = "\\") -> list[str]:
    from sangja.build.lexer import split_words

    return split_words(text, escape)


def _env_map(config: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        k, _, v = str(item).partition("=")
        env[k] = v
    return env


def _name_values(instr: str, rest: str, env: dict[str, str], escape: str = "\\"
                 ) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``k=v ...`` or the legacy ``k rest of line``."""
    words = _split_words(rest, escape)
    if not words:
        raise ChangeError(f"{instr} requires at least one argument")
    pairs: list[tuple[str, str]] = []
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ChangeError(f"{instr} must have two arguments")
        pairs.append((parts[0], parts[1]))
    else:
        for w in words:
            if "=" not in w:
                raise ChangeError(
                    f"{instr}: syntax error - can't find = in {w!r}. Must be of the form: "
                    "name=value"
                )
            k, _, v = w.partition("=")
            pairs.append((k, v))
    out = []
    for k, v in pairs:
        key = _process(k, env, instr, escape)
        if not key:
            raise ChangeError(f"{instr} names can not be blank")
        out.append((key, _process(v, env, instr, escape)))
    return out


def _json_list(rest: str) -> list[str] | None:
    """The exec (JSON array of strings) form, or None for the shell form."""
    if not rest.startswith("["):
        return None
    from sangja.jsonio import loads

    try:
        value = loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        return None
    return value


# ---------------------------------------------------------------------------- instructions


def _signal_ok(text: str) -> bool:
    import re
    import signal

    if text.isdigit():
        return 0 < int(text) <= signal.SIGRTMAX
    name = text.upper().removeprefix("SIG")
    m = re.fullmatch(r"RTMIN(?:\+(\d+))?|RTMAX(?:-(\d+))?", name)
    if m:
        n = int(m.group(1) or m.group(2) or 0)
        return n <= signal.SIGRTMAX - signal.SIGRTMIN
    return name in {s.name.removeprefix("SIG") for s in signal.Signals}


def _ports(words: list[str], instr: str) -> list[str]:
    import re

    out: list[str] = []
    for w in words:
        m = re.fullmatch(_PORT_RE, w)
        if m is None:
            raise ChangeError(f"{instr}: invalid port {w!r} (want PORT[-PORT][/PROTOCOL])")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        proto = (m.group(3) or "tcp").lower()
        if proto not in _PROTOCOLS:
            raise ChangeError(f"{instr}: invalid protocol {m.group(3)!r} in {w!r}")
        if not (0 < lo <= hi <= 65535):
            raise ChangeError(f"{instr}: invalid port range {w!r}")
        out.extend(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


def _workdir(current: str | None, requested: str) -> str:
    if requested.startswith("/"):
        return requested
    import posixpath

    return posixpath.normpath(posixpath.join("/", current or "/", requested))


def _logical_lines(change: str) -> list[str]:
    """Lines of one change, with backslash-newline continuations joined, blanks and
    comments dropped."""
    lines: list[str] = []
    cur = ""
    for raw in change.splitlines():
        line = raw.strip() if not cur else raw.rstrip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1]
            continue
        lines.append((cur + line).strip())
        cur = ""
    if cur.strip():
        lines.append(cur.strip())
    return lines


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile instructions to an image config's ``config`` object; return the
    updated copy (``config`` itself is left unchanged). Raises ChangeError."""
    import copy

    out: dict[str, Any] = copy.deepcopy(config) if config else {}
    cmd_set = False
    for change in changes:
        if not isinstance(change, str):
            raise ChangeError(f"a change must be a string, not {type(change).__name__}")
        for line in _logical_lines(change):
            parts = line.split(None, 1)
            word = parts[0]
            instr = word.upper()
            rest = parts[1].strip() if len(parts) > 1 else ""
            if instr not in ALLOWED:
                raise ChangeError(
                    f"{word} is not a valid change command (allowed: {', '.join(ALLOWED)})"
                )
            cmd_set = apply_instruction(out, instr, rest, _env_map(out), cmd_set=cmd_set)
    return out


def apply_instruction(out: dict[str, Any], instr: str, rest: str, env: dict[str, str], *,
                      escape: str = "\\", cmd_set: bool = False,
                      exec_form: list[str] | None = None) -> bool:
    """Apply one config instruction (one of ALLOWED) to the ``config`` object `out` in
    place, its words expanded against `env`; the builder and --change share it. Returns
    whether a CMD has been set (ENTRYPOINT then keeps it). ``exec_form``: the JSON form
    the caller already parsed (CMD, ENTRYPOINT, VOLUME)."""
    if not rest:
        raise ChangeError(f"{instr} requires at least one argument")

    def process(text: str) -> str:
        return _process(text, env, instr, escape)

    if instr in ("CMD", "ENTRYPOINT"):
        argv = exec_form if exec_form is not None else _json_list(rest)
        if argv is None:
            shell = out.get("Shell") or DEFAULT_SHELL
            argv = [*shell, rest]
        if instr == "CMD":
            out["Cmd"] = argv
            return True
        out["Entrypoint"] = argv
        if not cmd_set:
            out.pop("Cmd", None)
    elif instr == "ENV":
        values = list(out.get("Env") or [])
        for k, v in _name_values(instr, rest, env, escape):
            entry = f"{k}={v}"
            for i, item in enumerate(values):
                if str(item).partition("=")[0] == k:
                    values[i] = entry
                    break
            else:
                values.append(entry)
            env[k] = v  # later pairs of the same ENV see it
        out["Env"] = values
    elif instr == "LABEL":
        labels = dict(out.get("Labels") or {})
        for k, v in _name_values(instr, rest, env, escape):
            labels[k] = v
        out["Labels"] = labels
    elif instr == "WORKDIR":
        path = process(rest)
        if not path:
            raise ChangeError("WORKDIR cannot be empty")
        out["WorkingDir"] = _workdir(out.get("WorkingDir"), path)
    elif instr == "USER":
        user = process(rest)
        if not user:
            raise ChangeError("USER cannot be empty")
        out["User"] = user
    elif instr == "STOPSIGNAL":
        sig = process(rest)
        if not _signal_ok(sig):
            raise ChangeError(f"STOPSIGNAL: invalid signal {sig!r}")
        out["StopSignal"] = sig
    elif instr == "EXPOSE":
        words = [process(w) for w in _split_words(rest, escape)]
        ports = dict(out.get("ExposedPorts") or {})
        for p in _ports(words, instr):
            ports[p] = {}
        out["ExposedPorts"] = ports
    elif instr == "VOLUME":
        paths = exec_form if exec_form is not None else _json_list(rest)
        if paths is None:
            paths = [process(w) for w in _split_words(rest, escape)]
        else:
            paths = [process(p) for p in paths]
        volumes = dict(out.get("Volumes") or {})
        for p in paths:
            if not p.strip():
                raise ChangeError("VOLUME specified can not be an empty string")
            volumes[p] = {}
        out["Volumes"] = volumes
    elif instr == "ONBUILD":
        trigger = rest.split(None, 1)[0].upper()
        if trigger == "ONBUILD":
            raise ChangeError("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
        if trigger not in DOCKERFILE_INSTRUCTIONS:
            raise ChangeError(f"ONBUILD: unknown instruction {rest.split()[0]!r}")
        out["OnBuild"] = [*(out.get("OnBuild") or []), rest]
    else:
        raise ChangeError(f"{instr} is not a config instruction")
    return cmd_set
