"""Tests of server/core/, one file per module: synchronous, over the whole tables."""
