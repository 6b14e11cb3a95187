"""Starting, pausing, extending and meeting deadline clocks; what is due per person and unit.

Every due date comes from ``clock.compute`` on the working-day calendar (DOMAIN-RULES D-1). A clock
that reaches a year without an official holiday schedule is stored as provisional, with the years
assumed, and recomputed by ``recompute_provisional`` once that year's schedule is loaded.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from blinker import signal
from sqlalchemy.orm import Session

from server.core import errors
from server.core.calendar import Calendar, get_calendar, to_local_date
from server.modules.deadlines import clock
from server.modules.deadlines.models import Deadline, DeadlineEvent, DeadlineEventKind, DeadlineStatus

DeadlineNotFound = errors.error_code("deadline.not_found", 404, "期限不存在", "No such deadline")
DeadlineClosed = errors.error_code("deadline.closed", 409, "该期限已完成或撤销", "The deadline is already met or cancelled")
ExtensionRefused = errors.error_code(
    "deadline.extension_refused", 422, "延长期限超过规定上限或缺少理由",
    "The extension exceeds the permitted maximum or has no reason")
ExtensionNeedsDiscussion = errors.error_code(
    "deadline.extension_needs_collective_discussion", 422, "再次延长办案期限须经负责人集体讨论决定",
    "A further extension of the case period needs the heads' collective discussion")
PauseInvalid = errors.error_code("deadline.pause_invalid", 409, "期限已暂停或未暂停", "The clock is already paused, or is not paused")


def _pauses(deadline: Deadline) -> list[clock.Pause]:
    pauses: list[clock.Pause] = []
    hours = clock.deadline_type(deadline.type_code).calendar is clock.CalendarKind.HOURS
    for event in deadline.events:
        when = event.at if hours else event.on
        if event.kind is DeadlineEventKind.PAUSE:
            pauses.append(clock.Pause(when, None, clock.PauseReason(event.reason_code)))  # type: ignore[arg-type]
        elif event.kind is DeadlineEventKind.RESUME and pauses and pauses[-1].end is None:
            pauses[-1] = clock.Pause(pauses[-1].start, when, pauses[-1].reason)
    return pauses


def state(deadline: Deadline, calendar: Calendar | None = None) -> clock.ClockState:
    dtype = clock.deadline_type(deadline.type_code)
    start = deadline.started_at if dtype.calendar is clock.CalendarKind.HOURS else deadline.started_on
    extensions = [clock.Extension(e.amount or 0, e.reason) for e in deadline.events if e.kind is DeadlineEventKind.EXTEND]
    return clock.compute(dtype, start, calendar or get_calendar(), pauses=_pauses(deadline),  # type: ignore[arg-type]
                         extensions=extensions)


def _refresh(session: Session, deadline: Deadline, calendar: Calendar | None = None) -> Deadline:
    session.flush()
    session.refresh(deadline, ["events"])
    result = state(deadline, calendar)
    if isinstance(result.due, dt.datetime):
        deadline.due_at, deadline.due_on = result.due, to_local_date(result.due)
    else:
        deadline.due_on, deadline.due_at = result.due, None
    deadline.provisional = bool(result.assumed_years)
    deadline.provisional_years = list(result.assumed_years) or None
    session.flush()
    return deadline


def start(session: Session, *, case_id: str, type_code: str, on: dt.date, unit_id: int,
          assignee_id: int | None = None, at: dt.datetime | None = None) -> Deadline:
    """Start a clock of ``type_code`` on day ``on`` (not counted). HOURS clocks need ``at``."""
    dtype = clock.deadline_type(type_code)
    if dtype.calendar is clock.CalendarKind.HOURS and at is None:
        raise errors.ValidationFailed(fields={"at": ["HOURS clocks start at an instant"]})
    deadline = Deadline(case_id=case_id, type_code=type_code, started_on=on, started_at=at, unit_id=unit_id,
                        assignee_id=assignee_id)
    session.add(deadline)
    return _refresh(session, deadline)


def open_deadline(session: Session, case_id: str, type_code: str) -> Deadline | None:
    return session.scalar(sa.select(Deadline).where(
        Deadline.case_id == case_id, Deadline.type_code == type_code,
        Deadline.status == DeadlineStatus.OPEN).order_by(Deadline.id.desc()).limit(1))


def _require_open(deadline: Deadline) -> None:
    if deadline.status is not DeadlineStatus.OPEN:
        raise DeadlineClosed(deadline=deadline.id, status=deadline.status.value)


def pause(session: Session, deadline: Deadline, *, on: dt.date, reason_code: clock.PauseReason | str, reason: str,
          by_user_id: int | None, at: dt.datetime | None = None) -> Deadline:
    """Stop the clock: hearings, public notice, monitoring, appraisal, service (2010 MEE 第55条) and a
    criminal transfer (衔接办法 2017 第16条) are not counted."""
    _require_open(deadline)
    if any(p.end is None for p in _pauses(deadline)):
        raise PauseInvalid(deadline=deadline.id)
    session.add(DeadlineEvent(deadline_id=deadline.id, kind=DeadlineEventKind.PAUSE, on=on, at=at,
                              reason_code=clock.PauseReason(reason_code).value, reason=reason, by_user_id=by_user_id))
    return _refresh(session, deadline)


def resume(session: Session, deadline: Deadline, *, on: dt.date, reason: str, by_user_id: int | None,
           at: dt.datetime | None = None) -> Deadline:
    _require_open(deadline)
    if not any(p.end is None for p in _pauses(deadline)):
        raise PauseInvalid(deadline=deadline.id)
    session.add(DeadlineEvent(deadline_id=deadline.id, kind=DeadlineEventKind.RESUME, on=on, at=at, reason=reason,
                              by_user_id=by_user_id))
    return _refresh(session, deadline)


APPROVALS = ("head", "collective_discussion")


def extend(session: Session, deadline: Deadline, *, amount: int, reason: str, by_user_id: int | None,
           on: dt.date, approval: str = "head") -> Deadline:
    """A reasoned extension within the type's maximum (e.g. 90 days +30 +30, review 5 + 3 working days).
    Where the type lists its extensions in turn, each needs the approval it names: the case clock's
    first with the head's approval, any further one only by the heads' collective discussion
    (configured, its article to be confirmed). The approval is kept on the event (``reason_code``)."""
    _require_open(deadline)
    dtype = clock.deadline_type(deadline.type_code)
    done = [e for e in deadline.events if e.kind is DeadlineEventKind.EXTEND]
    used = sum(e.amount or 0 for e in done)
    if not reason.strip() or amount <= 0 or used + amount > dtype.extension_max or approval not in APPROVALS:
        raise ExtensionRefused(type=dtype.code, maximum=dtype.extension_max, used=used, source=dtype.source)
    if dtype.extensions:
        if len(done) >= len(dtype.extensions) or amount > dtype.extensions[len(done)][0]:
            raise ExtensionRefused(type=dtype.code, maximum=dtype.extension_max, used=used, source=dtype.source,
                                   extensions=len(done))
        needed = dtype.extensions[len(done)][1]
        if needed == "collective_discussion" and approval != needed:
            raise ExtensionNeedsDiscussion(type=dtype.code, extension=len(done) + 1, source=dtype.source)
    session.add(DeadlineEvent(deadline_id=deadline.id, kind=DeadlineEventKind.EXTEND, on=on, amount=amount,
                              reason=reason, by_user_id=by_user_id, reason_code=approval))
    return _refresh(session, deadline)


def meet(session: Session, deadline: Deadline | None, on: dt.date, *, in_time: bool = False) -> None:
    """Close a clock on ``on``; ``in_time`` when the law lets the act fall after the period (a
    statement made at a hearing requested in time: 行政处罚法 第45、64条)."""
    if deadline is None or deadline.status is not DeadlineStatus.OPEN:
        return
    deadline.status = DeadlineStatus.MET
    deadline.met_on = on
    deadline.late = not in_time and deadline.due_on is not None and on > deadline.due_on
    session.flush()


def cancel_open(session: Session, case_id: str, type_codes: tuple[str, ...] | None = None) -> None:
    query = sa.update(Deadline).where(Deadline.case_id == case_id, Deadline.status == DeadlineStatus.OPEN)
    if type_codes:
        query = query.where(Deadline.type_code.in_(type_codes))
    session.execute(query.values(status=DeadlineStatus.CANCELLED, version=Deadline.version + 1))


def view(deadline: Deadline, today: dt.date) -> dict[str, Any]:
    """A clock as the boards show it. A party's window (陈述申辩, 听证申请) is never overdue: once it
    has passed, it is ``closed`` and the agency may go on (the party did not use it)."""
    dtype = clock.deadline_type(deadline.type_code)
    due = deadline.due_on
    party = dtype.owed_by == "party"
    passed = deadline.status is DeadlineStatus.OPEN and due is not None and due < today
    return {"owed_by": dtype.owed_by, "window_closed": party and passed,"id": deadline.id, "case_id": deadline.case_id, "type": dtype.code, "name_zh": dtype.name_zh,
            "calendar": dtype.calendar.value, "holiday_rollover": dtype.holiday_rollover, "source": dtype.source,
            "started_on": deadline.started_on.isoformat(), "due_on": due.isoformat() if due else None,
            "due_at": deadline.due_at.isoformat() if deadline.due_at else None,
            "paused": due is None and deadline.status is DeadlineStatus.OPEN, "status": deadline.status.value,
            "met_on": deadline.met_on.isoformat() if deadline.met_on else None, "late": deadline.late,
            "overdue": passed and not party,
            "days_left": (due - today).days if due else None, "assignee_id": deadline.assignee_id,
            "unit_id": deadline.unit_id, "provisional": deadline.provisional,
            "provisional_years": deadline.provisional_years or []}


def open_case_ids() -> sa.Select[tuple[str]]:
    """Ids of the cases with a clock still running or paused."""
    return sa.select(Deadline.case_id).where(Deadline.status == DeadlineStatus.OPEN)


def next_per_case(session: Session, case_ids: list[str], today: dt.date) -> dict[str, dict[str, Any]]:
    """Each case's next open clock (as ``view``): the running one due first, or, when every open
    clock of the case is paused, a paused one. Cases without an open clock are absent."""
    if not case_ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for row in session.scalars(sa.select(Deadline).where(Deadline.case_id.in_(case_ids),
                                                         Deadline.status == DeadlineStatus.OPEN)):
        item = view(row, today)
        if row.case_id not in found or urgency(item) < urgency(found[row.case_id]):
            found[row.case_id] = item
    return found


def urgency(item: dict[str, Any] | None) -> tuple[bool, bool, str, str, int]:
    """Sort key of a ``view``: overdue first (they are due earliest), then the soonest due, then
    paused clocks, then nothing open (``None``)."""
    if item is None:
        return (True, True, "", "", 0)
    return (False, item["paused"], item["due_on"] or "", item["due_at"] or "", item["id"])


def dashboard(session: Session, *, unit_id: int | None, today: dt.date, horizon_days: int = 7,
              assignee_id: int | None = None) -> dict[str, Any]:
    """Open deadlines of a unit (or person) that are overdue or due within ``horizon_days``,
    grouped by person; paused clocks are listed separately so nothing is invisible, and so are the
    party's own windows, which the agency waits for but never owes."""
    query = sa.select(Deadline).where(Deadline.status == DeadlineStatus.OPEN).where(
        sa.or_(Deadline.due_on.is_(None), Deadline.due_on <= today + dt.timedelta(days=horizon_days)))
    if unit_id is not None:
        query = query.where(Deadline.unit_id == unit_id)
    if assignee_id is not None:
        query = query.where(Deadline.assignee_id == assignee_id)
    rows = session.scalars(query.order_by(Deadline.due_on, Deadline.id)).all()
    by_person: dict[str, dict[str, list[Any]]] = defaultdict(
        lambda: {"overdue": [], "due": [], "paused": [], "party_windows": []})
    totals = {"overdue": 0, "due": 0, "paused": 0, "party_windows": 0}
    for row in rows:
        item = view(row, today)
        bucket = ("party_windows" if item["owed_by"] == "party" else "paused" if item["paused"]
                  else "overdue" if item["overdue"] else "due")
        by_person[str(row.assignee_id or "unassigned")][bucket].append(item)
        totals[bucket] += 1
    return {"today": today.isoformat(), "horizon_days": horizon_days, "totals": totals, "by_person": dict(by_person)}


