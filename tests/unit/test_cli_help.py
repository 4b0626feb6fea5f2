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
    assert r.returncode == 125
    assert r.stderr == ("sangja: unknown command: sangja volume bogus "
                        "(see 'sangja volume --help')\n")


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
