"""Working-day calendar: the one place that counts deadline days (DOMAIN-RULES D-1).

行政处罚法 (2021) 第85条: "二日""三日""五日""七日" are working days; other periods are natural
days. 衔接办法 (2017) 第38条: the first day is not counted and a period ending on a holiday
moves to the next working day. Official holidays and make-up working days (调休) come from
chinese-calendar; a year it does not know can be supplied as data (``HOLIDAYS_FILE``).

A year with neither is counted by a named provisional rule (``provisional_calendar.json``: Monday
to Friday less the fixed-date statutory holidays) when the calendar is built ``provisional``
(``CALENDAR_PROVISIONAL``, on by default); the calendar notes each year it assumed, so the caller
stores and shows its result as provisional and recomputes it once the official schedule is loaded.
A calendar built without it refuses such a year with ``calendar.unknown_year``.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass
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


def to_local_date(moment: dt.datetime) -> dt.date:
    """The Beijing date of an instant: the one way a stored (UTC) time becomes a legal date."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no legal date")
    return moment.astimezone(CHINA).date()


class DayKind(str, enum.Enum):
    WORKING = "working"
    NATURAL = "natural"


@dataclass(frozen=True)
class ProvisionalRule:
    """Monday–Friday less the fixed-date statutory holidays, for a year without an official schedule."""

    fixed_holidays: frozenset[tuple[int, int]]  # (month, day)
    source: str

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and (day.month, day.day) not in self.fixed_holidays


@lru_cache(maxsize=1)
def provisional_rule() -> ProvisionalRule:
    data = json.loads(Path(__file__).with_name("provisional_calendar.json").read_text(encoding="utf-8"))
    return ProvisionalRule(frozenset((h["month"], h["day"]) for h in data["fixed_holidays"]), data["source"])


@lru_cache(maxsize=64)
def _chinese_calendar_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


class Calendar:
    """Answers "is D a working day", "N working days after D" and "N natural days after D".

    ``assumed`` collects the years this calendar counted by the provisional rule: build one per
    computation whose result must say so (``fresh``)."""

    def __init__(self, extra: dict[dt.date, bool] | None = None, *, provisional: bool = False) -> None:
        # extra: date -> True for a working day, False for a day off; overrides chinese-calendar.
        self.extra = extra or {}
        self.extra_years = {day.year for day in self.extra}
        self.provisional = provisional
        self.assumed: set[int] = set()

    def fresh(self) -> Calendar:
        """The same schedule and switch, with nothing assumed yet."""
        return Calendar(self.extra, provisional=self.provisional)

    def knows(self, year: int) -> bool:
        """Whether ``year`` has an official schedule (chinese-calendar or HOLIDAYS_FILE)."""
        return year in self.extra_years or _chinese_calendar_knows(year)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra:
            return self.extra[day]
        if day.year in self.extra_years:
            return day.weekday() < 5
        if _chinese_calendar_knows(day.year):
            return chinese_calendar.is_workday(day)
        if not self.provisional:
            raise UnknownYear(year=day.year)
        self.assumed.add(day.year)
        return provisional_rule().is_working_day(day)

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
def _cached(path: str | None) -> dict[dt.date, bool]:
    return load_extra(path)


def get_calendar(*, provisional: bool | None = None) -> Calendar:
    """A new calendar on the configured ``HOLIDAYS_FILE``; ``provisional`` defaults to
    ``CALENDAR_PROVISIONAL`` (on outside an app too). Pass ``provisional=False`` where a guessed
    day is not acceptable."""
    from flask import current_app, has_app_context

    config = current_app.config if has_app_context() else {}
    if provisional is None:
        provisional = config.get("CALENDAR_PROVISIONAL", True)
    return Calendar(_cached(config.get("HOLIDAYS_FILE")), provisional=provisional)


SCHEDULE_WARNING_DAYS = 60  # warn this long before a year that has no official schedule begins


def schedule_warnings(calendar: Calendar, today: dt.date) -> list[dict[str, object]]:
    """The current year, and the next one within ``SCHEDULE_WARNING_DAYS`` of it, when it lacks the
    State Council's holiday schedule: deadlines reaching it are provisional until it is loaded."""
    years = [today.year]
    if (dt.date(today.year + 1, 1, 1) - today).days <= SCHEDULE_WARNING_DAYS:
        years.append(today.year + 1)
    return [{"code": "calendar.schedule_missing", "year": year,
             "provisional": calendar.provisional,
             "message_zh": f"工作日历缺少{year}年法定节假日安排：涉及该年的期限"
                           + ("暂按“周一至周五、减固定日期法定节日”计算并标注为暂定，" if calendar.provisional
                              else "将无法计算，")
                           + "请通过 ENFORCE_HOLIDAYS_FILE 载入国务院公布的放假安排",
             "message_en": f"The working-day calendar has no official holiday schedule for {year}: deadlines "
                           "reaching it are "
                           + ("computed provisionally (Monday–Friday less the fixed-date statutory holidays) and "
                              "marked so; " if calendar.provisional else "refused; ")
                           + "load the State Council's schedule through ENFORCE_HOLIDAYS_FILE"}
            for year in years if not calendar.knows(year)]
