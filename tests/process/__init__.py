"""Tests of server/process/, one file per module: settings, tokens, logs, claims, private Redis."""
