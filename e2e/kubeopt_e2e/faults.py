"""Faults on cue: an S3 server that goes down when a chosen request reaches it, and a count of
a namespace's Jobs to time an operator's kill by.

Stopping MinIO "while a target publishes" by the clock races the worker, whose publish of a
small model takes milliseconds. ``S3Tripwire`` makes it deterministic: it runs its own MinIO
behind a TCP proxy on a fixed loopback port (the endpoint a resource names). The proxy reads
each request's first line and forwards the rest untouched. Every request gets a connection of
its own (``Connection: close`` on the request and on the reply), so none slips through unseen
on a kept-alive connection. Once armed, the first request that matches takes S3 down before it
is answered: MinIO stops and that request's connection is dropped unanswered. Then either the
proxy stops listening (clients get "connection refused", as from a server that is gone) or,
with ``drop_connections``, it accepts connections and drops each one unanswered, as a load
balancer does in front of a server that died. ``restore`` starts MinIO again on the same data
and the proxy on the same port.

``JobCounter`` watches a namespace's Jobs from before a burst starts, so that ``wait_for(n)``
returns within milliseconds of the n-th Job's creation: a kill then lands in the middle of
the operator's work, whatever the machine's speed, where a kill after a delay may come
before the work or after it.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from kubernetes import client, config

from kubeopt_e2e.procs import LOOPBACK, free_port
from kubeopt_e2e.s3 import S3Server

__all__ = ["JobCounter", "S3Tripwire"]

_HEAD_LIMIT = 64 * 1024
_IDLE_SECONDS = 60.0
_HOP_HEADERS = re.compile(rb"^(connection|keep-alive|proxy-connection):", re.IGNORECASE)

#: Whether a request (method, path with query) should take S3 down.
Trigger = Callable[[str, str], bool]


class S3Tripwire:
    """MinIO in ``work_dir`` behind a proxy on ``endpoint_url``; ``arm`` a trigger, ``restore`` after.

    >>> with S3Tripwire(bin_dir, tmp_path) as s3:
    ...     s3.arm(lambda method, path: method == "PUT" and path.endswith("/manifest.json"))
    ...     ...                     # a worker publishes through s3.endpoint_url and fails
    ...     s3.tripped.wait(60)     # s3.tripped_by == "PUT /bucket/.../manifest.json"
    ...     s3.restore()
    """

    def __init__(self, bin_dir: Path | str, work_dir: Path | str) -> None:
        self.server = S3Server(bin_dir, work_dir)
        self.port = 0
        self.tripped = threading.Event()
        self.tripped_by = ""
        self._trigger: Trigger | None = None
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._down = False
        self._drop_connections = False

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    @property
    def region(self) -> str:
        return self.server.region

    def start(self) -> str:
        """Start MinIO and the proxy; return the proxy's endpoint URL."""
        self.server.start()
        self.port = free_port()
        self._listen()
        return self.endpoint_url

    def stop(self) -> None:
        self._close_listener()
        self.server.stop()

    def arm(self, trigger: Trigger, *, drop_connections: bool = False) -> None:
        """The next request for which ``trigger(method, path)`` is true takes S3 down; after it, the
        endpoint refuses connections, or accepts and drops them with ``drop_connections``."""
        with self._lock:
            self._trigger = trigger
            self._drop_connections = drop_connections
            self.tripped.clear()
            self.tripped_by = ""

    def restore(self) -> None:
        """MinIO up again (same data, maybe another backend port), the proxy on the same port."""
        with self._lock:
            self._trigger = None
            if not self._down:
                return
            self.server.start()
            if self._listener is None:
                self._listen()
            self._down = False

    def __enter__(self) -> S3Tripwire:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the proxy -------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="s3-tripwire", daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: S3 is down or the tripwire stopped
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = _read_head(client)
            if head is None:
                return
            method, path = _request_line(head)
            if self._trips(method, path) or self._down:
                return  # dropped unanswered: the server went down under this request, or is down
            try:
                backend = socket.create_connection((LOOPBACK, self.server.port), timeout=10)
            except OSError:
                return
            with backend:
                backend.sendall(_connection_close(head))
                _pipe(client, backend)

    def _trips(self, method: str, path: str) -> bool:
        with self._lock:
            if self._trigger is None or not self._trigger(method, path):
                return False
            self._trigger = None
            self._down = True
            if not self._drop_connections:
                self._close_listener()
            self.server.stop()
            self.tripped_by = f"{method} {path}"
        self.tripped.set()
        return True


