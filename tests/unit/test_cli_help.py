"""`sangja COMMAND --help` in Docker's layout, `sangja-runtime COMMAND --help` in runc's,
shell completion and man pages: all made from the same flag tables. The real `sangja`
commands run here; where the docker CLI is installed (its help needs no daemon), its
output is the reference."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANGJA = str(REPO / ".venv" / "bin" / "sangja")
RUNTIME = str(REPO / ".venv" / "bin" / "sangja-runtime")
DOCKER = shutil.which("docker")
RUNC = shutil.which("runc")


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    # no terminal on stdin: Docker then wraps at 80 columns, and so do we
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kw)


def every_command() -> list[str]:
    from sangja.cli.help import engine_names

    return [name for name, _ in engine_names()]


def test_every_command_has_a_table_with_help_texts():
    """A command without a table would answer --help without its flags; a flag without a
    help text would show an empty line."""
    from sangja.cli.help import engine_names, engine_spec

    for name, target in engine_names():
        spec = engine_spec(target)
        assert spec is not None, f"{name}: no Command table for {target}"
        assert spec.help, f"{name}: no description"
        for f in spec.flags:
            assert f.help, f"{name} {f.long}: no help text"


def every_table() -> list[tuple[str, object]]:
    from sangja.cli.help import engine_names, engine_spec

    return [(name, engine_spec(target)) for name, target in engine_names()]


@pytest.mark.parametrize(("name", "spec"), every_table(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_every_command_answers_help(name, spec):
    for flag in ("--help", "-h"):
        r = run(SANGJA, *name.split(), flag)
        if flag == "-h" and any(f.short == "-h" for f in spec.flags):  # run -h: --hostname
            assert r.returncode == 125 and "flag needs an argument: 'h' in -h" in r.stderr
            continue
        assert r.returncode == 0, (name, flag, r.stderr)
        assert not r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith(f"Usage:  sangja {name}"), r.stdout
        if lines[1].startswith("\t"):  # a second usage line (cp)
            del lines[1]
        assert lines[1] == "" and lines[2] == spec.help, r.stdout


def test_help_of_a_group_lists_its_commands():
    r = run(SANGJA, "volume", "--help")
    assert r.returncode == 0
    assert r.stdout.splitlines()[:5] == ["Usage:  sangja volume COMMAND", "", "Manage volumes",
                                         "", "Commands:"]
    assert re.search(r"^  ls {10}List volumes$", r.stdout, re.M)
    assert "list" not in r.stdout  # an alias is not listed twice
    assert r.stdout.rstrip().endswith(
        "Run 'sangja volume COMMAND --help' for more information on a command.")


def test_help_as_a_command():
    assert run(SANGJA, "help", "ps").stdout == run(SANGJA, "ps", "--help").stdout


def test_help_inside_a_run_command_is_the_containers():
    """`run IMAGE sh --help`: the flags end at IMAGE, --help is the command's (no Usage)."""
    from sangja.cli.engine.run_flags import parse_run_args

    o = parse_run_args(["busybox", "sh", "--help"])
    assert o.command == ["sh", "--help"]


@pytest.mark.parametrize(("args", "message"), [
    (["ps", "--bogus"], "unknown flag: --bogus"),
    (["ps", "-x"], "unknown shorthand flag: 'x' in -x"),
    (["container", "ls", "--all=maybe"], 'invalid argument "maybe" for "-a, --all" flag'),
    (["logs", "--tail"], "flag needs an argument: --tail"),
])
def test_flag_errors_point_at_the_help(args, message):
    r = run(SANGJA, "--root", "/nonexistent/sangja-test", *args)
    assert r.returncode == 125
    assert r.stderr.startswith(f"sangja: {message}"), r.stderr
    assert r.stderr.endswith(f" (see 'sangja {' '.join(args[:-1])} --help')\n"), r.stderr
    assert len(r.stderr.splitlines()) == 1  # the project's rule: one line


