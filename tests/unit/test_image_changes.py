"""apply_changes: Dockerfile instructions (commit/import --change) applied to an image config."""

from __future__ import annotations

import pytest

from sangja.image.changes import ChangeError, apply_changes

BASE = {"Env": ["PATH=/usr/bin:/bin", "HOME=/root"], "Cmd": ["sh"]}


def test_input_not_modified_and_copy_returned():
    base = {"Env": ["A=1"], "Labels": {"x": "1"}}
    out = apply_changes(base, ["ENV A=2", "LABEL y=2"])
    assert base == {"Env": ["A=1"], "Labels": {"x": "1"}}
    assert out == {"Env": ["A=2"], "Labels": {"x": "1", "y": "2"}}
    assert apply_changes({}, []) == {}
    assert apply_changes(None, ["USER 1"]) == {"User": "1"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change, expected",
    [
        ('CMD ["/bin/echo", "hi"]', ["/bin/echo", "hi"]),
        ("CMD echo hi there", ["/bin/sh", "-c", "echo hi there"]),
        ("CMD []", []),
        ("CMD [not json", ["/bin/sh", "-c", "[not json"]),
        ('CMD ["mixed", 1]', ["/bin/sh", "-c", '["mixed", 1]']),
        ("cmd lower case", ["/bin/sh", "-c", "lower case"]),
        ('CMD echo "$HOME"', ["/bin/sh", "-c", 'echo "$HOME"']),  # the shell expands it
    ],
)
def test_cmd(change, expected):
    assert apply_changes(BASE, [change])["Cmd"] == expected


def test_shell_form_uses_config_shell():
    out = apply_changes({"Shell": ["/bin/bash", "-ec"]}, ["CMD make", "ENTRYPOINT run it"])
    assert out["Entrypoint"] == ["/bin/bash", "-ec", "run it"]
    assert out["Cmd"] == ["/bin/bash", "-ec", "make"]


def test_entrypoint_clears_cmd_unless_cmd_given_first():
    out = apply_changes(BASE, ['ENTRYPOINT ["/init"]'])
    assert out["Entrypoint"] == ["/init"] and "Cmd" not in out
    out = apply_changes(BASE, ['CMD ["x"]', "ENTRYPOINT /init --flag"])
    assert out["Entrypoint"] == ["/bin/sh", "-c", "/init --flag"] and out["Cmd"] == ["x"]
    out = apply_changes(BASE, ["ENTRYPOINT /init", 'CMD ["y"]'])
    assert out["Cmd"] == ["y"]


def test_env_forms():
    out = apply_changes(BASE, ['ENV A=1 B="two words" C=three\\ words D=\'$HOME\''])
    assert out["Env"][2:] == ["A=1", "B=two words", "C=three words", "D=$HOME"]
    out = apply_changes(BASE, ["ENV GREETING hello   big world"])
    assert out["Env"][-1] == "GREETING=hello   big world"
    out = apply_changes(BASE, ['ENV Q "quoted value"'])
    assert out["Env"][-1] == "Q=quoted value"


def test_env_replaces_existing_and_expands():
    out = apply_changes(BASE, ["ENV PATH=$PATH:/opt/bin HOME=/home/x"])
    assert out["Env"] == ["PATH=/usr/bin:/bin:/opt/bin", "HOME=/home/x"]
    # one ENV expands against the Env before it (Docker), the next sees the result
    out = apply_changes({}, ["ENV A=1 B=$A", "ENV C=${A}-${B}"])
    assert out["Env"] == ["A=1", "B=", "C=1-"]
    out = apply_changes({"Env": ["A=x"]}, [
        "ENV B=${A:-d} C=${NOPE:-d} D=${A:+alt} E=${NOPE:+alt} F=\"$A and \\$A\""])
    assert out["Env"][1:] == ["B=x", "C=d", "D=alt", "E=", "F=x and $A"]


@pytest.mark.parametrize(
    "change, message",
    [
        ("ENV", "at least one argument"),
        ("ENV ONLYKEY", "must have two arguments"),
        ("ENV A=1 B", "can't find = in 'B'"),
        ("ENV =1", "can not be blank"),
        ('ENV A="unterminated', "double-quote"),
        ("ENV A='unterminated", "single-quote"),
        ("ENV A=${NOPE:?must_be_set}", "must_be_set"),
        ("ENV A=${", "missing .}."),  # BuildKit: "syntax error: missing '}'"
    ],
)
def test_env_errors(change, message):
    with pytest.raises(ChangeError, match=message):
        apply_changes(BASE, [change])


