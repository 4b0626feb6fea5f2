"""Containerfile syntax (sangja.build.parser, lexer, ignore, stages) against Docker's
documented rules: directives, continuations, comments, heredocs, JSON vs shell form,
flags, variable substitution and escaping, .dockerignore patterns, stage planning."""

from __future__ import annotations

import pytest

from sangja.build.errors import BuildError
from sangja.build.ignore import Ignore
from sangja.build.lexer import expand, split_words, uses
from sangja.build.parser import parse
from sangja.build.stages import plan

ENV = {"A": "a", "EMPTY": "", "P": "/usr/local/bin", "SP": "x y"}


@pytest.mark.parametrize("word, want", [
    ("$A", "a"),
    ("${A}", "a"),
    ("${A}b", "ab"),
    ("$Ab", ""),  # the name is Ab
    ("pre$A", "prea"),
    ("${UNSET}", ""),
    ("${UNSET:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${EMPTY-def}", ""),  # set but empty: no default without the colon
    ("${UNSET-def}", "def"),
    ("${A:-def}", "a"),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),  # set: the alternative without the colon
    ("${UNSET:+alt}", ""),
    ("${UNSET:-$A}", "a"),  # nested substitution in the word
    ("${UNSET:-'$A'}", "$A"),
    ("\\$A", "$A"),  # escaped
    ("\\${A}", "${A}"),
    ("'$A'", "$A"),  # single quotes: literal
    ('"$A"', "a"),  # double quotes: substituted
    ('"$SP"', "x y"),
    ('"a\\"b"', 'a"b'),
    ('"a\\xb"', "a\\xb"),  # other escapes stay in double quotes
    ("a\\ b", "a b"),
    ("$", "$"),
    ("a$", "a$"),
    ("${P#*/}", "usr/local/bin"),
    ("${P##*/}", "bin"),
    ("${P%/*}", "/usr/local"),
    ("${P%%/*}", ""),
    ("${P/local/LOCAL}", "/usr/LOCAL/bin"),
    ("${P//l/L}", "/usr/Local/bin".replace("Local", "LocaL")),
])
def test_expand(word, want):
    assert expand(word, ENV) == want