def test_unknown_verb_of_a_group():
    r = run(SANGJA, "volume", "bogus")
    assert r.returncode == 1  # Docker's exit for an unknown command
    assert r.stderr == ("sangja: unknown command: sangja volume bogus "
                        "(see 'sangja volume --help')\n")
    r = run(SANGJA, "volume", "--bogus")
    assert (r.returncode, r.stderr) == (125, "sangja: unknown flag: --bogus "
                                             "(see 'sangja volume --help')\n")


# ---------------------------------------------------------------------------- sangja --help


def top_lists(text: str) -> dict[str, list[tuple[str, str]]]:
    """`sangja --help`'s (or `docker --help`'s) command sections: heading -> (name, text)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for block in text.split("\n\n"):
        head, _, body = block.partition("\n")
        if head.endswith("Commands:"):
            out[head] = [tuple(re.match(r"^  (\S+) +(.*)$", ln).groups())  # type: ignore
                         for ln in body.splitlines()]
    return out


def test_top_help_lists_every_command_of_the_tables_once():
    """Made from the dispatcher's tables and the commands' own, as completion and the man
    pages are: every command sangja has, once, with its table's description."""
    from sangja.cli.engine import COMMANDS, SUBCOMMANDS
    from sangja.cli.help import GROUPS, engine_spec

    r = run(SANGJA, "--help")
    assert r.returncode == 0 and not r.stderr
    lists = top_lists(r.stdout)
    assert list(lists) == ["Common Commands:", "Management Commands:", "Commands:"]
    listed = [name for rows in lists.values() for name, _ in rows]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(COMMANDS) | set(SUBCOMMANDS)
    assert [n for n, _ in lists["Management Commands:"]] == sorted(SUBCOMMANDS)
    assert [n for n, _ in lists["Commands:"]] == sorted(n for n, _ in lists["Commands:"])
    for rows in lists.values():
        for name, text in rows:
            spec = engine_spec(COMMANDS[name]) if name in COMMANDS else None
            assert text == (spec.help.removesuffix(".") if spec else GROUPS[name]), name
    completed = set(_bash_complete("sangja", ""))  # completion offers the same commands
    assert set(listed) <= completed and not {c for c in completed
                                             if not c.startswith("-")} - set(listed)


def test_top_help_is_generated(monkeypatch):
    """A command added to the dispatcher's table is listed (and a hidden one is not)."""
    from sangja.cli import engine, help

    monkeypatch.setitem(engine.COMMANDS, "frob", "system:cmd_version")
    monkeypatch.setitem(engine.SUBCOMMANDS, "widget", {"ls": "system:cmd_info"})
    monkeypatch.setitem(help.GROUPS, "widget", "Manage widgets")
    text = help.engine_top_help("sangja")
    lists = top_lists(text)
    assert ("frob", "Show the sangja version information") in lists["Commands:"]
    assert ("widget", "Manage widgets") in lists["Management Commands:"]
    assert "cleanup" not in text  # `container cleanup`: hidden, the monitor's


@pytest.mark.parametrize("args", [["-h"], ["help"], ["--root", "/nonexistent/x", "--help"]])
def test_top_help_answers_every_spelling(args):
    r = run(SANGJA, *args)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == run(SANGJA, "--help").stdout


def test_sangja_alone_prints_the_help_on_stderr():
    """As Docker: `sangja` with nothing to do shows the help on stderr, exit 0; so does
    a group without a verb (`sangja network`)."""
    r = run(SANGJA)
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == run(SANGJA, "--help").stdout
    r = run(SANGJA, "network")
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == run(SANGJA, "network", "--help").stdout
    assert r.stderr.startswith("Usage:  sangja network COMMAND\n")


