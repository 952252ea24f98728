"""The one pattern of every id on the wire, checked wherever an id enters.

An id ends up in Redis key names, in pub/sub envelopes between nodes and in
log lines, so none may hold a space, a newline, a comma, a brace or a slash
that it does not own. ``PROTOCOL.md`` §7 lists these patterns; the message
Structs use the ``Annotated`` types below, token minting and verification use
the compiled patterns, so a bad id is refused at the edge with a coded error
and never reaches the store.

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from msgspec import Meta

# A city or a skill: lower-case letters, digits, '_' and '-'.
NAME: Final = r"^[a-z0-9_-]{1,32}\Z"
# A worker or a customer (a token's ``sub``): letters, digits, '_', '-' and '.',
# starting with a letter or digit.
SUBJECT: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"
# An order: its city, a dot, 8 to 40 lower-case letters or digits.
ORDER: Final = r"^[a-z0-9_-]{1,32}\.[0-9a-z]{8,40}\Z"
# An offer: its order, a slash, the attempt number.
OFFER: Final = r"^[a-z0-9_-]{1,32}\.[0-9a-z]{8,40}/[0-9]{1,9}\Z"
# An order event: milliseconds, a dash, the event's number within its order.
EVENT: Final = r"^[0-9]{1,20}-[0-9]{1,20}\Z"
# A client's Idempotency-Key: 1 to 64 printable ASCII characters, no spaces.
IDEMPOTENCY_KEY: Final = r"^[\x21-\x7e]{1,64}\Z"

NAME_RE: Final = re.compile(NAME)
SUBJECT_RE: Final = re.compile(SUBJECT)
ORDER_RE: Final = re.compile(ORDER)
OFFER_RE: Final = re.compile(OFFER)
EVENT_RE: Final = re.compile(EVENT)
IDEMPOTENCY_KEY_RE: Final = re.compile(IDEMPOTENCY_KEY)

Name = Annotated[str, Meta(pattern=NAME)]
SubjectId = Annotated[str, Meta(pattern=SUBJECT)]
OrderIdText = Annotated[str, Meta(pattern=ORDER)]
OfferIdText = Annotated[str, Meta(pattern=OFFER)]


def event_order(event_id: str) -> tuple[int, int]:
    """An event id as a pair that sorts as the order's events happened."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)
