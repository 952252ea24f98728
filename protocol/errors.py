"""The stable error codes of the protocol, with what each means.

A code never changes meaning once published; ``PROTOCOL.md`` lists them all
and a test keeps the two in step. Clients should branch on ``code``, never on
``message``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

ERROR_CODES: Final[dict[str, str]] = {
    # malformed input: the frame or body changed nothing, the socket stays open
    "bad_json": "The frame or body is not valid JSON.",
    "unknown_type": "The frame's `type` is not a message of this direction.",
    "missing_field": "A required field is missing.",
    "invalid_field": "A field has the wrong type or an invalid value.",
    "out_of_range": "A number is outside its allowed range (coordinates, NaN, infinity).",
    "unsupported_version": "None of the offered protocol versions is spoken by this server.",
    "binary_frame": "Frames must be text frames holding JSON; a binary frame changes nothing.",
    "bad_fix_time": "A fix's `at` is too far from the server's clock (ahead or behind).",
    "rate_limited": "Too many frames or requests; slow down and retry later.",
    # session
    "hello_required": "The first frame on a worker socket must be `hello`.",
    "already_hello": "`hello` was sent twice on one socket.",
    "unauthorized": "The token is missing, malformed, expired or signed with another key.",
    "forbidden": "The token is valid but not for this kind of client.",
    "unknown_city": "This deployment does not serve that city.",
    "worker_blocked": "An operator blocked this worker: it cannot connect until unblocked.",
    # offers and jobs
    "offer_not_found": "No such offer was ever made to this worker.",
    "offer_expired": "The offer was made to this worker but is no longer open.",
    "offer_taken": "Another worker accepted the order first.",
    "order_cancelled": "The customer cancelled the order.",
    "job_not_found": "This worker holds no job for that order.",
    "illegal_step": "That step is not the one the order waits for (or the order moved on).",
    "offer_pending": "Answer the open offer before changing status.",
    "active_job": "Finish or hand back the active jobs before pausing or going offline.",
    # orders (HTTP)
    "order_not_found": "No such order, or it belongs to another customer.",
    "not_cancellable": "The order can no longer be cancelled (service started or order ended).",
    "idempotency_conflict": "This Idempotency-Key was used with a different body.",
    "bad_request": "The request is malformed (for example a bad Idempotency-Key).",
    "too_large": "The request body is larger than the server accepts.",
    "request_timeout": "The request body did not arrive in time.",
    "not_found": "No such path.",
    "method_not_allowed": "The path does not take that method; `Allow` lists those it does.",
    # categories
    "unknown_category": "There is no category of that key.",
    "category_retired": "The category is retired: it takes no new orders (open ones carry on).",
    "invalid_attributes": "Some attributes do not fit the order's category; `errors` names each.",
    # the admin API
    "category_not_found": "No such category (or no such version of it).",
    "invalid_category": "The category definition is not valid; `errors` names each problem.",
    "subscription_not_found": "No such webhook subscription.",
    "not_reassignable": "Only an offered or assigned order can be reassigned.",
    "not_extendable": "The order ended, or no deadline runs that could be moved.",
    "not_held": "The worker is not held that way: there is nothing to lift.",
    "not_waivable": "The worker has no such hand-back counted against it (or it was waived).",
    "not_rateable": "Only a completed order can be rated.",
    "already_rated": "The order has been rated already; a rating is given once.",
    "not_tippable": "Only a completed order with a price can be tipped.",
    "already_tipped": "The order's worker has been tipped already; a tip is given once.",
    # workflow steps
    "not_your_step": "That step is done by someone else (the category says who).",
    "invalid_step_data": "The step's data is missing or does not fit; `errors` names each field.",
    # ours
    "unavailable": "The server cannot reach its store; retry with backoff.",
    "internal": "An unexpected server error; it has been logged.",
}


def message(code: str) -> str:
    """The human-readable text for ``code``."""
    return ERROR_CODES[code]


class Close(IntEnum):
    """The WebSocket close codes the server uses (``PROTOCOL.md`` §15)."""

    DONE = 1000  # live socket: the order ended and its last event was sent
    POLICY = 1008  # rate limits exceeded over and over, or a frame on a read-only socket
    TOO_BIG = 1009  # a frame over the size limit
    STORE_LOST = 1011  # the node lost its store
    RESTART = 1012  # the node is shutting down
    SLOW_READER = 4008  # the client did not read what the server sent fast enough
    BAD_REQUEST = 4400  # worker: unsupported_version; live: bad_request
    UNAUTHORIZED = 4401  # worker: bad token in hello, or no hello in time
    FORBIDDEN = 4403  # worker: token for another role, or a city this deployment does not serve
    NOT_FOUND = 4404  # live: order_not_found
    REPLACED = 4409  # worker: a newer connection of the same worker took over