@pytest.mark.parametrize(("args", "code", "line"), [
    (["nosuchcmd"], 1, "unknown command: sangja nosuchcmd (see 'sangja --help')"),
    (["help", "nosuchcmd"], 1, "unknown help topic: nosuchcmd"),
    (["--bogus"], 125, "unknown flag: --bogus (see 'sangja --help')"),
    (["--bogus=1", "ps"], 125, "unknown flag: --bogus (see 'sangja --help')"),
    (["-x"], 125, "unknown shorthand flag: 'x' in -x (see 'sangja --help')"),
])
def test_unknown_command_or_option(args, code, line):
    """Docker's words (`docker: unknown command: docker nosuchcmd`, then a blank line and
    "Run 'docker --help' for more information"), on the project's one line."""
    r = run(SANGJA, "--root", "/nonexistent/sangja-test", *args)
    assert (r.returncode, r.stdout, r.stderr) == (code, "", f"sangja: {line}\n")


def test_version_is_dockers_line():
    """`docker --version`: "Docker version 28.2.2, build e6534b4"; the build is the
    checkout's commit, as `version --format` shows it."""
    r = run(SANGJA, "--version")
    assert r.returncode == 0 and not r.stderr
    assert run(SANGJA, "-v").stdout == r.stdout
    m = re.fullmatch(r"sangja version (\S+), build (\w+)\n", r.stdout)
    assert m, r.stdout
    from sangja import __version__

    assert m.group(1) == __version__
    git = shutil.which("git")
    if git and (REPO / ".git").exists():
        head = run(git, "-C", str(REPO), "rev-parse", "--short=7", "HEAD").stdout.strip()
        assert m.group(2) == head
    assert run(SANGJA, "version", "--format", "{{.Client.GitCommit}}").stdout == (
        m.group(2) + "\n" if m.group(2) != "unknown" else "\n")
    if DOCKER:
        assert re.fullmatch(r"Docker version (\S+), build (\w+)\n",
                            run(DOCKER, "--version").stdout)


def test_global_options_are_the_dispatchers():
    """The Global Options the help lists are the ones the dispatcher reads, and back."""
    from sangja.cli.engine import _globals
    from sangja.cli.help import global_flags

    for f in global_flags():
        if f.long in ("--version", "--help"):
            for name in f.names:
                assert run(SANGJA, name).returncode == 0
            continue
        argv = [f.long, "/x", "ps"] if f.takes_value else [f.long, "ps"]
        opts, rest = _globals(argv)
        assert rest == ["ps"], f.long
        assert getattr(opts, f.dest) == ("/x" if f.takes_value else True)
    opts, rest = _globals(["--root=/a", "--runroot", "/b", "--debug", "ps"])
    assert (opts.root, opts.runroot, opts.debug, rest) == ("/a", "/b", True, ["ps"])
    shown = {f.long for f in global_flags()}
    assert shown >= {"--root", "--runroot", "--debug", "--version"}


