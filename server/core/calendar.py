"""Working-day calendar: the one place that counts deadline days (DOMAIN-RULES D-1).

行政处罚法 (2021) 第85条: "二日""三日""五日""七日" are working days; other periods are natural
days. 衔接办法 (2017) 第38条: the first day is not counted and a period ending on a holiday
moves to the next working day. Official holidays and make-up working days (调休) come from
chinese-calendar; a year it does not know can be supplied as data (``HOLIDAYS_FILE``), and
otherwise is refused with a clear error rather than guessed.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from server.core import errors

UnknownYear = errors.error_code(
    "calendar.unknown_year", 422, "工作日历不包含该年份的法定节假日安排，无法计算期限",
    "The working-day calendar has no official holiday schedule for that year; the deadline cannot be computed",
)


CHINA = ZoneInfo("Asia/Shanghai")


def local_today() -> dt.date:
    """Today in China: legal dates (certificate validity, deadlines) are Beijing-time dates."""
    return dt.datetime.now(CHINA).date()


class DayKind(str, enum.Enum):
    WORKING = "working"
    NATURAL = "natural"


class Calendar:
    """Answers "is D a working day", "N working days after D" and "N natural days after D"."""

    def __init__(self, extra: dict[dt.date, bool] | None = None) -> None:
        # extra: date -> True for a working day, False for a day off; overrides chinese-calendar.
        self.extra = extra or {}
        self.extra_years = {day.year for day in self.extra}

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra:
            return self.extra[day]
        if day.year in self.extra_years:
            return day.weekday() < 5
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:
            raise UnknownYear(year=day.year) from None

    def next_working_day(self, day: dt.date) -> dt.date:
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The date n working days after ``start``; ``start`` itself is not counted."""
        if n < 0:
            raise ValueError("n must be non-negative")
        day = start
        while n:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def add_natural_days(self, start: dt.date, n: int, *, rollover: bool = True) -> dt.date:
        """n natural days after ``start``; a last day on a holiday moves to the next working day."""
        if n < 0:
            raise ValueError("n must be non-negative")
        day = start + dt.timedelta(days=n)
        return self.next_working_day(day) if rollover else day

    def add(self, start: dt.date, n: int, kind: DayKind, *, rollover: bool = True) -> dt.date:
        if kind is DayKind.WORKING:
            return self.add_working_days(start, n)
        return self.add_natural_days(start, n, rollover=rollover)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]."""
        count, day = 0, start
        while day < end:
            day += dt.timedelta(days=1)
            count += self.is_working_day(day)
        return count


def load_extra(path: str | None) -> dict[dt.date, bool]:
    """JSON file: {"2027": {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-07", ...]}}."""
    if not path:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    extra: dict[dt.date, bool] = {}
    for year, spec in data.items():
        for text in spec.get("holidays", []):
            extra[dt.date.fromisoformat(text)] = False
        for text in spec.get("workdays", []):
            extra[dt.date.fromisoformat(text)] = True
        if not any(day.year == int(year) for day in extra):
            raise ValueError(f"holiday file year {year} lists no dates")
    return extra


@lru_cache(maxsize=4)
def _cached(path: str | None) -> Calendar:
    return Calendar(load_extra(path))


def get_calendar() -> Calendar:
    from flask import current_app, has_app_context

    path = current_app.config.get("HOLIDAYS_FILE") if has_app_context() else None
    return _cached(path)
