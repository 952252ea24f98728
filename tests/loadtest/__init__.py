"""Tests of loadtest/: the locust run and the chaos run, each short."""
