"""What a process claims before it starts: the data directory's lock and the port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.process import claims
from tests.support import UNIT

HOLD = (
    "import sys; from server.process import claims; "
    "claims.lock_data_dir(sys.argv[1]); print('held')"
)


def test_a_held_data_dir_is_refused_naming_its_holder(tmp_path: Path) -> None:
    """While another process holds the directory it is refused with that pid; after, it is free."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD + "; sys.stdin.read()", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(claims.DataDirInUse) as refused:
            claims.lock_data_dir(tmp_path)
        assert refused.value.pid == holder.pid and str(tmp_path) in str(refused.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=5 * UNIT)
        holder.stdout.close()
    assert claims.lock_data_dir(tmp_path) == tmp_path.resolve()
    assert claims.lock_data_dir(tmp_path) == tmp_path.resolve()  # again: this process holds it


def test_a_port_with_reuse_port_listeners_is_shared_by_them_only() -> None:
    """Nodes with SO_REUSEPORT share a port; the fleet's check and a plain node see it taken."""
    first = claims.listening_sockets("127.0.0.1", 0, reuse_port=True)
    port = first[0].getsockname()[1]
    try:
        second = claims.listening_sockets("127.0.0.1", port, reuse_port=True)
        for sock in second:
            sock.close()
        with pytest.raises(claims.PortInUse) as refused:
            claims.check_port("127.0.0.1", port)
        assert f"127.0.0.1:{port}" in str(refused.value)
        with pytest.raises(claims.PortInUse):
            claims.listening_sockets("127.0.0.1", port)
    finally:
        for sock in first:
            sock.close()
    claims.check_port("127.0.0.1", port)
