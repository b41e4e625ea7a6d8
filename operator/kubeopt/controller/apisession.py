"""kopf's HTTP session to the API server, with a bounded connection pool.

kopf builds its aiohttp session with ``TCPConnector(limit=0)``: no bound. aiohttp speaks HTTP/1.1,
so every request in flight holds a connection of its own, and with no kopf worker limit (see
main.py) a burst of 1,000 new resources had ~620 TLS connections open at once: their sockets,
MemoryBIOs and buffers were most of the operator's 373 MB, and glibc keeps the heap once grown.
The same session with a bounded pool queues requests instead of opening connections.

A watch stream holds its connection for as long as it streams, so the bound is the streams the
operator can hold plus a pool for everything else; a bound below the stream count would starve
the watches that feed the workers waiting for connections. Streams: one per watched resource
(ModelOptimizations, Jobs, pods) per namespace (one for all namespaces when cluster-wide), plus
kopf's own observers (CRDs, namespaces) and the peering watch.
"""

from __future__ import annotations

import aiohttp
import kopf

WATCHED_RESOURCES = 3  # ModelOptimizations, Jobs, pods (handlers.py)
KOPF_OWN_STREAMS = 4  # CRD and namespace observers, peering, one spare
REQUEST_POOL = 32  # requests (patches, lists, Events) in flight beyond the watch streams


def connection_limit(namespaces: tuple[str, ...], request_pool: int = REQUEST_POOL) -> int:
    """Connections kopf may hold: every watch stream it can open, and ``request_pool`` more."""
    stream_scopes = max(1, len(namespaces))
    return WATCHED_RESOURCES * stream_scopes + KOPF_OWN_STREAMS + request_pool


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """The session kopf would build for ``info`` (its auth.py), with at most ``limit`` connections.

    Must run in kopf's event loop (an async login handler): aiohttp binds the session to it.
    kopf closes the session when it drops the credentials (re-login after a 401, shutdown)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )
