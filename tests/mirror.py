"""The demo's release mirror (``pipeline/demo/mirror.py``) with what tests and benchmarks
script: faults per file (``mirror.inject(name, Fault(...))``: each request for the file
takes the next one), other ETag forms, a month re-published as TLC does, a pace for every
body, and a record of what each request got. Run in its own process (the multi-host tests
serve it on a services host; benchmarks): ``python -m tests.mirror ROOT --host ADDRESS
--port PORT [--tlc-root DIR] [--throttle FILE=BYTES_PER_SECOND] [--bandwidth BYTES]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.demo import mirror as plain
from pipeline.demo.mirror import RELEASES_PREFIX


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


class ReleaseMirror(plain.ReleaseMirror):
    """The demo's mirror, scriptable (see the module's docstring)."""

    def __init__(self, root: Path, port: int = 0, prefix: str = RELEASES_PREFIX,
                 tlc_root: Path | None = None, host: str = "127.0.0.1",
                 bandwidth: int = 0) -> None:
        # Bytes a second each response body is sent at (a real server's pace); 0: at once.
        self.bandwidth = bandwidth
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.served: list[Served] = []
        # ETag forms per file name (``etag_style``): S3's MD5 unless told otherwise.
        self.etag_styles: dict[str, tuple[str, int]] = {}
        super().__init__(root, port=port, prefix=prefix, tlc_root=tlc_root, host=host)

    def handler(self) -> type[plain._Handler]:
        return _ScriptedHandler

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

    def etag_style(self, file_name: str, style: str, part_size: int = 8 << 20) -> None:
        """Serve ``file_name`` with another ETag: ``multipart`` (S3's ``"<md5>-N"`` for an
        upload in parts of ``part_size``), ``none`` (no ETag header), ``opaque`` (an ETag
        that is no digest), or ``md5`` (the default)."""
        with self._lock:
            self.etag_styles[file_name] = (style, part_size)

    def etag_for(self, file: Path) -> str | None:
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


class _ScriptedHandler(plain._Handler):
    mirror: ReleaseMirror
    fault: Fault | None = None

    def served(self, status: int, body_bytes: int) -> None:
        self.mirror.record(Served(self.path, self.headers.get("Range"), status, body_bytes,
                                  method=self.command))

    def _file(self, file: Path, honour_range: bool = True) -> None:
        self.fault = fault = self.mirror.next_fault(file.name)
        kind = fault.kind if fault else None
        if fault and kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._plain(fault.status, b"overloaded", headers=headers)
            return
        if kind == "html":
            self._plain(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html")
            return
        self.body_sent = False
        super()._file(file, honour_range=honour_range and kind != "ignore_range")
        if not self.body_sent:
            return
        if fault and kind == "stall":
            time.sleep(fault.seconds)
        elif kind in ("reset", "lie"):
            time.sleep(0.2)  # let the client read what was sent before the reset discards it
        if kind in ("reset", "lie", "stall"):
            self._reset()

    def _body_end(self, start: int, end: int) -> int:
        fault = self.fault
        return min(end, fault.at) if fault and fault.kind == "truncate" else end

    def _announced(self, start: int, end: int) -> int:
        fault = self.fault
        return end - start + (fault.extra if fault and fault.kind == "lie" else 0)

    def _send(self, file: Path, start: int, end: int, ranged: bool) -> int:
        self.body_sent = True
        fault = self.fault
        if fault and fault.kind in ("reset", "stall"):
            end = min(end, start + fault.at)
        rate = fault.rate if fault and fault.kind == "throttle" else self.mirror.bandwidth
        patch = fault if fault and (fault.kind == "corrupt"
                                    or (fault.kind == "patch" and ranged)) else None
        step = max(1, rate // 10) if rate else plain.SEND_BYTES
        began = time.monotonic()

        def pace(sent: int) -> None:  # what was sent so far never runs ahead of the rate
            time.sleep(max(0.0, began + (sent + step) / rate - time.monotonic()))

        return self._copy(file, start, end, step, pace if rate else None,
                          (lambda data, offset: _patched(data, offset, patch.at, patch.data))
                          if patch else None)

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
    p = argparse.ArgumentParser(prog="python -m tests.mirror", description=main.__doc__)
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
