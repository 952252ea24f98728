"""``/metrics`` in Prometheus's text format, read by prometheus_client's own parser
after real orders went through a real server."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocol.messages import Ack
from tests.support import UNIT, Customer, ServerProcess, WorkerClient, repo_root, unique_city

TOKEN = "metrics-test-token-0123456789abcdef"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def node(redis_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(redis_url, env={"DISPATCH_METRICS_TOKEN": TOKEN}).start()
    yield proc
    proc.stop()


async def _scrape(node: ServerProcess) -> tuple[httpx.Response, Samples]:
    async with httpx.AsyncClient(base_url=node.url) as http:
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return r, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_what_happened(node: ServerProcess) -> None:
    """Orders by city and outcome, offers, frames, histograms, connections and
    readiness are exported, and each counts what the test did."""
    city = unique_city()
    _, before = await _scrape(node)
    w = await WorkerClient.connect(node.ws_url, "m1", city)
    customer = Customer(node.url)
    try:
        done = (await customer.create(city)).json()["id"]
        assert await w.accept_next() == done
        for step in ("arrived", "started", "completed"):
            ack = await w.request({"type": "progress", "order_id": done, "step": step})
            assert isinstance(ack, Ack), ack
        await w.request({"type": "status", "status": "offline"})  # no offer for the next
        gone = (await customer.create(city)).json()["id"]
        assert (await customer.http.post(f"/v1/orders/{gone}/cancel")).status_code == 200
        response, after = await _scrape(node)
        deadline = asyncio.get_running_loop().time() + 5 * UNIT
        while _value(after, "dispatch_event_loop_lag_seconds_count") < 1:  # its first probe
            assert asyncio.get_running_loop().time() < deadline, "no event-loop lag probe"
            await asyncio.sleep(0.05)
            response, after = await _scrape(node)
    finally:
        await w.close()
        await customer.close()

    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    for outcome, count in (("created", 2), ("assigned", 1), ("completed", 1), ("cancelled", 1)):
        assert _value(after, "dispatch_orders_total", city=city, outcome=outcome) == count

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("dispatch_offers_total", outcome="sent") == 1
    assert grew("dispatch_offers_total", outcome="accepted") == 1
    assert grew("dispatch_frames_received_total", type="accept") == 1
    assert grew("dispatch_frames_received_total", type="progress") == 3
    assert grew("dispatch_frames_received_total", type="location") >= 1
    assert grew("dispatch_frames_sent_total", type="offer") == 1
    assert grew("dispatch_frames_sent_total", type="ack") >= 6
    assert grew("dispatch_location_reports_total", result="taken") >= 1
    assert grew("dispatch_order_to_first_offer_seconds_count") == 1
    assert grew("dispatch_order_created_to_assigned_seconds_count") == 1
    assert _value(after, "dispatch_order_created_to_assigned_seconds_bucket", le="+Inf") >= 1
    assert grew("dispatch_redis_call_seconds_count") > 0
    assert _value(after, "dispatch_event_loop_lag_seconds_count") >= 1
    assert _value(after, "dispatch_connections", kind="worker") >= 1
    assert _value(after, "dispatch_workers_connected", city=city) == 1
    assert _value(after, "dispatch_ready") == 1
    assert _value(after, "dispatch_node_info", node=node.node) == 1


async def test_metrics_as_json_for_an_accept_header(node: ServerProcess) -> None:
    """A request that accepts application/json gets the node's counters as JSON."""
    async with httpx.AsyncClient(base_url=node.url) as http:
        r = await http.get(
            "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        )
    assert r.status_code == 200
    assert r.json()["node"] == node.node and "ingest" in r.json()
    assert set(r.json()["loop_lag_ms"]) == {"p50", "p99", "max"}


async def test_every_metric_has_help_and_one_type(node: ServerProcess) -> None:
    """Each exported family has its HELP and TYPE, and its name starts with dispatch_."""
    response, _ = await _scrape(node)
    families = list(text_string_to_metric_families(response.text))
    assert families
    for family in families:
        assert family.name.startswith("dispatch_"), family.name
        assert family.documentation, family.name
        assert family.type in {"counter", "gauge", "histogram"}, (family.name, family.type)


async def test_readme_lists_every_exported_metric(node: ServerProcess) -> None:
    """The README's metrics table names each exported family, and nothing else."""
    readme = (repo_root() / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    listed = {name.removesuffix("_total") for name in re.findall(r"`(dispatch_\w+)`", section)}
    response, _ = await _scrape(node)
    exported = {family.name for family in text_string_to_metric_families(response.text)}
    assert listed == exported


_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


async def test_the_dashboard_reads_only_exported_metrics(node: ServerProcess) -> None:
    """Every metric a panel of deploy/grafana/dispatch-dashboard.json queries is one
    the server exports (so a rename breaks this test, not an operator's dashboard)."""
    dashboard = json.loads((repo_root() / "deploy/grafana/dispatch-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs and all(panel["targets"] for panel in dashboard["panels"])
    used = set()
    for name in re.findall(r"\bdispatch_[a-z_]+", " ".join(exprs)):
        for suffix in _SUFFIXES:
            name = name.removesuffix(suffix)
        used.add(name)
    response, _ = await _scrape(node)
    exported = {family.name for family in text_string_to_metric_families(response.text)}
    assert used and used <= exported, used - exported
