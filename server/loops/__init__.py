"""The node's background loops: location ingest, the deadline sweeper, node
heartbeats, each run under a supervisor that restarts it or fails the node.
"""
