"""Workers' earnings for operators, with an ``admin`` token (``PROTOCOL.md`` §19).

``GET /v1/admin/workers/{city}/{id}/earnings``: what a worker earned today and
this week, and its newest ledger entries (what the worker itself reads).
``GET /v1/admin/payouts?city=&from=&to=``: what each worker of a city earned
over a period of whole UTC days, by worker and currency, summed from the
city's day books; ``dispatch payouts`` turns it into a settlement CSV.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from protocol import ids
from protocol.admin import Payouts
from server.api.admin import admin_of
from server.api.admin_overrides import worker_of
from server.api.responses import json_response
from server.core import earnings
from server.core.errors import Refused
from server.store.scripts import LEDGER_DAYS


async def worker_earnings(request: Request) -> Response:
    rt, _ = admin_of(request)
    city, wid = worker_of(request, rt)
    return json_response(await rt.earnings.report(city, wid))


def _day(request: Request, name: str) -> int:
    """The query's date ``name`` as a day number."""
    raw = request.query_params.get(name)
    if raw is None:
        raise Refused("missing_field", f"give the period's {name}=YYYY-MM-DD")
    day = earnings.day_number(raw)
    if day is None:
        raise Refused("invalid_field", f"{name} must be a date, YYYY-MM-DD")
    return day


async def payouts(request: Request) -> Response:
    rt, _ = admin_of(request)
    city = request.query_params.get("city", "")
    if not ids.NAME_RE.match(city):
        raise Refused("unknown_city")
    rt.dispatcher.served(city)
    first, last = _day(request, "from"), _day(request, "to")
    today = earnings.day_of(rt.store.now_ms())
    if first > last:
        raise Refused("invalid_field", "from must not be after to")
    if first <= today - LEDGER_DAYS or last > today:
        kept = f"a period lies within the last {LEDGER_DAYS} days the books keep"
        raise Refused("out_of_range", kept)
    found = await rt.earnings.payouts(city, first, last)
    return json_response(Payouts(city=city, first_day=earnings.date_of(first),
                                 last_day=earnings.date_of(last), payouts=found))  # fmt: skip


ROUTES = [
    ("/v1/admin/workers/{city}/{worker_id}/earnings", worker_earnings, ["GET"]),
    ("/v1/admin/payouts", payouts, ["GET"]),
]
