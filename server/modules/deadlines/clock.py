"""The one deadline clock (DOMAIN-RULES D-1 and rule 24): pure, no database.

A deadline type carries its calendar kind (working days, natural days, calendar months or literal
hours) and its holiday roll-over as data (``deadline_types.json``). A clock starts on a date (the start day is
not counted, 衔接办法 2017 第38条), may be paused for hearings, monitoring, appraisal, service or a
criminal transfer (2010 MEE 第55条; 衔接办法 第16条) and extended with a reason. Counting always
goes through ``server.core.calendar.Calendar``: holidays and make-up working days (调休) included.
"""
from __future__ import annotations

import calendar as months
import datetime as dt
import enum
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from server.core import errors
from server.core.calendar import Calendar

UnknownDeadlineType = errors.error_code("deadline.unknown_type", 422, "未知的期限类型", "Unknown deadline type")


class CalendarKind(str, enum.Enum):
    WORKING_DAY = "WORKING_DAY"
    NATURAL_DAY = "NATURAL_DAY"
    MONTH = "MONTH"  # "一个月": to the same day of the month (民法典 第202条)
    HOURS = "HOURS"


class PauseReason(str, enum.Enum):
    HEARING = "hearing"  # 听证
    MONITORING = "monitoring"  # 监测
    APPRAISAL = "appraisal"  # 鉴定
    SERVICE = "service"  # 送达 / 公告
    CRIMINAL_TRANSFER = "criminal_transfer"  # 移送期间不计入 (衔接办法 第16条)
    PUBLIC_NOTICE = "public_notice"  # 公告


@dataclass(frozen=True)
class DeadlineType:
    code: str
    name_zh: str
    amount: int
    calendar: CalendarKind
    holiday_rollover: bool
    source: str
    tag: str
    direction: str = "after"
    extension_max: int = 0
    owed_by: str = "agency"  # "party": the party's own window (陈述申辩, 听证申请), never the agency's duty
    # each extension in turn: (most units, approval it needs: head | collective_discussion); empty: any
    # extensions up to extension_max with the head's approval
    extensions: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Pause:
    """The clock stops at ``start`` and runs again after ``end``: days in (start, end] do not count.
    For HOURS clocks the bounds are datetimes and the interval is [start, end)."""

    start: dt.date | dt.datetime
    end: dt.date | dt.datetime | None
    reason: PauseReason = PauseReason.HEARING


@dataclass(frozen=True)
class Extension:
    amount: int
    reason: str


@dataclass
class ClockState:
    due: dt.date | dt.datetime | None  # None while paused: the due date is not yet known
    paused: bool
    remaining: int | None = None  # units still to count when paused
    extensions: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    assumed_years: tuple[int, ...] = ()  # years counted by the calendar's provisional rule


_FILE = Path(__file__).with_name("deadline_types.json")


@lru_cache(maxsize=1)
def types() -> dict[str, DeadlineType]:
    raw = json.loads(_FILE.read_text(encoding="utf-8"))
    return {code: DeadlineType(code=code, name_zh=spec["name_zh"], amount=spec["amount"],
                               calendar=CalendarKind(spec["calendar"]), holiday_rollover=spec["holiday_rollover"],
                               source=spec["source"], tag=spec["tag"], direction=spec.get("direction", "after"),
                               extension_max=spec.get("extension_max", 0), owed_by=spec.get("owed_by", "agency"),
                               extensions=tuple((e["amount"], e["approval"]) for e in spec.get("extensions", ())))
            for code, spec in raw.items() if not code.startswith("_")}


def deadline_type(code: str) -> DeadlineType:
    try:
        return types()[code]
    except KeyError:
        raise UnknownDeadlineType(type=code) from None


def _paused_on(day: dt.date, pauses: Iterable[Pause]) -> bool:
    return any(p.start < day and (p.end is None or day <= p.end) for p in pauses)  # type: ignore[operator]


def compute(dtype: DeadlineType, start: dt.date | dt.datetime, calendar: Calendar, *,
            pauses: Iterable[Pause] = (), extensions: Iterable[Extension] = ()) -> ClockState:
    """Due date (or datetime for HOURS) of a clock started on ``start``, with the years whose
    official holiday schedule was missing and assumed by the provisional rule (D-1)."""
    counting = calendar.fresh()
    result = _compute(dtype, start, counting, list(pauses), extensions)
    result.assumed_years = tuple(sorted(counting.assumed))
    return result


