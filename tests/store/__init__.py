"""Tests of server/store/, one file per module or per race, against a real redis-server."""
