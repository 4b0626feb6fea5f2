"""Command-line surface: --version, spec, features, flags, logging."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import new_id

pytestmark = pytest.mark.root


def test_version(runtime):
    r = runtime.run("--version")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert re.search(r"version\s+\d+\.\d+", first), first
    assert re.search(r"^spec:\s*1\.\d+\.\d+", r.stdout, re.M), r.stdout


def test_spec_writes_valid_config(runtime, tmp_path):
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    r = runtime.run("spec", "--bundle", bundle)
    assert r.returncode == 0, r.stderr
    config = json.loads((bundle / "config.json").read_text())
    for key in ("ociVersion", "process", "root", "mounts", "linux"):
        assert key in config, config.keys()
    assert config["ociVersion"].startswith("1.")
    assert config["root"]["path"] == "rootfs"
    assert isinstance(config["process"]["args"], list) and config["process"]["args"]
    assert any(m["destination"] == "/proc" for m in config["mounts"])
    ns_types = {ns["type"] for ns in config["linux"]["namespaces"]}
    assert {"pid", "mount"} <= ns_types


def test_spec_refuses_to_overwrite(runtime, tmp_path):
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"keep": true}')
    r = runtime.run("spec", "--bundle", bundle)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert json.loads((bundle / "config.json").read_text()) == {"keep": True}


def test_spec_output_runs(runtime, tmp_path, busybox_rootfs):
    """The generated spec, with terminal off and a command, runs with a busybox rootfs."""
    bundle = tmp_path / "specrun"
    bundle.mkdir()
    runtime.run("spec", "--bundle", bundle, check=True)
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["echo", "spec-ok"]
    (bundle / "config.json").write_text(json.dumps(config))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "spec-ok\n"


def test_features(runtime):
    r = runtime.run("features")
    assert r.returncode == 0, r.stderr
    features = json.loads(r.stdout)
    assert features["ociVersionMin"].startswith("1.")
    assert features["ociVersionMax"].startswith("1.")
    hooks = set(features["hooks"])
    assert {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
            "poststop"} <= hooks
    assert "rbind" in features.get("mountOptions", [])
    assert {"pid", "network", "mount", "ipc", "uts"} <= set(features["linux"]["namespaces"])


@pytest.mark.parametrize("args", [("state", "--bogus-flag", "x"), ("create", "--nope", "x"),
                                  ("--bogus-global", "list")])
def test_unknown_flag(runtime, args):
    r = runtime.run(*args)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert "bogus" in r.stderr or "nope" in r.stderr


def test_log_file_json(runtime, tmp_path):
    log = tmp_path / "runtime.log"
    cid = new_id()
    r = runtime.run("state", cid, global_args=("--log", log, "--log-format", "json"))
    assert r.returncode != 0
    assert log.exists(), "log file not written"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert entries, "no log entries for a failing command"
    assert any(e.get("level") == "error" and e.get("msg") for e in entries), entries


def test_log_format_text_accepted(runtime, tmp_path):
    log = tmp_path / "runtime.log"
    r = runtime.run("list", global_args=("--log", log, "--log-format", "text"))
    assert r.returncode == 0, r.stderr


def test_debug_flag_accepted(runtime, tmp_path):
    r = runtime.run("list", global_args=("--debug",))
    assert r.returncode == 0, r.stderr


def test_systemd_cgroup_flag_accepted(runtime):
    r = runtime.run("list", "--format", "json", global_args=("--systemd-cgroup",))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) in (None, [])


def test_help(runtime):
    r = runtime.run("--help")
    assert r.returncode == 0
    for command in ("create", "start", "state", "kill", "delete", "run", "exec", "list", "spec"):
        assert command in r.stdout


def test_root_dir_is_created(runtime, tmp_path, make_bundle):
    """--root pointing at a directory that does not exist yet is created on demand."""
    shutil.rmtree(runtime.root)
    bundle = make_bundle(args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
