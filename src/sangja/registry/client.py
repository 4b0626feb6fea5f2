"""The OCI distribution API of one repository: manifests, blobs, uploads, tags.

Everything that comes back is checked before it is used: a manifest's bytes against the digest
asked for (or the ``Docker-Content-Digest`` the registry sends), a blob by the ingest path
(sangja.image.ingest) as it streams. A blob download that breaks off is resumed where it
stopped with a ``Range`` request (or, when the registry ignores Range, read again from the
start, skipping what was had), up to ``http.ATTEMPTS`` times.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

from sangja import jsonio
from sangja.image import manifest as mf
from sangja.registry import http
from sangja.registry.errors import NotFound, RegistryError, Unauthorized

__all__ = ["BlobReader", "Repository"]

_CHUNK = 1 << 20


def _errors(r) -> str:
    """The registry's error document, as one phrase ("MANIFEST_UNKNOWN: manifest unknown")."""
    try:
        doc = jsonio.loads(r.data[:65536] or b"{}")
        items = doc.get("errors") if isinstance(doc, dict) else None
        parts = []
        for e in items or []:
            if isinstance(e, dict):
                parts.append(": ".join(str(x) for x in (e.get("code"), e.get("message")) if x))
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {r.status}"


class Repository:
    """``path`` (``library/debian``) on the registry of ``session``."""

    def __init__(self, session: http.Session, path: str):
        self.session = session
        self.path = path
        self.pull_scope = f"repository:{path}:pull"
        self.push_scope = f"repository:{path}:pull,push"

    def __str__(self) -> str:
        return f"{self.session.host}/{self.path}"

    def _fail(self, r, what: str) -> RegistryError:
        text = _errors(r)
        r.release_conn()
        if r.status == 404:
            return NotFound(f"{self}: {what}: not found ({text})")
        if r.status in (401, 403):
            creds = self.session.creds
            hint = ("the credentials were refused" if creds and (creds.username or
                                                                  creds.identity_token)
                    else f"it needs a login (sangja login {self.session.host}), or does not "
                         "exist")
            return Unauthorized(f"{self}: {what}: access denied ({text}): {hint}")
        return RegistryError(f"{self}: {what}: {text}")

    # -- manifests -----------------------------------------------------------------------
    def manifest(self, ref: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest or index ``ref`` (a tag or digest)."""
        r = self.session.request("GET", f"/v2/{self.path}/manifests/{ref}",
                                 scope=self.pull_scope, headers={"Accept": mf.ACCEPT},
                                 stream=True)
        if r.status != 200:
            raise self._fail(r, f"manifest {ref}")
        try:
            data = r.read(mf.MAX_MANIFEST_BYTES + 1)
        except http.urllib3.exceptions.HTTPError as e:
            raise RegistryError(f"{self}: manifest {ref}: {http.describe(e)}") from None
        finally:
            r.release_conn()
        if len(data) > mf.MAX_MANIFEST_BYTES:
            raise RegistryError(f"{self}: manifest {ref} is larger than "
                                f"{mf.MAX_MANIFEST_BYTES} bytes")
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        want = ref if ref.startswith("sha256:") else r.headers.get("Docker-Content-Digest")
        if ref.startswith("sha512:"):
            want = None
            if f"sha512:{hashlib.sha512(data).hexdigest()}" != ref:
                raise RegistryError(f"{self}: manifest {ref}: content does not match its "
                                    "digest")
            actual = ref
        if want and want.startswith("sha256:") and want != actual:
            raise RegistryError(f"{self}: manifest {ref}: content does not match its digest "
                                f"(expected {want}, got {actual})")
        media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        return data, media, actual

    def put_manifest(self, ref: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref``; return its digest (checked against the one the
        registry computed, ``Docker-Content-Digest``)."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        r = self.session.request("PUT", f"/v2/{self.path}/manifests/{ref}",
                                 scope=self.push_scope, body=data,
                                 headers={"Content-Type": media_type})
        if r.status not in (200, 201):
            raise self._fail(r, f"manifest {ref}")
        got = r.headers.get("Docker-Content-Digest")
        r.release_conn()
        if got and got != digest:
            raise RegistryError(f"{self}: manifest {ref}: the registry stored digest {got}, "
                                f"not {digest}")
        return digest

    def tags(self) -> list[str]:
        out: list[str] = []
        url = f"/v2/{self.path}/tags/list"
        for _ in range(1000):
            r = self.session.request("GET", url, scope=self.pull_scope)
            if r.status != 200:
                raise self._fail(r, "tags")
            try:
                doc = jsonio.loads(r.data, source=f"{self}: tags")
            except ValueError as e:
                raise RegistryError(str(e)) from None
            tags = doc.get("tags") if isinstance(doc, dict) else None
            out += [t for t in tags or [] if isinstance(t, str)]
            link = r.headers.get("Link", "")
            if 'rel="next"' not in link:
                break
            url = link.split(";")[0].strip().strip("<>")
        return out

    # -- blobs ---------------------------------------------------------------------------
    def blob_size(self, digest: str, scope: str | None = None) -> int | None:
        """The blob's size if the repository has it, else None."""
        r = self.session.request("HEAD", f"/v2/{self.path}/blobs/{digest}",
                                 scope=scope or self.pull_scope)
        r.release_conn()
        if r.status == 200:
            try:
                return int(r.headers.get("Content-Length", "0"))
            except ValueError:
                return 0
        if r.status == 404:
            return None
        raise self._fail(r, f"blob {digest}")

    def open_blob(self, digest: str, size: int | None, on_bytes=None) -> BlobReader:
        return BlobReader(self, digest, size, on_bytes)

    def read_blob(self, digest: str, size: int, limit: int) -> bytes:
        """A small blob (a config), verified against its digest and size."""
        if size > limit:
            raise RegistryError(f"{self}: blob {digest} is too large ({size} bytes)")
        reader = self.open_blob(digest, size)
        data = b""
        while len(data) <= size and (chunk := reader.read(_CHUNK)):
            data += chunk
        algo, _, hexpart = digest.partition(":")
        if len(data) != size or hashlib.new(algo, data).hexdigest() != hexpart:
            raise RegistryError(f"{self}: blob {digest}: content does not match its digest "
                                "and size")
        return data

    # -- uploads -------------------------------------------------------------------------
    def mount(self, digest: str, source_path: str) -> bool:
        """Cross-repository blob mount from ``source_path`` on the same registry."""
        scope = f"{self.push_scope} repository:{source_path}:pull"
        r = self.session.request(
            "POST", f"/v2/{self.path}/blobs/uploads/?mount={quote(digest)}&"
                    f"from={quote(source_path)}", scope=scope)
        status = r.status
        location = r.headers.get("Location")
        r.release_conn()
        if status == 201:
            return True
        if status == 202 and location:  # not mounted: an upload was opened; cancel it
            d = self.session.request("DELETE", location, scope=self.push_scope)
            d.release_conn()
            return False
        if status in (401, 403, 404):
            return False
        raise RegistryError(f"{self}: mount of {digest}: HTTP {status}")

    def _start_upload(self) -> str:
        r = self.session.request("POST", f"/v2/{self.path}/blobs/uploads/",
                                 scope=self.push_scope)
        if r.status != 202 or not r.headers.get("Location"):
            raise self._fail(r, "blob upload")
        location = r.headers["Location"]
        r.release_conn()
        return location

    def upload(self, digest: str, size: int, open_at, chunk_size: int | None = None,
               on_bytes=None) -> None:
        """Upload a blob: ``open_at(offset)`` gives a reader of its bytes from there.
        Monolithic (one PUT) unless ``chunk_size`` is given and smaller than the blob: then
        PATCHes of that size and a closing PUT; a chunk that fails is sent again after
        asking the registry how far it got."""
        for attempt in range(http.ATTEMPTS):
            try:
                location = self._start_upload()
                if chunk_size and size > chunk_size:
                    location = self._chunks(location, size, open_at, chunk_size, on_bytes)
                    self._finish(location, digest, b"")
                else:
                    self._finish(location, digest, _Body(open_at, 0, size, on_bytes), size)
                return
            except _Retry as e:
                if attempt + 1 == http.ATTEMPTS:
                    raise RegistryError(f"{self}: upload of {digest}: {e}") from None
                time.sleep(http.BACKOFF * (2 ** attempt))

    def _chunks(self, location: str, size: int, open_at, chunk_size: int, on_bytes) -> str:
        offset = 0
        failures = 0
        while offset < size:
            n = min(chunk_size, size - offset)
            r = self.session.request(
                "PATCH", location, scope=self.push_scope,
                body=_Body(open_at, offset, n, on_bytes),
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(n),
                         "Content-Range": f"{offset}-{offset + n - 1}"})
            if r.status == 202:
                location = r.headers.get("Location") or location
                r.release_conn()
                offset += n
                continue
            failures += 1
            if failures >= http.ATTEMPTS or r.status not in (416, *http.RETRY_STATUS):
                raise self._fail(r, "blob upload chunk")
            r.release_conn()
            offset = self._upload_offset(location)  # ask where the upload stands
        return location

    def _upload_offset(self, location: str) -> int:
        r = self.session.request("GET", location, scope=self.push_scope)
        rng = r.headers.get("Range", "")
        r.release_conn()
        if r.status != 204:
            raise _Retry(f"upload status: HTTP {r.status}")
        try:
            return int(rng.rpartition("-")[2]) + 1 if rng else 0
        except ValueError:
            raise _Retry(f"upload status: bad Range {rng!r}") from None

    def _finish(self, location: str, digest: str, body, size: int = 0) -> None:
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        r = self.session.request("PUT", f"{location}{sep}digest={quote(digest)}",
                                 scope=self.push_scope, body=body, headers=headers)
        if r.status in http.RETRY_STATUS:
            r.release_conn()
            raise _Retry(f"HTTP {r.status}")
        if r.status != 201:
            raise self._fail(r, f"blob {digest}")
        got = r.headers.get("Docker-Content-Digest")
        r.release_conn()
        if got and got != digest:
            raise RegistryError(f"{self}: blob {digest}: the registry stored digest {got}")


