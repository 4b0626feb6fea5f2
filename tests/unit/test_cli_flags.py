"""The one flag parser of both command lines (sangja.cli.flags): pflag's rules for `sangja`,
Go flag's for `sangja-runtime`, and the help requests both answer."""

from __future__ import annotations

import pytest

from sangja.cli.flags import (
    Command,
    Flag,
    FlagError,
    HelpRequested,
    parse_flags,
    parse_go_flags,
)

TABLE = [
    Flag("-a,--all"),
    Flag("-q,--quiet"),
    Flag("-e,--env", "multi"),
    Flag("-n,--name", "value"),
    Flag("--rm"),
    Flag("--sig-proxy", default=True),
    Flag("--network,--net", "value"),
    Flag("--pull", "optional"),
]


def parse(*args, **kw):
    return parse_flags(list(args), TABLE, **kw)


# ---------------------------------------------------------------------------- pflag


def test_defaults():
    opts, rest = parse()
    assert opts == {"all": False, "quiet": False, "env": [], "name": None, "rm": False,
                    "sig_proxy": True, "network": None, "pull": None}
    assert rest == []


@pytest.mark.parametrize("args", [
    ["--name=web"], ["--name", "web"], ["-n", "web"], ["-nweb"], ["-n=web"],
    ["--name", "x", "--name", "web"],  # the last one wins
])
def test_value_spellings(args):
    assert parse(*args)[0]["name"] == "web"


def test_short_bundles_and_a_value_at_the_end():
    opts, rest = parse("-aqe", "K=V", "img")
    assert (opts["all"], opts["quiet"], opts["env"], rest) == (True, True, ["K=V"], ["img"])
    assert parse("-aqeK=V")[0]["env"] == ["K=V"]


def test_repeated_multi_flags_keep_their_order():
    assert parse("-e", "A=1", "--env=B=2", "-eC=3", "--env", "D")[0]["env"] == \
        ["A=1", "B=2", "C=3", "D"]


@pytest.mark.parametrize(("value", "want"), [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("t", True), ("T", True),
    ("false", False), ("False", False), ("FALSE", False), ("0", False), ("f", False),
    ("F", False),
])
def test_booleans_take_strconv_parsebool_spellings(value, want):
    assert parse(f"--rm={value}")[0]["rm"] is want
    assert parse(f"--sig-proxy={value}")[0]["sig_proxy"] is want
    assert parse(f"-a={value}")[0]["all"] is want


@pytest.mark.parametrize("value", ["yes", "no", "tRuE", "", "2"])
def test_other_boolean_spellings_are_refused_as_pflag_does(value):
    with pytest.raises(FlagError) as e:
        parse(f"--rm={value}")
    assert str(e.value) == (f'invalid argument "{value}" for "--rm" flag: strconv.ParseBool: '
                            f'parsing "{value}": invalid syntax')
    with pytest.raises(FlagError, match='for "-a, --all" flag'):
        parse(f"-a={value}")


def test_a_boolean_never_takes_the_next_argument():
    opts, rest = parse("--rm", "false")
    assert opts["rm"] is True and rest == ["false"]


def test_double_dash_ends_the_flags():
    opts, rest = parse("-a", "--", "-q", "--name=x")
    assert opts["all"] and not opts["quiet"] and rest == ["-q", "--name=x"]


def test_a_single_dash_is_an_operand():
    assert parse("-", "-a")[1] == ["-"]


def test_interspersed_and_not():
    opts, rest = parse("img", "-a")
    assert opts["all"] and rest == ["img"]
    opts, rest = parse("-q", "img", "-a", "--bogus", interspersed=False)
    assert opts["quiet"] and not opts["all"] and rest == ["img", "-a", "--bogus"]


def test_aliases_fill_the_first_long_name():
    assert parse("--net", "host")[0]["network"] == "host"


