"""How to reach registries, as the commands' flags say it (shared by pull, push, login)."""

from __future__ import annotations

from sangja.records import dataclass, field
from sangja.registry.auth import Credentials, lookup
from sangja.registry.config import Endpoint, RegistriesConfig, is_loopback

__all__ = ["Options"]


@dataclass
class Options:
    """``tls_verify``: None (verify; plain HTTP where the registry is loopback or marked
    insecure), True (always verify, never plain HTTP) or False (``--tls-verify=false``).
    ``creds`` given on the command line win over the auth files (``auth_file`` or the
    defaults). ``jobs``: blobs transferred at once. ``chunk_size``: upload in PATCHes of
    that many bytes (None: one PUT per blob)."""

    tls_verify: bool | None = None
    cert_dir: str | None = None
    auth_file: str | None = None
    creds: Credentials | None = None
    config: RegistriesConfig | None = None
    jobs: int = 3
    chunk_size: int | None = None
    _sessions: dict = field(default_factory=dict)

    def registries(self) -> RegistriesConfig:
        if self.config is None:
            self.config = RegistriesConfig.load()
        return self.config

    def session(self, host: str, api_host: str | None = None, path: str | None = None,
                insecure: bool = False, creds: Credentials | None = None):
        """The Session for a registry (one per host for this operation: connections and
        tokens are reused)."""
        from sangja.registry.http import Session

        key = (host, path)
        s = self._sessions.get(key)
        if s is not None:
            return s
        insecure = insecure or self.registries().insecure(host)
        verify = self.tls_verify if self.tls_verify is not None else not insecure
        plain_ok = self.tls_verify is not True and (insecure or is_loopback(host)
                                                    or not verify)
        if creds is None:
            creds = self.creds or lookup(host, path, self.auth_file)
        s = Session(host, api_host=api_host, creds=creds, tls_verify=verify,
                    plain_http_ok=plain_ok, cert_dir=self.cert_dir)
        self._sessions[key] = s
        return s

    def session_for(self, ep: Endpoint):
        return self.session(ep.host, ep.api_host, ep.path, ep.insecure)

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