@pytest.mark.skipif(os.geteuid() != 0, reason="sangja run needs root")
def test_run_does_not_import_the_help(tmp_path):
    """Start-up: `sangja run` (here failing at its image lookup, after its flags and the
    store) imports none of the help machinery."""
    code = ("import sys; from sangja.cli.engine import main; "
            f"rc = main(['--root', {str(tmp_path / 'root')!r}, '--runroot', "
            f"{str(tmp_path / 'run')!r}, 'run', '--pull', 'never', '--rm', "
            "'localhost/no-such-image', 'true']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith('sangja.cli.help')))")
    r = run(str(REPO / ".venv" / "bin" / "python"), "-c", code)
    assert r.stdout == "125 []\n", (r.stdout, r.stderr)
    assert "No such image" in r.stderr or "no-such-image" in r.stderr


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI")
def test_top_help_has_dockers_sections_and_words():
    """`docker --help` (Docker 28): the same headings in the same order (but Swarm
    Commands: sangja has no swarm), the same words for the commands both have, the same
    first and closing lines, cobra's name column and pflag's Global Options layout."""
    ours = run(SANGJA, "--help").stdout
    theirs = run(DOCKER, "--help").stdout
    heads = [ln for ln in ours.splitlines() if re.fullmatch(r"[A-Z][\w ]+:", ln)]
    docker_heads = [ln for ln in theirs.splitlines() if re.fullmatch(r"[A-Z][\w ]+:", ln)]
    assert heads == [h for h in docker_heads if h != "Swarm Commands:"]
    assert ours.splitlines()[:2] == [ln.replace("docker", "sangja")
                                     for ln in theirs.splitlines()[:2]]
    assert ("Run 'sangja COMMAND --help' for more information on a command.\n\n"
            "For more help on how to use sangja, ") in ours
    mine, docker = top_lists(ours), top_lists(theirs)
    where = {n: (h, t) for h, rows in docker.items() for n, t in rows}
    # where the command is not Docker's: Docker Hub is not the only registry we search
    own_words = {"search"}
    for heading, rows in mine.items():
        for name, text in rows:
            if name not in where:  # sangja's own: bootstrap, completion, healthcheck
                continue
            assert where[name][0] == heading, name
            if name not in own_words:
                docker_text = where[name][1]  # as is, or naming sangja ("Manage sangja")
                assert text in (docker_text, re.sub(r"\bDocker\b", "sangja", docker_text)), name
    for text in (ours, theirs):  # cobra: names padded to the longest (>= 11), one space
        rows = [ln for h in top_lists(text) for ln in text.split(h + "\n")[1]
                .split("\n\n")[0].splitlines()]
        longest = max(len(ln.split()[0]) for ln in rows)
        assert {len(re.match(r"  \S+ +", ln).group(0)) for ln in rows} == {
            max(longest, 11) + 3}
        options = text.split("Global Options:\n")[1].split("\n\n")[0].splitlines()
        flag_lines = [ln for ln in options if re.match(r"(  -\w, |      )--", ln)]
        heads_ = [re.match(r"^(  -\w, |      )--[\w-]+( \w+)? *", ln) for ln in flag_lines]
        longest = max(len(m.group(0).rstrip()) for m in heads_)  # type: ignore
        assert {m.end() for m in heads_} == {longest + 3}  # type: ignore
    version = re.compile(r"^  -v, --version +(.*)$", re.M)
    assert version.search(ours).group(1) == version.search(theirs).group(1)  # type: ignore


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI")
def test_group_alone_goes_where_dockers_goes():
    for prog in (SANGJA, DOCKER):
        r = run(prog, "network")
        assert (r.returncode, r.stdout) == (0, ""), prog
        assert r.stderr.startswith(f"Usage:  {Path(prog).name} network COMMAND")
    for prog in (SANGJA, DOCKER):  # and `docker` alone
        r = run(prog)
        assert (r.returncode, r.stdout) == (0, ""), prog
        assert r.stderr.startswith(f"Usage:  {Path(prog).name} [OPTIONS] COMMAND\n")


# ---------------------------------------------------------------------------- Docker's layout

# Tables that are the same as docker 28's: the help must be the same, byte for byte.
SAME_AS_DOCKER = ["ps", "container ls", "logs", "system df", "pause", "wait", "export",
                  "tag", "volume inspect", "rename", "top"]


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI")
@pytest.mark.parametrize("name", SAME_AS_DOCKER)
def test_help_is_dockers(name):
    ours = run(SANGJA, *name.split(), "--help").stdout
    theirs = run(DOCKER, *name.split(), "--help").stdout
    ours = ours.replace("sangja", "docker")
    # aliases sangja does not have (`docker container ps` is ours too; `docker image ls`...)
    assert ours == theirs


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI")
@pytest.mark.parametrize("name", ["run", "images", "exec", "attach", "start", "volume ls",
                                  "network create", "commit", "pull"])
