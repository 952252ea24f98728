"""The simulator: thousands of fake workers and customers driving a dispatch server.

It speaks only the public protocol (``protocol``), never imports ``server``,
and drives the server exactly as real apps would: workers over WebSocket,
customers over HTTP and live WebSockets. Entry points:

- :func:`simulate` (``await simulate(config)``) returns a :class:`Report`;
- :func:`load_scenario` reads a scenario (``simulator/scenarios/*.toml``);
- ``python -m simulator`` / ``dispatch simulate``: see :mod:`simulator.cli`.

Module map: ``scenario`` (config and validation), ``city`` and ``geo``
(districts and sampling), ``movement`` (the street grid), ``fleet`` and
``worker`` and ``jobs`` (the fake worker apps), ``customers``, ``orders``
(cross-side latencies), ``scheduler`` (the one timer heap), ``stats``,
``report``, ``display`` and ``summary`` (measuring and telling), ``simulation``
(a whole run), ``runner`` (one process's share of it) and ``procs`` (spreading
the shares over several processes).
"""

from simulator.report import Report
from simulator.scenario import ScenarioError, SimConfig, load_scenario, with_overrides
from simulator.simulation import simulate

__all__ = ["Report", "ScenarioError", "SimConfig", "load_scenario", "simulate", "with_overrides"]
