"""What the simulator asks of the admin API, as an operator: put the scenario's
categories in place before a run, read what each worker earned after it, and
which cities the server serves (to tell how to fix a run it refused).

Both go through ``/v1/admin/...`` with an admin token minted with the run's
secret. A category file is sent as it is written (TOML or JSON): the server
checks it and names every problem. Earnings are the payouts of the run's
days (yesterday and today, UTC: a run may cross midnight). Imports
``protocol`` (never ``server``) and ``simulator`` modules.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec

from protocol import codec
from simulator.scenario import ScenarioError, SimConfig
from simulator.stats import Metrics
from simulator.tokens import admin_token

_TTL_S = 600.0


def _auth(config: SimConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(config.secret, 'simulator', _TTL_S)}"}


async def apply_categories(config: SimConfig, http: httpx.AsyncClient) -> None:
    """Put each of the scenario's category files on the server (unchanged ones stay
    as they are); :class:`ScenarioError` naming the file and what the server said."""
    for name in config.categories:
        path = Path(name)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc}") from exc
        kind = "application/toml" if path.suffix == ".toml" else "application/json"
        key = path.stem
        response = await http.put(
            f"{config.urls[0]}/v1/admin/categories/{key}", content=text,
            headers={**_auth(config), "Content-Type": kind},
        )  # fmt: skip
        if response.status_code not in (200, 201):
            raise ScenarioError(f"{path}: the server refused it: {response.text[:500]}")


async def count_earnings(
    config: SimConfig, city: str, http: httpx.AsyncClient, metrics: Metrics
) -> None:
    """Count what each worker of ``city`` earned today and yesterday (UTC), in
    minor units, as its ``wk.<worker>.earned`` figure, and ``payouts_read``; a
    server that does not answer (an older one, a fake) leaves the earnings
    unread, which the report says, rather than failing the run."""
    now = time.time()
    days = [time.strftime("%Y-%m-%d", time.gmtime(now - ago)) for ago in (86_400, 0)]
    try:
        response = await http.get(
            f"{config.urls[0]}/v1/admin/payouts", headers=_auth(config),
            params={"city": city, "from": days[0], "to": days[1]},
        )  # fmt: skip
    except httpx.HTTPError:
        return
    if response.status_code != 200:
        return
    metrics.count("payouts_read")
    for payout in codec.payouts_decoder.decode(response.content).payouts:
        metrics.count(f"wk.{payout.worker_id}.earned", payout.earnings.total)


async def served_cities(config: SimConfig, http: httpx.AsyncClient) -> list[str] | None:
    """The cities the server serves (``GET /v1/admin/cities``), or None when it does
    not say (unreachable, an older server, another secret)."""
    try:
        response = await http.get(f"{config.urls[0]}/v1/admin/cities", headers=_auth(config))
        if response.status_code == 200:
            return codec.cities_decoder.decode(response.content).cities
    except (httpx.HTTPError, msgspec.DecodeError):
        pass
    return None
