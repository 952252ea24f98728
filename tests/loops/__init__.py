"""Tests of server/loops/, one file per module: the supervisor, heartbeats, webhook deliveries."""
