"""The ``dispatch`` command's subcommands, beside ``serve`` and ``token``
(which live in ``server/cli.py``), and the local processes they start.

Owns ``dispatch category`` (``category.py``) and ``dispatch payouts``
(``payouts.py``) with the admin API client they share (``admin_client.py``),
``dispatch demo`` (``demo.py``), ``dispatch up`` (``up.py``), the
``dispatch serve --workers N`` parent of N node processes
(``node_processes.py``), and the local Redis Cluster that ``dispatch up``,
the bench, the chaos run and the tests start (``embedded_cluster.py``).
That last one imports ``redis``, to form the cluster with plain cluster
commands: it is a tool beside a deployment, and the only code here that
does; a node's own code imports Redis only in ``server/store/``.

Imports anything below it (``server/process/``, the core, the categories,
the loops' supervisor) and the simulator; never ``server/api/`` or
``server/node/``: a subcommand that runs a node starts ``dispatch serve``
as a process of its own.
"""