def test_help_has_dockers_shape(name):
    """Where our flags differ from Docker's, the sections, their order, the flag lines'
    layout and the column the help texts start at follow the same rules."""
    ours = run(SANGJA, *name.split(), "--help").stdout.replace("sangja", "docker")
    theirs = run(DOCKER, *name.split(), "--help").stdout
    assert ours.splitlines()[0] == theirs.splitlines()[0]  # the usage line
    assert sections(ours) == [s for s in sections(theirs) if s in sections(ours)]
    for text in (ours, theirs):
        flag_lines = [ln for ln in text.split("Options:\n", 1)[1].splitlines()
                      if ln.startswith("  -") or ln.startswith("      --")]
        heads = [re.match(r"^(  -\w, |      )--[\w-]+( [\w\[\]=-]+)? *", ln)
                 for ln in flag_lines]
        column = {m.end() for m in heads}
        assert len(column) == 1, text  # every help text starts at the same column ...
        longest = max(len(m.group(0).rstrip()) for m in heads)
        assert column == {longest + 3}  # ... three spaces after the longest flag
        names = [re.search(r"--([\w-]+)", ln).group(1) for ln in flag_lines]
        assert names == sorted(names)
    ours_flags = set(re.findall(r"^(?:  -\w, |      )(--[\w-]+)", ours, re.M))
    theirs_flags = set(re.findall(r"^(?:  -\w, |      )(--[\w-]+)", theirs, re.M))
    for flag in ours_flags & theirs_flags:  # same short name and type word
        mine = re.search(rf"^(  -\w, |      ){flag}( \w+)?", ours, re.M).group(0)
        docker = re.search(rf"^(  -\w, |      ){flag}( \w+)?", theirs, re.M).group(0)
        if docker.startswith("      ") and not mine.startswith("      "):
            mine = "      " + mine[6:]  # a shorthand Docker lacks (network create -l)
        assert mine == docker or flag in ("--pull",), (mine, docker)


def sections(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.fullmatch(r"[A-Z][a-z]+:", ln)]


def test_wrapping_follows_pflag():
    from sangja.cli.flags import Flag
    from sangja.cli.help import flag_usages

    text = flag_usages([Flag("-n,--last", "value", "Show n last created containers "
                             "(includes all states)", default="-1", meta="int"),
                        Flag("--no-trunc", help="Don't truncate output")], 79)
    assert text.splitlines() == [
        "  -n, --last int   Show n last created containers (includes all states)",
        "                   (default -1)",
        "      --no-trunc   Don't truncate output",
    ]


# ---------------------------------------------------------------------------- the runtime


def test_runtime_command_help_is_runcs_layout():
    r = run(RUNTIME, "run", "--help")
    assert r.returncode == 0 and not r.stderr
    lines = r.stdout.splitlines()
    assert lines[:5] == ["NAME:", "   sangja-runtime run - create and run a container", "",
                         "USAGE:", "   sangja-runtime run [command options] <container-id>"]
    assert "OPTIONS:" in lines
    assert re.search(r"^   --bundle value, -b value  path to the root of the bundle",
                     r.stdout, re.M)
    assert re.search(r"^   --detach, -d {14}detach from the container's process$",
                     r.stdout, re.M)


def runc_sections(text: str) -> dict[str, list[str]]:
    """urfave/cli's help: "HEADING:" -> its lines (the text after NAME is "")."""
    out: dict[str, list[str]] = {}
    head = ""
    for ln in text.splitlines():
        if re.fullmatch(r"[A-Z][A-Z ]*:", ln):
            head = ln
            out[head] = []
        elif head:
            out[head].append(ln)
    return out


