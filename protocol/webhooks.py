"""Webhooks on the wire: subscriptions as the admin API takes and shows them,
what is delivered, and the delivery log.

A delivery is signed as the Standard Webhooks specification says
(https://www.standardwebhooks.com): headers ``webhook-id``,
``webhook-timestamp`` (seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed by the
subscription's ``whsec_`` secret). Imports nothing from ``server`` or
``simulator``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from protocol.ids import Name
from protocol.messages import Millis, OrderEvent

# An event type a subscription asks for: "order.assigned", "order.*", "worker.*", "*".
EventPattern = Annotated[str, Meta(pattern=r"^(\*|(order|worker)\.(\*|[a-z][a-z0-9_]{0,31}))\Z")]
# An http(s) URL with a host (a name, an IPv4 address or a bracketed IPv6 one),
# an optional user and port, and no space or control character anywhere.
Url = Annotated[str, Meta(
    pattern=r"^https?://(?:[^\x00-\x20\x7f-\x9f/?#@\[\]]+@)?"
            r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|\[[0-9A-Fa-f:.]+\])"
            r"(?::[0-9]{1,5})?(?:[/?#][^\x00-\x20\x7f-\x9f]*)?\Z",
    max_length=2000,
)]  # fmt: skip
Secret = Annotated[str, Meta(pattern=r"^whsec_[A-Za-z0-9+/=]{16,200}\Z")]


class NewSubscription(Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/admin/webhooks``."""

    url: Url
    events: Annotated[list[EventPattern], Meta(min_length=1, max_length=50)] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    categories: Annotated[list[Name], Meta(max_length=50)] = msgspec.field(default_factory=list)
    secret: Secret | None = None
    description: Annotated[str, Meta(max_length=500)] = ""


class Subscription(Struct, frozen=True):
    """A webhook subscription. ``secret`` signs its deliveries; ``enabled`` turns
    false when the receiver answers 410 Gone."""

    id: str
    url: str
    events: list[str]
    categories: list[str]
    secret: str
    enabled: bool
    created_at: Millis
    description: str = ""
    disabled_reason: str | None = None


class SubscriptionList(Struct, frozen=True):
    subscriptions: list[Subscription]


class OrderHappened(Struct, frozen=True):
    """``data`` of an ``order.*`` delivery. A delivery's body is
    ``{"type": "order.<event type>", "timestamp": <RFC 3339>, "data": ...}``,
    the shape Standard Webhooks recommends."""

    order_id: str
    city: str
    event: OrderEvent
    category: str | None = None


class WorkerHappened(Struct, frozen=True):
    """``data`` of a ``worker.*`` delivery: ``connected``, ``disconnected``
    (``reason`` ``closed`` or ``node_lost``), ``status`` (the new ``state``);
    an operator's ``paused`` (``until``), ``resumed``, ``blocked`` and
    ``unblocked`` (``customer`` when it is for one customer only) and
    ``waived`` (``order_id``: a hand-back no longer counted), with ``by``
    ``operator`` and ``actor`` the operator's id; ``earned`` (a ledger entry:
    ``order_id``, ``reason``, ``amount`` in the minor units of ``currency``)."""

    worker_id: str
    city: str
    type: str
    at: Millis
    state: str | None = None
    node: str | None = None
    reason: str | None = None
    by: str | None = None
    actor: str | None = None
    until: Millis | None = None
    customer: str | None = None
    order_id: str | None = None
    amount: int | None = None
    currency: str | None = None


class Delivery(Struct, frozen=True):
    """One message's fate in a subscription's delivery log."""

    message_id: str
    type: str
    status: str  # delivered, retrying, dead
    attempts: int
    at: Millis
    response_status: int | None = None
    error: str | None = None
    next_attempt_at: Millis | None = None


class DeliveryLog(Struct, frozen=True):
    """``GET /v1/admin/webhooks/{id}/deliveries``: newest first."""

    deliveries: list[Delivery]


class DeadLetter(Struct, frozen=True):
    """A message given up on, with its body, to inspect or send again."""

    message_id: str
    type: str
    attempts: int
    at: Millis
    body: str
    error: str | None = None


class DeadLetters(Struct, frozen=True):
    """``GET /v1/admin/webhooks/{id}/dead``: newest first."""

    dead: list[DeadLetter]
