"""The Redis store: the only package that imports ``redis``.

Redis is the source of truth. Every change of an order or a worker is one Lua
script (``lua/``), a small compare-and-set step whose transition rules are
rendered from ``server.core`` (see :mod:`server.store.scripts`).
"""
