"""TLS for registries: the system's CAs, plus a registry's own directory of certificates as
containers/image and docker read them: ``/etc/containers/certs.d/HOST[:PORT]/`` (and
``/etc/docker/certs.d/...``), or the directory ``--cert-dir`` names. In it, ``*.crt`` files
are CA certificates to trust for that registry, and each ``NAME.cert`` with its ``NAME.key``
a client certificate to present. Verification is off only when asked (``--tls-verify=false``
or an ``insecure`` registry in the registries config)."""

from __future__ import annotations

import os

from sangja.registry.errors import RegistryError

CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
ENV_CERTS_D = "SANGJA_CERTS_D"  # another root instead of CERTS_D (tests, unusual setups)

_cache: dict[tuple[str, bool, str | None], object] = {}


def cert_dirs(host: str, cert_dir: str | None = None) -> list[str]:
    if cert_dir:
        return [cert_dir]
    roots = os.environ.get(ENV_CERTS_D, "").split(":") if os.environ.get(ENV_CERTS_D) \
        else list(CERTS_D)
    return [os.path.join(r, host) for r in roots]


def ssl_context(host: str, *, verify: bool = True, cert_dir: str | None = None):
    """An ssl.SSLContext for talking to `host` (``name[:port]``)."""
    key = (host, verify, cert_dir)
    ctx = _cache.get(key)
    if ctx is not None:
        return ctx
    import ssl

    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for d in cert_dirs(host, cert_dir):
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            if cert_dir:
                raise RegistryError(f"--cert-dir {cert_dir}: no such directory") from None
            continue
        except NotADirectoryError:
            raise RegistryError(f"{d}: not a directory") from None
        for name in names:
            path = os.path.join(d, name)
            try:
                if name.endswith(".crt"):
                    ctx.load_verify_locations(cafile=path)
                elif name.endswith(".cert"):
                    key_path = path[:-len(".cert")] + ".key"
                    if not os.path.exists(key_path):
                        raise RegistryError(f"{path}: client certificate without its key "
                                            f"{os.path.basename(key_path)}")
                    ctx.load_cert_chain(path, key_path)
                elif name.endswith(".key") and not os.path.exists(path[:-4] + ".cert"):
                    raise RegistryError(f"{path}: client key without its certificate "
                                        f"{name[:-4]}.cert")
            except (ssl.SSLError, OSError) as e:
                raise RegistryError(f"{path}: cannot load: {e}") from None
    _cache[key] = ctx
    return ctx
