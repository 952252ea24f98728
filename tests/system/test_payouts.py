"""Earnings over the wire, against a running server: a worker reads what it
earned on its socket and over HTTP, a customer tips, operators read a worker's
earnings and the payouts of a period, and ``dispatch payouts`` writes the
settlement CSV that reconciles with the workers' ledgers."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import msgspec

from protocol.catalogue import CategoryDefinition, Earnings, Pricing, Step
from protocol.messages import EarningsReport
from tests.support import SECRET, Admin, Customer, ServerProcess, WorkerClient, worker_token

RULES = Earnings(share=0.75, per_km=0, per_minute=0, cancel_share=0.5)


async def _category(admin: Admin) -> str:
    key = f"pay-{uuid.uuid4().hex[:8]}"
    d = CategoryDefinition(key=key, name="Paid errand", skills=["delivery"],
                           steps=[Step(name="finish")], pricing=Pricing(base=1000),
                           earnings=RULES)  # fmt: skip
    r = await admin.put_category(d)
    assert r.status_code == 201, r.text
    return key


async def _job(server: ServerProcess, customer: Customer, city: str, key: str, wid: str) -> str:
    """An order of ``key`` that worker ``wid`` accepts and finishes; its id."""
    w = await WorkerClient.connect(server.ws_url, wid, city)
    r = await customer.create(city, skill=None, category=key)
    assert r.status_code == 201, r.text
    oid = await w.accept_next()
    await w.request({"type": "progress", "order_id": oid, "step": "finish"})
    await w.close()
    return str(oid)


def _today(days_ago: int = 0) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() - days_ago * 86_400))


async def test_a_worker_reads_its_earnings_and_a_tip_adds_to_them(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Two jobs and a tip: the socket's ``earnings``, ``GET /v1/worker/earnings`` and
    the operators' view agree; a tip before completion, or a second one, is refused."""
    key = await _category(admin)
    r = await customer.create(city, skill=None, category=key)
    r = await customer.http.post(f"/v1/orders/{r.json()['id']}/tip", json={"amount": 150})
    assert (r.status_code, r.json()["code"]) == (409, "not_tippable")  # not completed yet
    first = await _job(server, customer, city, key, "earner")
    await _job(server, customer, city, key, "earner")
    r = await customer.http.post(f"/v1/orders/{first}/tip", json={"amount": 150})
    assert r.status_code == 200 and r.json()["tip"] == 150, r.text
    r = await customer.http.post(f"/v1/orders/{first}/tip", json={"amount": 150})
    assert (r.status_code, r.json()["code"]) == (409, "already_tipped")
    r = await customer.http.post(f"/v1/orders/{first}/tip", json={"amount": 0})
    assert (r.status_code, r.json()["code"]) == (400, "out_of_range")
    w = await WorkerClient.connect(server.ws_url, "earner", city)
    got = await w.request({"type": "earnings"})
    await w.close()
    assert isinstance(got, EarningsReport) and got.id is not None, got
    (today,) = got.today.totals
    assert (today.currency, today.jobs, today.share, today.tip, today.total) == (
        "EUR", 2, 1500, 150, 1650)  # fmt: skip
    assert [(e.reason, e.amount) for e in got.recent] == [
        ("tip", 150), ("share", 750), ("share", 750)]  # fmt: skip
    token = worker_token("earner", city)
    r = await customer.http.get("/v1/worker/earnings", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    mine = msgspec.to_builtins(msgspec.structs.replace(got, id=None))
    assert r.json() == mine
    r = await admin.http.get(f"/v1/admin/workers/{city}/earner/earnings")
    assert r.status_code == 200 and r.json() == mine, r.text
    r = await customer.http.get("/v1/worker/earnings")  # a customer's token
    assert r.status_code == 403, r.text


async def test_payouts_and_the_csv_reconcile_with_the_ledgers(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The admin API's payouts and ``dispatch payouts``' CSV give each worker the sum
    of its ledger entries of the period, reason by reason."""
    key = await _category(admin)
    for wid in ("p-1", "p-2", "p-1"):
        await _job(server, customer, city, key, wid)
    first, last = _today(1), _today()  # from yesterday: jobs done just before midnight count
    period = {"city": city, "from": first, "to": last}
    r = await admin.http.get("/v1/admin/payouts", params=period)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["first_day"], body["last_day"]) == (first, last)
    rows = {p["worker_id"]: p["earnings"] for p in body["payouts"]}
    for wid, jobs in (("p-1", 2), ("p-2", 1)):
        report = (await admin.http.get(f"/v1/admin/workers/{city}/{wid}/earnings")).json()
        ledger = sum(e["amount"] for e in report["recent"])
        assert (rows[wid]["jobs"], rows[wid]["share"], rows[wid]["total"]) == (
            jobs, 750 * jobs, ledger)  # fmt: skip
    out = _payouts_cli(server, "--from", first, "--to", last, "--city", city)
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {(t["worker_id"], t["jobs"], t["total"]) for t in table} == {
        (wid, str(e["jobs"]), str(e["total"])) for wid, e in rows.items()}  # fmt: skip
    assert {t["city"] for t in table} == {city} and {t["currency"] for t in table} == {"EUR"}


async def test_the_admin_api_names_the_cities_the_server_serves(
    server: ServerProcess, admin: Admin, customer: Customer
) -> None:
    """``GET /v1/admin/cities`` answers the server's ``cities`` setting, to admins only."""
    r = await admin.http.get("/v1/admin/cities")
    assert r.status_code == 200, r.text
    assert r.json() == {"cities": server.env["DISPATCH_CITIES"].split(",")}
    r = await customer.http.get("/v1/admin/cities")
    assert r.status_code == 403, r.text


async def test_the_payouts_command_settles_the_servers_cities_not_its_own(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Without ``--city`` it settles the server's cities, not its own, and names them."""
    key = await _category(admin)
    await _job(server, customer, city, key, "p-auto")
    out = _payouts_cli(server, "--from", _today(1), "--to", _today(),
                       env={"DISPATCH_CITIES": "elsewhere"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert ("p-auto", city) in {(t["worker_id"], t["city"]) for t in table}
    served = server.env["DISPATCH_CITIES"].split(",")
    assert f"for {len(served)} city(ies) ({', '.join(served)})" in out.stderr, out.stderr


async def test_a_bad_period_is_refused_with_its_code(admin: Admin, city: str) -> None:
    """Missing and malformed dates, a period backwards, in the future or past the
    kept days, an unknown city: each a 400 with its code; the CLI says so too."""
    today = _today()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"city": city, "to": today}, "missing_field"),
        ({"city": city, "from": "12/07/2026", "to": today}, "invalid_field"),
        ({"city": city, "from": today, "to": "2000-01-01"}, "invalid_field"),
        ({"city": city, "from": "2000-01-01", "to": today}, "out_of_range"),
        ({"city": city, "from": today, "to": "2999-01-01"}, "out_of_range"),
        ({"city": "atlantis", "from": today, "to": today}, "unknown_city"),
    ]
    for params, code in cases:
        r = await admin.http.get("/v1/admin/payouts", params=params)
        assert (r.status_code, r.json()["code"]) == (400, code), (params, r.text)


async def test_the_payouts_command_tells_what_the_server_refused(
    server: ServerProcess, city: str
) -> None:
    """A refused period exits 1 with the server's code and message on stderr."""
    out = _payouts_cli(server, "--from", "2000-01-01", "--to", _today(), "--city", city)
    assert out.returncode == 1
    assert "out_of_range" in out.stderr and not out.stdout


def _payouts_cli(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dispatch payouts ARGS``, as an operator runs it (with ``env`` added to its
    environment)."""
    env = {**os.environ, "DISPATCH_JWT_SECRET": SECRET, **(env or {})}
    command = [sys.executable, "-m", "server.cli", "payouts", *args, "--url", server.url]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
