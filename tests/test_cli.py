"""The ``dispatch`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server.cli import main
from server.process import auth

# Every subcommand, written out by hand (not read from the parser).
COMMANDS = ["serve", "token", "demo", "category", "payouts", "up", "simulate", "bench", "chaos"]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """``dispatch --help`` lists exactly the subcommands, in order, each with its help line."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    listing = out.split("positional arguments:\n")[1].split("\n\n")[0]
    rows = [line.split(maxsplit=1) for line in listing.splitlines() if line.startswith("    ")]
    assert [row[0] for row in rows] == COMMANDS
    assert all(len(row) == 2 for row in rows), rows


def test_token_mints_a_verifiable_worker_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dispatch token worker`` prints a token that verifies with the configured secret."""
    secret = "a-cli-test-secret-of-32-bytes-or-more"
    monkeypatch.setenv("DISPATCH_JWT_SECRET", secret)
    assert main(["token", "worker", "w-9", "--city", "oslo", "--skills", "a,b"]) == 0
    identity = auth.verify(auth.TokenPolicy(secret), capsys.readouterr().out.strip(), "worker")
    assert identity == auth.Identity("w-9", "worker", "oslo", ("a", "b"), 1)


def test_bad_setting_is_a_clear_error() -> None:
    """A bad environment value stops the command with a message naming it."""
    env = {"DISPATCH_OFFER_TIMEOUT_S": "soon", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "customer", "c"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "offer_timeout_s" in done.stderr
