"""Tests of protocol/: round trips, frozen samples, generated documents, error codes."""
