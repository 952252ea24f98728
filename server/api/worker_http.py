"""Workers' HTTP endpoints: what a worker's app reads outside its socket.

``GET /v1/worker/figures``: the worker's own figures (the same ``Figures``
its socket answers ``figures`` with); ``GET /v1/worker/earnings``: what it
earned (the socket's ``earnings``); each by its worker token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from protocol.messages import Figures
from server.api.responses import json_response
from server.node.runtime import Runtime
from server.process import auth
from server.store.keys import WorkerId


def _worker(request: Request) -> tuple[Runtime, auth.Identity]:
    rt: Runtime = request.app.state.runtime
    return rt, rt.verify(auth.bearer(request.headers.get("authorization")), "worker")


async def figures(request: Request) -> Response:
    rt, me = _worker(request)
    found, last = await rt.performance.figures(me.city, WorkerId(me.subject),
                                               rt.settings.min_samples)  # fmt: skip
    return json_response(Figures(performance=found, last_job_at=last))


async def earnings(request: Request) -> Response:
    rt, me = _worker(request)
    return json_response(await rt.earnings.report(me.city, WorkerId(me.subject)))


ROUTES = [
    ("/v1/worker/figures", figures, ["GET"]),
    ("/v1/worker/earnings", earnings, ["GET"]),
]
