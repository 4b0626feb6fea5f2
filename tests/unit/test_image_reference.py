"""Image reference parsing and normalization (docker/distribution grammar, local default)."""

import pytest

from sangja.image.reference import InvalidReference, Reference, parse

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "localhost", "busybox", "latest", None),
        ("busybox:1.36", "localhost", "busybox", "1.36", None),
        ("library/busybox", "localhost", "library/busybox", "latest", None),
        ("localhost/busybox", "localhost", "busybox", "latest", None),
        ("localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", None),
        (f"quay.io/x/y@{SHA}", "quay.io", "x/y", None, SHA),
        (f"name:tag@{SHA}", "localhost", "name", "tag", SHA),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/busybox:1", "docker.io", "library/busybox", "1", None),
        ("docker.io/user/img", "docker.io", "user/img", "latest", None),
        ("Registry/foo", "Registry", "foo", "latest", None),
        ("127.0.0.1:5000/foo", "127.0.0.1:5000", "foo", "latest", None),
        ("[::1]:5000/foo:v1", "[::1]:5000", "foo", "v1", None),
        ("my-reg.example.com/a_b/c__d/e-f--g/h.i:V1_x.y-z", "my-reg.example.com",
         "a_b/c__d/e-f--g/h.i", "V1_x.y-z", None),
        ("a/b/c/d/e", "localhost", "a/b/c/d/e", "latest", None),
        ("foo:" + "t" * 128, "localhost", "foo", "t" * 128, None),
        ("foo@sha512:" + "0" * 128, "localhost", "foo", None, "sha512:" + "0" * 128),
        ("foo@blake3:" + "f" * 32, "localhost", "foo", None, "blake3:" + "f" * 32),
        ("host:1/foo:_tag", "host:1", "foo", "_tag", None),
    ],
)
def test_good(text, domain, path, tag, digest):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert parse(str(ref)) == ref  # canonical form round-trips


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("localhost/Busybox", "'Busybox' must be lowercase"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("/a", "empty path component"),
        ("busybox:", "empty tag"),
        ("busybox:-x", "tag '-x'"),
        ("busybox:" + "t" * 129, "tag"),
        ("busybox:a/b", "port 'a'"),
        ("busybox@", "empty digest"),
        ("busybox@sha256:abc", "needs 64 hex digits, got 3"),
        ("busybox@sha256:" + "a" * 65, "got 65"),
        ("busybox@sha256:" + "A" * 64, "lowercase hexadecimal"),
        ("busybox@sha256", "algorithm:hex"),
        ("busybox@md5:abcd", "32+ digits"),
        ("busybox@SHA256:" + "a" * 64, "algorithm 'SHA256'"),
        ("a@b@c", "more than one '@'"),
        ("a" * 256, "256 characters (max 255)"),
        ("-foo", "component '-foo'"),
        ("foo-", "component 'foo-'"),
        ("foo..bar", "component 'foo..bar'"),
        ("foo___bar", "component 'foo___bar'"),
        ("exa_mple.com/foo", "host 'exa_mple.com'"),
        ("-bad.com/foo", "host '-bad.com'"),
        ("host:port/foo", "port 'port'"),
        ("foo bar", "whitespace"),
        (":tag", "repository name is empty"),
    ],
)
def test_bad(text, needle):
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_str_and_familiar():
    ref = parse("busybox")
    assert str(ref) == "localhost/busybox:latest"
    assert ref.familiar() == "busybox:latest"
    ref = parse(f"quay.io/x/y:1@{SHA}")
    assert str(ref) == f"quay.io/x/y:1@{SHA}"
    assert ref.familiar() == str(ref)
    assert parse("docker.io/busybox").familiar() == "docker.io/library/busybox:latest"
    assert parse(f"b@{SHA}").familiar() == f"b@{SHA}"


def test_frozen_slots():
    ref = parse("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert not hasattr(ref, "__dict__")
    assert ref == Reference("localhost", "busybox", "latest", None)
    assert hash(ref) == hash(Reference("localhost", "busybox", "latest", None))


def test_hand_written_matchers_agree_with_the_grammar_regexes():
    """reference.py checks the grammar without `re` (start-up time): the same answers as
    the distribution grammar's regexes, on random strings over the characters that matter."""
    import random
    import re

    from sangja.image import reference as r

    dc = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    cases = [
        (r._is_path_component, re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"),
         "ab09._-A/"),
        (r._is_algorithm, re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*"), "az9+._-A"),
        (r._is_host, re.compile(rf"{dc}(?:\.{dc})*|\[[0-9a-fA-F:.]+\]"), "aZ9-.[]:fg"),
        (r._is_port, re.compile(r"[0-9]+"), "09a"),
        (r._is_tag, re.compile(r"[\w][\w.-]{0,127}", re.ASCII), "aZ9_.-/é"),
    ]
    rng = random.Random(11)
    for check, rx, alphabet in cases:
        for _n in range(6000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
            assert check(text) == bool(rx.fullmatch(text)), (check.__name__, text)
    assert r._is_tag("a" * 128) and not r._is_tag("a" * 129)
