"""The app factory: routes, error handlers, and a lifespan owning the runtime."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from server.api import (
    admin,
    admin_earnings,
    admin_hooks,
    admin_overrides,
    document,
    health,
    order_live,
    orders_http,
    responses,
    routing,
    worker_http,
    worker_socket,
)
from server.api.internal import InternalErrors
from server.core.errors import ClientError
from server.node.runtime import Runtime
from server.process.settings import Settings
from server.store.engine import StoreUnavailable

EXIT_FAILED = 1
HTTP_ROUTES = [
    *health.ROUTES, *document.ROUTES, *orders_http.ROUTES, *worker_http.ROUTES, *admin.ROUTES,
    *admin_hooks.ROUTES, *admin_overrides.ROUTES, *admin_earnings.ROUTES,
]  # fmt: skip


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
        WebSocketRoute("/v1/orders/{order_id}/live", order_live.live_endpoint),
        WebSocketRoute("/v1/worker", worker_socket.WorkerEndpoint()),
        *routing.grouped(HTTP_ROUTES),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(InternalErrors)],
        exception_handlers={
            HTTPException: routing.http_error,
            ClientError: responses.client_error,
            StoreUnavailable: responses.store_unavailable,
        },
    )
    app.state.exit_code = 0
    return app
