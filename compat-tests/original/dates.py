"""Dates for test data that the real clock never overtakes (the same rule as the Rust tests'
test_support::future_year): a store expires a job at its end date, so a fixed year would
make these scenarios fail once it has passed."""

from __future__ import annotations

import calendar
import datetime as dt


def future_year() -> int:
    """The first year at least two years ahead laid out like 2030 (not a leap year, 1 January
    a Tuesday), so the scenarios' month days keep their weekdays and schedules their runs."""
    y = dt.datetime.now(dt.timezone.utc).year + 2
    while calendar.isleap(y) or dt.date(y, 1, 1).weekday() != 1:
        y += 1
    return y


Y = future_year()
