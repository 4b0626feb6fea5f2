""".dockerignore / .containerignore: which files of the build context a build may read.

Docker's rules (moby/patternmatcher): one pattern per line, ``#`` comments, blank lines
ignored; a pattern is cleaned like a path and taken relative to the context root (a leading
``/`` means nothing); ``*`` and ``?`` stay within a path component, ``**`` crosses any
number of them, ``[...]`` is a class, ``\\`` escapes. A path is excluded when the last
pattern matching it, or one of its parent directories, is not an exception (``!``).
"""

from __future__ import annotations

import os
import posixpath

__all__ = ["Ignore", "read_ignore_file"]

IGNORE_FILES = (".containerignore", ".dockerignore")


def _compile(pattern: str):  # -> re.Pattern[str]
    import re  # here: only a context with an ignore file pays for it

    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":  # "**/": any directories, or none
                    i += 1
                    out.append("(.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body)
                           .replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


class Ignore:
    def __init__(self, patterns: list[str]):
        self.rules: list[tuple] = []  # (re.Pattern[str], exception, text)
        for raw in patterns:
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            exception = text.startswith("!")
            if exception:
                text = text[1:].strip()
            text = posixpath.normpath(text.replace("\\/", "/")).lstrip("/")
            if text in (".", ""):
                continue
            self.rules.append((_compile(text), exception, text))
        self.has_exceptions = any(exc for _, exc, _ in self.rules)

    def _matches(self, rel: str) -> bool | None:
        """True: excluded by the last matching rule; False: let in; None: no rule."""
        result = None
        parents = rel.split("/")
        for rx, exception, _ in self.rules:
            hit = bool(rx.match(rel))
            if not hit:  # a parent directory matching counts too
                for k in range(1, len(parents)):
                    if rx.match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                result = not exception
        return result

    def excluded(self, rel: str) -> bool:
        if not self.rules or not rel:
            return False
        return bool(self._matches(rel))

    def descend(self, rel_dir: str) -> bool:
        """Whether a walk must look inside the directory `rel_dir`: it is not excluded, or
        an exception may let something beneath it in again."""
        if not self.excluded(rel_dir):
            return True
        if not self.has_exceptions:
            return False
        prefix = rel_dir + "/"
        for _, exception, text in self.rules:
            if exception and (text.startswith(prefix) or any(ch in text for ch in "*?[")):
                return True
        return False


def read_ignore_file(context: str, containerfile: str | None = None) -> Ignore:
    """The context's ignore rules: ``<Containerfile>.dockerignore`` next to it first (as
    BuildKit), then ``.containerignore``, then ``.dockerignore``."""
    candidates = []
    if containerfile:
        candidates += [containerfile + ".containerignore", containerfile + ".dockerignore"]
    candidates += [os.path.join(context, name) for name in IGNORE_FILES]
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return Ignore(f.read().splitlines())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
    return Ignore([])
