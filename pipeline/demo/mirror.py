"""A local HTTP server laid out like the real releases, for the offline demo.

``GET {prefix}/{service}/{file}`` answers ``302`` to ``/release-assets/{service}/{file}``
as GitHub does, which serves the file with ``Content-Length`` and honours ``Range``
(``206``), or ``404`` when the month is not there. Given a ``tlc_root``, it also serves
TLC's own Parquet layout as CloudFront does: ``GET /trip-data/{service}_tripdata_{YYYY-MM}
.parquet`` answers the file directly (no redirect), with the same ``Range`` support, and a
key that does not exist gets what S3 behind CloudFront answers: ``403`` with an XML
``AccessDenied`` body (to ``HEAD`` too, without the body). Every file is served with an
``ETag`` (the MD5 of its bytes, as S3 gives for a single-part upload) and its
``Last-Modified``, to ``GET`` and ``HEAD``. Binds 127.0.0.1 unless told another address.

The tests' mirror (``tests/mirror.py``) is this one with scripted faults, other ETag forms,
republished files and a record of what each request got.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

RELEASES_PREFIX = "/DataTalksClub/nyc-tlc-data/releases/download"
ASSETS = "/release-assets"
TLC_PREFIX = "/trip-data"
SEND_BYTES = 1 << 20
# What S3 (behind CloudFront) answers for a key that does not exist, when the bucket does
# not let the caller list it: 403, not 404.
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")


class ReleaseMirror:
    """Serves ``root`` (``{service}/{file}`` for every service, fhvhv's CSV months under
    ``fhvhv/`` as the course's release has them; ``misc/taxi_zone_lookup.csv``) on 127.0.0.1."""

    def __init__(self, root: Path, port: int = 0, prefix: str = RELEASES_PREFIX,
                 tlc_root: Path | None = None, host: str = "127.0.0.1") -> None:
        self.root, self.prefix = root.absolute(), prefix.rstrip("/")
        self.tlc_root = tlc_root.absolute() if tlc_root else None
        self._lock = threading.Lock()
        self._etags: dict[tuple[Path, int, int], str] = {}
        handler = type("Handler", (self.handler(),), {"mirror": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def handler(self) -> type[_Handler]:
        """The class that answers each request."""
        return _Handler

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    @property
    def parquet_base_url(self) -> str:
        """TLC's layout: ``{parquet_base_url}/{service}_tripdata_{YYYY-MM}.parquet``."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{TLC_PREFIX}"

    @property
    def zones_url(self) -> str:
        return f"{self.base_url}/misc/taxi_zone_lookup.csv"

    def etag(self, file: Path) -> str:
        """The file's ETag: the quoted MD5 of its bytes (kept while size and mtime hold)."""
        stat = file.stat()
        key = (file, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._etags.get(key)
        if known is None:
            digest = hashlib.md5(usedforsecurity=False)
            with open(file, "rb") as f:
                while data := f.read(SEND_BYTES):
                    digest.update(data)
            known = f'"{digest.hexdigest()}"'
            with self._lock:
                self._etags[key] = known
        return known

    def etag_for(self, file: Path) -> str | None:
        """The ETag ``file`` is served with (None: no ETag header)."""
        return self.etag(file)

    def start(self) -> ReleaseMirror:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ReleaseMirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    """Answers as the real hosts do; the steps of an answer are methods the tests' mirror
    overrides to misbehave."""

    mirror: ReleaseMirror
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    head_only = False

    def do_HEAD(self) -> None:
        self.head_only = True
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        if path.startswith(self.mirror.prefix + "/"):
            self._redirect(ASSETS + path[len(self.mirror.prefix):])
        elif path.startswith(ASSETS + "/"):
            self._asset(path[len(ASSETS) + 1:], self.mirror.root)
        elif path.startswith(TLC_PREFIX + "/") and self.mirror.tlc_root:
            self._asset(path[len(TLC_PREFIX) + 1:], self.mirror.tlc_root, missing=403)
        else:
            self._plain(404, b"Not Found")

    def served(self, status: int, body_bytes: int) -> None:
        """One request answered (``status``, ``body_bytes`` of its body sent)."""

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _plain(self, status: int, body: bytes, content_type: str = "text/plain",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # Recorded before the answer leaves, so a client that has it finds it recorded.
        self.served(status, 0 if self.head_only else len(body))
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def _asset(self, relative: str, root: Path, missing: int = 404) -> None:
        # Both sides resolved: a root reached through a symbolic link serves its files, and
        # nothing outside it is served ("../" or a link pointing out).
        file = (root / relative).resolve()
        if not file.is_relative_to(root.resolve()) or not file.is_file():
            if missing == 403:
                self._plain(403, ACCESS_DENIED, "application/xml")
            else:
                self._plain(404, b"Not Found")
            return
        self._file(file)

    def _file(self, file: Path, honour_range: bool = True) -> None:
        """Answer with ``file``, or the part of it a ``Range`` header asks for."""
        size = file.stat().st_size
        start, end = 0, size
        etag = self.mirror.etag_for(file)
        last_modified = formatdate(file.stat().st_mtime, usegmt=True)
        match = _RANGE.match(self.headers.get("Range", ""))
        ranged = bool(match) and honour_range
        if_range = self.headers.get("If-Range")
        if ranged and if_range is not None and if_range not in (etag, last_modified):
            ranged = False  # RFC 9110: the file changed, so the whole of it is sent
        if ranged and match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self._plain(416, b"", headers={"Content-Range": f"bytes */{size}"})
                return
        end = self._body_end(start, end)
        status = 206 if ranged else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(self._announced(start, end)))
        self.send_header("Accept-Ranges", "bytes")
        if etag is not None:
            self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if self.head_only:
            self.served(status, 0)
            self.end_headers()
            return
        self.end_headers()
        sent = self._send(file, start, end, ranged)
        self.served(status, sent)

    def _body_end(self, start: int, end: int) -> int:
        """Where the body served ends (the answer's headers say so)."""
        return end

    def _announced(self, start: int, end: int) -> int:
        """The Content-Length announced."""
        return end - start

    def _send(self, file: Path, start: int, end: int, ranged: bool) -> int:
        """Send bytes ``start`` to ``end`` of ``file``; the bytes sent."""
        return self._copy(file, start, end)

    def _copy(self, file: Path, start: int, end: int, step: int = SEND_BYTES,
              before_each: Callable[[int], None] | None = None,
              transform: Callable[[bytes, int], bytes] | None = None) -> int:
        """Copy ``file[start:end]`` to the client ``step`` bytes at a time (``before_each``
        given the bytes sent so far, ``transform`` each piece and its file offset)."""
        sent = 0
        with open(file, "rb") as f:
            f.seek(start)
            while sent < end - start:
                if before_each:
                    before_each(sent)
                data = f.read(min(step, end - start - sent))
                if not data:
                    break
                if transform:
                    data = transform(data, start + sent)
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(data)
        return sent