def test_optional_value():
    assert parse("--pull")[0]["pull"] is True
    assert parse("--pull=never")[0]["pull"] == "never"
    opts, rest = parse("--pull", "never")  # pflag's NoOptDefVal: the next word is an operand
    assert opts["pull"] is True and rest == ["never"]


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "unknown flag: --bogus"),
    (["--bogus=1"], "unknown flag: --bogus"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["-ax"], "unknown shorthand flag: 'x' in -ax"),
    (["--name"], "flag needs an argument: --name"),
    (["-n"], "flag needs an argument: 'n' in -n"),
    (["-an"], "flag needs an argument: 'n' in -an"),
])
def test_errors_in_pflags_words(args, message):
    with pytest.raises(FlagError) as e:
        parse(*args)
    assert str(e.value) == message


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["-ah"], ["img", "--help"], ["--help=1"]])
def test_help_is_asked(args):
    with pytest.raises(HelpRequested) as e:
        parse(*args)
    assert e.value.flags is TABLE


@pytest.mark.parametrize("args", [["--", "--help"], ["--help=false"]])
def test_help_is_not_asked(args):
    parse(*args)


def test_help_after_the_operands_of_a_non_interspersed_command_is_the_commands():
    cmd = Command("IMAGE [COMMAND]", "run", TABLE, interspersed=False)
    _, rest = cmd.parse(["img", "ls", "--help"])
    assert rest == ["img", "ls", "--help"]
    with pytest.raises(HelpRequested) as e:
        cmd.parse(["-a", "--help", "img"])
    assert e.value.command is cmd


def test_a_table_that_has_minus_h_keeps_it():
    table = [Flag("-h,--hostname", "value")]
    assert parse_flags(["-h", "box"], table)[0]["hostname"] == "box"
    with pytest.raises(FlagError, match="flag needs an argument: 'h' in -h"):
        parse_flags(["-h"], table)
    with pytest.raises(HelpRequested):
        parse_flags(["--help"], table)


def test_a_flag_error_comes_before_help():
    with pytest.raises(FlagError):
        parse("--help", "--bogus")


# ---------------------------------------------------------------------------- Go flag (runc)

GO = [Flag("-b,--bundle", "value", default="."), Flag("-d,--detach"), Flag("--keep"),
      Flag("-e,--env", "multi")]


@pytest.mark.parametrize("args", [
    ["--bundle", "/b"], ["-bundle", "/b"], ["--bundle=/b"], ["-bundle=/b"], ["-b", "/b"],
    ["-b=/b"],
])
def test_go_value_spellings(args):
    assert parse_go_flags([*args, "id"], GO, interspersed=True)[0]["bundle"] == "/b"


def test_go_booleans_and_no_bundles():
    opts, _ = parse_go_flags(["-detach", "--keep=false", "id"], GO)
    assert opts["detach"] and not opts["keep"]
    with pytest.raises(FlagError, match="flag provided but not defined: -dk"):
        parse_go_flags(["-dk", "id"], GO)
    with pytest.raises(FlagError) as e:
        parse_go_flags(["--keep=yes", "id"], GO)
    assert str(e.value) == 'invalid boolean value "yes" for -keep: parse error'


def test_go_errors():
    with pytest.raises(FlagError, match="^flag provided but not defined: -x$"):
        parse_go_flags(["--x"], GO)
    with pytest.raises(FlagError, match="^flag needs an argument: -bundle$"):
        parse_go_flags(["--bundle"], GO)


def test_go_first_operand_ends_the_flags_unless_interspersed():
    opts, pos = parse_go_flags(["id", "sh", "-d"], GO)
    assert not opts["detach"] and pos == ["id", "sh", "-d"]
    opts, pos = parse_go_flags(["id", "-d"], GO, interspersed=True)
    assert opts["detach"] and pos == ["id"]


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["-help"]])
def test_go_help(args):
    with pytest.raises(HelpRequested):
        parse_go_flags(args, GO)
