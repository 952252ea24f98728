"""Service categories on the wire: a category's definition, as files, the
admin API and ``dispatch category`` exchange it.

A category is data: its order form (typed **attributes**), the **skills** a
worker needs, its **dispatch** policy, its **pricing** and its **workflow**
(the steps after a worker accepted). These Structs check each field's type
and range; what needs the whole definition (every step reachable, every
condition naming a real attribute) is checked by
``server/core/category_rules.py``, which names the offending path.

Money is in integers of the currency's minor unit (cents), so a quote is
exact. Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from protocol.ids import Name
from protocol.messages import (
    AttributeValue,
    FieldError,
    FieldName,
    Label,
    Millis,
    OfferMode,
    Quote,
    QuoteLine,
    StepField,
    StepInfo,
)

Amount = Annotated[int, Meta(ge=0, le=100_000_000)]
Share = Annotated[float, Meta(ge=0, le=1)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]


class AttributeType(StrEnum):
    """The types an order attribute can have (PROTOCOL.md §18)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"
    DATE_TIME = "date-time"
    DURATION = "duration"
    POINT = "point"


class Attribute(Struct, frozen=True, forbid_unknown_fields=True):
    """One field of a category's order form."""

    name: FieldName
    type: AttributeType
    label: Label = ""
    required: bool = False
    default: AttributeValue | None = None
    min: float | None = None
    max: float | None = None
    max_length: Annotated[int, Meta(ge=1, le=2000)] | None = None
    values: Annotated[list[FieldName], Meta(min_length=1, max_length=100)] | None = None


class Condition(Struct, frozen=True, forbid_unknown_fields=True):
    """True when the order's ``attribute`` compares to ``value`` by ``op``
    (``set``: the attribute has a value; ``in``: ``value`` is a list)."""

    attribute: FieldName
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "set"] = "eq"
    value: AttributeValue | list[str | int | float] | None = None


Weight = Annotated[float, Meta(ge=0, le=100)]


class Ranking(Struct, frozen=True, forbid_unknown_fields=True):
    """How candidates for an order are ranked (PROTOCOL.md §10): each costs its
    distance in km times ``distance``, plus ``rating`` times how far its rating
    is below 5 stars (out of 4), ``acceptance`` times the share of offers it did
    not accept, ``cancellation`` times its cancellation rate, less ``idle`` times
    how long it has waited since its last job (full from ``idle_full_s``); the
    lowest cost is offered first. ``fair_share`` of each broadcast's places (and
    of sequential choices among candidates within ``near_km`` of the best) go
    to newcomers (too few samples to be judged) or the longest idle. A worker
    whose cancellation rate is over ``late_over`` is offered an order only once
    it has looked for a worker for ``late_by_s``."""

    distance: Weight = 1.0
    rating: Weight = 1.0
    acceptance: Weight = 1.0
    cancellation: Weight = 2.0
    idle: Weight = 0.5
    idle_full_s: Annotated[float, Meta(gt=0, le=86400)] = 3600.0
    fair_share: Annotated[float, Meta(ge=0, le=1)] = 0.2
    near_km: Annotated[float, Meta(ge=0, le=100)] = 0.3
    late_over: Annotated[float, Meta(ge=0, le=1)] = 0.2
    late_by_s: Annotated[float, Meta(ge=0, le=3600)] = 10.0


class DispatchPolicy(Struct, frozen=True, forbid_unknown_fields=True):
    """How the category's orders find a worker; a field left out takes the
    server's setting of the same name."""

    mode: OfferMode | None = None
    broadcast_size: Annotated[int, Meta(ge=1, le=50)] | None = None
    radius_steps_km: (
        Annotated[list[Annotated[float, Meta(gt=0, le=500)]], Meta(min_length=1, max_length=10)]
        | None
    ) = None
    offer_timeout_s: Annotated[float, Meta(gt=0, le=3600)] | None = None
    max_dispatch_s: Annotated[float, Meta(gt=0, le=86400)] | None = None
    # how much of a worker's capacity (its token's) one job uses; 1 when left out
    capacity_units: Annotated[int, Meta(ge=1, le=16)] | None = None
    # the arrival promised from the accept: a worker's arrival within it is on time
    arrive_within_s: Annotated[float, Meta(gt=0, le=86400)] | None = None
    # how candidates are weighed; the defaults of Ranking when left out
    ranking: Ranking | None = None
    # a booked order: its dispatch begins this long before its slot, and its worker
    # is reminded (the job begins) this long before it
    booking_lead_s: Annotated[float, Meta(ge=0, le=7 * 86400)] | None = None
    booking_remind_s: Annotated[float, Meta(ge=0, le=86400)] | None = None


class Surcharge(Struct, frozen=True, forbid_unknown_fields=True):
    """A part of the price that applies ``when`` its condition holds (always,
    without one): ``amount`` added (times the attribute ``per`` names, if
    set), then the total multiplied by ``multiplier``."""

    label: Label
    when: Condition | None = None
    amount: Amount = 0
    per: FieldName | None = None
    multiplier: Annotated[float, Meta(ge=0, le=100)] | None = None


