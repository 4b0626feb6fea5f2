"""sangja.image.config: image configs of the wrong shape are one ImageConfigError naming
the field; what the engine runs from has Docker's string forms normalized."""

from __future__ import annotations

import pytest

from sangja.image.config import ImageConfigError, check, run_config

GOOD = {
    "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": None, "User": "1000",
               "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "WorkingDir": "/",
               "Labels": {"a": "b"}, "StopSignal": "SIGTERM", "ArgsEscaped": True,
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
               "OnBuild": None, "Unknown": 5},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
    "history": [{"created_by": "x", "empty_layer": True}],
}

BAD = [
    ("config.Env", "x", "expected an array of strings, got a string"),
    ("config.Env", ["A=1", 5], "got an integer at [1]"),
    ("config.Cmd", 5, "expected a string or an array of strings, got an integer"),
    ("config.Entrypoint", {"a": 1}, "got an object"),
    ("config.ExposedPorts", ["80/tcp"], "expected an object (of empty objects), got an array"),
    ("config.ExposedPorts", {"80/tcp": 1}, "got an integer for '80/tcp'"),
    ("config.User", 1000, "expected a string, got an integer"),
    ("config.Volumes", ["/data"], "got an array"),
    ("config.Labels", {"a": 1}, "expected an object of strings, got an integer for 'a'"),
    ("config.Labels", "a=b", "got a string"),
    ("config.WorkingDir", ["/"], "got an array"),
    ("config.StopSignal", 15, "got an integer"),
    ("config.ArgsEscaped", "yes", "expected a boolean"),
    ("config.Healthcheck", "CMD true", "expected an object"),
    ("config.Healthcheck.Retries", "3", "expected an integer"),
    ("config", [], "config: expected an object, got an array"),
    ("history", {}, "history: expected an array of objects"),
    ("history", ["x"], "history: expected an array of objects"),
    ("created", 5, "created: expected a string"),
    ("architecture", None, None),  # null is "not given"
    ("rootfs.diff_ids", "sha256:x", "rootfs.diff_ids: expected an array of strings"),
]


def _with(path: str, value):
    import copy

    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    d = doc
    for p in parents:
        d = d[p]
    d[last] = value
    return doc


def test_good_config_passes():
    assert check(GOOD, "image x") is GOOD


@pytest.mark.parametrize("path,value,why", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_wrong_types_name_the_field(path, value, why):
    doc = _with(path, value)
    if why is None:
        check(doc)
        return
    with pytest.raises(ImageConfigError) as info:
        run_config(doc, "image sha256:abc")
    msg = str(info.value)
    assert msg.startswith("image sha256:abc: ")
    assert why in msg and path.split(".")[-1] in msg
    assert info.value.engine_exit_code == 125


@pytest.mark.parametrize("doc", [[], "x", 5, None])
def test_not_an_object(doc):
    with pytest.raises(ImageConfigError, match="expected a JSON object"):
        check(doc)


def test_string_command_is_one_word_as_docker_reads_it():
    run = run_config(_with("config.Cmd", "sh -c true"))
    assert run["Cmd"] == ["sh -c true"]
    run = run_config(_with("config.Entrypoint", "/bin/tini"))
    assert run["Entrypoint"] == ["/bin/tini"]
    assert run_config({"config": None}) == {}
