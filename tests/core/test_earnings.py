"""What a job pays its worker, and how a ledger sums: the pure rules."""

from __future__ import annotations

import pytest

from protocol.catalogue import Earnings
from protocol.messages import EarningReason, EarningsTotal
from server.core import earnings

R = EarningReason
RULES = Earnings(share=0.8, per_km=40, per_minute=10, cancel_share=0.9)


def test_a_job_pays_its_share_and_distance() -> None:
    """The README's example: 2400 quoted, 1,250 m to the pickup (the store adds the time)."""
    assert earnings.for_job(RULES, 2400, 1250.0) == [(R.SHARE, 1920), (R.DISTANCE, 50)]


def test_parts_round_half_up_and_zero_parts_make_no_entry() -> None:
    """4.45 rounds to 4; a part of 0 (no per-km rate) is left out."""
    assert earnings.for_job(RULES, 0, 111.25) == [(R.DISTANCE, 4)]
    share_only = Earnings(share=0.5)
    assert earnings.for_job(share_only, 999, 5000.0) == [(R.SHARE, 500)]


def test_a_negative_distance_pays_nothing_for_it() -> None:
    """No distance (a bad reading) cannot take money away."""
    assert earnings.for_job(RULES, 100, -5.0) == [(R.SHARE, 80)]


def test_a_cancellation_pays_its_share_of_the_fee() -> None:
    """cancel_share of the fee; nothing for no fee."""
    assert earnings.for_cancel(RULES, 500) == [(R.CANCEL_FEE, 450)]
    assert earnings.for_cancel(RULES, 0) == []


@pytest.mark.parametrize(
    ("date", "monday"),
    [("1970-01-01", "1969-12-29"), ("2026-12-07", "2026-12-07"), ("2026-12-13", "2026-12-07"),
     ("2026-12-14", "2026-12-14"), ("2024-03-01", "2024-02-26")],
)  # fmt: skip
def test_a_week_starts_on_monday(date: str, monday: str) -> None:
    """week_of gives the Monday of a day's week, whatever the weekday."""
    day = earnings.day_number(date)
    assert day is not None
    assert earnings.date_of(earnings.week_of(day)) == monday


@pytest.mark.parametrize("text", ["2026-13-01", "2026-12-7", "yesterday", "", "2026-12-07T00"])
def test_a_day_that_is_no_date_is_none(text: str) -> None:
    """Only YYYY-MM-DD names a day."""
    assert earnings.day_number(text) is None


def test_day_numbers_count_from_the_epoch() -> None:
    """Day 0 is 1970-01-01, and a time falls on the day of its UTC date."""
    assert earnings.day_number("1970-01-02") == 1
    assert earnings.day_of(earnings.DAY_MS * 20_000 + 5) == 20_000
    assert earnings.date_of(20_000) == "2024-10-04"


def test_totals_sum_per_currency_and_leave_out_what_they_do_not_know() -> None:
    """Amounts add up by currency and reason, jobs are counted apart from the total."""
    sums = [("EUR", "share", 100), ("EUR", "share", 50), ("EUR", "tip", 20), ("EUR", "jobs", 2),
            ("CHF", "time", 7), ("EUR", "bonus", 999)]  # fmt: skip
    assert earnings.totals(sums) == [
        EarningsTotal(currency="CHF", time=7, total=7),
        EarningsTotal(currency="EUR", jobs=2, share=150, tip=20, total=170),
    ]
