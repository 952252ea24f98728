"""The node's operator routes: liveness, readiness, and its counters.

``/healthz`` answers while the process serves HTTP at all (a balancer's or
supervisor's liveness check); ``/readyz`` answers 200 only while the node can
do its work: Redis answers within its deadline, the pub/sub connection is
subscribed, every background loop is running and the node is not shutting
down. Otherwise 503 with the reasons. ``/metrics`` needs
``Authorization: Bearer <metrics_token>`` (401 ``unauthorized`` without it),
and is off (404, as for any unknown path) while that setting is empty; it
answers Prometheus's text format (:mod:`server.node.exposition`), or the node's
counters as one JSON object to a request that accepts ``application/json``.
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.core.errors import Refused
from server.node.exposition import CONTENT_TYPE, exposition, fleet_exposition
from server.node.runtime import Runtime
from server.process import auth


async def healthz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "node": rt.node})


async def readyz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    problems = rt.problems()
    if problems:
        return JSONResponse({"status": "not_ready", "node": rt.node, "problems": problems}, 503)
    return JSONResponse({"status": "ready", "node": rt.node})


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    expected = rt.settings.metrics_token
    if not expected:
        raise HTTPException(404)  # off: answered as for any unknown route
    given = auth.bearer(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused("unauthorized", "give the node's metrics token")
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(rt.metrics())
    if rt.settings.metrics_dir:
        return Response(fleet_exposition(rt, rt.settings.metrics_dir), media_type=CONTENT_TYPE)
    return Response(exposition(rt), media_type=CONTENT_TYPE)


ROUTES = [
    ("/healthz", healthz, ["GET"]),
    ("/readyz", readyz, ["GET"]),
    ("/metrics", metrics, ["GET"]),
]
