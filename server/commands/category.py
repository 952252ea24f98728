"""``dispatch category``: list, show, apply and diff categories on a running
server, through its admin API (``/v1/admin/categories``).

The server and the token are found as ``server/commands/admin_client.py`` says. A
file is checked completely here first, so a bad one is refused with every
problem named before anything is sent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import msgspec

from protocol import codec
from protocol.catalogue import CategoryDefinition
from server import categories
from server.commands import admin_client
from server.core import category_rules


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = admin_client.arguments()
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", parents=[common], help="every category: key, version, retired, name")
    show = sub.add_parser("show", parents=[common], help="one category's definition, as JSON")
    show.add_argument("key")
    show.add_argument("--version", type=int, help="one of its last versions")
    for name, text in (("apply", "check FILE and put it as the category's next version"),
                       ("diff", "what applying FILE would change")):  # fmt: skip
        one = sub.add_parser(name, parents=[common], help=text)
        one.add_argument("file", type=Path, help="a .toml or .json definition")


def _fail(response: httpx.Response) -> int:
    return admin_client.fail("dispatch category", response)


def _current(http: httpx.Client, key: str) -> CategoryDefinition | None:
    r = http.get(f"/v1/admin/categories/{key}")
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return codec.category_decoder.decode(r.content).definition


def run(args: argparse.Namespace) -> int:
    try:
        with admin_client.client(args) as http:
            return _run(args, http)
    except categories.BadDefinition as bad:
        print(f"dispatch category: {bad}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"dispatch category: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, http: httpx.Client) -> int:
    if args.action == "list":
        r = http.get("/v1/admin/categories")
        if r.status_code != 200:
            return _fail(r)
        for c in codec.category_list_decoder.decode(r.content).categories:
            flag = "retired" if c.retired else "live"
            print(f"{c.definition.key:24} v{c.version:<4} {flag:8} {c.definition.name}")
        return 0
    if args.action == "show":
        params = {"version": args.version} if args.version else {}
        r = http.get(f"/v1/admin/categories/{args.key}", params=params)
        if r.status_code != 200:
            return _fail(r)
        print(msgspec.json.format(r.content.decode(), indent=2))
        return 0
    definition = categories.load(args.file)
    if args.action == "diff":
        changes = category_rules.diff(_current(http, definition.key), definition)
        for path, old, new in changes:
            print(f"{path}: {old!r} -> {new!r}")
        print(f"{len(changes)} change(s) to {definition.key}" if changes else "no change")
        return 0
    r = http.put(f"/v1/admin/categories/{definition.key}", content=codec.encode(definition),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    if r.status_code not in (200, 201):
        return _fail(r)
    applied = codec.category_applied_decoder.decode(r.content)
    state = "applied" if applied.changed else "unchanged"
    print(f"{definition.key}: {state}, version {applied.category.version}")
    return 0
