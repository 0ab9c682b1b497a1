"""A CRDS server test double that the real ``crds`` client talks to (stdlib only).

jwst-crds.stsci.edu is unreachable from CI, so sync and bake are tested against this: the
same JSON-RPC 1.0 calls and flat file URLs the real server has, answered from a store
directory (``mappings/`` and ``references/``, as tests/crds_server/store.py writes it).

    with CRDSServer(store) as server:      # 127.0.0.1, ephemeral port
        env = {"CRDS_SERVER_URL": server.url, "CRDS_PATH": cache}
        ...                                # run the real crds client
        server.rpc_methods()               # ['get_server_info', 'get_mapping_names']
        server.fetched()                   # ['jwst_0001.pmap', ...] in request order

Faults, settable while it runs: ``corrupt`` (names served with one byte flipped, same size),
``truncate`` (names whose transfer stops half way, as a dropped connection), ``delay``
({file name or RPC method: seconds} before answering), ``fail`` ({method: message} answered
as JSON-RPC errors). Unknown methods are JSON-RPC errors too. For an unreachable server use
``closed_port_url()``. Manual use: ``python -m tests.crds_server.server STORE --port N``.

Link model (opt-in, for benchmarks: loopback is far faster than any real link): with
``link=Link(latency=0.04, per_connection=20 * MiB, total=100 * MiB)`` every request waits
``latency`` before its first byte, and file bodies are streamed in chunks no faster than
``per_connection`` bytes/s each and ``total`` bytes/s all together (a shared token bucket), so
"link rate" is well defined. Every logged request has its arrival time (``started``); file
requests also the time their answer was written (``finished``), for transfer windows.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

OBSERVATORY = "jwst"
MAPPING_PATH = f"/unchecked_get/mappings/{OBSERVATORY}/"
REFERENCE_PATH = f"/unchecked_get/references/{OBSERVATORY}/"
MAPPING_EXTS = (".pmap", ".imap", ".rmap")
LAST_SYNCED = "2025-06-15 15:06:40"  # fixed: a cached server_config is then reproducible
MiB = 2**20
RPC_PATH = re.compile(r"^/json/(?P<method>[^/]*)/")
FILE_NAME = re.compile(r"^[A-Za-z]\w*\.[a-z]+$")  # not 'N/A', dates or match values like '1.0'


class RPCError(Exception):
    """Answered as a JSON-RPC error object: the client raises its message as ServiceError."""


@dataclass
class Request:
    """One request as the server saw it: RPC calls keep their method and params."""

    verb: str
    path: str
    method: Optional[str] = None
    params: Any = None
    started: float = 0.0  # time.monotonic() on arrival
    finished: float = 0.0  # time.monotonic() once the answer was written (file GETs)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Faults:
    """Per-file and per-method misbehaviour, changed by tests while the server runs."""

    corrupt: set = field(default_factory=set)
    truncate: set = field(default_factory=set)
    delay: dict = field(default_factory=dict)
    fail: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------- link

class TokenBucket:
    """At most `rate` bytes/s, saving up at most `burst` while idle; shared between threads.

    It starts empty, so even a one-chunk file takes its time. take() books its bytes at once
    and sleeps off any debt: concurrent takers are served in arrival order and the long-run
    rate is exact whatever the chunk size.
    """

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = 0.0, time.monotonic()
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - nbytes
            self.stamp = now
            wait = -self.tokens / self.rate
        if wait > 0:
            time.sleep(wait)


@dataclass
class Link:
    """An emulated network link between the clients and this server; rates in bytes/s."""

    latency: float = 0.0  # seconds before the first byte of every answer (RTT + server time)
    per_connection: Optional[float] = None  # cap of each file transfer (one per connection)
    total: Optional[float] = None  # cap shared by all transfers at once
    chunk: int = 64 * 1024

    def __post_init__(self):
        self._shared = TokenBucket(self.total, self.chunk) if self.total else None

    def send(self, write, data: bytes) -> None:
        """Write `data` in chunks, each one only once both caps allow it."""
        own = TokenBucket(self.per_connection, self.chunk) if self.per_connection else None
        for start in range(0, len(data), self.chunk):
            block = data[start:start + self.chunk]
            for bucket in (own, self._shared):
                if bucket:
                    bucket.take(len(block))
            write(block)


# ------------------------------------------------------------------------------ store

def sha1_file(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def selector_names(text: str) -> set:
    """File names a mapping selects: every string literal of its `selector` with an extension.

    Parsed with ast, never executed; the header (name, derived_from) is not looked at.
    """
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "selector":
            return {n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant)
                    and isinstance(n.value, str) and FILE_NAME.match(n.value)}
    raise ValueError("mapping has no selector")


class Store:
    """The files a server serves and what it derives from them (closures, metadata)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dirs = {"mapping": self.root / "mappings", "reference": self.root / "references"}
        self.files = {p.name: p for d in self.dirs.values() for p in sorted(d.iterdir())
                      if p.is_file()}
        self.metadata = {name: {"size": str(p.stat().st_size), "sha1sum": sha1_file(p)}
                         for name, p in self.files.items()}

    @property
    def contexts(self) -> list:
        return sorted(n for n in self.files if n.endswith(".pmap"))

    def path(self, kind: str, name: str) -> Optional[Path]:
        path = self.dirs[kind] / name
        return path if "/" not in name and path.is_file() else None

    def closure(self, context: str) -> tuple:
        """(mappings, references) reachable from `context`, the context included."""
        if not context.endswith(MAPPING_EXTS) or context not in self.files:
            raise RPCError(f"Unknown context {context!r}: no such mapping on this server.")
        mappings, references, todo = set(), set(), [context]
        while todo:
            name = todo.pop()
            mappings.add(name)
            for sel in selector_names(self.files[name].read_text(encoding="utf-8")):
                if not sel.endswith(MAPPING_EXTS):
                    references.add(sel)
                elif sel not in mappings:
                    todo.append(sel)
        return sorted(mappings), sorted(references)

    def file_info(self, name: str) -> dict:
        """The catalog record get_file_info_map answers (all values strings, as the server)."""
        parts = name.split(".")[0].split("_")
        kind = "mapping" if name.endswith(MAPPING_EXTS) else "reference"
        return {"name": name, **self.metadata[name], "type": kind, "observatory": OBSERVATORY,
                "instrument": parts[1] if len(parts) > 2 else "",
                "filekind": parts[2] if len(parts) > 3 else "",
                "state": "archived", "rejected": "false", "blacklisted": "false"}