def _compute(dtype: DeadlineType, start: dt.date | dt.datetime, calendar: Calendar, pauses: list[Pause],
             extensions: Iterable[Extension]) -> ClockState:
    extra = sum(e.amount for e in extensions)
    total = dtype.amount + extra
    if dtype.calendar is CalendarKind.HOURS:
        assert isinstance(start, dt.datetime), "an HOURS clock starts at a datetime"
        if any(p.end is None for p in pauses):
            used = sum(((p.start - start) for p in pauses if p.end is None), dt.timedelta())  # type: ignore[operator]
            return ClockState(None, True, remaining=max(0, total - int(used.total_seconds() // 3600)), extensions=extra)
        stopped = sum((p.end - p.start for p in pauses), dt.timedelta())  # type: ignore[operator]
        return ClockState(start + dt.timedelta(hours=total) + stopped, False, extensions=extra)
    day = start.date() if isinstance(start, dt.datetime) else start
    if dtype.calendar is CalendarKind.MONTH:
        return _months(dtype, day, total, calendar, pauses, extra)
    working = dtype.calendar is CalendarKind.WORKING_DAY
    counted = 0
    while counted < total:
        day += dt.timedelta(days=1)
        open_pause = next((p for p in pauses if p.end is None and p.start < day), None)
        if open_pause is not None:
            return ClockState(None, True, remaining=total - counted, extensions=extra)
        if _paused_on(day, pauses):
            continue
        if working and not calendar.is_working_day(day):
            continue
        counted += 1
    if not working and dtype.holiday_rollover:
        rolled = calendar.next_working_day(day)
        return ClockState(rolled, False, extensions=extra, detail={"rolled_over_from": day.isoformat()} if rolled != day else {})
    return ClockState(day, False, extensions=extra)


def add_months(day: dt.date, n: int) -> dt.date:
    """民法典 第202条: a period in months ends on the same day of the month it ends in, or on that
    month's last day when it has no such day (31 Jan + 1 month = 28/29 Feb)."""
    index = day.month - 1 + n
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, months.monthrange(year, month)[1]))


def _months(dtype: DeadlineType, day: dt.date, total: int, calendar: Calendar, pauses: list[Pause],
            extra: int) -> ClockState:
    """A clock of calendar months; each paused day moves the end by a day."""
    due = add_months(day, total)
    while True:
        open_pause = next((p for p in pauses if p.end is None and p.start < due), None)  # type: ignore[operator]
        if open_pause is not None:
            return ClockState(None, True, remaining=(due - open_pause.start).days, extensions=extra,  # type: ignore[operator]
                              detail={"remaining_unit": "days"})
        stopped = sum(1 for n in range((due - day).days) if _paused_on(day + dt.timedelta(days=n + 1), pauses))
        moved = add_months(day, total) + dt.timedelta(days=stopped)
        if moved == due:
            break
        due = moved
    if dtype.holiday_rollover:
        rolled = calendar.next_working_day(due)
        return ClockState(rolled, False, extensions=extra, detail={"rolled_over_from": due.isoformat()} if rolled != due else {})
    return ClockState(due, False, extensions=extra)


def latest_before(dtype: DeadlineType, reference: dt.date, calendar: Calendar) -> dt.date:
    """For "at least N days before" rules (听证通知 七日前, 第64条): the last day on which the act
    still leaves N full units (start day not counted) up to ``reference``."""
    day = reference - dt.timedelta(days=1)
    while compute(dtype, day, calendar).due > reference:  # type: ignore[operator]
        day -= dt.timedelta(days=1)
    return day


def natural_days_late(due: dt.date, paid_on: dt.date) -> int:
    return max(0, (paid_on - due).days)


def late_payment_surcharge(fine: int, due: dt.date, paid_on: dt.date, rate_per_day: float = 0.03) -> int:
    """行政处罚法 第72条第1项: 3% of the fine per day late, capped at the fine itself (whole yuan)."""
    days = natural_days_late(due, paid_on)
    return min(fine, int(round(fine * rate_per_day * days)))


def daily_fine_days(order_served_on: dt.date, recheck_on: dt.date) -> int:
    """部令第28号 第17–19条: days from the day after the correction order is served to the re-check day."""
    return max(0, (recheck_on - order_served_on).days)
