"""The Redis store: the only package that imports ``redis``.

Redis is the source of truth. Every change of an order or a worker is one Lua
script (``lua/``, helpers in ``lua/lib/``), a small compare-and-set step whose
transition rules are rendered from ``server.core`` (see
:mod:`server.store.scripts`); every key, field and event name is written once
in :mod:`server.store.layout`, and a script's inputs are one packed map
(:mod:`server.store.arguments`).

What runs them:

- ``engine.py``: the script engine (one round trip per call, NOSCRIPT
  reloads, plan/need rounds, reply decoding, the clock);
- ``order_ops.py``, ``worker_ops.py``, ``node_ops.py``: the operations,
  grouped by what they act on, composed into :class:`~server.store.redis_store.Store`;
- ``catalogue.py``, ``earnings.py``, ``performance.py``, ``overrides.py``,
  ``webhooks.py``: classes around a ``Store`` for their own records;
- ``mux.py``, ``cluster.py``, ``pubsub.py``: the connections.

Errors: Redis and socket exceptions are translated at this edge into
:class:`~server.store.engine.StoreUnavailable` (a ``ServerFault``); a script's
refusal is the core's :class:`~server.core.errors.Refused`. Nothing here
imports the folders above it (``ruff.toml``).
"""
