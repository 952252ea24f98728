"""Behaviours across the layers, each file named for one: a running server, nodes, Redis faults."""
