"""The app factory: routes, error handlers, and a lifespan owning the runtime."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from server.api import (
    admin,
    admin_earnings,
    admin_hooks,
    admin_overrides,
    health,
    order_live,
    orders_http,
    responses,
    worker_http,
    worker_socket,
)
from server.api.internal import InternalErrors
from server.core.errors import ClientError
from server.runtime import Runtime
from server.settings import Settings
from server.store.redis_store import StoreUnavailable

EXIT_FAILED = 1


def create_app(settings: Settings) -> Starlette:
    """A Starlette app serving the dispatch protocol with ``settings``.

    ``app.state.exit_code`` is 0, or 1 once the node has failed for good (a
    background loop that kept dying): the process is then stopped as if by
    SIGTERM, and ``dispatch serve`` exits with that status."""

    def on_fatal(reason: str) -> None:
        app.state.exit_code = EXIT_FAILED
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down as for any SIGTERM

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime(settings, on_fatal)
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        Route("/v1/orders", orders_http.create_order, methods=["POST"]),
        Route("/v1/orders/{order_id}", orders_http.get_order),
        Route("/v1/orders/{order_id}/cancel", orders_http.cancel_order, methods=["POST"]),
        Route("/v1/orders/{order_id}/steps/{step}", orders_http.do_step, methods=["POST"]),
        Route("/v1/orders/{order_id}/rating", orders_http.rate_order, methods=["POST"]),
        Route("/v1/orders/{order_id}/tip", orders_http.tip_order, methods=["POST"]),
        WebSocketRoute("/v1/orders/{order_id}/live", order_live.live_endpoint),
        WebSocketRoute("/v1/worker", worker_socket.WorkerEndpoint()),
        Route("/v1/worker/figures", worker_http.figures),
        Route("/v1/worker/earnings", worker_http.earnings),
        *(Route(path, handler, methods=methods) for path, handler, methods in admin.ROUTES),
        *(Route(path, handler, methods=methods) for path, handler, methods in admin_hooks.ROUTES),
        *(Route(p, handler, methods=methods) for p, handler, methods in admin_overrides.ROUTES),
        *(Route(p, handler, methods=methods) for p, handler, methods in admin_earnings.ROUTES),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(InternalErrors)],
        exception_handlers={
            ClientError: responses.client_error,
            StoreUnavailable: responses.store_unavailable,
        },
    )
    app.state.exit_code = 0
    return app
