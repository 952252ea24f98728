"""Tests of simulator/, one file per module or part; no server unless a file says so."""
