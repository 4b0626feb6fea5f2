"""The service's mappings that need no engine: Docker's update body as the engine's
Changes, and the docker client's image names back to the text its user typed."""

from __future__ import annotations

import pytest

from sangja.api.containers import update_changes
from sangja.api.names import familiar, local_name
from sangja.engine.options import RestartPolicy
from sangja.image.store import ImageStore


def test_update_body_zero_keeps():
    # the docker CLI's `update --memory 64m`: every field, the unset ones 0
    ch = update_changes({"Memory": 64 << 20, "MemorySwap": 0, "CpuShares": 0, "NanoCpus": 0,
                         "CpuQuota": 0, "CpuPeriod": 0, "BlkioWeight": 0, "CpusetCpus": "",
                         "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}})
    assert ch.memory == 64 << 20
    assert ch.memory_swap is ch.cpus is ch.cpu_shares is ch.restart is ch.pids_limit is None


def test_update_body_fields():
    ch = update_changes({"NanoCpus": 1_500_000_000, "PidsLimit": 0, "MemorySwap": -1,
                         "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    assert ch.cpus == 1.5 and ch.pids_limit == 0 and ch.memory_swap == -1
    assert ch.restart == RestartPolicy("on-failure", 3)
    assert update_changes({"CpuQuota": 50000, "CpuPeriod": 100000}).cpus == 0.5


@pytest.mark.parametrize("body", [{"Memory": "64m"}, {"Memory": True},
                                  {"RestartPolicy": {"Name": "sometimes"}}])
def test_update_body_bad(body):
    with pytest.raises(ValueError):
        update_changes(body)


@pytest.mark.parametrize("sent,typed", [
    ("docker.io/library/foo:1", "foo:1"), ("docker.io/me/foo", "me/foo"),
    ("index.docker.io/library/foo", "foo"), ("foo:1", "foo:1"),
    ("localhost:5000/foo:1", "localhost:5000/foo:1"), ("quay.io/x/y", "quay.io/x/y")])
def test_familiar(sent, typed):
    assert familiar(sent) == typed


def test_local_name_is_the_stores_rule():
    assert local_name(ImageStore, "docker.io/library/foo:1") == ImageStore.canonical("foo:1")
    assert local_name(ImageStore, "docker.io/library/foo:1") == "localhost/foo:1"
