"""S3Store against real sockets: what a worker sees when the S3 endpoint fails under it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kubeopt.storage.errors import StorageError
from kubeopt.storage.store import S3Settings, S3Store
from kubeopt.storage.uri import parse_uri


@pytest.fixture
def dropping_endpoint() -> Iterator[str]:
    """An endpoint that accepts each connection and closes it unanswered (a load balancer in front
    of an S3 server that died)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_connection_dropped_by_the_endpoint_is_a_retryable_storage_error_naming_the_endpoint(
        dropping_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    store = S3Store(S3Settings(endpoint_url=dropping_endpoint))

    with pytest.raises(StorageError) as caught:
        store.put_bytes(b"{}", parse_uri("s3://artifacts/run/manifest.json"))

    assert caught.value.retryable
    assert "ConnectionClosedError" in str(caught.value)
    assert dropping_endpoint in str(caught.value) and "storage.endpoint" in str(caught.value)
