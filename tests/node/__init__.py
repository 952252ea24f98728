"""Tests of server/node/, one file per module: the runtime and its Prometheus exposition."""
