"""``dispatch payouts``: a settlement CSV of what each worker earned over a
period, through a running server's admin API (``GET /v1/admin/payouts``).

One row per city, worker and currency: the jobs it completed and the minor
units it earned for each reason (share of the price, distance, time,
cancellation fees, tips) and in all, over whole UTC days from ``--from`` to
``--to``. The sums come from the cities' day books, the same entries as the
workers' ledgers and the ``earned`` webhooks. The cities are those the
server serves (``GET /v1/admin/cities``), not this command's settings, unless
``--city`` names them. The server and the token are found as
``server/commands/admin_client.py`` says.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import httpx

from protocol import codec
from protocol.admin import Payouts
from protocol.messages import EarningsTotal
from server.commands import admin_client

COLUMNS = ("city", "worker_id", "currency", "first_day", "last_day",
           *EarningsTotal.__struct_fields__[1:])  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD",
                        help="the period's first day (UTC)")  # fmt: skip
    parser.add_argument("--to", dest="last", required=True, metavar="YYYY-MM-DD",
                        help="the period's last day (UTC), included")  # fmt: skip
    parser.add_argument(
        "--city",
        action="append",
        metavar="CITY",
        help="a city to settle (again for more; default: every city the server serves)",
    )
    parser.add_argument("--out", type=Path, help="write the CSV here (default: standard output)")


def rows(found: Payouts) -> Iterator[list[object]]:
    """A city's payouts as CSV rows, in :data:`COLUMNS` order."""
    for payout in found.payouts:
        e = payout.earnings
        yield [found.city, payout.worker_id, e.currency, found.first_day, found.last_day,
               *(getattr(e, name) for name in COLUMNS[5:])]  # fmt: skip


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        yield out


def run(args: argparse.Namespace) -> int:
    try:
        with admin_client.client(args) as http:
            found = _settle(args, http)
    except httpx.HTTPError as exc:
        print(f"dispatch payouts: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if isinstance(found, httpx.Response):
        return admin_client.fail("dispatch payouts", found)
    with _output(args.out) as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for payouts in found:
            writer.writerows(rows(payouts))
    workers = sum(len(p.payouts) for p in found)
    cities = ", ".join(p.city for p in found)
    print(f"dispatch payouts: {workers} row(s) for {len(found)} city(ies) ({cities}), "
          f"{args.first} to {args.last}", file=sys.stderr)  # fmt: skip
    return 0


def _settle(args: argparse.Namespace, http: httpx.Client) -> list[Payouts] | httpx.Response:
    """Each city's payouts of the period, or the first refusal."""
    if args.city:
        cities = list(args.city)
    else:
        r = http.get("/v1/admin/cities")
        if r.status_code != 200:
            return r
        cities = codec.cities_decoder.decode(r.content).cities
    found = []
    for city in cities:
        period = {"city": city, "from": args.first, "to": args.last}
        r = http.get("/v1/admin/payouts", params=period)
        if r.status_code != 200:
            return r
        found.append(codec.payouts_decoder.decode(r.content))
    return found
