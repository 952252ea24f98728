"""The domain services that the endpoints and the loops call.

Owns what happens to an order (``dispatcher.py``) and its steps after
assignment (``workflows.py``), orders booked for later (``bookings.py``),
operators' overrides (``overrides.py``), this node's copy of the category
catalogue (``node_catalogue.py``), the hub that routes pub/sub messages to
the sockets this node holds (``hub.py``), and the figures the hot paths
count (``figures.py``). Rules come from ``server/core/``, state from
``server/store/``: a service decides what to ask, a script decides atomically.

Imports the store, ``server/categories/``, ``server/process/`` and the core;
never ``server/loops/``, ``server/node/``, ``server/api/``,
``server/commands/`` or ``server/cli.py``.
"""
