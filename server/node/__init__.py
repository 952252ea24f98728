"""One node's runtime: what lives as long as its connections to Redis.

Owns :class:`~server.node.runtime.Runtime` (connects, builds the services,
starts the background loops under a supervisor, stops them in reverse) and
the Prometheus exposition that reads a running node (``exposition.py``).

Imports the loops, the services, the store, ``server/process/`` and the
core; never ``server/api/`` (the app factory there owns a runtime and the
endpoints read it, so the arrow points this way only), ``server/commands/``
or ``server/cli.py``.
"""