@pytest.mark.parametrize("word, message", [
    ("${A", "missing '}'"),
    ("${", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:-x}", "bad substitution"),
    ("${UNSET:?must be set}", "UNSET: must be set"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${A!x}", "unsupported modifier"),
    ("'open", "single-quote"),
    ('"open', "double-quote"),
])
def test_expand_errors(word, message):
    with pytest.raises(BuildError, match=message.replace("(", r"\(").replace("?", r"\?")):
        expand(word, ENV)


def test_expand_backtick_escape():
    assert expand("`$A", ENV, "`") == "$A"
    assert expand("a\\b", ENV, "`") == "a\\b"  # a backslash is data with escape=`


def test_uses():
    assert uses("${A:-$B} $C \\$D '$E'") == {"A", "B", "C"}


@pytest.mark.parametrize("text, words", [
    ("a b  c", ["a", "b", "c"]),
    ('a="x y" b', ['a="x y"', "b"]),
    ("a='x y'", ["a='x y'"]),
    ("a\\ b c", ["a\\ b", "c"]),
    ('""', ['""']),  # an empty quoted word is a word
    ("", []),
])
def test_split_words(text, words):
    assert split_words(text) == words


def _one(text: str):
    (ins,) = parse(text).instructions
    return ins


def test_continuations_and_comments():
    cf = parse("FROM busybox\nRUN echo a \\\n  # a comment inside\n\n  b \\\n  c\nCMD x\n")
    run = cf.instructions[1]
    assert run.cmd == "RUN" and run.line == 2 and run.rest == "echo a   b   c"
    assert cf.instructions[2].line == 7


def test_escape_directive():
    cf = parse("# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n")
    assert cf.escape == "`"
    assert cf.instructions[1].rest == "dir c:\\   && echo x"


def test_directives_only_at_the_top():
    cf = parse("FROM busybox\n# escape=`\nRUN echo \\\n x\n")
    assert cf.escape == "\\" and cf.instructions[1].rest == "echo  x"
    cf = parse("# comment\n# escape=`\nFROM busybox\n")
    assert cf.escape == "\\"  # a comment ends the directives
    with pytest.raises(BuildError, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM busybox\n")
    with pytest.raises(BuildError, match="invalid escape"):
        parse("# escape=x\nFROM busybox\n")


def test_syntax_directive_is_kept():
    assert parse("# syntax=docker/dockerfile:1\nFROM a\n").directives == {
        "syntax": "docker/dockerfile:1"}


def test_instruction_case_and_unknown():
    assert _one("from busybox as b").cmd == "FROM"
    with pytest.raises(BuildError, match=r"Containerfile:3: unknown instruction: FOO"):
        parse("FROM a\n\nFOO bar\n")


@pytest.mark.parametrize("text, json_form", [
    ('RUN ["echo", "a b"]', ["echo", "a b"]),
    ("RUN [\"echo\", 'a']", None),  # not JSON: the shell form
    ("RUN [ not json", None),
    ('CMD ["a", 1]', None),  # not all strings
    ("CMD echo hi", None),
    ('ENTRYPOINT []', []),
    ('VOLUME ["/a", "/b"]', ["/a", "/b"]),
    ('ENV A ["x"]', None),  # ENV has no exec form
])
def test_json_vs_shell_form(text, json_form):
    assert _one(text).json == json_form


def test_flags():
    ins = _one("COPY --from=build --chown=1:2 --link a b")
    assert ins.flags == [("from", "build"), ("chown", "1:2"), ("link", None)]
    assert ins.flag("from") == "build" and ins.flag("link") == "" and ins.rest == "a b"
    ins = _one("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t make")
    assert ins.flag_values("mount") == ["type=cache,target=/c", "type=tmpfs,target=/t"]
    assert ins.rest == "make"


def test_heredocs():
    cf = parse("FROM a\nRUN <<EOF\necho $A\n  echo b\nEOF\nCOPY <<-'X' <<Y /dst/\n\tone $A\n"
               "\tX\ntwo\nY\nCMD done\n")
    run, copy, cmd = cf.instructions[1:]
    assert run.heredocs[0].content == "echo $A\n  echo b\n" and run.heredocs[0].expand
    assert [d.name for d in copy.heredocs] == ["X", "Y"]
    assert copy.heredocs[0].content == "one $A\n" and not copy.heredocs[0].expand
    assert copy.heredocs[1].content == "two\n" and copy.heredocs[1].expand
    assert cmd.cmd == "CMD" and cmd.line == 11
    with pytest.raises(BuildError, match="unterminated heredoc 'EOF'"):
        parse("FROM a\nRUN <<EOF\necho\n")
    assert not _one("RUN echo $((1<<2))").heredocs  # not a heredoc word


def test_plan_stages_targets_and_dependencies():
    cf = parse("ARG BASE=busybox\nARG TAG\nFROM $BASE AS one\nRUN x\nFROM ${BASE}:${TAG:-1} "
               "AS two\nCOPY --from=one /a /b\nFROM scratch AS unused\nFROM two\n"
               "RUN --mount=type=bind,from=one,target=/m true\n")
    p = plan(cf, {"TAG": "2"}, None, {})
    assert [s.base for s in p.stages] == ["busybox", "busybox:2", "scratch", "two"]
    assert p.stages[1].deps == {0} and p.stages[3].deps == {0, 1}
    assert p.needed == [0, 1, 3]  # the unused stage is not built
    assert plan(cf, {}, "ONE", {}).needed == [0]  # names are case-insensitive
    with pytest.raises(BuildError, match="target stage 'nope' could not be found"):
        plan(cf, {}, "nope", {})


@pytest.mark.parametrize("text, message", [
    ("RUN x\nFROM a\n", "before the first FROM"),
    ("FROM a AS b\nFROM c AS b\n", "duplicate stage name"),
    ("FROM a b c\n", "one or three arguments"),
    ("FROM a AS 1x\n", "invalid stage name"),
    ("FROM a\nCOPY --from=later /x /\nFROM b AS later\n", "not an earlier stage"),
    ("# just a comment\n", "no FROM"),
])
def test_plan_errors(text, message):
    with pytest.raises(BuildError, match=message):
        plan(parse(text), {}, None, {})


@pytest.mark.parametrize("patterns, path, excluded", [
    (["*.log"], "a.log", True),
    (["*.log"], "d/a.log", False),  # * stays in one component
    (["**/*.log"], "d/e/a.log", True),
    (["**/*.log"], "a.log", True),
    (["d"], "d/x/y", True),  # a parent matching excludes its content
    (["d", "!d/keep"], "d/keep", False),
    (["d", "!d/keep"], "d/drop", True),
    (["*", "!*.c"], "hello.c", False),
    (["*", "!*.c"], "Containerfile", True),
    (["/abs"], "abs", True),
    (["# comment", ""], "x", False),
    (["a?c"], "abc", True),
    (["[a-c]x"], "bx", True),
    (["[!a]x"], "ax", False),
    (["!x", "x"], "x", True),  # the last match decides
])
def test_ignore(patterns, path, excluded):
    assert Ignore(patterns).excluded(path) is excluded


def test_ignore_descends_for_exceptions():
    ig = Ignore(["d", "!d/sub/keep"])
    assert ig.excluded("d") and ig.descend("d")
    assert not Ignore(["d"]).descend("d")