def test_workdir():
    assert apply_changes({}, ["WORKDIR /app"])["WorkingDir"] == "/app"
    assert apply_changes({}, ["WORKDIR rel"])["WorkingDir"] == "/rel"
    out = apply_changes({"WorkingDir": "/srv"}, ["WORKDIR a/../b", "WORKDIR c"])
    assert out["WorkingDir"] == "/srv/b/c"
    out = apply_changes({"Env": ["D=/data"]}, ["WORKDIR $D/x"])
    assert out["WorkingDir"] == "/data/x"


def test_user_stopsignal_label_onbuild():
    out = apply_changes({"Env": ["U=app"]}, [
        "USER $U:1000",
        "STOPSIGNAL SIGINT",
        'LABEL maintainer="A B" version=1.0',
        "LABEL legacy some value",
        "ONBUILD RUN make install",
        "onbuild COPY . /src",
    ])
    assert out["User"] == "app:1000"
    assert out["StopSignal"] == "SIGINT"
    assert out["Labels"] == {"maintainer": "A B", "version": "1.0", "legacy": "some value"}
    assert out["OnBuild"] == ["RUN make install", "COPY . /src"]
    for sig in ("TERM", "9", "SIGRTMIN+3", "sigkill", "RTMAX"):
        assert apply_changes({}, [f"STOPSIGNAL {sig}"])["StopSignal"] == sig


@pytest.mark.parametrize("sig", ["SIGNOPE", "0", "999", "SIGRTMIN+99", "-1"])
def test_bad_stopsignal(sig):
    with pytest.raises(ChangeError, match="STOPSIGNAL"):
        apply_changes({}, [f"STOPSIGNAL {sig}"])


def test_expose():
    out = apply_changes({"ExposedPorts": {"22/tcp": {}}}, ["EXPOSE 80 53/udp 8000-8002/TCP"])
    assert out["ExposedPorts"] == {
        "22/tcp": {}, "80/tcp": {}, "53/udp": {},
        "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {},
    }
    assert apply_changes({"Env": ["P=443"]}, ["EXPOSE $P"])["ExposedPorts"] == {"443/tcp": {}}


@pytest.mark.parametrize("ports", ["http", "0", "70000", "80/icmp", "90-80", "80/"])
def test_bad_expose(ports):
    with pytest.raises(ChangeError, match="EXPOSE"):
        apply_changes({}, [f"EXPOSE {ports}"])


def test_volume():
    out = apply_changes({}, ['VOLUME ["/data", "/var/log"]', "VOLUME /a /b"])
    assert out["Volumes"] == {"/data": {}, "/var/log": {}, "/a": {}, "/b": {}}
    with pytest.raises(ChangeError, match="empty"):
        apply_changes({}, ['VOLUME [""]'])


@pytest.mark.parametrize("instr", ["RUN make", "FROM x", "COPY a b", "ADD a b", "SHELL [\"x\"]",
                                   "HEALTHCHECK NONE", "ARG x", "MAINTAINER me", "BOGUS 1"])
def test_unknown_instruction_named(instr):
    word = instr.split()[0]
    with pytest.raises(ChangeError, match=f"^{word} is not a valid change command"):
        apply_changes(BASE, [instr])


@pytest.mark.parametrize(
    "change, message",
    [
        ("CMD", "CMD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "ONBUILD ONBUILD"),
        ("ONBUILD FROM x", "FROM isn't allowed"),
        ("ONBUILD NOPE x", "unknown instruction"),
        ("WORKDIR ''", "WORKDIR cannot be empty"),
    ],
)
def test_malformed(change, message):
    with pytest.raises(ChangeError, match=message):
        apply_changes(BASE, [change])


def test_multiline_change_and_continuations():
    out = apply_changes({}, ["# a comment\nENV A=1 \\\n    B=2\n\nUSER nobody"])
    assert out["Env"] == ["A=1", "B=2"] and out["User"] == "nobody"


def test_non_string_change():
    with pytest.raises(ChangeError):
        apply_changes({}, [["CMD", "x"]])  # type: ignore[list-item]
