"""A local HTTP server laid out like the real releases, for the demo, tests and benchmarks.

``GET {prefix}/{service}/{file}`` answers ``302`` to ``/release-assets/{service}/{file}``
as GitHub does, which serves the file with ``Content-Length`` and honours ``Range``
(``206``), or ``404`` when the month is not there. Tests can script faults per file
(``mirror.inject(name, Fault(...))``): each request for the file takes the next one.
Given a ``tlc_root``, it also serves TLC's own Parquet layout as CloudFront does:
``GET /trip-data/{service}_tripdata_{YYYY-MM}.parquet`` answers the file directly (no
redirect), with the same ``Range`` support and faults, and a key that does not exist gets
what S3 behind CloudFront answers: ``403`` with an XML ``AccessDenied`` body (to ``HEAD``
too, without the body). Every file is served with an ``ETag`` (the MD5 of its bytes, as
S3 gives for a single-part upload) and its ``Last-Modified``, to ``GET`` and ``HEAD``;
``republish()`` replaces a file's bytes as TLC does when it re-writes a month, giving it a
new ETag and a later Last-Modified. Binds 127.0.0.1 unless told another address (the
multi-host tests serve it on a services host: ``python -m pipeline.demo.mirror ROOT --host
ADDRESS --port PORT [--throttle FILE=BYTES_PER_SECOND]``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour for one request.

    kind: ``status`` (answer ``status`` with ``retry_after``), ``reset`` (send ``at`` bytes of
    the body, then reset the connection), ``stall`` (send ``at`` bytes, then go silent for
    ``seconds``), ``html`` (200 with an HTML page), ``truncate`` (serve only the first
    ``at`` bytes, with a matching Content-Length), ``lie`` (announce ``extra`` more bytes
    than are sent, then close), ``ignore_range`` (answer 200 with the whole file),
    ``throttle`` (send at most ``rate`` bytes a second), ``patch`` (answer a ``Range``
    request with the file's bytes at offset ``at`` replaced by ``data``: same length, same
    ETag, other bytes, as a faulty cache or proxy would; a request without ``Range`` is
    served as it is), ``corrupt`` (the same replacement in any answer, ranged or not).
    """

    kind: str
    status: int = 503
    retry_after: str | None = None
    at: int = 0
    seconds: float = 0.0
    extra: int = 0
    rate: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class Served:
    """What one request got: for assertions on resumes and retries."""

    path: str
    range: str | None
    status: int
    body_bytes: int
    at: float = field(default_factory=time.monotonic)
    method: str = "GET"


