"""Tests of server/api/, one file per module, against real uvicorn and real clients."""
