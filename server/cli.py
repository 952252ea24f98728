"""The ``dispatch`` command: serve, mint tokens, run the demo, simulate, bench."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import re
import resource
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Protocol

from server.process import logs
from server.process import settings as settings_mod

DESCRIPTION = """\
Real-time dispatch server for on-demand local services.

Workers connect over WebSocket (/v1/worker), customers create and follow
orders over HTTP (/v1/orders). State lives in Redis: set REDIS_URL, or let
`dispatch serve` start a private redis-server. Settings come from DISPATCH_*
environment variables or a TOML file (--config); see README.md."""


# A token in a logged URL or header (uvicorn logs each WebSocket's path and query).
_TOKEN = re.compile(r"((?:token|access_token)=|[Bb]earer\s+)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Blank out tokens in every log record, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(
    level: str, fmt: str = "text", node: str = "", *, access_log: bool = False
) -> None:
    """One handler on the root logger (uvicorn's loggers propagate to it), in
    ``text`` or ``json`` lines, each with the node and, where known, the worker
    and the order; tokens redacted. Without ``access_log``, uvicorn's lines about
    each WebSocket are debug lines."""
    logging.basicConfig(level=level.upper(), format=logs.TEXT_FORMAT, force=True)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.filters = [] if access_log else [logs.WebSocketLines()]
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
        handler.addFilter(logs.Context(node))
        if fmt == "json":
            handler.setFormatter(logs.JsonFormatter())


def _serve(args: argparse.Namespace) -> int:
    cfg = _serve_settings(args)
    raise_open_file_limit()
    sockets = _claim(cfg, args)
    if args.workers > 1:
        import asyncio

        from server.commands.node_processes import Fleet

        configure_logging(cfg.log_level, cfg.log_format, "fleet")
        serve_args = ["--host", cfg.host, "--port", str(cfg.port)]
        if args.config:
            serve_args += ["--config", args.config]
        return asyncio.run(Fleet(cfg, args.workers, serve_args).run())
    configure_logging(cfg.log_level, cfg.log_format, cfg.node, access_log=cfg.access_log)
    return _run_node(cfg, sockets)


def _serve_settings(args: argparse.Namespace) -> settings_mod.Settings:
    """The settings with ``--host`` and ``--port``; exit if they are bad or unsafe."""
    cfg = _settings(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        cfg = settings_mod.Settings(**{**_as_dict(cfg), **overrides})
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"dispatch: bad setting: {exc}") from exc
    problem = cfg.insecure_secret()
    if problem:
        raise SystemExit(
            f"dispatch serve: refusing to listen on {cfg.host}: {problem}. Set "
            f"DISPATCH_JWT_SECRET to a random secret of at least {settings_mod.MIN_SECRET_BYTES} "
            "bytes (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), "
            "or listen on 127.0.0.1 for development."
        )
    return cfg


def _claim(cfg: settings_mod.Settings, args: argparse.Namespace) -> list[socket.socket]:
    """Before anything starts: lock the data directory when the private Redis is to
    live there, and bind the port (a node) or check that no server listens on it (a
    fleet, whose nodes bind it); exit naming what another process holds."""
    from server.process import claims

    try:
        if not cfg.redis_url:  # a fleet's nodes are given the parent's Redis
            claims.lock_data_dir(cfg.data_dir)
        if args.workers > 1:
            claims.check_port(cfg.host, cfg.port)
            return []
        return claims.listening_sockets(cfg.host, cfg.port, reuse_port=args.reuse_port)
    except claims.Refused as exc:
        raise SystemExit(f"dispatch serve: {exc}") from None


def _run_node(cfg: settings_mod.Settings, sockets: list[socket.socket]) -> int:
    """Serve on ``sockets`` until told to stop; the node's exit status."""
    import uvicorn

    from server.api.app import create_app
    from server.api.http_guard import protocols

    app = create_app(cfg)
    http, ws = protocols(cfg)
    config = uvicorn.Config(
        app, host=cfg.host, port=cfg.port, loop="uvloop", http=http,
        ws=ws, ws_max_size=cfg.max_frame_bytes, ws_ping_interval=20.0,
        ws_ping_timeout=20.0, lifespan="on", log_level=cfg.log_level, log_config=None,
        access_log=cfg.access_log, limit_concurrency=cfg.max_connections,
        timeout_graceful_shutdown=math.ceil(cfg.shutdown_timeout_s), timeout_keep_alive=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    for sock in sockets:  # uvicorn says so only for the sockets it binds itself
        host, port = sock.getsockname()[:2]
        logging.getLogger(__name__).info("listening on http://%s:%d (served once the node is up)",
                                         f"[{host}]" if ":" in host else host, port)  # fmt: skip
    with signals_end_the_drain():
        server.run(sockets=sockets)
    if not server.started:
        return STARTUP_FAILURE
    if server.force_exit:  # a second Ctrl-C: open connections and the app were not drained
        return CUT_SHORT
    return int(app.state.exit_code)


STARTUP_FAILURE = 3  # as uvicorn.run exits when the app does not start
CUT_SHORT = 128 + signal.SIGINT  # as a shell reports a Ctrl-C that ended the process
DRAINING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_end_the_drain() -> Iterator[None]:
    """While uvicorn runs: a SIGINT or SIGTERM it caught ends the process with the
    node's own status once it has drained, not by the signal.

    uvicorn handles both signals itself (it drains), then puts back the handlers
    it found and raises each signal it caught again, so that the process ends "as
    the signal would": a KeyboardInterrupt traceback and 130 for Ctrl-C, 143 for
    SIGTERM. The handlers it finds are these, which take note of nothing: a drain
    asked for is a clean end (0), a node that failed for good still says so
    through ``app.state.exit_code`` (it stops itself with a SIGTERM too), and a
    drain cut short by a second Ctrl-C by ``CUT_SHORT``."""
    previous = {sig: signal.signal(sig, _drained) for sig in DRAINING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drained(signum: int, frame: FrameType | None) -> None:
    """uvicorn's raising again of a signal it has already drained for."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one: each socket is a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.getLogger(__name__).info("open files: up to %d", hard)


def _as_dict(cfg: settings_mod.Settings) -> dict[str, object]:
    return {f: getattr(cfg, f) for f in cfg.__struct_fields__}


def _settings(args: argparse.Namespace) -> settings_mod.Settings:
    return settings_mod.for_command(getattr(args, "config", None))


def _token(args: argparse.Namespace) -> int:
    from protocol.tokens import Role
    from server.process import auth

    cfg = _settings(args)
    skills = [s for s in args.skills.split(",") if s]
    roles: dict[str, Role] = {"worker": "worker", "customer": "customer", "admin": "admin"}
    role = roles[args.role]
    try:
        token = auth.mint(cfg.tokens, role, args.subject, ttl_s=args.ttl or cfg.token_ttl_s,
                          city=args.city, skills=skills, capacity=args.capacity)  # fmt: skip
    except ValueError as exc:
        raise SystemExit(f"dispatch token: {exc}") from exc
    print(token)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from server.commands.demo import run_demo

    return run_demo(args)


CORE_COMMANDS = ("serve", "token")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; the simulator and bench subcommands (heavier
    imports) are left out when ``command`` is a core one."""
    parser = argparse.ArgumentParser(
        prog="dispatch", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run a server node",
        description="Run a server node (or, with --workers N, N of them on one port).",
    )
    serve.add_argument("--config", help="TOML settings file (else $DISPATCH_CONFIG)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--workers", type=_positive, default=1, metavar="N",
        help="run N node processes on the port (SO_REUSEPORT), each its own node, sharing "
        "one Redis (the private one when REDIS_URL is not set); default 1",
    )  # fmt: skip
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    token = sub.add_parser(
        "token",
        help="mint a development token",
        description="Print a signed token (HS256, with DISPATCH_JWT_SECRET).",
    )
    token.add_argument("role", choices=["worker", "customer", "admin"],
                       help="admin: an operator of the admin API (/v1/admin/...)")  # fmt: skip
    token.add_argument("subject", help="the worker's, customer's or operator's id")
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

    from server.commands import admin_client, category, payouts, up

    _mount(sub, "category", category,
           "list, show, apply or diff service categories on a running server",
           "Manage service categories through a running server's admin API.")  # fmt: skip
    _mount(sub, "payouts", payouts,
           "a settlement CSV of the workers' earnings over a period, from a running server",
           "Write what each worker earned over whole UTC days FROM to TO, by city, worker and "
           "currency (jobs, share, distance, time, cancel_fee, tip, total in minor units), as "
           "CSV, read from a running server's admin API.",
           parents=[admin_client.arguments()])  # fmt: skip
    _mount(sub, "up", up,
           "run a local Redis Cluster, N nodes and haproxy in front, until Ctrl-C",
           "A whole deployment on one machine, for a demonstration: a local Redis Cluster "
           "(3 masters, a replica each), N dispatch nodes, and haproxy with deploy/haproxy.cfg "
           "in front of them. Ctrl-C stops everything. Needs haproxy (apt install haproxy) "
           "unless --no-balancer.")  # fmt: skip

    if command not in CORE_COMMANDS:
        _add_tools(sub)
    return parser


def _add_tools(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Subcommands whose code lives in the simulator and load-test packages."""
    from loadtest import bench, chaos
    from simulator import cli as sim_cli

    _mount(sub, "simulate", sim_cli, "drive a simulated fleet against a running server",
           "Drive simulated workers and customers through the protocol.")  # fmt: skip
    _mount(sub, "bench", bench, "measure the server against the bare stack's limits",
           "Measure location ingest, dispatch latency and idle memory, side by side with a "
           "bare websockets server, on this machine.")  # fmt: skip
    _mount(sub, "chaos", chaos, "kill nodes and Redis under load, then check every invariant",
           "Run a private Redis, several nodes and the simulator; SIGKILL nodes, SIGKILL and "
           "SIGSTOP Redis; then check in Redis that nothing acknowledged was lost, nothing is "
           "stuck or assigned twice, and live followers saw every event. Exit 1 on any "
           "violation.")  # fmt: skip


class Subcommand(Protocol):
    """A module that adds its arguments to its parser and runs with them."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


def _mount(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, command: Subcommand,
    help: str, description: str, parents: Sequence[argparse.ArgumentParser] = (),
) -> None:  # fmt: skip
    """``dispatch NAME``, its arguments and its function from ``command``'s module."""
    parser = sub.add_parser(name, help=help, description=description, parents=list(parents))
    command.add_arguments(parser)
    parser.set_defaults(func=command.run)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(argv[0] if argv else None).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
