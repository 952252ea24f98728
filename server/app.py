"""The app factory: routes, error handlers, and a lifespan owning the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from server.api import order_live, orders_http, worker_socket
from server.core.errors import ClientError
from server.runtime import Runtime
from server.settings import Settings
from server.store.redis_store import StoreUnavailable


async def healthz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    await rt.store.ping()
    return JSONResponse({"status": "ok", "node": rt.node})


async def metrics(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse(rt.metrics())


def create_app(settings: Settings) -> Starlette:
    """A Starlette app serving the dispatch protocol with ``settings``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/v1/orders", orders_http.create_order, methods=["POST"]),
        Route("/v1/orders/{order_id}", orders_http.get_order),
        Route("/v1/orders/{order_id}/cancel", orders_http.cancel_order, methods=["POST"]),
        WebSocketRoute("/v1/orders/{order_id}/live", order_live.live_endpoint),
        WebSocketRoute("/v1/worker", worker_socket.WorkerEndpoint()),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ClientError: orders_http.client_error,
            StoreUnavailable: orders_http.store_unavailable,
            Exception: orders_http.internal_error,
        },
    )
