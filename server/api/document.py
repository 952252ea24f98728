"""``GET /openapi.json``: the OpenAPI document of this HTTP API, as generated
into ``protocol/schema/openapi.json`` (``protocol/openapi.py``). No token:
it says what the API takes, never what it holds. Read once, at import."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

DOCUMENT = (resources.files("protocol") / "schema" / "openapi.json").read_bytes()


async def openapi(request: Request) -> Response:
    return Response(DOCUMENT, media_type="application/json")


ROUTES = [("/openapi.json", openapi, ["GET"])]
