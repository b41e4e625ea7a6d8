"""The ``kubernetes`` Service a pod reaches the API server through, for containers on this host.

In a pod, client libraries find the API server at ``kubernetes.default.svc`` (kopf always uses
``https://kubernetes.default.svc``, port 443) or at ``KUBERNETES_SERVICE_HOST``/``PORT``, a
ClusterIP that kube-proxy forwards. The e2e API server listens on a random loopback port, so
``KubernetesService`` plays the ClusterIP: it listens on port 443 of an address of its own in
127.0.0.0/8 (random, so that concurrent test sessions do not collide) and forwards every
connection to the API server, byte for byte (TLS passes through: the serving certificate already
names kubernetes.default.svc). ``hosts_file`` writes the /etc/hosts a container gets, mapping the
Service's names to that address.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from pathlib import Path

__all__ = ["KubernetesService"]

NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")


class KubernetesService:
    """Forward ``cluster_ip:443`` to ``target`` (host, port) until ``stop``."""

    def __init__(self, target: tuple[str, int], port: int = 443) -> None:
        self.target = target
        self.port = port
        self._listener = self._bind()
        self.cluster_ip = str(self._listener.getsockname()[0])
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"service-{self.cluster_ip}", daemon=True)
        self._thread.start()

    def _bind(self) -> socket.socket:
        for _ in range(20):
            address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                listener.bind((address, self.port))
            except OSError:
                listener.close()
                continue
            listener.listen(128)
            return listener
        raise RuntimeError(f"no free loopback address for port {self.port} (binding it needs root)")

    def hosts_file(self, path: Path) -> Path:
        """An /etc/hosts for a container: localhost and the Service's names."""
        path.write_text(f"127.0.0.1\tlocalhost\n{self.cluster_ip}\t{' '.join(NAMES)}\n")
        path.chmod(0o644)
        return path

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                closing = src in self._sockets and dst not in self._sockets
                self._sockets.discard(src)
            if closing:  # both directions done
                src.close()
                dst.close()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
