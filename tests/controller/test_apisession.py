"""kopf's API session: a bounded pool that still has room for every watch stream."""

from __future__ import annotations

import asyncio

import kopf
from aiohttp import web

from kubeopt.controller.apisession import (
    KOPF_OWN_STREAMS,
    REQUEST_POOL,
    WATCHED_RESOURCES,
    bounded_session,
    connection_limit,
)


def test_a_cluster_wide_operator_holds_its_streams_and_the_request_pool() -> None:
    assert connection_limit(()) == WATCHED_RESOURCES + KOPF_OWN_STREAMS + REQUEST_POOL


def test_every_watched_namespace_adds_a_stream_per_watched_resource() -> None:
    one = connection_limit(("ml",))
    three = connection_limit(("ml", "vision", "speech"))
    assert three - one == 2 * WATCHED_RESOURCES


def test_the_pool_admits_more_namespaces_than_the_request_pool_without_starving_a_watch() -> None:
    namespaces = tuple(f"team-{i}" for i in range(50))
    assert connection_limit(namespaces) - WATCHED_RESOURCES * 50 - KOPF_OWN_STREAMS == REQUEST_POOL


def test_the_session_carries_the_credentials_and_never_opens_more_connections_than_its_limit() -> None:
    """A real HTTP server counts the connections it sees while 30 requests wait on it."""
    limit = 4
    seen: dict[str, object] = {"open": 0, "peak": 0, "peers": set(), "auth": set()}

    async def slow(request: web.Request) -> web.Response:
        seen["open"] = int(seen["open"]) + 1  # type: ignore[call-overload]
        seen["peak"] = max(int(seen["peak"]), int(seen["open"]))  # type: ignore[call-overload]
        peers = seen["peers"]
        assert isinstance(peers, set)
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        auths = seen["auth"]
        assert isinstance(auths, set)
        auths.add(request.headers.get("Authorization"))
        await asyncio.sleep(0.05)
        seen["open"] = int(seen["open"]) - 1  # type: ignore[call-overload]
        return web.Response(text="ok")

    async def scenario() -> list[int]:
        app = web.Application()
        app.router.add_get("/", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        info = kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}", token="t0k3n", default_namespace="ml")
        kube = bounded_session(info, limit)
        try:
            assert kube.server == info.server and kube.default_namespace == "ml"

            async def get() -> int:
                async with kube.aiohttp_session.get(f"{info.server}/") as response:
                    await response.read()
                    return response.status

            return await asyncio.gather(*(get() for _ in range(30)))
        finally:
            await kube.aiohttp_session.close()
            await runner.cleanup()

    statuses = asyncio.run(scenario())
    assert statuses == [200] * 30
    assert seen["peak"] == limit
    assert seen["auth"] == {"Bearer t0k3n"}
    peers = seen["peers"]
    assert isinstance(peers, set) and len(peers) <= limit  # connections were reused, not reopened