class Pricing(Struct, frozen=True, forbid_unknown_fields=True):
    """How an order's price is quoted at creation. ``per_minute`` counts the
    minutes of the attribute ``minutes_from`` (a duration, or a number of
    minutes), else the trip at ``speed_kmh``."""

    currency: Currency = "EUR"
    base: Amount = 0
    per_km: Amount = 0
    per_minute: Amount = 0
    minimum: Amount = 0
    minutes_from: FieldName | None = None
    speed_kmh: Annotated[float, Meta(gt=0, le=300)] = 25.0
    surcharges: Annotated[list[Surcharge], Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )


class Earnings(Struct, frozen=True, forbid_unknown_fields=True):
    """What a worker earns for a job of the category, in the price's minor units:
    ``share`` of the order's quoted total, ``per_km`` for each km from where it
    was when offered the job to the pickup, ``per_minute`` for each minute from
    its accept to the completion; and ``cancel_share`` of the fee a customer pays
    to cancel the job. A customer's tip goes to the worker whole."""

    share: Share = 0.8
    per_km: Amount = 0
    per_minute: Amount = 0
    cancel_share: Share = 0.8


class Step(Struct, frozen=True, forbid_unknown_fields=True):
    """One step of the workflow after assignment.

    ``by`` performs it (``system``: on its own after ``timeout_s``). An
    ``approval`` waits for ``by`` (customer or operator) to approve or
    reject; after ``timeout_s`` it is decided by ``on_timeout``; a rejection
    goes to ``on_reject`` (a step, or ``cancel``). A step with ``when`` is
    skipped unless its condition holds. ``state`` is the order's state after
    it (the core lifecycle's ``arrived`` or ``started``; a terminal step ends
    the order ``completed``). ``next`` defaults to the following step; the
    last step, and one marked ``terminal``, ends the workflow."""

    name: FieldName
    label: Label = ""
    by: Literal["worker", "customer", "operator", "system"] = "worker"
    kind: Literal["action", "approval"] = "action"
    state: Literal["arrived", "started"] | None = None
    requires: Annotated[list[StepField], Meta(max_length=10)] = msgspec.field(default_factory=list)
    when: Condition | None = None
    next: FieldName | None = None
    terminal: bool = False
    timeout_s: Annotated[float, Meta(gt=0, le=7 * 86400)] | None = None
    on_timeout: Literal["approve", "reject"] = "reject"
    on_reject: FieldName = "cancel"


class Cancellation(Struct, frozen=True, forbid_unknown_fields=True):
    """When the customer may cancel: free before step ``free_until`` is
    reached, for ``fee`` after it, and not at all once ``customer_until`` is
    reached (the core lifecycle ends cancelling once the service started).
    The worker may hand an accepted job back until ``worker_until`` is done
    (its point of no return; by default, until the work started)."""

    free_until: FieldName | None = None
    fee: Amount = 0
    customer_until: FieldName | None = None
    worker_until: FieldName | None = None


class CategoryDefinition(Struct, frozen=True, forbid_unknown_fields=True):
    """A service category as written in a file or sent to the admin API."""

    key: Name
    name: Label
    skills: Annotated[list[Name], Meta(min_length=1, max_length=8)]
    steps: Annotated[list[Step], Meta(min_length=1, max_length=30)]
    description: Annotated[str, Meta(max_length=2000)] = ""
    attributes: Annotated[list[Attribute], Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    dispatch: DispatchPolicy = msgspec.field(default_factory=DispatchPolicy)
    pricing: Pricing = msgspec.field(default_factory=Pricing)
    cancellation: Cancellation = msgspec.field(default_factory=Cancellation)
    earnings: Earnings = msgspec.field(default_factory=Earnings)


class Category(Struct, frozen=True):
    """A category as the server holds it: a definition and its version (1
    for the first, one more for each change). A ``retired`` category takes no
    new orders; its open orders carry on. ``updated_by`` names who made the
    last change: an operator's id, or ``config`` for a node's start-up files."""

    definition: CategoryDefinition
    version: Annotated[int, Meta(ge=1)]
    updated_at: Millis
    retired: bool = False
    updated_by: str | None = None


class CategoryList(Struct, frozen=True):
    """``GET /v1/admin/categories``."""

    categories: list[Category]


class CategoryApplied(Struct, frozen=True):
    """Answer to ``PUT /v1/admin/categories/{key}`` and to retiring or
    restoring one: the category now, and whether this call changed it."""

    category: Category
    changed: bool


__all__ = [
    "Attribute",
    "AttributeType",
    "AttributeValue",
    "Cancellation",
    "Category",
    "CategoryApplied",
    "CategoryDefinition",
    "CategoryList",
    "Condition",
    "DispatchPolicy",
    "Earnings",
    "FieldError",
    "Pricing",
    "Quote",
    "QuoteLine",
    "Ranking",
    "Step",
    "StepField",
    "StepInfo",
    "Surcharge",
]