class ReleaseMirror:
    """Serves ``root`` (``{service}/{file}`` for every service, fhvhv's CSV months under
    ``fhvhv/`` as the course's release has them; ``misc/taxi_zone_lookup.csv``) on 127.0.0.1."""

    def __init__(self, root: Path, port: int = 0, prefix: str = RELEASES_PREFIX,
                 tlc_root: Path | None = None, host: str = "127.0.0.1",
                 bandwidth: int = 0) -> None:
        self.root, self.prefix = root.absolute(), prefix.rstrip("/")
        # Bytes a second each response body is sent at (a real server's pace); 0: at once.
        self.bandwidth = bandwidth
        self.tlc_root = tlc_root.absolute() if tlc_root else None
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.served: list[Served] = []
        self._lock = threading.Lock()
        self._etags: dict[tuple[Path, int, int], str] = {}
        # ETag forms per file name (``etag_style``): S3's MD5 unless told otherwise.
        self.etag_styles: dict[str, tuple[str, int]] = {}
        handler = type("Handler", (_Handler,), {"mirror": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

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

    def inject(self, file_name: str, *faults: Fault) -> None:
        with self._lock:
            self.faults[file_name].extend(faults)

    def next_fault(self, file_name: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(file_name)
            return queue.popleft() if queue else None

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def requests_for(self, file_name: str, method: str | None = None) -> list[Served]:
        """What requests for ``file_name`` got (only ``GET`` or ``HEAD`` ones if given)."""
        with self._lock:
            return [s for s in self.served if s.path.endswith("/" + file_name)
                    and method in (None, s.method)]

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

    def etag_style(self, file_name: str, style: str, part_size: int = 8 << 20) -> None:
        """Serve ``file_name`` with another ETag: ``multipart`` (S3's ``"<md5>-N"`` for an
        upload in parts of ``part_size``), ``none`` (no ETag header), ``opaque`` (an ETag
        that is no digest), or ``md5`` (the default)."""
        with self._lock:
            self.etag_styles[file_name] = (style, part_size)

    def etag_for(self, file: Path) -> str | None:
        """The ETag ``file`` is served with, in its style (None: no ETag header)."""
        style, part_size = self.etag_styles.get(file.name, ("md5", 0))
        if style == "none":
            return None
        if style == "opaque":
            stat = file.stat()
            return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        if style == "multipart":
            from pipeline.source.etag import file_etag

            return file_etag(file, part_size)
        return self.etag(file)

    def republish(self, file: Path, data: bytes) -> None:
        """Replace ``file`` (under a served root) with ``data``, as TLC re-writes a month:
        atomically, with a Last-Modified at least a second later than before."""
        before = file.stat().st_mtime if file.exists() else 0.0
        tmp = file.with_name(f".{file.name}.republish")
        tmp.write_bytes(data)
        later = max(time.time(), before + 1.0)
        os.utime(tmp, (later, later))
        tmp.replace(file)

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
        self.mirror.record(Served(self.path, self.headers.get("Range"), status,
                                  0 if self.head_only else len(body), method=self.command))
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def _asset(self, relative: str, root: Path, missing: int = 404) -> None:
        file = (root / relative).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            if missing == 403:
                self._plain(403, ACCESS_DENIED, "application/xml")
            else:
                self._plain(404, b"Not Found")
            return
        fault = self.mirror.next_fault(file.name)
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._plain(fault.status, b"overloaded", headers=headers)
            return
        if fault and fault.kind == "html":
            self._plain(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html")
            return
        size = file.stat().st_size
        start, end = 0, size
        etag = self.mirror.etag_for(file)
        last_modified = formatdate(file.stat().st_mtime, usegmt=True)
        match = _RANGE.match(self.headers.get("Range", ""))
        ranged = bool(match) and not (fault and fault.kind == "ignore_range")
        if_range = self.headers.get("If-Range")
        if ranged and if_range is not None and if_range not in (etag, last_modified):
            ranged = False  # RFC 9110: the file changed, so the whole of it is sent
        if ranged and match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self._plain(416, b"", headers={"Content-Range": f"bytes */{size}"})
                return
        if fault and fault.kind == "truncate":
            end = min(end, fault.at)
        announced = end - start + (fault.extra if fault and fault.kind == "lie" else 0)
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(announced))
        self.send_header("Accept-Ranges", "bytes")
        if etag is not None:
            self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if self.head_only:
            self.mirror.record(Served(self.path, self.headers.get("Range"),
                                      206 if ranged else 200, 0, method="HEAD"))
            self.end_headers()
            return
        self.end_headers()
        stop_at = end
        if fault and fault.kind in ("reset", "stall"):
            stop_at = min(end, start + fault.at)
        sent = self._send(file, start, stop_at, fault.rate if fault and fault.kind == "throttle"
                          else self.mirror.bandwidth,
                          patch=(fault.at, fault.data)
                          if fault and (fault.kind == "corrupt"
                                        or (fault.kind == "patch" and ranged)) else None)
        self.mirror.record(Served(self.path, self.headers.get("Range"), 206 if ranged else 200,
                                  sent))
        if fault and fault.kind == "stall":
            time.sleep(fault.seconds)
        elif fault and fault.kind in ("reset", "lie"):
            time.sleep(0.2)  # let the client read what was sent before the reset discards it
        if fault and fault.kind in ("reset", "lie", "stall"):
            self._reset()

    def _send(self, file: Path, start: int, end: int, rate: int = 0,
              patch: tuple[int, bytes] | None = None) -> int:
        sent = 0
        step = max(1, rate // 10) if rate else SEND_BYTES
        began = time.monotonic()
        with open(file, "rb") as f:
            f.seek(start)
            while sent < end - start:
                if rate:  # paced: what was sent so far never runs ahead of the rate
                    time.sleep(max(0.0, began + (sent + step) / rate - time.monotonic()))
                data = f.read(min(step, end - start - sent))
                if not data:
                    break
                if patch:
                    data = _patched(data, start + sent, *patch)
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(data)
        return sent

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, as a failing network would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


def _patched(data: bytes, offset: int, at: int, replacement: bytes) -> bytes:
    """``data`` (the file's bytes from ``offset``) with the bytes at file offset ``at``
    replaced by ``replacement`` where the two overlap."""
    lo, hi = max(offset, at), min(offset + len(data), at + len(replacement))
    if lo >= hi:
        return data
    return data[:lo - offset] + replacement[lo - at:hi - at] + data[hi - offset:]


def main(argv: list[str] | None = None) -> None:
    """Serve a release in the foreground until killed; print the base URL once ready."""
    p = argparse.ArgumentParser(prog="python -m pipeline.demo.mirror", description=main.__doc__)
    p.add_argument("root", type=Path, help="the release: {service}/{file}, misc/...")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tlc-root", type=Path, help="TLC's Parquet layout, served at /trip-data")
    p.add_argument("--throttle", action="append", default=[], metavar="FILE=BYTES_PER_SECOND",
                   help="serve the first request for FILE at most this fast (repeatable)")
    p.add_argument("--bandwidth", type=int, default=0, metavar="BYTES_PER_SECOND",
                   help="send every response body at most this fast (default: at once)")
    args = p.parse_args(argv)
    mirror = ReleaseMirror(args.root, port=args.port, host=args.host, tlc_root=args.tlc_root,
                           bandwidth=args.bandwidth)
    for spec in args.throttle:
        name, _, rate = spec.partition("=")
        mirror.inject(name, Fault("throttle", rate=int(rate)))
    mirror.start()
    print(mirror.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