def scan(session: Session, today: dt.date) -> dict[str, Any]:
    """Daily scan: mark clocks newly found overdue (stored once) and count per unit and person;
    overdue and open clocks counted with the provisional calendar rule are counted apart too."""
    party = [code for code, dtype in clock.types().items() if dtype.owed_by == "party"]
    overdue = session.scalars(sa.select(Deadline).where(
        Deadline.status == DeadlineStatus.OPEN, Deadline.due_on < today, Deadline.type_code.not_in(party))).all()
    per_unit: dict[int, int] = defaultdict(int)
    per_person: dict[int, int] = defaultdict(int)
    newly = 0
    for row in overdue:
        if row.overdue_seen_on is None:
            row.overdue_seen_on = today
            newly += 1
        per_unit[row.unit_id] += 1
        if row.assignee_id:
            per_person[row.assignee_id] += 1
    due_soon = session.scalar(sa.select(sa.func.count(Deadline.id)).where(
        Deadline.status == DeadlineStatus.OPEN, Deadline.due_on >= today,
        Deadline.due_on <= today + dt.timedelta(days=3))) or 0
    provisional = session.scalar(sa.select(sa.func.count(Deadline.id)).where(
        Deadline.status == DeadlineStatus.OPEN, Deadline.provisional.is_(True))) or 0
    session.flush()
    return {"today": today.isoformat(), "overdue": len(overdue), "newly_overdue": newly, "due_within_3_days": due_soon,
            "overdue_provisional": sum(1 for row in overdue if row.provisional), "provisional": provisional,
            "overdue_per_unit": dict(per_unit), "overdue_per_person": dict(per_person)}


