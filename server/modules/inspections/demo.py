"""Demo inspections assigned directly by the detachment head: inspector01 leads inspector02 on a
tip check open now (outside the plan: a complaint) and a routine check starting tomorrow (in the
detachment's annual plan), so 我的工作 has work on it."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core.calendar import get_calendar
from server.modules.cases.models import Case
from server.modules.directory.models import Target
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionKind, OutsidePlanReason
from server.modules.users.models import User

REGION = "611002"  # 商州区, inspector02's brigade
WORK = ((InspectionKind.TIP, OutsidePlanReason.COMPLAINT, "举报核查：群众反映夜间通过雨水管网排放生产废水", -2, 3),
        (InspectionKind.ROUTINE, None, "日常检查：危险废物贮存、转移联单与管理台账", 1, 10))


def load(session: Session, today: dt.date) -> list[Inspection]:
    """Windows: ``start`` natural days from today to ``end`` working days after today."""
    people = {u.username: u for u in session.scalars(sa.select(User).where(
        User.username.in_(["supervisor", "inspector01", "inspector02"])))}
    head, lead, member = people["supervisor"], people["inspector01"], people["inspector02"]
    # Enterprises with no inspection or case yet, the brigade's own region first.
    targets = session.scalars(sa.select(Target).where(
        Target.id.not_in(sa.select(Inspection.target_id)),
        Target.id.not_in(sa.select(Case.target_id).where(Case.target_id.is_not(None))))
        .order_by(Target.region_code != REGION, Target.id).limit(len(WORK))).all()
    calendar = get_calendar()
    made = []
    for target, (kind, reason, purpose, start, end) in zip(targets, WORK, strict=True):
        window_start = today + dt.timedelta(days=start)
        if reason is None and window_start.year != today.year:  # the demo plan is this year's only
            reason = OutsidePlanReason.SUPERIOR_ASSIGNMENT
        made.append(inspections.create(session, target_id=target.id, lead_id=lead.id, member_ids=[member.id],
                                       window_start=window_start, window_end=calendar.add_working_days(today, end),
                                       kind=kind, created_by=head, purpose=purpose, outside_plan_reason=reason))
    return made
