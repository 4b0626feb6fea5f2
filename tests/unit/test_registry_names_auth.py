"""The registry client's names (registries config), credentials (auth files, helpers) and
challenge parsing, without a registry."""

from __future__ import annotations

import base64
import json
import os

import pytest

from sangja.registry.auth import Credentials, lookup, parse_challenge, remove, store
from sangja.registry.config import RegistriesConfig, is_loopback
from sangja.registry.errors import RegistryError, UnresolvableName


def conf(tmp_path, text: str) -> RegistriesConfig:
    p = tmp_path / "registries.conf"
    p.write_text(text)
    return RegistriesConfig.load(str(p))


def names(refs) -> list[str]:
    return [str(r) for r in refs]


# ---------------------------------------------------------------------------- names


def test_default_config_sends_unqualified_names_nowhere(tmp_path):
    c = RegistriesConfig.load(str(tmp_path / "absent.conf"))
    for text in ("debian", "debian:12", "localhost/debian", "team/app:1"):
        with pytest.raises(UnresolvableName, match="unqualified-search-registries"):
            c.candidates(text)
    assert names(c.candidates("quay.io/team/app:1")) == ["quay.io/team/app:1"]
    assert names(c.candidates("127.0.0.1:5000/x")) == ["127.0.0.1:5000/x:latest"]
    assert names(c.candidates("docker.io/debian")) == ["docker.io/library/debian:latest"]
    assert names(c.candidates("localhost:5000/x@sha256:" + "a" * 64)) == [
        "localhost:5000/x@sha256:" + "a" * 64]


def test_search_aliases_mirrors_blocked(tmp_path):
    c = conf(tmp_path, """
unqualified-search-registries = ["r1.example", "docker.io"]

[[registry]]
prefix = "docker.io/library"
location = "hub-mirror.example/library"
  [[registry.mirror]]
  location = "127.0.0.1:5000/lib"
  insecure = true

[[registry]]
location = "bad.example"
blocked = true

[aliases]
"deb" = "docker.io/library/debian"
""")
    assert names(c.candidates("app:1")) == ["r1.example/app:1", "docker.io/library/app:1"]
    assert names(c.candidates("deb:12")) == ["docker.io/library/debian:12"]
    ref = c.candidates("docker.io/library/debian:12")[0]
    eps = c.endpoints(ref)
    assert [(str(e), e.insecure, e.mirror) for e in eps] == [
        ("127.0.0.1:5000/lib/debian", True, True),
        ("hub-mirror.example/library/debian", False, False)]
    assert [str(e) for e in c.endpoints(ref, for_push=True)] == [
        "hub-mirror.example/library/debian"]
    # the longest prefix wins; a prefix matches whole components only
    assert str(c.endpoints(c.candidates("docker.io/libraryx/a")[0])[0]) == \
        "docker.io/libraryx/a"
    with pytest.raises(UnresolvableName, match="blocked"):
        c.endpoints(c.candidates("bad.example/x")[0])
    assert c.insecure("127.0.0.1:5000") and not c.insecure("hub-mirror.example")
    # docker.io's API lives elsewhere
    plain = RegistriesConfig.load(str(tmp_path / "none"))
    assert plain.endpoints(plain.candidates("docker.io/x/y")[0])[0].api_host == \
        "registry-1.docker.io"


def test_drop_in_files_and_bad_configs(tmp_path):
    p = tmp_path / "registries.conf"
    p.write_text('unqualified-search-registries = ["a.example"]\n')
    (tmp_path / "registries.conf.d").mkdir()
    (tmp_path / "registries.conf.d" / "10-b.conf").write_text(
        'unqualified-search-registries = ["b.example"]\n')
    assert RegistriesConfig.load(str(p)).search == ["b.example"]
    for text, why in (("unqualified-search-registries = [", str(p)),
                      ("unqualified-search-registries = [1]", "list of names"),
                      ("[[registry]]\ninsecure = true\n", "location or a prefix"),
                      ('[[registry]]\nlocation = "x.example"\ninsecure = "yes"\n', "true or"),
                      ('[aliases]\n"a" = 5\n', "aliases")):
        p.write_text(text)
        with pytest.raises(RegistryError, match=why):
            RegistriesConfig.load(str(p))


