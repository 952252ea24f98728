"""The endpoints: the worker's WebSocket, the customers' HTTP API and live
order sockets, the operators' admin API, the node's health routes, the
connection-level guards under uvicorn, and the app factory (``app.py``)
whose lifespan owns the node's runtime.

They translate frames and requests into calls on the services and the
store, and errors into protocol error codes; no dispatch rule lives here.

Imports the node's runtime, the loops (a webhook secret), the services, the
store, the categories, ``server/process/`` and the core; never
``server/commands/`` or ``server/cli.py``.
"""
