"""Creating, staffing and cancelling inspections; who may see one.

Every team is checked against DOMAIN-RULES §A rule 1 (行政处罚法 第42条: at least two inspectors
with valid certificates) and rule 2 (行政处罚法 第43条: no member with a conflict of interest in
the conflict register); a random inspection (双随机) exists only as the output of a draw (rules 6–7).
Every task counts against its unit's annual plan or carries an outside-plan reason (§M rule 51)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

import sqlalchemy as sa
from flask import has_request_context
from sqlalchemy.orm import Session, scoped_session, selectinload

from server.core import errors
from server.core.access import Principal, Role, current_principal, require
from server.core.db import among, insert_rows, new_uuid, plain_rows, utcnow
from server.modules.audit import operations as audit
from server.modules.directory.models import Target
from server.modules.draws.models import AnnualPlan, Draw, PlanStatus
from server.modules.inspections.models import (OUTSIDE_PLAN_REASONS, Inspection, InspectionKind, InspectionMember,
                                               InspectionStatus, OutsidePlanReason, TeamRole)
from server.modules.roster.models import ConflictDeclaration
from server.modules.users import operations as users
from server.modules.users.models import User

InspectionNotFound = errors.error_code("inspection.not_found", 404, "检查任务不存在", "No such inspection")
TeamTooSmall = errors.error_code(
    "inspection.team_too_small", 422, "检查组至少需要两名持有效执法证的执法人员（行政处罚法第42条）",
    "A team needs at least two inspectors with certificates valid for the visit window (Administrative Penalty Law art. 42)")
InvalidState = errors.error_code("inspection.invalid_state", 409, "检查任务当前状态不允许该操作",
                                 "The inspection's current state does not allow this")
TargetNotFound = errors.error_code("target.not_found", 404, "检查对象不存在", "No such target")
Conflicted = errors.error_code(
    "inspection.conflicted", 422, "检查组成员与检查对象存在利益冲突，应当回避（行政处罚法第43条）",
    "A team member has a conflict of interest with the target and must be recused (Administrative Penalty Law art. 43)")
AuxiliaryLead = errors.error_code(
    "inspection.auxiliary_lead", 422, "协管员不是执法人员，不能担任检查组组长（行政处罚法第42条）",
    "An auxiliary is not an enforcement officer and cannot lead the team (Administrative Penalty Law art. 42)")
RandomNeedsDraw = errors.error_code(
    "inspection.random_needs_draw", 422, "双随机抽查任务只能由抽取产生，须关联一次已登记的抽取",
    "A random (double-random) inspection can only come from a recorded draw")
OutsidePlanReasonRequired = errors.error_code(
    "inspection.outside_plan_reason_required", 422,
    "该单位检查期间开始年度没有已批准的年度检查计划：计划外任务须注明原因（投诉举报、非现场监管线索、专项行动、上级交办）",
    "The unit has no approved annual plan for the year the window starts in: a task outside the plan needs a "
    "reason (complaint, non_site_clue, special_campaign, superior_assignment)")
PlanCapReached = errors.error_code(
    "inspection.plan_cap_reached", 422,
    "该企业本年度检查次数已达年度计划规定的每家企业上限；确需再查的，须作为计划外任务注明原因",
    "The target has been inspected this year as often as the annual plan allows per enterprise; "
    "a further visit is outside the plan and needs a reason")
TipNeedsSource = errors.error_code(
    "inspection.tip_needs_source", 422, "举报核查任务须注明线索来源：投诉举报或非现场监管线索",
    "A tip check must name where the tip came from: complaint or non_site_clue")

MIN_INSPECTORS = 2  # 行政处罚法 第42条: at least two enforcement officers


def get(session: Session, inspection_id: str) -> Inspection:
    inspection = session.get(Inspection, inspection_id)
    if inspection is None:
        raise InspectionNotFound()
    return inspection


def _team(session: Session, lead_id: int, member_ids: Iterable[int], window: tuple[dt.date, dt.date],
          lookup: Any = None, checked: dict[Any, Any] | None = None) -> list[tuple[User, TeamRole, str | None]]:
    """Check rule 1 (DOMAIN-RULES §A): ≥2 inspectors whose certificates hold for the whole window.
    ``checked`` keeps each (user, window) verdict for the next team (a draw reuses people)."""
    ids = [lead_id] + [i for i in dict.fromkeys(member_ids) if i != lead_id]
    team: list[tuple[User, TeamRole, str | None]] = []
    certified = 0
    for position, user_id in enumerate(ids):
        user = lookup(user_id) if lookup is not None else users.get_user(session, user_id)
        if user.role is Role.AUXILIARY:
            if position == 0:  # the lead acts for the agency: 行政处罚法 第42条
                raise AuxiliaryLead(user=user.username, rule="行政处罚法 第42条")
            team.append((user, TeamRole.AUXILIARY, None))
            continue
        key = (user_id, window)
        number = checked.get(key) if checked is not None else None
        if number is None:
            users.require_inspector(user, window[0])
            number = users.require_inspector(user, window[1]).number
            if checked is not None:
                checked[key] = number
        certified += 1
        team.append((user, TeamRole.LEAD if position == 0 else TeamRole.MEMBER, number))
    if certified < MIN_INSPECTORS:
        raise TeamTooSmall(certified=certified)
    return team


Conflicts = dict[tuple[int, str], list[dt.date | None]]


def _conflicts(session: Session, user_ids: Iterable[int], since: dt.date) -> Conflicts:
    """Conflict-register entries of ``user_ids`` in force on ``since`` or later, in one query per
    2,000 people (the register is small; a draw's thousands of credit codes are matched in memory):
    (user, credit code) -> the last day each entry is in force, None when open-ended."""
    ids = sorted(set(user_ids))
    found: Conflicts = {}
    columns = ConflictDeclaration.user_id, ConflictDeclaration.uscc, ConflictDeclaration.valid_until
    for chunk in range(0, len(ids), 2000):
        for user_id, uscc, until in plain_rows(session, sa.select(*columns).where(
                among(ConflictDeclaration.user_id, ids[chunk:chunk + 2000]), ConflictDeclaration.in_force(since))):
            found.setdefault((user_id, uscc), []).append(until)
    return found


def _refuse_conflicted(team: list[tuple[User, TeamRole, str | None]], uscc: str, start: dt.date,
                       conflicts: Conflicts) -> None:
    """Rule 2 (行政处罚法 第43条 回避): nobody on the team may have a conflict with the target in force
    on the first day of the visit window (auxiliaries included: they are at the site too)."""
    for user, _, _ in team:
        if any(until is None or until >= start for until in conflicts.get((user.id, uscc), ())):
            raise Conflicted(user=user.username, user_id=user.id, name=user.display_name, uscc=uscc)


def _reason_labels(reasons: Iterable[OutsidePlanReason]) -> dict[str, dict[str, str]]:
    return {r.value: dict(zip(("zh", "en"), OUTSIDE_PLAN_REASONS[r], strict=True)) for r in reasons}


class _PlanBook:
    """DOMAIN-RULES §M rule 51 for one batch: the approved annual plans of the units and years asked
    for, and how often each target is inspected in each year. Counted as the draw counts for the
    same cap: every live inspection (draws and outside-plan ones included, cancelled ones not). A
    task beyond the cap is not refused outright: it may go ahead outside the plan, with a reason.
    The plan rows stay locked until commit on PostgreSQL, so two requests against one plan cannot
    both take a target's last visit."""

    def __init__(self, session: Session, wanted: set[tuple[int, int, int]]) -> None:
        """``wanted``: (unit, year, target) of each task that asks to count against a plan."""
        self.plans: dict[tuple[int, int], tuple[int, int]] = {}
        self.counts: dict[tuple[int, int], int] = {}
        if not wanted:
            return
        units, years = sorted({u for u, _, _ in wanted}), sorted({y for _, y, _ in wanted})
        for plan_id, unit_id, year, cap in session.execute(
                sa.select(AnnualPlan.id, AnnualPlan.unit_id, AnnualPlan.year, AnnualPlan.cap_per_enterprise)
                .where(AnnualPlan.unit_id.in_(units), AnnualPlan.year.in_(years),
                       AnnualPlan.status == PlanStatus.APPROVED).with_for_update()):
            self.plans[(unit_id, year)] = plan_id, cap
        for year in years:
            targets = sorted({t for u, y, t in wanted if y == year and (u, y) in self.plans})
            if targets:
                self.counts.update(((target, year), n) for target, n in session.execute(
                    sa.select(Inspection.target_id, sa.func.count(Inspection.id))
                    .where(among(Inspection.target_id, targets), Inspection.status != InspectionStatus.CANCELLED,
                           Inspection.window_start.between(dt.date(year, 1, 1), dt.date(year, 12, 31)))
                    .group_by(Inspection.target_id)))

    def take(self, unit_id: int, year: int, target_id: int) -> int:
        """The plan the task counts against, counted; refused when there is none or the target is at its cap."""
        found = self.plans.get((unit_id, year))
        if found is None:
            raise OutsidePlanReasonRequired(unit=unit_id, year=year, reasons=_reason_labels(OutsidePlanReason))
        plan_id, cap = found
        done = self.counts.get((target_id, year), 0)
        if done >= cap:
            raise PlanCapReached(plan=plan_id, target=target_id, year=year, cap_per_enterprise=cap,
                                 inspections=done, reasons=_reason_labels(OutsidePlanReason))
        self.counts[(target_id, year)] = done + 1
        return plan_id


_TIP_SOURCES = (OutsidePlanReason.COMPLAINT, OutsidePlanReason.NON_SITE_CLUE)


def _outside_plan_reason(spec: dict[str, Any]) -> OutsidePlanReason | None:
    """Rule 51: a drawn task is in the plan by construction; a tip check is outside it by nature and
    says where the tip came from (a complaint or a non-site supervision lead)."""
    reason = spec.get("outside_plan_reason")
    reason = OutsidePlanReason(reason) if reason is not None else None
    if spec["kind"] is InspectionKind.RANDOM and reason is not None:
        raise errors.ValidationFailed(fields={"outside_plan_reason": [
            "双随机抽查任务由抽取产生，属于计划内 / a drawn inspection is in the plan by construction"]})
    if spec["kind"] is InspectionKind.TIP and reason not in _TIP_SOURCES:
        raise TipNeedsSource(outside_plan_reason=reason.value if reason else None, reasons=_reason_labels(_TIP_SOURCES))
    return reason


def create(session: Session, *, target_id: int, lead_id: int, member_ids: Iterable[int], window_start: dt.date,
           window_end: dt.date, kind: InspectionKind, created_by: User, unit_id: int | None = None,
           purpose: str | None = None, secret: bool = False, draw_id: str | None = None,
           outside_plan_reason: OutsidePlanReason | None = None) -> Inspection:
    return create_many(session, [{"target_id": target_id, "lead_id": lead_id, "member_ids": member_ids,
                                  "window_start": window_start, "window_end": window_end, "kind": kind,
                                  "unit_id": unit_id, "purpose": purpose, "secret": secret, "draw_id": draw_id,
                                  "outside_plan_reason": outside_plan_reason}],
                       created_by=created_by)[0]


def create_many(session: Session, specs: Iterable[dict[str, Any]], *, created_by: User,
                load: bool = True) -> list[Inspection]:
    """Create inspections with the same checks and audit entries as one by one, set-based: the
    targets and the whole team set (users with their certificates) are read in a few queries, the
    rules are checked in memory spec by spec (same order, same errors), and the inspections and
    members are written with ORM bulk inserts. A draw creates thousands.

    Rule 51 (DOMAIN-RULES §M): a task by hand without ``outside_plan_reason`` counts against its
    unit's approved annual plan for the year its window starts in, within the plan's cap per
    enterprise; with no such plan, or at the cap, it needs a reason. A drawn (random) task takes
    its draw's plan, if any, and no cap is checked here (the draw's own rules bound it).

    With ``load=False`` nothing is read back and an empty list is returned (the draw run)."""
    specs = list(specs)
    if not specs:
        return []
    if isinstance(session, scoped_session):
        session = session()  # once, not once per audit entry
    target_ids = sorted({spec["target_id"] for spec in specs})
    user_ids = sorted({uid for spec in specs for uid in [spec["lead_id"], *spec["member_ids"]]})
    session.flush()  # anything pending (the targets and users referred to) goes first
    uscc_of: dict[int, str] = {}
    for chunk in range(0, len(target_ids), 5000):
        chunk_ids = target_ids[chunk:chunk + 5000]
        uscc_of.update(plain_rows(session, sa.select(Target.id, Target.uscc).where(among(Target.id, chunk_ids))))
    conflicts = _conflicts(session, user_ids, min(spec["window_start"] for spec in specs))
    draw_ids = sorted({spec["draw_id"] for spec in specs if spec.get("draw_id")})
    drawn: dict[str, int | None] = dict(session.execute(
        sa.select(Draw.id, Draw.plan_id).where(Draw.id.in_(draw_ids))).all()) if draw_ids else {}
    unit_default = created_by.unit_id
    reasons = [_outside_plan_reason(spec) for spec in specs]
    book = _PlanBook(session, {(spec.get("unit_id") or unit_default, spec["window_start"].year, spec["target_id"])
                               for spec, reason in zip(specs, reasons, strict=True)
                               if reason is None and spec["kind"] is not InspectionKind.RANDOM})
    people: dict[int, User] = {}  # held strongly: the identity map is weak
    for chunk in range(0, len(user_ids), 2000):
        for user in session.scalars(sa.select(User).where(among(User.id, user_ids[chunk:chunk + 2000]))
                                    .options(selectinload(User.certificates))):
            people[user.id] = user

    def lookup(user_id: int) -> User:
        user = people.get(user_id)
        if user is None:
            raise users.UserNotFound()
        return user

    now = utcnow()
    actor = audit.Actor.of(current_principal()) if has_request_context() else None  # once, not per entry
    inspection_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    checked: dict[Any, Any] = {}
    for spec, reason in zip(specs, reasons, strict=True):
        target_id = spec["target_id"]
        if target_id not in uscc_of:
            raise TargetNotFound()
        kind: InspectionKind = spec["kind"]
        secret, draw_id, purpose = spec.get("secret", False), spec.get("draw_id"), spec.get("purpose")
        if kind is InspectionKind.RANDOM and draw_id not in drawn:
            raise RandomNeedsDraw(draw=draw_id)  # rules 6–7: drawn, not picked by hand
        window_start, window_end = spec["window_start"], spec["window_end"]
        if window_start > window_end:
            raise errors.ValidationFailed(fields={"window_end": ["不得早于开始日期 / must not precede window_start"]})
        team = _team(session, spec["lead_id"], spec["member_ids"], (window_start, window_end), lookup=lookup,
                     checked=checked)
        _refuse_conflicted(team, uscc_of[target_id], window_start, conflicts)
        unit_id = spec.get("unit_id") or unit_default
        if kind is InspectionKind.RANDOM:
            plan_id = drawn[draw_id]
        else:
            plan_id = None if reason is not None else book.take(unit_id, window_start.year, target_id)
        inspection_id = new_uuid()
        inspection_rows.append({
            "id": inspection_id, "target_id": target_id, "unit_id": unit_id,
            "kind": kind, "status": InspectionStatus.ASSIGNED, "window_start": window_start, "window_end": window_end,
            "secret": secret, "draw_id": draw_id, "created_by": created_by.id, "purpose": purpose,
            "plan_id": plan_id, "outside_plan_reason": reason,
            "version": 1, "created_at": now, "updated_at": now})
        for user, team_role, cert in team:
            member_rows.append({"inspection_id": inspection_id, "user_id": user.id, "team_role": team_role,
                                "certificate_number": cert, "assigned_at": now, "assigned_by": created_by.id})
        audit.record(session, "inspection:inspection:assigned",
                     subjects=[("inspection", inspection_id), ("target", target_id)] + [("user", u.id) for u, _, _ in team],
                     payload={"kind": kind.value, "window": [window_start.isoformat(), window_end.isoformat()],
                              "team": [{"user": u.id, "role": r.value, "certificate": c} for u, r, c in team],
                              "secret": secret, "draw": draw_id, "purpose": purpose, "plan": plan_id,
                              "outside_plan_reason": reason.value if reason else None}, actor=actor)
    insert_rows(session, Inspection.__table__, inspection_rows)  # type: ignore[arg-type]
    insert_rows(session, InspectionMember.__table__, member_rows)  # type: ignore[arg-type]
    if not load:
        return []
    ids = [row["id"] for row in inspection_rows]
    loaded: dict[str, Inspection] = {}
    for chunk in range(0, len(ids), 5000):
        for inspection in session.scalars(sa.select(Inspection).where(Inspection.id.in_(ids[chunk:chunk + 5000]))):
            loaded[inspection.id] = inspection
    return [loaded[i] for i in ids]


def reassign(session: Session, inspection: Inspection, *, lead_id: int, member_ids: Iterable[int], by: User,
             reason: str) -> Inspection:
    """Change the team, checked like a new one (rules 1 and 2). Removed members keep their row with
    ``removed_at`` (devices get a tombstone)."""
    if inspection.status in (InspectionStatus.COMPLETED, InspectionStatus.CANCELLED):
        raise InvalidState(status=inspection.status.value)
    team = _team(session, lead_id, member_ids, (inspection.window_start, inspection.window_end))
    _refuse_conflicted(team, inspection.target.uscc, inspection.window_start,
                       _conflicts(session, [user.id for user, _, _ in team], inspection.window_start))
    wanted = {user.id: (role, cert) for user, role, cert in team}
    now = utcnow()
    current = session.scalars(sa.select(InspectionMember).where(
        InspectionMember.inspection_id == inspection.id, InspectionMember.removed_at.is_(None))).all()
    before = [{"user": m.user_id, "role": m.team_role.value} for m in current]
    for member in current:
        if member.user_id not in wanted or wanted[member.user_id][0] is not member.team_role:
            member.removed_at, member.removed_reason = now, reason
    session.flush()
    kept = {m.user_id for m in current if m.removed_at is None}
    for user_id, (role, cert) in wanted.items():
        if user_id not in kept:
            session.add(InspectionMember(inspection_id=inspection.id, user_id=user_id, team_role=role,
                                         certificate_number=cert, assigned_by=by.id))
    inspection.updated_at = now  # bumps the version: devices see the change
    session.flush()
    audit.record(session, "inspection:inspection:reassigned",
                 subjects=[("inspection", inspection.id)] + [("user", uid) for uid in wanted],
                 payload={"before": before, "after": [{"user": u, "role": r.value} for u, (r, _) in wanted.items()],
                          "reason": reason})
    return inspection


def cancel(session: Session, inspection: Inspection, *, reason: str) -> Inspection:
    if inspection.status in (InspectionStatus.COMPLETED, InspectionStatus.CANCELLED):
        raise InvalidState(status=inspection.status.value)
    before = inspection.status.value
    inspection.status = InspectionStatus.CANCELLED
    inspection.cancelled_reason = reason
    session.flush()
    audit.record(session, "inspection:inspection:cancelled", subjects={"inspection": inspection.id},
                 payload={"before": before, "reason": reason})
    return inspection


def is_member(inspection: Inspection, user_id: int | None) -> bool:
    return any(m.user_id == user_id for m in inspection.members)


def visible(session: Session, principal: Principal) -> sa.Select[tuple[Inspection]]:
    """Supervisors and admins see their unit's inspections (admins all); inspectors only their own.
    Drawn targets stay secret from everyone else until the visit (DOMAIN-RULES rule 6)."""
    query = sa.select(Inspection).order_by(Inspection.window_start.desc(), Inspection.id)
    if principal.role == Role.ADMIN.value:
        return query
    if principal.role == Role.SUPERVISOR.value and principal.kind == "user":
        return query.where(Inspection.unit_id == principal.unit_id)
    mine = sa.select(InspectionMember.inspection_id).where(
        InspectionMember.user_id == principal.user_id, InspectionMember.removed_at.is_(None))
    return query.where(Inspection.id.in_(mine))


def open_for(session: Session, principal: Principal) -> sa.Select[tuple[Inspection]]:
    """The caller's inspections still to be done (assigned or in progress), soonest window first.
    Same scope as ``visible``: an inspector sees only their own, so a drawn target stays secret
    from everyone off the team (DOMAIN-RULES rule 6)."""
    return (visible(session, principal)
            .where(Inspection.status.in_([InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS]))
            .order_by(None).order_by(Inspection.window_start, Inspection.window_end, Inspection.id))


def require_visible(session: Session, principal: Principal, inspection: Inspection) -> None:
    if principal.role == Role.ADMIN.value:
        return
    if principal.role == Role.SUPERVISOR.value and principal.kind == "user" and inspection.unit_id == principal.unit_id:
        return
    require(is_member(inspection, principal.user_id), "not assigned to this inspection")
