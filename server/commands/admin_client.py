"""What the operators' commands (``dispatch category``, ``dispatch payouts``)
share: how they reach a running server's admin API and report its refusals.

The server is ``--url`` (or ``DISPATCH_URL``); the token is ``--token`` (or
``DISPATCH_ADMIN_TOKEN``), else an admin token minted with the deployment's
secret (the settings' ``jwt_secret``, as ``dispatch token admin`` does).
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx
import msgspec

from protocol import codec
from server.process import auth, settings


def arguments() -> argparse.ArgumentParser:
    """A parent parser with the server's address, the token and the settings file."""
    common = argparse.ArgumentParser(add_help=False)
    url = os.environ.get("DISPATCH_URL", "http://127.0.0.1:8000")
    common.add_argument("--url", default=url, help=f"the server (default {url})")
    common.add_argument(
        "--token", default=os.environ.get("DISPATCH_ADMIN_TOKEN"),
        help="an admin token (default: minted with the settings' jwt_secret)",
    )  # fmt: skip
    common.add_argument("--config", help="TOML settings file (for the secret)")
    return common


def client(args: argparse.Namespace) -> httpx.Client:
    """An HTTP client for the admin API, with the token."""
    token = args.token
    if not token:
        cfg = settings.for_command(args.config)
        token = auth.mint(cfg.tokens, "admin", "dispatch-cli", ttl_s=300)
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=10)  # fmt: skip


def fail(prog: str, response: httpx.Response) -> int:
    """Tell what the server refused (its code, message and each bad field); 1."""
    try:
        err = codec.http_error_decoder.decode(response.content)
    except msgspec.DecodeError:
        print(f"{prog}: HTTP {response.status_code}", file=sys.stderr)
        return 1
    print(f"{prog}: {err.code}: {err.message}", file=sys.stderr)
    for e in err.errors or []:
        print(f"  {e.field}: {e.message} ({e.code})", file=sys.stderr)
    return 1