def test_runtime_help_every_spelling():
    """`--help`, `-h`, `help`, `h` and nothing: the overview, exit 0 (as runc);
    `help COMMAND` is that command's help; `--version` is the help's VERSION."""
    text = run(RUNTIME, "--help").stdout
    for args in (["-h"], ["help"], ["h"], []):
        r = run(RUNTIME, *args)
        assert (r.returncode, r.stdout, r.stderr) == (0, text, ""), args
    assert run(RUNTIME, "help", "run").stdout == run(RUNTIME, "run", "--help").stdout
    assert run(RUNTIME, "h", "ls").stdout == run(RUNTIME, "list", "--help").stdout
    r = run(RUNTIME, "help", "nosuch")
    assert (r.returncode, r.stderr) == (1, "sangja-runtime: No help topic for 'nosuch'\n")
    version = "\n".join(runc_sections(text)["VERSION:"]).strip()
    assert run(RUNTIME, "--version").stdout == f"sangja-runtime version {version}\n"


@pytest.mark.skipif(RUNC is None, reason="no runc")
def test_runtime_help_is_runcs():
    """`runc --help`: the same sections in the same order, the same text but the name
    (NAME, what it is, USAGE), its commands in runc's order with runc's words, `help, h`
    last, and the same columns."""
    ours = runc_sections(run(RUNTIME, "--help").stdout)
    theirs = runc_sections(run(RUNC, "--help").stdout)
    assert list(ours) == list(theirs)
    for head in ("NAME:", "USAGE:"):
        assert ours[head] == [ln.replace("runc", "sangja-runtime") for ln in theirs[head]]

    def rows(lines: list[str]) -> list[tuple[str, str]]:
        return [tuple(re.split(r"  +", ln.strip(), maxsplit=1)) for ln in lines  # type: ignore
                if ln.strip()]

    mine, runc = rows(ours["COMMANDS:"]), rows(theirs["COMMANDS:"])
    assert mine == [r for r in runc if r[0] in dict(mine)]  # runc's order and words
    assert mine[-1][0] == "help, h"
    for lines in (ours["COMMANDS:"], ours["GLOBAL OPTIONS:"], theirs["COMMANDS:"]):
        lines = [ln for ln in lines if ln.strip()]
        longest = max(len(re.split(r"  +", ln.strip())[0]) for ln in lines)
        assert {len(re.match(r"   \S+(?:,? \S+)*  +", ln).group(0))  # type: ignore
                for ln in lines} == {longest + 5}


def test_runtime_help_is_not_an_execd_commands():
    r = run(RUNTIME, "--root", "/nonexistent/sangja-rt", "exec", "x", "ls", "--help")
    assert "USAGE:" not in r.stdout  # it reached exec (and failed there: no container)


def test_runtime_flag_errors_are_go_flags():
    r = run(RUNTIME, "list", "--bogus")
    assert r.returncode == 1
    assert r.stderr == "sangja-runtime: flag provided but not defined: -bogus\n"


# ---------------------------------------------------------------------------- completion


def test_bash_completion_loads():
    r = run("bash", "-c", f"source <({SANGJA} completion bash) && complete -p sangja")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "complete -F _sangja sangja"


