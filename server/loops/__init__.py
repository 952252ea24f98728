"""The node's background loops: location ingest, the deadline sweeper, node
heartbeats, webhook deliveries, each run under a supervisor that restarts it
or fails the node.

Imports the services (the sweeper ticks orders through the dispatcher), the
store, ``server/process/`` and the core; never ``server/node/`` (the runtime
starts the loops), ``server/api/``, ``server/commands/`` or ``server/cli.py``.
"""
