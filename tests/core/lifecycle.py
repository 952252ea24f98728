"""Parameters for a state machine's tests from a lifecycle written by hand: the
pairs it names (with the state they lead to) and every other pair of the product.
Imports only pytest, so the core's tests stay fast."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

import pytest


def legal_and_illegal(
    lifecycle: Mapping[tuple[Any, Any], Any], states: Iterable[StrEnum], events: Iterable[StrEnum]
) -> tuple[list[Any], list[Any]]:
    """``(state, event, after)`` for each pair of ``lifecycle``, and ``(state, event)``
    for each pair of ``states`` by ``events`` it does not name."""
    legal = [pytest.param(state, event, after, id=f"{state}-{event}")
             for (state, event), after in lifecycle.items()]  # fmt: skip
    illegal = [pytest.param(state, event, id=f"{state}-{event}")
               for state, event in itertools.product(states, events)
               if (state, event) not in lifecycle]  # fmt: skip
    return legal, illegal