# ---------------------------------------------------------------------------- methods

class Methods:
    """The JSON-RPC methods; params are positional lists, as the client sends them."""

    def __init__(self, server: CRDSServer):
        self.server = server

    def get_server_info(self) -> dict:
        srv = self.server
        return {
            "observatory": OBSERVATORY,
            "operational_context": srv.operational_context,
            "latest_context": srv.latest_context,
            "edit_context": srv.latest_context,
            "versions_context": srv.operational_context,
            "bad_files_list": sorted(srv.bad_files),
            "mapping_url": {OBSERVATORY: srv.public_url + MAPPING_PATH},
            "reference_url": {OBSERVATORY: srv.public_url + REFERENCE_PATH},
            "download_metadata": srv.store.metadata,
            "force_remote_mode": False,
            "last_synced": LAST_SYNCED,
            "mappings": srv.store.contexts,
            "crds_version": {"str": "14.0.3 (niriss-pipe test double)"},
            "max_headers_per_rpc": 500,
        }

    def get_mapping_names(self, context) -> list:
        return self.server.store.closure(context)[0]

    def get_reference_names(self, context) -> list:
        return self.server.store.closure(context)[1]

    def get_file_info_map(self, observatory, names=None, fields=None) -> dict:
        store = self.server.store
        infos = {}
        for name in names if names is not None else sorted(store.files):
            if name not in store.files:
                infos[name] = "NOT FOUND unknown to server"
                continue
            info = store.file_info(name)
            infos[name] = {k: v for k, v in info.items() if fields is None or k in fields}
        return infos

    def get_best_references(self, context, header, reftypes=None):
        raise RPCError("get_best_references: remote best references are not supported by the "
                       "niriss-pipe CRDS test server; compute them locally (CRDS_MODE=local).")

    def get_default_context(self, observatory=None, state=None) -> str:
        return self.server.latest_context if state == "latest" else self.server.operational_context

    def get_build_context(self, observatory=None, calver=None) -> str:
        return self.server.operational_context


