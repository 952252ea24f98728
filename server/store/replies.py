"""The replies of the Lua scripts, as typed Structs.

Every script answers a flat field/value list (``lua/lib/reply.lua``);
:func:`decode` turns it into the Struct named in the script's header, so a
reply's shape is written once, here, and a field a script misspells or
forgets fails loudly (``forbid_unknown_fields``, required fields) instead of
being read at a wrong offset.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from protocol.messages import OfferMode

R = TypeVar("R", bound=msgspec.Struct)


class Reply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every script reply."""


class Refusable(Reply, frozen=True):
    """A compare-and-set step: ``ok`` 1, or 0 with the protocol's error ``code``
    (or ``stale``: the order moved on since the caller read it, raised as
    :class:`server.store.engine.Stale`)."""

    ok: int
    code: str = ""


class TickReply(Reply, frozen=True):
    action: Literal["done", "wait", "search", "step", "begin"]
    step: str = ""  # the pending step whose timer ran out (action 'step')
    now: int = 0
    created: int = 0
    dv: str = ""
    skill: str = ""
    mode: OfferMode = OfferMode.SEQUENTIAL
    plat: float = 0.0
    plng: float = 0.0
    dlat: float | None = None
    dlng: float | None = None
    note: str | None = None
    ids: list[str] = []
    dists: list[float] = []
    skills: list[str] = []  # each candidate's skills, a comma list
    # what the order's category pinned (absent for an order by bare skill)
    otms: int = 0
    maxms: int = 0
    bsize: int = 0
    cat: str = ""
    catv: int = 0
    attrs: str = ""
    quote: str = ""
    steps: str = ""
    rank: str = ""  # the category's ranking weights (JSON), when it set any
    sls: int | None = None  # a booked order's slot
    sle: int | None = None
    prio: int = 0  # urgent: taken back from a worker away when its booked job began


class OfferReply(Reply, frozen=True):
    made: int
    holders: list[str] = []
    reason: str = ""


class AcceptReply(Refusable, frozen=True):
    now: int = 0
    created: int = 0
    worker_state: str = ""
    order_state: str = ""
    order: list[str] = []  # the order's hash, as field/value pairs


class RejectReply(Refusable, frozen=True):
    worker_state: str = ""
    redispatch: int = 0


class StepReply(Refusable, frozen=True):
    state: str = ""


class WorkflowReply(Refusable, frozen=True):
    order_state: str = ""
    worker_state: str = ""


class CategoryReply(Refusable, frozen=True):
    version: int = 0
    changed: int = 0
    seq: int = 0


class SettleReply(Reply, frozen=True):
    state: str = ""
    stale: int = 0


class CreateReply(Reply, frozen=True):
    created: int
    now: int = 0
    events: list[str] = []


class ConnectReply(Reply, frozen=True):
    state: str = ""
    offer_frame: str = ""
    jobs: list[str] = []
    paused_until: int | None = None
    booked: list[str] = []  # booked jobs accepted and not begun
    blocked: int = 0


class BeginReply(Reply, frozen=True):
    action: Literal["begun", "away", "none"]
    worker_state: str = ""


class DoneReply(Reply, frozen=True):
    done: int


class TakeoverReply(Reply, frozen=True):
    workers: int
    offers: int


class ClaimReply(Reply, frozen=True):
    due: list[str] = []


class CountReply(Reply, frozen=True):
    count: int


class RateReply(Reply, frozen=True):
    allowed: int
    retry_ms: int = 0


class HeartbeatReply(Reply, frozen=True):
    now: int
    added: int = 0
    live: list[str] = []
    dead: list[str] = []


def _text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def fields(flat: list[object]) -> dict[str, object]:
    """A flat ``[k1, v1, k2, v2, ...]`` reply as a dict of text keys and values."""
    return {str(_text(flat[i])): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def decode(flat: object, shape: type[R]) -> R:
    """A script's reply as the Struct ``shape``; raises ``msgspec.ValidationError``
    when the script answered something else."""
    if not isinstance(flat, list):
        raise msgspec.ValidationError(f"expected a field/value list, got {flat!r:.80}")
    return msgspec.convert(fields(flat), shape, strict=False)


class ReassignReply(Refusable, frozen=True):
    state: str = ""
    workers: list[str] = []
    worker_state: str = ""  # the worker's, when it handed the job back


class ExtendReply(Refusable, frozen=True):
    state: str = ""
    due: int = 0
