"""Every message on the wire, as msgspec Structs.

This module is the wire format and nothing else: it imports nothing from
``server`` or ``simulator``. Worker apps, customer clients, the simulator and
the load test all build their frames from these types.

Conventions (documented in ``protocol/PROTOCOL.md``):

- Frames are JSON objects with a ``type`` tag. Each direction has one tagged
  union: :data:`WorkerMessage` (worker to server), :data:`ServerMessage`
  (server to worker) and :data:`LiveMessage` (server to a customer following an
  order).
- Times are integers: milliseconds since the Unix epoch (UTC).
- Any client message may carry an ``id`` chosen by the client; the server's
  ``ack`` or ``error`` reply echoes it.
- Schema evolution: new fields always get defaults, so old frames keep
  decoding; a tag is never reused for a different message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from protocol.ids import Name, OfferIdText, OrderIdText

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# Redis geo sets (and Web Mercator maps) stop at +-85.05112878 degrees of latitude.
Latitude = Annotated[float, Meta(ge=-85.05112878, le=85.05112878)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
Millis = Annotated[int, Meta(ge=0)]
ClientId = Annotated[str, Meta(max_length=64)]
Text = Annotated[str, Meta(max_length=500)]


class OrderState(StrEnum):
    """Where an order is in its lifecycle (see ``server/core/order_states.py``)."""

    CREATED = "created"
    DISPATCHING = "dispatching"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    ARRIVED = "arrived"
    STARTED = "started"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNASSIGNED = "unassigned"


class WorkerState(StrEnum):
    """What a worker can be asked to do (see ``server/core/worker_states.py``)."""

    OFFLINE = "offline"
    PAUSED = "paused"
    AVAILABLE = "available"
    OFFERED = "offered"
    ON_JOB = "on_job"


class OfferMode(StrEnum):
    """How an order is offered: to one worker at a time, or to the top K at once."""

    SEQUENTIAL = "sequential"
    BROADCAST = "broadcast"


class Point(Struct, frozen=True):
    """A place on the map, in WGS84 degrees."""

    lat: Latitude
    lng: Longitude


# A field or step name: lower-case letters, digits and '_', starting with a letter.
FIELD = r"^[a-z][a-z0-9_]{0,31}\Z"
FieldName = Annotated[str, Meta(pattern=FIELD)]
Label = Annotated[str, Meta(max_length=200)]
# What a client sends as an order attribute: text, a number, a flag, or a point.
AttributeValue = str | int | float | bool | dict[str, float]
Attributes = Annotated[
    dict[Annotated[str, Meta(max_length=64)], AttributeValue], Meta(max_length=50)
]

# Data sent with a workflow step: a photo's URL, the customer's code, a reading.
StepData = Annotated[
    dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=2000)] | float],
    Meta(max_length=10),
]

# ---------------------------------------------------------------- shared with the catalogue

MAX_BOOK_AHEAD_S = 30 * 86_400  # an order may be booked for a slot starting at most this far ahead
MAX_SLOT_S = 12 * 3_600  # a booked slot lasts at most this long


class Slot(Struct, frozen=True, forbid_unknown_fields=True):
    """When a booked job is to be done: from ``start`` to ``end`` (ms, server clock)."""

    start: Millis
    end: Millis


class StepField(Struct, frozen=True, forbid_unknown_fields=True):
    """Data a step needs from whoever performs it: text, a number, a URL (a
    proof photo), or ``code``: the code the customer was given at creation."""

    name: FieldName
    type: Literal["string", "number", "url", "code"] = "string"
    label: Label = ""
    required: bool = True


class QuoteLine(Struct, frozen=True):
    """One part of a quote, in minor units (a multiplier's line is what it added)."""

    label: str
    amount: int


class Quote(Struct, frozen=True):
    """An order's price, computed at creation and pinned on the order."""

    currency: str
    total: int
    lines: list[QuoteLine] = msgspec.field(default_factory=list)


class StepInfo(Struct, frozen=True):
    """A workflow step as a worker's app draws it."""

    name: str
    label: str
    by: str
    kind: str = "action"
    requires: list[StepField] = msgspec.field(default_factory=list)


class FieldError(Struct, frozen=True):
    """One bad field: where (``attributes.weight_kg``, ``steps[2].next``),
    a stable code, and a message for people."""

    field: str
    code: str
    message: str


# ---------------------------------------------------------------- worker -> server


class Fix(Struct, frozen=True):
    """One position sample from the worker's device."""

    lat: Latitude
    lng: Longitude
    at: Millis
    accuracy: Annotated[float, Meta(ge=0)] | None = None
    heading: Annotated[float, Meta(ge=0, lt=360)] | None = None
    speed: Annotated[float, Meta(ge=0)] | None = None


class Hello(Struct, frozen=True, tag="hello"):
    """First frame from a worker: protocol versions it speaks, and its token if
    it did not send one at the handshake."""

    versions: Annotated[list[int], Meta(min_length=1, max_length=16)]
    id: ClientId | None = None
    token: Annotated[str, Meta(max_length=4096)] | None = None
    app: Text | None = None


class LocationReported(Struct, frozen=True, tag="location"):
    """One or more position samples, oldest first (at most 50 per frame)."""

    points: Annotated[list[Fix], Meta(min_length=1, max_length=50)]
    id: ClientId | None = None


class ChangeStatus(Struct, frozen=True, tag="status"):
    """The worker starts or ends a shift, or takes a break."""

    status: Literal["available", "paused", "offline"]
    id: ClientId | None = None


class OfferReceived(Struct, frozen=True, tag="offer_received"):
    """Delivery acknowledgement: the app has shown the offer to the worker."""

    offer_id: OfferIdText
    id: ClientId | None = None


class AcceptOffer(Struct, frozen=True, tag="accept"):
    """The worker takes the order behind this offer."""

    offer_id: OfferIdText
    id: ClientId | None = None


class RejectOffer(Struct, frozen=True, tag="reject"):
    """The worker declines the offer."""

    offer_id: OfferIdText
    reason: Literal["busy", "too_far", "other"] = "other"
    id: ClientId | None = None


class ReportProgress(Struct, frozen=True, tag="progress"):
    """The worker has done the pending step of one of its jobs (``arrived``,
    ``started``, ``completed`` for an order by bare skill; the category's
    steps otherwise), with the data the step requires."""

    order_id: OrderIdText
    step: FieldName
    id: ClientId | None = None
    data: StepData | None = None


class CancelJob(Struct, frozen=True, tag="cancel_job"):
    """The worker hands back a job it accepted, before its point of no return:
    the order is dispatched again at once, never to this worker."""

    order_id: OrderIdText
    reason: Text = "other"
    id: ClientId | None = None


class AskEarnings(Struct, frozen=True, tag="earnings"):
    """The worker asks what it earned; answered with ``earnings``."""

    id: ClientId | None = None


class Ping(Struct, frozen=True, tag="ping"):
    """Keep-alive; answered with ``ack``."""

    id: ClientId | None = None


class AskFigures(Struct, frozen=True, tag="figures"):
    """The worker asks for its own figures; answered with ``figures``."""

    id: ClientId | None = None


WorkerMessage = (
    Hello
    | LocationReported
    | ChangeStatus
    | OfferReceived
    | AcceptOffer
    | RejectOffer
    | ReportProgress
    | CancelJob
    | AskFigures
    | AskEarnings
    | Ping
)

# ---------------------------------------------------------------- server -> worker


class Job(Struct, frozen=True):
    """An order assigned to the worker."""

    order_id: str
    state: OrderState
    skill: str
    pickup: Point
    dropoff: Point | None = None
    note: str | None = None
    category: str | None = None
    attributes: dict[str, AttributeValue] | None = None
    quote: Quote | None = None
    steps: list[StepInfo] | None = None
    step: str | None = None
    slot: Slot | None = None  # a booked job: when it is to be done


class OfferMade(Struct, frozen=True, tag="offer"):
    """An order offered to this worker until ``expires_at``. Answer with
    ``offer_received`` at once, then ``accept`` or ``reject``."""

    offer_id: str
    order_id: str
    skill: str
    pickup: Point
    distance_m: Annotated[float, Meta(ge=0)]
    expires_at: Millis
    sent_at: Millis
    mode: OfferMode = OfferMode.SEQUENTIAL
    dropoff: Point | None = None
    note: str | None = None
    category: str | None = None
    attributes: dict[str, AttributeValue] | None = None
    quote: Quote | None = None
    steps: list[StepInfo] | None = None
    slot: Slot | None = None  # a booked job: when it is to be done


class Welcome(Struct, frozen=True, tag="welcome"):
    """Reply to ``hello``: the chosen protocol version and the worker's state,
    including an offer it still holds and the jobs it has."""

    version: int
    worker_id: str
    city: str
    state: WorkerState
    node: str
    offer: OfferMade | None = None
    jobs: list[Job] = msgspec.field(default_factory=list)
    id: ClientId | None = None
    paused_until: Millis | None = None
    booked: list[Job] = msgspec.field(default_factory=list)  # booked jobs not begun yet


class OfferWithdrawn(Struct, frozen=True, tag="offer_withdrawn"):
    """An offer the worker held is gone: ``taken`` by another worker,
    ``cancelled`` by the customer, or ``expired``."""

    offer_id: str
    order_id: str
    reason: Literal["taken", "cancelled", "expired"]


class JobCancelled(Struct, frozen=True, tag="job_cancelled"):
    """An order the worker had accepted was cancelled: by the ``customer``
    (or a customer's approval it needed was rejected), or by an ``operator``."""

    order_id: str
    reason: Literal["customer", "operator"] = "customer"


class JobUpdated(Struct, frozen=True, tag="job_updated"):
    """Someone other than the worker did a step of its job (a customer's
    approval, an operator, the clock): the job as it is now."""

    job: Job
    event: str
    reason: str | None = None


class Hold(Struct, frozen=True, tag="hold"):
    """An operator holds the worker back from offers, or lets it go: ``paused``
    until ``until`` (Redis time, ms), ``resumed`` (offers again), or ``blocked``
    (the socket closes with 4403 after this frame, and a new one is refused with
    ``worker_blocked``). Jobs the worker holds carry on."""

    hold: Literal["paused", "resumed", "blocked"]
    until: Millis | None = None
    reason: Text | None = None


class Reminder(Struct, frozen=True, tag="reminder"):
    """A booked job begins soon (its category's reminder time before its slot):
    it is one of the worker's jobs from now on, with its pending ``step``."""

    job: Job
    starts_at: Millis


class Ack(Struct, frozen=True, tag="ack"):
    """A client message was applied. ``job`` is set when an accept succeeded;
    ``state`` is the worker's state after the change."""

    id: ClientId | None = None
    state: WorkerState | None = None
    job: Job | None = None
    server_time: Millis | None = None


class PerformanceWindow(Struct, frozen=True):
    """A worker's figures over the last ``days`` days. A rate or mean is null
    until its count reaches the server's minimum number of samples
    (``DISPATCH_MIN_SAMPLES``)."""

    days: int
    offers: int = 0  # offers received
    accepted: int = 0
    rejected: int = 0
    expired: int = 0  # offers it let run out unanswered
    acceptance: float | None = None  # accepted / (accepted + rejected + expired)
    response_ms: int | None = None  # mean time from an offer to its answer
    ratings: int = 0  # customers' ratings of its jobs
    rating: float | None = None  # their mean stars
    arrivals: int = 0  # arrivals timed against the category's promise (arrive_within_s)
    on_time: float | None = None  # the share of them within it
    cancelled: int = 0  # jobs it handed back after accepting (an operator's waive undoes one)
    cancellation: float | None = None  # cancelled / accepted


class Figures(Struct, frozen=True, tag="figures"):
    """A worker's own figures (the answer to ``figures``, and the body of
    ``GET /v1/worker/figures``): over the last 7 and 30 days, and when it
    last completed a job."""

    id: ClientId | None = None
    performance: list[PerformanceWindow] = []
    last_job_at: Millis | None = None


class EarningReason(StrEnum):
    """What a ledger entry pays for (PROTOCOL.md §18 ``Earnings``)."""

    SHARE = "share"  # the worker's share of the order's price
    DISTANCE = "distance"  # per km to the pickup
    TIME = "time"  # per minute from the accept to the completion
    CANCEL_FEE = "cancel_fee"  # its share of the customer's cancellation fee
    TIP = "tip"  # the customer's tip, whole


class Earned(Struct, frozen=True):
    """One entry of a worker's ledger: what one job paid it for one reason, in
    the minor units of ``currency``."""

    order_id: str
    reason: EarningReason
    amount: int
    currency: str
    at: Millis


class EarningsTotal(Struct, frozen=True):
    """A worker's earnings in one currency over a period: the jobs it completed,
    and the minor units it earned for each reason and in all."""

    currency: str
    jobs: int = 0
    share: int = 0
    distance: int = 0
    time: int = 0
    cancel_fee: int = 0
    tip: int = 0
    total: int = 0


class EarningsPeriod(Struct, frozen=True):
    """What a worker earned from ``since`` (a UTC midnight, ms) until now: a
    total per currency (none when it earned nothing)."""

    since: Millis
    totals: list[EarningsTotal] = []


class EarningsReport(Struct, frozen=True, tag="earnings"):
    """What the worker earned (the answer to ``earnings``, and the body of
    ``GET /v1/worker/earnings``): today, this week (from Monday), and its
    latest ledger entries, newest first."""

    today: EarningsPeriod
    week: EarningsPeriod
    recent: list[Earned] = []
    id: ClientId | None = None


class Error(Struct, frozen=True, tag="error"):
    """A client message was refused and changed nothing. ``code`` is stable
    (see PROTOCOL.md); ``message`` is for people."""

    code: str
    message: str
    id: ClientId | None = None
    errors: list[FieldError] | None = None


ServerMessage = (
    Welcome
    | OfferMade
    | OfferWithdrawn
    | JobCancelled
    | JobUpdated
    | Hold
    | Reminder
    | Ack
    | Figures
    | EarningsReport
    | Error
)

# ---------------------------------------------------------------- customers (HTTP)


class CreateOrder(Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders``: a ``category`` with its ``attributes``, or
    (protocol 1's first form, still taken) a bare ``skill``; one of the two."""

    city: Name
    pickup: Point
    skill: Name | None = None
    category: Name | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)
    dropoff: Point | None = None
    mode: OfferMode | None = None
    note: Text | None = None
    slot: Slot | None = None  # book it for later: dispatched its category's lead time before


class OrderEvent(Struct, frozen=True):
    """One step in an order's history. ``id`` orders events and is what a
    client passes back as ``after`` to resume. ``worker`` names the one worker
    concerned; ``workers`` lists an offer's holders (``offered``, ``expired``)."""

    id: str
    type: str
    at: Millis
    state: OrderState
    worker: str | None = None
    offer_id: str | None = None
    reason: str | None = None
    workers: list[str] | None = None
    by: str | None = None
    actor: str | None = None
    # int before float: a whole number reads back as the store recorded it (12000,
    # not 12000.0), as the live socket and webhooks carry it
    data: dict[str, str | int | float] | None = None
    next_step: str | None = None
    due_at: Millis | None = None
    fee: int | None = None


class Position(Struct, frozen=True):
    """Where the assigned worker was last seen."""

    worker: str
    lat: float
    lng: float
    at: Millis
    seen_at: Millis | None = None


class OrderView(Struct, frozen=True):
    """An order as its customer sees it (``GET /v1/orders/{id}``)."""

    id: str
    city: str
    skill: str
    mode: OfferMode
    state: OrderState
    customer: str
    pickup: Point
    created_at: Millis
    dropoff: Point | None = None
    note: str | None = None
    worker: str | None = None
    position: Position | None = None
    events: list[OrderEvent] = msgspec.field(default_factory=list)
    category: str | None = None
    category_version: int | None = None
    attributes: dict[str, AttributeValue] | None = None
    quote: Quote | None = None
    code: str | None = None
    step: str | None = None
    steps: list[StepInfo] | None = None
    rating: int | None = None  # the customer's stars, once given
    rating_comment: str | None = None
    tip: int | None = None  # the customer's tip (minor units of the quote's currency), once given
    slot: Slot | None = None  # a booked order: when the job is to be done


class RateOrder(Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/rating``: the customer rates a completed
    order, once."""

    stars: Annotated[int, Meta(ge=1, le=5)]
    comment: Text | None = None


MAX_TIP = 100_000  # minor units: a tip of more is refused (out_of_range)


class TipOrder(Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/tip``: the customer tips the worker of its
    completed order, once, in the minor units of the order's quote."""

    amount: Annotated[int, Meta(ge=1, le=MAX_TIP)]


class DoStep(Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/steps/{step}`` (and of the operator's
    ``/v1/admin/orders/{id}/steps/{step}``): an approval's ``decision``, and
    the data the step requires."""

    decision: Literal["approve", "reject"] | None = None
    data: StepData = msgspec.field(default_factory=dict)


class HttpError(Struct, frozen=True):
    """Body of every 4xx/5xx answer; ``errors`` names each bad field when
    there are several (``invalid_attributes``, ``invalid_category``)."""

    code: str
    message: str
    errors: list[FieldError] | None = None


# ---------------------------------------------------------------- server -> customer (live)


class Snapshot(Struct, frozen=True, tag="snapshot"):
    """First frame on a live order socket: the order now, with the events the
    client has not seen (all of them unless it sent ``after``)."""

    order: OrderView


class EventHappened(Struct, frozen=True, tag="event"):
    """A new step in the order's history."""

    event: OrderEvent


class WorkerMoved(Struct, frozen=True, tag="position"):
    """The assigned worker's latest position."""

    position: Position


LiveMessage = Snapshot | EventHappened | WorkerMoved | Error
