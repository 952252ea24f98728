"""What the scripts with many arguments take: one msgpack map each, named here.

The rule: a script whose arguments (besides ARGV[1], the clock) are more than
four takes them as one packed map in ARGV[2], which it reads as ``opts`` after
``local opts = cmsgpack.unpack(ARGV[2])`` (bullmq's way); one with four or fewer
keeps them as positions, named in one ``local`` line under its header, where a
reader sees them all at once. A map costs Redis one ``cmsgpack.unpack`` per call
(a few microseconds) and saves a reader counting to ARGV[13].

``server/store/scripts.py`` refuses to render a script that reads an ``opts.<name>``
its Struct here does not have, so a misspelt name fails at import, not as a nil
in Redis. An optional value that is None arrives as ``nil``.

Imports nothing from ``server``.
"""

from __future__ import annotations

import msgspec


class TickArgs(msgspec.Struct, frozen=True):
    order_id: str
    radii: str  # radius steps in m (comma list, ascending) unless the order pinned its own
    want: int  # how many candidates
    max_age_ms: int  # a candidate's last report is at most this old
    lease_ms: int
    live_nodes: str  # comma list


class RejectArgs(msgspec.Struct, frozen=True):
    order_id: str
    offer_id: str
    worker_id: str
    reason: str
    lease_ms: int


class CancelArgs(msgspec.Struct, frozen=True):
    order_id: str
    by: str  # 'customer' or 'operator'
    actor: str
    done: int  # how many workflow steps the caller saw done
    fee: int  # minor units
    currency: str = ""  # of the order's quote
    pay: str = ""  # what the worker earns of the fee: 'reason=amount,...' (lib/pay_lines)


class WorkflowArgs(msgspec.Struct, frozen=True):
    order_id: str
    by: str  # worker, customer, operator, system
    actor: str
    state: str  # the state the caller saw
    pending: str  # the pending step the caller saw ('' for none)
    event: str  # the core event
    step: str  # the step's name, recorded
    reason: str  # '' for none
    next_pending: str  # the step due next ('' when the workflow ends)
    data: str  # the step's data (JSON, '' for none)
    frame: str  # for the worker's app ('' for none)
    timer_ms: int | None = None  # the next step's timer
    cancel: bool = False  # cancel the order after the step
    arrival_ms: int | None = None  # the category's promised arrival (from the accept)
    currency: str = ""  # when the step completes an order with a price
    pay: str = ""  # 'reason=amount,...' but the time part
    per_minute: int = 0  # the time part's rate


class ReassignArgs(msgspec.Struct, frozen=True):
    order_id: str
    actor: str
    reason: str  # '' for none
    first_step: str  # '' for an order by bare skill
    lease_ms: int
    by: str  # 'operator', or 'worker' (handing its job back)
    done: int  # for a worker: the steps done it saw


class ConnectArgs(msgspec.Struct, frozen=True):
    worker_id: str
    node: str
    session: str
    skills: str  # comma list
    capacity: int
    keep_ms: int


class HoldArgs(msgspec.Struct, frozen=True):
    worker_id: str
    action: str  # server.core.worker_states.HoldAction
    actor: str
    for_ms: int  # a pause lasts until now plus this
    customer: str  # '' for every customer
    reason: str  # '' for none


class CategoryArgs(msgspec.Struct, frozen=True):
    key: str
    action: str  # 'apply', 'retire', 'restore'
    definition: str  # JSON, for apply
    keep_versions: int
    by: str


# The scripts that take a map, by name, and what they take.
BY_SCRIPT: dict[str, type[msgspec.Struct]] = {
    "tick": TickArgs,
    "reject": RejectArgs,
    "cancel": CancelArgs,
    "workflow": WorkflowArgs,
    "reassign": ReassignArgs,
    "connect": ConnectArgs,
    "hold": HoldArgs,
    "category": CategoryArgs,
}

_encode = msgspec.msgpack.Encoder().encode


def packed(args: msgspec.Struct) -> bytes:
    """The map a script reads with ``cmsgpack.unpack(ARGV[2])``."""
    return _encode(args)
