"""What a worker earns: the ledger entries of a job, and the sums of a ledger. Pure.

A job of a category pays its worker in the minor units of the order's quote,
by the category's ``earnings`` rules (pinned on the order when it is created,
like its price, so a later change pays new orders only)::

    share       share x the quoted total             } when the job is
    distance    per_km x km to the pickup            } completed
    time        per_minute x minutes on the job      }
    cancel_fee  cancel_share x the fee               when the customer cancels for a fee
    tip         the customer's tip, whole            when the customer tips

"km to the pickup" is straight-line, from where the worker was when the job
was offered to it; "minutes on the job" run from its accept to the completion,
the very instants the order's history records as the ``assigned`` and
``completed`` events' ``at``: so the time part is worked out by the script
that completes the job, from its own clock reading (``with_time_pay`` in
``prelude.lua``, with :data:`MINUTE_MS` and the reason rendered from here),
and the history gives it again to the unit. Each part is rounded half up to a
whole minor unit (:func:`server.core.pricing.round_half_up`) and one of 0
makes no entry; an order by bare skill has no price and pays nothing.

The store keeps each entry once per order and reason, so a step done again
never pays twice; sums go by day, a day being 86,400,000 ms of the server's
clock (UTC days), and a week starts on a Monday.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from protocol.catalogue import Earnings
from protocol.messages import EarningReason, EarningsTotal

from server.core.pricing import round_half_up

DAY_MS = 86_400_000
MINUTE_MS = 60_000
JOBS = "jobs"  # the count of completed jobs, summed beside the reasons
SUMMED = frozenset({JOBS, *(r.value for r in EarningReason)})
Line = tuple[EarningReason, int]


def for_job(rules: Earnings, total: int, distance_m: float) -> list[Line]:
    """The entries a completed job pays but its time part (the completing script
    adds that, at ``rules.per_minute``): its share of the quoted ``total`` and its
    distance part (``distance_m`` to the pickup); parts of 0 left out."""
    parts = (
        (EarningReason.SHARE, rules.share * total),
        (EarningReason.DISTANCE, rules.per_km * max(0.0, distance_m) / 1000),
    )
    return [(reason, amount) for reason, part in parts if (amount := round_half_up(part)) > 0]


def for_cancel(rules: Earnings, fee: int) -> list[Line]:
    """The entry a customer's cancellation for ``fee`` pays the job's worker."""
    amount = round_half_up(rules.cancel_share * fee)
    return [(EarningReason.CANCEL_FEE, amount)] if amount > 0 else []


def day_of(ms: int) -> int:
    """The day (since 1970-01-01, UTC) a time falls on."""
    return ms // DAY_MS


def week_of(day: int) -> int:
    """The first day (a Monday) of the week holding ``day``; day 0 was a Thursday."""
    return day - (day + 3) % 7


EPOCH = datetime.date(1970, 1, 1)


def day_number(date: str) -> int | None:
    """The day of a ``YYYY-MM-DD`` date (days since 1970-01-01), or None when it
    is not one."""
    try:
        return (datetime.date.fromisoformat(date) - EPOCH).days if len(date) == 10 else None
    except ValueError:
        return None


def date_of(day: int) -> str:
    """A day as its ``YYYY-MM-DD`` date."""
    return (EPOCH + datetime.timedelta(days=day)).isoformat()


def totals(sums: Iterable[tuple[str, str, int]]) -> list[EarningsTotal]:
    """(currency, reason or ``jobs``, amount) sums as one total per currency, by
    currency; an unknown reason is left out."""
    found: dict[str, dict[str, int]] = {}
    for currency, reason, amount in sums:
        if reason in SUMMED:
            parts = found.setdefault(currency, {})
            parts[reason] = parts.get(reason, 0) + amount
    return [
        EarningsTotal(
            currency=currency, jobs=parts.get(JOBS, 0),
            total=sum(v for k, v in parts.items() if k != JOBS),
            **{r.value: parts.get(r.value, 0) for r in EarningReason},
        )
        for currency, parts in sorted(found.items())
    ]  # fmt: skip
