"""Errors of the dispatch rules.

::

    DispatchError                 something about an order or worker was refused
    ├── ClientError               the client's fault; carries a stable ``code``
    │   ├── Refused               refused by code alone (bad input, a script's refusal)
    │   ├── IllegalTransition     an event that the state's table row lacks
    │   └── InvalidFields         several bad fields, each named (attributes, a definition)
    └── ServerFault               ours: a broken invariant or an unreachable store
        └── StoreUnavailable      (server.store.engine) Redis unreachable or erring

Every ``ClientError.code`` is documented in ``protocol/PROTOCOL.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.errors import message
from protocol.messages import FieldError


class DispatchError(Exception):
    """Base of every error the dispatch rules raise."""


class ClientError(DispatchError):
    """A request that the rules refuse; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Refused(ClientError):
    """Refused with the protocol's ``code``; ``text`` defaults to the code's
    documented message. Raised by the endpoints for bad input and by the store
    when a script refuses a change."""

    def __init__(self, code: str, text: str | None = None) -> None:
        super().__init__(code, text or message(code))


class IllegalTransition(ClientError):
    """``event`` is not allowed in ``state`` for this kind of machine.

    Without a ``code`` it is ``illegal_transition``, which is not a protocol
    code: only an event a client asks for (a status, a progress step) can be
    refused to a client, and those refusals carry the table's codes."""

    def __init__(self, machine: str, state: str, event: str, code: str | None = None) -> None:
        super().__init__(
            code or "illegal_transition",
            f"{machine}: {event!r} is not allowed in state {state!r}",
        )
        self.machine = machine
        self.state = state
        self.event = event


class InvalidFields(ClientError):
    """Input refused field by field: ``errors`` names each bad one."""

    def __init__(self, code: str, message: str, errors: Sequence[FieldError]) -> None:
        super().__init__(code, message)
        self.errors = list(errors)


class ServerFault(DispatchError):
    """Our fault: the store is unreachable or an invariant broke."""