class _Retry(Exception):
    pass


class _Body:
    """An upload body (a function returning a fresh iterable of chunks: sent again on a
    retry), counting what goes out."""

    def __init__(self, open_at, offset: int, size: int, on_bytes):
        self.open_at, self.offset, self.size, self.on_bytes = open_at, offset, size, on_bytes

    def __call__(self):
        reader = self.open_at(self.offset)
        left = self.size
        on_bytes = self.on_bytes

        def chunks():
            nonlocal left
            while left > 0:
                chunk = reader.read(min(_CHUNK, left))
                if not chunk:
                    raise RegistryError("blob source ended early")
                left -= len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                yield chunk

        return chunks()


class BlobReader:
    """A blob download as a reader (``read(n)``), resumed where it broke off."""

    def __init__(self, repo: Repository, digest: str, size: int | None, on_bytes=None):
        self.repo, self.digest, self.size, self.on_bytes = repo, digest, size, on_bytes
        self.pos = 0
        self.resp: http.urllib3.BaseHTTPResponse | None = None
        self.failures = 0
        self.eof = False

    def _open(self) -> http.urllib3.BaseHTTPResponse:
        headers = {"Range": f"bytes={self.pos}-"} if self.pos else {}
        r = self.repo.session.request("GET", f"/v2/{self.repo.path}/blobs/{self.digest}",
                                      scope=self.repo.pull_scope, headers=headers, stream=True)
        if self.pos and r.status == 206:
            start = r.headers.get("Content-Range", "").partition(" ")[2].partition("-")[0]
            if start != str(self.pos):
                r.release_conn()
                raise RegistryError(f"{self.repo}: blob {self.digest}: the registry resumed "
                                    f"at {start or '?'}, not at byte {self.pos}")
        elif r.status == 200:
            skip = self.pos  # no Range support: read from the start again, skip what we had
            while skip > 0:
                got = r.read(min(_CHUNK, skip))
                if not got:
                    raise _Dropped("ended before the resume point")
                skip -= len(got)
        else:
            raise self.repo._fail(r, f"blob {self.digest}")
        self.resp = r
        return r

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (fewer only at the end, or where the connection broke: the next
        read resumes there)."""
        n = n if n and n > 0 else _CHUNK
        if self.eof:
            return b""
        buf = bytearray()
        while len(buf) < n:
            data = self._read1(n - len(buf), have=len(buf))
            if data is None:  # broken off after some bytes: give those, resume next time
                break
            if not data:
                self.eof = True
                self._drop()
                break
            buf += data
        if buf and self.on_bytes is not None:
            self.on_bytes(len(buf))
        return bytes(buf)

    def _read1(self, n: int, have: int) -> bytes | None:
        """What has arrived (at most n bytes; b"" at the end), opening and resuming as
        needed; None when the connection broke and ``have`` bytes are waiting to be given."""
        u3 = http.urllib3
        while True:
            try:
                resp = self.resp if self.resp is not None else self._open()
                # read1: what has arrived (a cut connection loses nothing already read)
                data = resp.read1(n)
                if not data and self.size is not None and self.pos < self.size:
                    raise _Dropped(f"the connection ended at byte {self.pos} of {self.size}")
            except (u3.exceptions.HTTPError, OSError, _Dropped) as e:
                self._drop()
                self.failures += 1
                if self.failures >= http.ATTEMPTS:
                    raise RegistryError(f"{self.repo}: blob {self.digest}: download failed "
                                        f"at byte {self.pos}: {http.describe(e)}") from None
                if have:
                    return None
                time.sleep(http.BACKOFF * (2 ** (self.failures - 1)))
                continue
            self.pos += len(data)
            return data

    def _drop(self) -> None:
        resp, self.resp = self.resp, None
        if resp is None:
            return
        try:
            if self.size is not None and self.pos >= self.size and not resp.closed:
                resp.release_conn()  # read to the end: the connection is reused
            else:
                resp.close()  # broken off: this connection is not
                resp.release_conn()
        except Exception:
            pass

    def close(self) -> None:
        self._drop()


class _Dropped(Exception):
    pass
