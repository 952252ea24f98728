"""Load test (locust) and benchmark (``dispatch bench``) for the dispatch server.

Everything here is a client: it speaks the wire format through ``protocol``
and never imports ``server``. The benchmark starts ``dispatch serve`` (and a
redis-server) as subprocesses, which is the only way it touches the server.
"""