@pytest.mark.parametrize(("host", "want"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1", True),
    ("127.8.9.10:443", True), ("[::1]:5000", True), ("::1", True),
    ("127.0.0.256", False), ("10.0.0.1:5000", False), ("localhost.example", False),
    ("128.0.0.1", False), ("example.com", False)])
def test_loopback(host, want):
    assert is_loopback(host) is want


# ---------------------------------------------------------------------------- challenges


def test_parse_challenge():
    assert parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                           'scope="repository:a/b:pull,push"') == (
        "bearer", {"realm": "https://auth.example/token", "service": "reg",
                   "scope": "repository:a/b:pull,push"})
    assert parse_challenge('Basic realm="x y"') == ("basic", {"realm": "x y"})
    assert parse_challenge('bearer realm=https://a/t, service=s') == (
        "bearer", {"realm": "https://a/t", "service": "s"})
    assert parse_challenge('Bearer realm="a\\"b"')[1] == {"realm": 'a"b'}
    assert parse_challenge("") == ("", {})


# ---------------------------------------------------------------------------- auth files


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    return tmp_path


def _auth(user: str, pw: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_store_lookup_remove(home):
    where = store("reg.example:5000", Credentials("u", "p"))
    assert where == str(home / "run" / "containers" / "auth.json")
    assert os.stat(where).st_mode & 0o777 == 0o600
    assert json.loads(open(where).read())["auths"]["reg.example:5000"] == _auth("u", "p")
    assert lookup("reg.example:5000") == Credentials("u", "p")
    assert lookup("reg.example:5000", "team/app") == Credentials("u", "p")
    assert lookup("other.example") is None
    assert repr(lookup("reg.example:5000")) == "Credentials(username='u')"  # no secret
    assert remove("reg.example:5000") and lookup("reg.example:5000") is None
    assert not remove("reg.example:5000")


def test_lookup_order_and_keys(home):
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": _auth("hub", "1"),
        "http://reg.example/v2/": _auth("docker", "2"),
        "reg.example/team": _auth("team", "3")}}))
    assert lookup("docker.io") == Credentials("hub", "1")
    assert lookup("reg.example") == Credentials("docker", "2")
    assert lookup("reg.example", "team/app") == Credentials("team", "3")  # most specific
    (home / ".config" / "containers").mkdir(parents=True)
    (home / ".config" / "containers" / "auth.json").write_text(json.dumps(
        {"auths": {"reg.example": _auth("cfg", "4")}}))
    assert lookup("reg.example") == Credentials("cfg", "4")  # before docker's
    store("reg.example", Credentials("podman", "5"))
    assert lookup("reg.example") == Credentials("podman", "5")  # podman's file first
    (home / ".docker" / "config.json").write_text('{"auths": {"x": {"auth": "!!"}}}')
    with pytest.raises(RegistryError, match="base64"):
        lookup("x")


def test_credential_helpers(home, monkeypatch):
    bindir = home / "bin"
    bindir.mkdir()
    log = home / "calls"
    helper = bindir / "docker-credential-unit"
    helper.write_text(f"""#!/bin/sh
read server
echo "$1 $server" >> {log}
case "$server" in
  tok.example) echo '{{"Username":"<token>","Secret":"refresh"}}' ;;
  none.example) echo "credentials not found in native keychain"; exit 1 ;;
  *) echo '{{"Username":"h","Secret":"s"}}' ;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps(
        {"credHelpers": {"a.example": "unit", "tok.example": "unit"}, "credsStore": "unit"}))
    assert lookup("a.example") == Credentials("h", "s")
    assert lookup("tok.example") == Credentials("", "", "refresh")
    assert lookup("none.example") is None  # credsStore asked, nothing there
    assert log.read_text().splitlines() == ["get a.example", "get tok.example",
                                            "get none.example"]
    (home / ".docker" / "config.json").write_text('{"credsStore": "../../bin/sh"}')
    with pytest.raises(RegistryError, match="invalid credential helper name"):
        lookup("b.example")
    (home / ".docker" / "config.json").write_text('{"credsStore": "missing-helper"}')
    with pytest.raises(RegistryError, match="docker-credential-missing-helper"):
        lookup("b.example")


def test_registry_key():
    from sangja.registry.logins import registry_key

    assert registry_key("https://index.docker.io/v1/") == "docker.io"
    assert registry_key("127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_key("http://quay.io/team/") == "quay.io/team"
    with pytest.raises(RegistryError):
        registry_key("  ")