def _bash_complete(*words: str) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    script = (f"source <({SANGJA} completion bash); COMP_WORDS=({line}); "
              "COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _sangja; printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = run("bash", "-c", script, env={**os.environ, "PATH": f"{REPO}/.venv/bin:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion_completes_commands_and_the_tables_flags():
    assert {"ps", "pull", "push", "pause", "port"} <= set(_bash_complete("sangja", "p"))
    assert _bash_complete("sangja", "ps", "--no") == ["--no-trunc"]
    assert set(_bash_complete("sangja", "volume", "l")) == {"ls", "list"}
    flags = _bash_complete("sangja", "--root", "/x", "container", "ls", "-")
    assert {"-a", "--all", "-s", "--size", "--help"} <= set(flags)
    assert "--detach-keys" in _bash_complete("sangja", "attach", "--det")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse(shell, tmp_path):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    script = tmp_path / f"sangja.{shell}"
    r = run(SANGJA, "completion", shell)
    assert r.returncode == 0
    script.write_text(r.stdout)
    check = run(shell, "-n", str(script))
    assert check.returncode == 0, check.stderr
    assert ("-l no-trunc" if shell == "fish" else "--no-trunc") in r.stdout
    assert "Display total file sizes" in r.stdout


def test_fish_completes_the_tables_flags():
    if shutil.which("fish") is None:
        pytest.skip("no fish")
    r = run("fish", "-c", f"{SANGJA} completion fish | source; complete -C 'sangja ps --no'")
    assert r.stdout.splitlines() == ["--no-trunc\tDon't truncate output"]


def test_completion_refuses_other_shells():
    r = run(SANGJA, "completion", "tcsh")
    assert r.returncode == 125
    assert r.stderr == "sangja: usage: sangja completion bash|zsh|fish\n"


# ---------------------------------------------------------------------------- man pages


def test_man_pages(tmp_path):
    from sangja.cli.help_man import write_pages

    paths = write_pages(str(tmp_path))
    names = {Path(p).name for p in paths}
    assert {"sangja.1", "sangja-run.1", "sangja-container-ls.1", "sangja-ps.1",
            "sangja-volume-create.1", "sangja-runtime.1"} <= names
    overview = (tmp_path / "sangja.1").read_text()  # sangja --help's sections
    heads = re.findall(r"^\.SH (.*)$", overview, re.M)
    assert heads[heads.index("DESCRIPTION") + 1:] == [
        "COMMON COMMANDS", "MANAGEMENT COMMANDS", "COMMANDS", "GLOBAL OPTIONS", "SEE ALSO"]
    assert "\\fBsangja\\-run\\fR(1)\nCreate and run a new container" in overview
    assert "\\fBsangja network\\fR\nManage networks" in overview
    assert "\\fB\\-\\-runroot\\fR \\fIstring\\fR" in overview
    page = (tmp_path / "sangja-ps.1").read_text()
    assert page.startswith('.TH "SANGJA-PS" "1"')
    assert "\\fB\\-s\\fR, \\fB\\-\\-size\\fR" in page and "Display total file sizes" in page
    if shutil.which("groff") is None:
        return
    for p in paths:  # every page renders without a groff warning
        r = run("groff", "-man", "-ww", "-z", p)
        assert r.returncode == 0 and not r.stderr, (p, r.stderr)
    text = run("groff", "-man", "-Tascii", str(tmp_path / "sangja-run.1")).stdout
    assert "--detach-keys" in re.sub(r".\x08", "", text)


def test_build_commit_reads_a_worktree_and_packed_refs(tmp_path, monkeypatch):
    """The build of `--version`: a worktree's HEAD through its commondir's packed-refs, a
    detached HEAD, and nothing for an installed copy (no src/ and pyproject.toml above)."""
    from sangja.engine import sysinfo

    sha = "0123456789abcdef0123456789abcdef01234567"
    top = tmp_path / "checkout"
    (top / "src" / "sangja" / "engine").mkdir(parents=True)
    (top / "pyproject.toml").write_text("")
    common = tmp_path / "repo.git"
    gitdir = common / "worktrees" / "wt"
    gitdir.mkdir(parents=True)
    (top / ".git").write_text(f"gitdir: {gitdir}\n")
    (gitdir / "commondir").write_text("../..\n")
    (gitdir / "HEAD").write_text("ref: refs/heads/wt\n")
    (common / "packed-refs").write_text(f"# pack-refs\n{'f' * 40} refs/heads/other\n"
                                        f"{sha} refs/heads/wt\n")
    monkeypatch.setattr(sysinfo, "__file__", str(top / "src/sangja/engine/sysinfo.py"))
    assert sysinfo.build_commit() == "0123456"
    (gitdir / "HEAD").write_text("f" * 40 + "\n")  # detached
    assert sysinfo.build_commit() == "fffffff"
    (gitdir / "HEAD").write_text("ref: refs/heads/gone\n")
    assert sysinfo.build_commit() == ""
    (top / "pyproject.toml").unlink()
    assert sysinfo.build_commit() == ""
