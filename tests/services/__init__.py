"""Tests of server/services/, one file per module, on a real Redis and a hand-driven clock."""
