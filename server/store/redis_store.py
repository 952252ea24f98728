"""The store as its callers hold it: one :class:`Store` with every operation.

:class:`Store` is the script engine (``engine.py``) with the operations
grouped by what they act on, the way redis-py groups its commands:
``order_ops.py`` (orders, their dispatch and workflow, customers' keys; it
stands on ``worker_ops.py``, workers and their positions) and ``node_ops.py``
(the registry of nodes). The catalogue, earnings, performance, webhooks and
overrides wrap a ``Store`` in their own classes (``catalogue.py`` ...).

Why mixins and not ``store.orders.accept(...)``: the same method resolves on
the one object, so the dispatch hot path costs what it did (no attribute hop,
no extra object), and no caller changed. Imports nothing above
``server/store/``.
"""

from __future__ import annotations

from server.store.node_ops import NodeOps
from server.store.order_ops import OrderOps


class Store(OrderOps, NodeOps):
    """Scripts and reads over one link to Redis (one server, or a cluster)."""