RECOMPUTE_REASON = "已载入官方节假日安排 / official holiday schedule loaded"

# Sent by recompute_provisional (sender: the Deadline; session=) after a clock's dates changed, so a
# module keeping a copy of a due date (a legal review's) follows it in the same transaction.
recomputed = signal("enforce.deadline-recomputed")


def recompute_provisional(session: Session) -> list[dict[str, Any]]:
    """D-1: recount every open provisional clock one of whose assumed years now has its official
    schedule; each clock that changes (due date or the years still assumed) gets an audit entry
    with before and after. Clocks that are not provisional are never read, let alone changed."""
    from server.modules.audit import operations as audit

    calendar = get_calendar(provisional=True)  # a year still missing stays assumed, never refused here
    rows = session.scalars(sa.select(Deadline).where(Deadline.status == DeadlineStatus.OPEN,
                                                     Deadline.provisional.is_(True)).order_by(Deadline.id)).all()
    changed = []
    for row in rows:
        if not any(calendar.knows(year) for year in row.provisional_years or ()):
            continue
        before = _dates(row)
        _refresh(session, row, calendar)
        after = _dates(row)
        if after == before:
            continue
        recomputed.send(row, session=session)
        change = {"deadline": row.id, "case": row.case_id, "type": row.type_code, "before": before, "after": after}
        audit.record(session, "task:deadline:recomputed", subjects={"case": row.case_id, "deadline": row.id},
                     payload={**change, "reason": RECOMPUTE_REASON})
        changed.append(change)
    return changed


def _dates(row: Deadline) -> dict[str, Any]:
    return {"due_on": row.due_on.isoformat() if row.due_on else None,
            "due_at": row.due_at.isoformat() if row.due_at else None,
            "provisional": row.provisional, "provisional_years": row.provisional_years or []}