# ---------------------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    """POST /json/<method>/<id>/ for JSON-RPC; GET and HEAD of the two file URL prefixes."""

    server_version = "niriss-pipe-crds-test/1.0"

    @property
    def crds(self) -> CRDSServer:
        return self.server.crds  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        if self.crds.verbose:
            super().log_message(format, *args)

    # -- JSON-RPC
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = RPC_PATH.match(self.path)
        try:
            call = json.loads(body)
        except ValueError:
            call = {}
        method = call.get("method") or (match.group("method") if match else None)
        params = call.get("params", [])
        request = Request("POST", f"/json/{method}/", method, params, time.monotonic())
        self.crds.record(request)
        time.sleep(self.crds.faults.delay.get(method, 0))
        try:
            reply = {"result": self.crds.call(method, params), "error": None}
        except RPCError as exc:
            reply = {"result": None, "error": {"name": "ServiceError", "message": str(exc)}}
        self._first_byte(request)
        self._send(200, json.dumps({"jsonrpc": "1.0", "id": call.get("id"), **reply}).encode(),
                   "application/json")

    # -- files
    def do_GET(self):
        self._file(send_body=True)

    def do_HEAD(self):
        self._file(send_body=False)

    def _file(self, send_body: bool):
        path = self.path.split("?", 1)[0]
        request = Request(self.command, path, started=time.monotonic())
        self.crds.record(request)
        data = self.crds.file_bytes(path)
        if data is None:
            self._first_byte(request)
            self._send(404, b"not found\n", "text/plain")
            return
        faults, name = self.crds.faults, path.rsplit("/", 1)[-1]
        time.sleep(faults.delay.get(name, 0))
        self._first_byte(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body and name in faults.truncate:
            self._write_body(data[: len(data) // 2])
            self.close_connection = True
        elif send_body:
            self._write_body(data)
        request.finished = time.monotonic()

    def _first_byte(self, request: Request):
        """Hold the answer until the link's latency has passed since the request arrived."""
        link = self.crds.link
        if link:
            time.sleep(max(0.0, request.started + link.latency - time.monotonic()))

    def _write_body(self, data: bytes):
        link = self.crds.link
        if link:
            link.send(self.wfile.write, data)
        else:
            self.wfile.write(data)

    def _send(self, status: int, payload: bytes, ctype: str):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


# ----------------------------------------------------------------------------- server

class _HTTPServer(ThreadingHTTPServer):
    """A listen backlog like a real web server's. socketserver's default of 5 overflows when a
    client opens 8 connections at once: the dropped SYN then waits out TCP's 1 s retransmit."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client hanging up mid-transfer (killed, interrupted) is not the server's error."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class CRDSServer:
    """The test server: start()/stop() or a context manager; `url` is CRDS_SERVER_URL.

    `url` says localhost (the client warns about plain-http URLs unless they name localhost).
    `public_url` is what server_info advertises for file downloads (default `url`): set it
    when clients reach the server under another name, e.g. from a container.
    """

    def __init__(self, store, host: str = "127.0.0.1", port: int = 0, *,
                 operational_context: Optional[str] = None, verbose: bool = False,
                 public_url: Optional[str] = None, link: Optional[Link] = None):
        self.store = Store(store)
        self.host, self.port, self.verbose = host, port, verbose
        self.operational_context = operational_context or self.store.contexts[-1]
        self.latest_context = self.operational_context
        self.bad_files: set = set()
        self.faults = Faults()
        self.link = link  # None: answer at loopback speed
        self.requests: Counter = Counter()  # path (RPC: /json/<method>/) -> count
        self.log: list = []  # Request, in arrival order
        self._public_url = public_url
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.methods = Methods(self)

    # -- lifecycle
    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "localhost") else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        return self._public_url or self.url

    def start(self) -> CRDSServer:
        self._httpd = _HTTPServer((self.host, self.port), Handler)
        self._httpd.crds = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name=f"crds-test-server:{self.port}")
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> CRDSServer:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- state tests inspect or reset
    def reset(self):
        """Forget requests and faults, back to the store's newest context: one test's setup."""
        with self._lock:
            self.faults = Faults()
            self.requests.clear()
            self.log.clear()
            self.bad_files = set()
            self.operational_context = self.latest_context = self.store.contexts[-1]

    def record(self, request: Request):
        with self._lock:
            self.requests[request.path] += 1
            self.log.append(request)

    def rpc_methods(self) -> list:
        """JSON-RPC method names in call order."""
        return [r.method for r in list(self.log) if r.method]

    def fetched(self, kind: Optional[str] = None) -> list:
        """Names fetched with GET in order; `kind` 'mapping' or 'reference' filters."""
        prefixes = {"mapping": (MAPPING_PATH,), "reference": (REFERENCE_PATH,),
                    None: (MAPPING_PATH, REFERENCE_PATH)}[kind]
        return [r.name for r in list(self.log) if r.verb == "GET" and r.path.startswith(prefixes)]

    # -- request handling
    def call(self, method: Optional[str], params) -> Any:
        if method in self.faults.fail:
            raise RPCError(self.faults.fail[method])
        func = getattr(self.methods, method or "", None)
        if method is None or method.startswith("_") or not callable(func):
            raise RPCError(f"Unknown JSON-RPC method {method!r}.")
        args = params if isinstance(params, list) else []
        try:
            return func(*args)
        except TypeError as exc:
            raise RPCError(f"Bad parameters for {method!r}: {exc}") from exc

    def file_bytes(self, path: str) -> Optional[bytes]:
        """The bytes served for a file URL path (faults applied), or None for a 404."""
        for prefix, kind in ((MAPPING_PATH, "mapping"), (REFERENCE_PATH, "reference")):
            if path.startswith(prefix):
                file = self.store.path(kind, path[len(prefix):])
                break
        else:
            return None
        if file is None:
            return None
        data = file.read_bytes()
        if file.name in self.faults.corrupt and data:
            flipped = bytearray(data)
            flipped[len(data) // 2] ^= 0xFF
            data = bytes(flipped)
        return data


def closed_port_url() -> str:
    """A localhost URL nothing listens on: the 'server unreachable' case, refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://localhost:{port}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.crds_server.server",
                                     description="Serve a synthetic CRDS store to crds clients.")
    parser.add_argument("store", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--context", help="operational context (default: the newest pmap)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not log requests")
    parser.add_argument("--latency-ms", type=float, default=0, help="link model: time to first "
                        "byte of every answer")
    parser.add_argument("--connection-mibps", type=float, help="link model: cap per transfer")
    parser.add_argument("--total-mibps", type=float, help="link model: cap of all transfers")
    args = parser.parse_args(argv)
    rates = [r * MiB if r else None for r in (args.connection_mibps, args.total_mibps)]
    link = Link(args.latency_ms / 1000, *rates) if args.latency_ms or any(rates) else None
    server = CRDSServer(args.store, args.host, args.port, operational_context=args.context,
                        verbose=not args.quiet, link=link).start()
    print(f"CRDS_SERVER_URL={server.url}  ({len(server.store.files)} files, "
          f"operational {server.operational_context}); Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
