"""Docker's word processing for Containerfile arguments: quotes, the escape character and
variable substitution, as BuildKit's ``frontend/dockerfile/shell`` lexer does it.

``expand(word, env)`` turns one word of an instruction into its value: single quotes keep
everything literally, double quotes keep everything but ``$`` expansions and the escapes
``\\"``, ``\\$`` and ``\\\\``; outside quotes the escape character makes the next character
literal. Substitutions: ``$NAME``, ``${NAME}``, ``${NAME:-word}``/``${NAME-word}`` (a
default when empty/unset), ``${NAME:+word}``/``${NAME+word}`` (an alternative when set),
``${NAME:?msg}``/``${NAME?msg}`` (an error), ``${NAME#pat}``, ``${NAME##pat}``,
``${NAME%pat}``, ``${NAME%%pat}`` (prefix/suffix removal with shell globs) and
``${NAME/pat/repl}``, ``${NAME//pat/repl}``. An unset name is empty.

``split_words(text)`` is the parser's ``parseWords``: whitespace splits words, quotes and
escapes hold them together and are kept for ``expand`` to remove.
"""

from __future__ import annotations

from .errors import BuildError

__all__ = ["expand", "split_words", "uses"]

_SPECIAL = set("@*#?-$!0")


class _Scanner:
    __slots__ = ("text", "pos")

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class _Word:
    def __init__(self, text: str, env: dict[str, str], escape: str, used: set[str] | None):
        self.s = _Scanner(text)
        self.env = env
        self.escape = escape
        self.used = used

    def get(self, name: str) -> tuple[str, bool]:
        if self.used is not None:
            self.used.add(name)
        if name in self.env:
            return self.env[name], True
        return "", False

    # -- the three special characters ------------------------------------------------------
    def until(self, stop: str = "", raw_escapes: bool = False) -> tuple[str, bool]:
        """Process until `stop` (consumed) or the end; (text, stop found)."""
        out: list[str] = []
        while (ch := self.s.peek()) != "":
            if stop and ch == stop:
                self.s.next()
                return "".join(out), True
            if ch == "'":
                out.append(self.single())
            elif ch == '"':
                out.append(self.double())
            elif ch == "$":
                out.append(self.dollar())
            else:
                ch = self.s.next()
                if ch == self.escape:
                    nxt = self.s.next()
                    if nxt == "":
                        break
                    if raw_escapes:
                        out.append(ch)
                    ch = nxt
                out.append(ch)
        return "".join(out), False

    def single(self) -> str:
        self.s.next()
        out: list[str] = []
        while True:
            ch = self.s.next()
            if ch == "":
                raise BuildError("unexpected end of statement while looking for matching "
                                 "single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double(self) -> str:
        self.s.next()
        out: list[str] = []
        while True:
            ch = self.s.peek()
            if ch == "":
                raise BuildError("unexpected end of statement while looking for matching "
                                 "double-quote")
            if ch == '"':
                self.s.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.s.next()
            if ch == self.escape:
                nxt = self.s.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.s.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while (ch := self.s.peek()) != "":
            if not out and ch.isdigit():
                while self.s.peek().isdigit():
                    out.append(self.s.next())
                return "".join(out)
            if not out and ch in _SPECIAL:
                return self.s.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.s.next())
        return "".join(out)

    def dollar(self) -> str:
        self.s.next()
        if self.s.peek() != "{":
            name = self.name()
            return self.get(name)[0] if name else "$"
        self.s.next()
        if self.s.peek() == "":
            raise BuildError("syntax error: missing '}'")
        if self.s.peek() in "{}:":
            raise BuildError("syntax error: bad substitution")
        name = self.name()
        ch = self.s.next()
        if ch == "}":
            return self.get(name)[0]
        if ch == ":":
            modifier = self.s.next()
            word, found = self.until("}")
            if not found:
                raise BuildError("syntax error: missing '}'")
            value, _ = self.get(name)
            if modifier == "+":
                return word if value else ""
            if modifier == "-":
                return value if value else word
            if modifier == "?":
                if not value:
                    raise BuildError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise BuildError(f"unsupported modifier ({modifier}) in substitution")
        if ch in "+-?":
            word, found = self.until("}")
            if not found:
                raise BuildError("syntax error: missing '}'")
            value, is_set = self.get(name)
            if ch == "+":
                return word if is_set else ""
            if ch == "-":
                return value if is_set else word
            if not is_set:
                raise BuildError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in "#%":
            longest = self.s.peek() == ch
            if longest:
                self.s.next()
            pattern, found = self.until("}", raw_escapes=True)
            if not found:
                raise BuildError("syntax error: missing '}'")
            value, _ = self.get(name)
            return _trim(value, pattern, prefix=ch == "#", longest=longest)
        if ch == "/":
            every = self.s.peek() == "/"
            if every:
                self.s.next()
            pattern, found = self.until("/", raw_escapes=True)
            if not found:
                raise BuildError("syntax error: missing '/' in ${NAME/pattern/replacement}")
            repl, found = self.until("}")
            if not found:
                raise BuildError("syntax error: missing '}'")
            value, _ = self.get(name)
            return _replace(value, pattern, repl, every)
        if ch == "":
            raise BuildError("syntax error: missing '}'")
        raise BuildError(f"unsupported modifier ({ch}) in substitution")


def _glob(pattern: str):  # -> re.Pattern[str]
    """A shell pattern (escapes with a backslash kept literal) as a regex."""
    import fnmatch  # here: `re` is for the few builds with pattern substitutions
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c in "*?[":
            j = i
            if c == "[":
                j = pattern.find("]", i + 2)
                if j < 0:
                    out.append(re.escape(c))
                    i += 1
                    continue
            out.append(fnmatch.translate(pattern[i:j + 1])[4:-3])
            i = j + 1
            continue
        out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    rx = _glob(pattern)
    cuts = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for n in cuts:
        part = value[:n] if prefix else value[len(value) - n:]
        if rx.fullmatch(part):
            return value[n:] if prefix else value[:len(value) - n]
    return value


def _replace(value: str, pattern: str, repl: str, every: bool) -> str:
    if not pattern:
        return value
    rx = _glob(pattern)
    out, i, done = [], 0, False
    while i < len(value):
        if not done:
            for end in range(len(value), i, -1):  # longest match, as the shell
                if rx.fullmatch(value, i, end):
                    out.append(repl)
                    i = end
                    done = not every
                    break
            else:
                out.append(value[i])
                i += 1
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


def expand(word: str, env: dict[str, str], escape: str = "\\",
           used: set[str] | None = None) -> str:
    """The value of one word: quotes removed, escapes applied, variables substituted
    (names looked up are added to `used`). BuildError on bad syntax."""
    text, _ = _Word(word, env, escape, used).until()
    return text


def uses(word: str, escape: str = "\\") -> set[str]:
    """The variable names `word` refers to (to know which build args a step depends on)."""
    used: set[str] = set()
    try:
        expand(word, {}, escape, used)
    except BuildError:
        pass
    return used


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on whitespace outside quotes; quotes and escapes stay in the words."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    in_word = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if not in_word:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = text[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = text[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words