def _read_head(client: socket.socket) -> bytes | None:
    """The request line and headers (and whatever body bytes came with them)."""
    client.settimeout(_IDLE_SECONDS)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = client.recv(65536)
        except OSError:
            return None
        if not chunk or len(data) > _HEAD_LIMIT:
            return None
        data += chunk
    return data


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


def _connection_close(head: bytes) -> bytes:
    """A request or response head (and what follows it) with ``Connection: close``: the server
    closes after its reply and the client opens a new connection for the next request, which
    passes the tripwire too."""
    headers, _, rest = head.partition(b"\r\n\r\n")
    lines = [line for line in headers.split(b"\r\n") if not _HOP_HEADERS.match(line)]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + rest


class _Reply:
    """The backend's bytes on their way to the client: the final reply's head (after any
    interim ``100 Continue``) gets ``Connection: close``; everything else passes as is."""

    def __init__(self) -> None:
        self._buffer = b""
        self._passed = False

    def feed(self, data: bytes) -> bytes:
        if self._passed:
            return data
        self._buffer += data
        out = b""
        while not self._passed and b"\r\n\r\n" in self._buffer:
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b""
            if status.startswith(b"1"):
                out += head + b"\r\n\r\n"
                continue
            out += _connection_close(head + b"\r\n\r\n")
            self._passed = True
        if self._passed:
            out, self._buffer = out + self._buffer, b""
        return out


def _pipe(client: socket.socket, backend: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {client: backend, backend: client}
    reply = _Reply()
    for sock in peers:
        sock.settimeout(None)
    while True:
        ready, _, _ = select.select(list(peers), [], [], _IDLE_SECONDS)
        if not ready:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(reply.feed(data) if sock is backend else data)
            except OSError:
                return


class JobCounter:
    """The names of ``namespace``'s Jobs as a watch reports them, from ``start`` until ``stop``."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.namespace = namespace
        self._api: Any = client.BatchV1Api(cast(Any, config.new_client_from_config)(config_file=str(kubeconfig)))
        self._names: set[str] = set()
        self._changed = threading.Condition()
        self._stopped = threading.Event()

    def start(self) -> JobCounter:
        """Start watching; returns once the Jobs that exist now are counted."""
        version = self._list()
        threading.Thread(target=self._watch, args=(version,), name=f"jobs-{self.namespace}", daemon=True).start()
        return self

    def stop(self) -> None:
        """The watch ends at its next event or timeout (closing it from here would block)."""
        self._stopped.set()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Return once ``count`` Jobs were created; AssertionError after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._names) >= count, timeout):
                raise AssertionError(f"{len(self._names)} Jobs in {self.namespace} after {timeout:.0f}s, "
                                     f"waited for {count}")

    def _add(self, names: set[str]) -> None:
        with self._changed:
            self._names |= names
            self._changed.notify_all()

    def _list(self) -> str:
        listed = json.loads(self._api.list_namespaced_job(self.namespace, _preload_content=False).data)
        self._add({item["metadata"]["name"] for item in listed["items"]})
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> None:
        while not self._stopped.is_set():
            try:
                stream = self._api.list_namespaced_job(
                    self.namespace, watch=True, resource_version=version, allow_watch_bookmarks=True,
                    timeout_seconds=10, _preload_content=False)
                for line in stream:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again, watch from there
                        version = self._list()
                        break
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] == "ADDED":
                        self._add({event["object"]["metadata"]["name"]})
                    if self._stopped.is_set():
                        return
            except Exception:
                if self._stopped.is_set():
                    return
                raise
