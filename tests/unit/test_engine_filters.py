"""sangja.engine.filters: docker's filter keys, its errors, and its matching rules
(reference globs as Go's path.Match, ports as nat.ParsePortRange, labels AND-ed)."""

from __future__ import annotations

import pytest

from sangja.engine import filters as flt
from sangja.image.readonly import split_tag


def test_parse_groups_values_by_key():
    got = flt.parse(["label=a", "status=running", "label=b=c"], flt.PS_KEYS)
    assert got == {"label": ["a", "b=c"], "status": ["running"]}


def test_an_unknown_key_is_dockers_error_and_exit_1():
    with pytest.raises(flt.FilterError, match="^Invalid filter 'foo'$") as e:
        flt.parse(["foo=bar"], flt.PS_KEYS)
    assert e.value.engine_exit_code == 1


def test_prune_filters_refuse_what_the_daemon_refuses_exit_125():
    with pytest.raises(flt.PruneFilterError, match="^invalid filter 'reference'$") as e:
        flt.PruneFilter("image", flt.prune_filters(["reference=x"]))
    assert e.value.engine_exit_code == 125
    with pytest.raises(flt.PruneFilterError, match="^invalid filter 'until'$"):
        flt.PruneFilter("volume", {"until": ["1h"]})
    with pytest.raises(flt.PruneFilterError, match="^invalid filter 'all=maybe'$"):
        flt.PruneFilter("volume", {"all": ["maybe"]})
    with pytest.raises(flt.PruneFilterError, match="^more than one until filter"):
        flt.PruneFilter("container", {"until": ["1h", "2h"]})


@pytest.mark.parametrize("filters, created, labels, goes", [
    ({}, 5.0, {}, True),
    ({"until": ["10"]}, 9.5, {}, True),
    ({"until": ["10"]}, 10.0, {}, True),  # Docker keeps only what is created after it
    ({"until": ["10"]}, 10.5, {}, False),
    ({"until": ["1970-01-01T00:00:10Z"]}, 10.5, {}, False),
    ({"until": ["1970-01-01T00:00:10Z"]}, 9.0, {}, True),
    ({"label": ["a"]}, 0, {"a": ""}, True),
    ({"label": ["a"]}, 0, {}, False),
    ({"label": ["a=1", "b"]}, 0, {"a": "1"}, False),  # every label=
    ({"label": ["a=1"]}, 0, {"a": "2"}, False),
    ({"label!": ["a"]}, 0, {"a": "x"}, False),
    ({"label!": ["a=1"]}, 0, {"a": "2"}, True),
    ({"label!": ["a", "b"]}, 0, {"a": "x"}, True),  # moby: kept only if all label!= match
    ({"label!": ["a", "b"]}, 0, {"a": "x", "b": "y"}, False),
])
def test_prune_filter_decides_as_moby(filters, created, labels, goes):
    assert flt.PruneFilter("container", filters)(created, labels) is goes


def test_prune_until_takes_go_durations():
    import time

    keep = flt.PruneFilter("network", {"until": ["1h30m"]})
    assert keep.until is not None and abs(keep.until - (time.time() - 5400)) < 60


def test_a_filter_without_a_value_is_refused_like_the_flag_parser():
    with pytest.raises(flt.FilterSyntaxError, match="bad format of filter") as e:
        flt.parse(["dangling"], flt.IMAGES_KEYS)
    assert e.value.engine_exit_code == 125


@pytest.mark.parametrize("pattern, repo, tag, hit", [
    ("*/busy*", "localhost/busybox", "latest", True),
    ("busy*", "localhost/busybox", "latest", False),  # `*` does not cross a `/`
    ("localhost/busybox", "localhost/busybox", "1", True),  # the name alone: every tag
    ("localhost/busybox:1", "localhost/busybox", "1", True),
    ("localhost/busybox:2", "localhost/busybox", "1", False),
    ("*/*:1?", "example.com/x", "10", True),
    ("*/*", "example.com/x/y", "1", False),  # two parts, not three
    ("example.com/*/*:1?", "example.com/x/y", "10", True),
    ("alpine", "docker.io/library/alpine", "3", True),  # docker's familiar name
    ("library/alpine", "docker.io/library/alpine", "3", False),
    ("[a-c]*/x", "b.io/x", "1", True),
    ("[!a-c]*/x", "b.io/x", "1", False),
    ("*", "<none>", "<none>", False),
])
def test_reference_globs(pattern, repo, tag, hit):
    assert flt.reference_matches(pattern, repo, tag) is hit


def test_ports_expand_ranges_and_default_to_tcp():
    assert flt._ports("80") == {"80/tcp"}
    assert flt._ports("53/udp") == {"53/udp"}
    assert flt._ports("8000-8002/tcp") == {"8000/tcp", "8001/tcp", "8002/tcp"}
    for bad in ("x", "0", "9-8", "70000"):
        with pytest.raises(flt.FilterError):
            flt._ports(bad)


def test_labels_are_anded():
    labels = {"a": "1", "b": ""}
    assert flt.match_labels(labels, ["a", "b"])
    assert flt.match_labels(labels, ["a=1", "b="])
    assert not flt.match_labels(labels, ["a=2"])
    assert not flt.match_labels(labels, ["a", "c"])


def test_dangling_takes_docker_booleans_only():
    assert flt.parse_bool("dangling", ["true"]) and not flt.parse_bool("dangling", ["0"])
    with pytest.raises(flt.FilterError, match=r"Invalid filter 'dangling=\[maybe\]'"):
        flt.parse_bool("dangling", ["maybe"])


@pytest.mark.parametrize("name, split", [
    ("localhost/busybox:latest", ("localhost/busybox", "latest")),
    ("localhost:5000/a/b:1.0", ("localhost:5000/a/b", "1.0")),
    ("example.com/a@sha256:" + "0" * 64, ("example.com/a", "<none>")),
])
def test_split_tag_as_the_reference_parser(name, split):
    """Stored tags are canonical (a tag or a digest always): split as parse() would."""
    from sangja.image.reference import parse

    assert split_tag(name) == split
    ref = parse(name)
    assert (ref.name, ref.tag or "<none>") == split


def test_the_read_only_image_listing_knows_the_schema_version():
    """sangja.image.readonly opens images.db only at the version it reads (else the
    ImageStore opens and migrates it): the two numbers must move together."""
    from sangja.image import db, readonly

    assert readonly.IMAGES_SCHEMA_VERSION == db.SCHEMA_VERSION
