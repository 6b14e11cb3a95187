"""一公开: publish random-inspection results within 20 working days (DOMAIN-RULES §A rule 8) and
track the deadlines. Operations flush; the request commits."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Role
from server.core.calendar import CHINA, get_calendar, local_today
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.disclosure.models import Outcome, ResultDisclosure, SamplingItem
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionKind, InspectionStatus
from server.modules.users import operations as users

RESULT_DEADLINE_WORKING_DAYS = 20  # rule 8: 抽查检查结束之日起20个工作日之内 [S]

NotCompleted = errors.error_code("disclosure.inspection_not_completed", 409, "检查尚未结束，不能公开结果",
                                 "The inspection is not completed; its result cannot be published")
AlreadyPublished = errors.error_code("disclosure.already_published", 409, "该检查结果已公开",
                                     "This result has already been published")
NotRandom = errors.error_code("disclosure.not_random", 422, "只公开双随机抽查的结果",
                              "Only results of random inspections are published here")
NotDrawn = errors.error_code("disclosure.not_drawn", 422, "该检查没有抽取记录，不能作为双随机抽查结果公开",
                             "The inspection has no draw; it cannot be published as a double-random result")
OtherUnit = errors.error_code("disclosure.other_unit", 403, "谁检查、谁公开：只能公开本单位检查任务的结果",
                              "Whoever inspects publishes: only the unit that ran the inspection publishes its result")
ItemCodeTaken = errors.error_code("disclosure.item_code_taken", 409, "抽查事项编号已存在",
                                  "A sampling item with this code exists")


def inspected_on(inspection: Inspection) -> dt.date:
    assert inspection.completed_at is not None
    return inspection.completed_at.astimezone(CHINA).date()


def due_on(inspection: Inspection) -> dt.date:
    """Rule 8 / D-1: 20 working days after the end of the inspection (that day not counted)."""
    return get_calendar().add_working_days(inspected_on(inspection), RESULT_DEADLINE_WORKING_DAYS)


def publish_result(session: Session, *, inspection_id: str, findings: str, outcome: Outcome, by_user_id: int,
                   today: dt.date | None = None) -> ResultDisclosure:
    """Rule 8: a double-random result names its draw, so anyone can replay how the target was chosen.
    "谁检查、谁录入、谁公开": a supervisor publishes their own unit's results only; an admin any."""
    inspection = inspections.get(session, inspection_id)
    publisher = users.get_user(session, by_user_id)
    if publisher.role is not Role.ADMIN and publisher.unit_id != inspection.unit_id:
        raise OtherUnit(inspection_unit=inspection.unit_id)
    if inspection.kind is not InspectionKind.RANDOM:
        raise NotRandom()
    if inspection.draw_id is None:
        raise NotDrawn()  # only a random inspection recorded before draws were required
    if inspection.status is not InspectionStatus.COMPLETED or inspection.completed_at is None:
        raise NotCompleted(status=inspection.status.value)
    if session.scalar(sa.select(ResultDisclosure.id).where(ResultDisclosure.inspection_id == inspection.id)):
        raise AlreadyPublished()
    today = today or local_today()
    due = due_on(inspection)
    result = ResultDisclosure(
        inspection_id=inspection.id, draw_id=inspection.draw_id, target_id=inspection.target_id,
        target_name=inspection.target.name, target_uscc=inspection.target.uscc, inspected_on=inspected_on(inspection),
        team_certificates=[m.certificate_number for m in inspection.members if m.certificate_number],
        findings=findings, outcome=outcome, due_on=due, published_at=utcnow(), published_by=by_user_id,
        on_time=today <= due)
    session.add(result)
    session.flush()
    audit.record(session, "disclosure:result:published",
                 subjects=[("inspection", inspection.id), ("target", inspection.target_id), ("result", result.id)],
                 payload={"outcome": outcome.value, "findings": findings, "due_on": due.isoformat(),
                          "on_time": result.on_time, "team_certificates": result.team_certificates})
    return result


def deadlines(session: Session, *, unit_id: int | None, today: dt.date | None = None,
              overdue_only: bool = False) -> list[dict[str, Any]]:
    """Completed random inspections of a unit (``None``: every unit, for admins) whose result is not
    yet published, with their due dates, the oldest first."""
    today = today or local_today()
    published = sa.select(ResultDisclosure.inspection_id)
    query = sa.select(Inspection).where(
        Inspection.kind == InspectionKind.RANDOM, Inspection.status == InspectionStatus.COMPLETED,
        Inspection.id.not_in(published)).order_by(Inspection.completed_at, Inspection.id)
    if unit_id is not None:
        query = query.where(Inspection.unit_id == unit_id)
    pending = session.scalars(query).all()
    rows = []
    for inspection in pending:
        due = due_on(inspection)
        row = {"inspection_id": inspection.id, "draw_id": inspection.draw_id, "target_id": inspection.target_id,
               "target_name": inspection.target.name, "inspected_on": inspected_on(inspection), "due_on": due,
               "overdue": today > due,
               "working_days_left": (get_calendar().working_days_between(today, due) if today <= due
                                     else -get_calendar().working_days_between(due, today))}
        if row["overdue"] or not overdue_only:
            rows.append(row)
    return rows


def add_sampling_item(session: Session, **data: Any) -> SamplingItem:
    if session.scalar(sa.select(SamplingItem.id).where(SamplingItem.code == data["code"])):
        raise ItemCodeTaken(fields={"code": [data["code"]]})
    item = SamplingItem(**data)
    session.add(item)
    session.flush()
    audit.record(session, "disclosure:sampling_item:created", subjects={"sampling_item": item.id},
                 payload={key: value for key, value in data.items()})
    return item
