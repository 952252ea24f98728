"""The ``dispatch`` command: serve, mint tokens, run the demo, simulate, bench."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from server import settings as settings_mod

DESCRIPTION = """\
Real-time dispatch server for on-demand local services.

Workers connect over WebSocket (/v1/worker), customers create and follow
orders over HTTP (/v1/orders). State lives in Redis: set REDIS_URL, or let
`dispatch serve` start a private redis-server. Settings come from DISPATCH_*
environment variables or a TOML file (--config); see README.md."""


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app

    cfg = _settings(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    cfg = settings_mod.Settings(**{**_as_dict(cfg), **overrides})
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(cfg), host=cfg.host, port=cfg.port, loop="uvloop", http="httptools",
        ws="websockets-sansio", ws_max_size=cfg.max_frame_bytes, ws_ping_interval=20.0,
        ws_ping_timeout=20.0, lifespan="on", log_level=cfg.log_level, access_log=False,
    )  # fmt: skip
    return 0


def _as_dict(cfg: settings_mod.Settings) -> dict[str, object]:
    return {f: getattr(cfg, f) for f in cfg.__struct_fields__}


def _settings(args: argparse.Namespace) -> settings_mod.Settings:
    try:
        return settings_mod.load(config_file=getattr(args, "config", None))
    except settings_mod.SettingsError as exc:
        raise SystemExit(f"dispatch: {exc}") from exc


def _token(args: argparse.Namespace) -> int:
    from server import auth

    cfg = _settings(args)
    skills = [s for s in args.skills.split(",") if s]
    token = auth.mint(cfg.jwt_secret, args.role, args.subject, ttl_s=args.ttl or cfg.token_ttl_s,
                      city=args.city, skills=skills, capacity=args.capacity)  # fmt: skip
    print(token)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(args)


CORE_COMMANDS = ("serve", "token")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; the simulator and bench subcommands (heavier
    imports) are left out when ``command`` is a core one."""
    parser = argparse.ArgumentParser(
        prog="dispatch", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run a server node", description="Run one server node.")
    serve.add_argument("--config", help="TOML settings file (else $DISPATCH_CONFIG)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.set_defaults(func=_serve)

    token = sub.add_parser(
        "token",
        help="mint a development token",
        description="Print a signed token (HS256, with DISPATCH_JWT_SECRET).",
    )
    token.add_argument("role", choices=["worker", "customer"])
    token.add_argument("subject", help="the worker's or customer's id")
    token.add_argument("--city", default="metro", help="worker's city (default metro)")
    token.add_argument("--skills", default="delivery", help="comma-separated skills")
    token.add_argument("--capacity", type=int, default=1, help="jobs at once (default 1)")
    token.add_argument("--ttl", type=int, help="seconds of validity (default token_ttl_s)")
    token.add_argument("--config", help="TOML settings file")
    token.set_defaults(func=_token)

    demo = sub.add_parser("demo", help="run a server and a short simulated fleet, then stop",
                          description="Start a server with a private Redis, drive a small "
                          "simulated fleet through real orders, print what happened.")  # fmt: skip
    demo.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    demo.add_argument("--scenario", default="demo", help="simulator scenario (default demo)")
    demo.add_argument(
        "--report",
        default="demo-report.json",
        help="where to keep the simulator's JSON report (default demo-report.json)",
    )
    demo.set_defaults(func=_demo)

    if command not in CORE_COMMANDS:
        _add_tools(sub)
    return parser


def _add_tools(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Subcommands whose code lives in the simulator and load-test packages."""
    from loadtest import bench
    from simulator import cli as sim_cli

    sim = sub.add_parser(
        "simulate",
        help="drive a simulated fleet against a running server",
        description="Drive simulated workers and customers through the protocol.",
    )
    sim_cli.add_arguments(sim)
    sim.set_defaults(func=sim_cli.run)
    bench_parser = sub.add_parser(
        "bench",
        help="measure the server against the bare stack's limits",
        description="Measure location ingest, dispatch latency and idle memory, side by side "
        "with a bare websockets server, on this machine.",
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=bench.run)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(argv[0] if argv else None).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
