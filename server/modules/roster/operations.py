"""Availability, conflict register and recusal. Operations flush; the caller commits; all audited.

DOMAIN-RULES §A rule 2 (行政处罚法 第43条; 生态环境行政处罚办法 2023 第6条): an officer with a
conflict is excluded automatically from draws (draws.freeze) and assignments (inspections.create_many
and reassign refuse them); a party's recusal request states its reasons, and the agency head
decides. A granted request also takes the officer off the open inspection it was about.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Role
from server.core.db import among, utcnow
from server.modules.audit import operations as audit
from server.modules.directory import uscc as uscc_rules
from server.modules.directory.models import Target
from server.modules.directory.operations import UsccInvalid
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionStatus, TeamRole
from server.modules.roster.models import (Absence, AbsenceKind, ConflictDeclaration, ConflictRelation,
                                          RecusalRequest, RecusalStatus)
from server.modules.users import operations as users
from server.modules.users.models import User

AbsenceNotFound = errors.error_code("roster.absence_not_found", 404, "请假/培训记录不存在", "No such absence")
ConflictNotFound = errors.error_code("roster.conflict_not_found", 404, "利益冲突登记不存在", "No such conflict entry")
RecusalNotFound = errors.error_code("recusal.not_found", 404, "回避申请不存在", "No such recusal request")
RecusalDecided = errors.error_code("recusal.already_decided", 409, "回避申请已作出决定", "The request was already decided")
RecusalSelfDecision = errors.error_code("recusal.self_decision", 403, "被申请回避的人员不能决定自己的回避",
                                        "The officer concerned cannot decide their own recusal")
RecusalDecider = errors.error_code("recusal.not_head", 403, "回避由机关负责人决定",
                                   "Recusal is decided by the agency head (supervisor)")
ReplacementRequired = errors.error_code(
    "recusal.replacement_required", 422, "准予回避后检查组不足两名持证执法人员，须同时指定替换的执法人员（行政处罚法第42条）",
    "Granting the recusal leaves fewer than two certified inspectors on the team: name a replacement "
    "(Administrative Penalty Law art. 42)")


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def add_absence(session: Session, user: User, *, kind: AbsenceKind, starts_on: dt.date, ends_on: dt.date,
                by: User, note: str | None = None) -> Absence:
    if starts_on > ends_on:
        raise errors.ValidationFailed(fields={"ends_on": ["不得早于开始日期 / must not precede starts_on"]})
    absence = Absence(user_id=user.id, kind=kind, starts_on=starts_on, ends_on=ends_on, note=note, recorded_by=by.id)
    session.add(absence)
    session.flush()
    audit.record(session, "roster:absence:recorded", subjects={"user": user.id, "absence": absence.id},
                 payload={"kind": kind.value, "starts_on": _iso(starts_on), "ends_on": _iso(ends_on), "note": note})
    return absence


def cancel_absence(session: Session, absence: Absence, reason: str) -> Absence:
    absence.cancelled_at = utcnow()
    session.flush()
    audit.record(session, "roster:absence:cancelled", subjects={"user": absence.user_id, "absence": absence.id},
                 payload={"reason": reason})
    return absence


def declare_conflict(session: Session, user: User, *, uscc: str, relation: ConflictRelation, detail: str,
                     by: User, valid_until: dt.date | None = None) -> ConflictDeclaration:
    uscc = uscc.strip().upper()
    if not uscc_rules.is_valid(uscc):
        raise UsccInvalid(fields={"uscc": [uscc]})
    entry = ConflictDeclaration(user_id=user.id, uscc=uscc, relation=relation, detail=detail,
                                valid_until=valid_until, recorded_by=by.id)
    session.add(entry)
    session.flush()
    audit.record(session, "roster:conflict:declared", subjects={"user": user.id, "conflict": entry.id},
                 payload={"uscc": uscc, "relation": relation.value, "detail": detail, "valid_until": _iso(valid_until)})
    return entry


def withdraw_conflict(session: Session, entry: ConflictDeclaration, reason: str) -> ConflictDeclaration:
    entry.withdrawn_at, entry.withdrawn_reason = utcnow(), reason
    session.flush()
    audit.record(session, "roster:conflict:withdrawn", subjects={"user": entry.user_id, "conflict": entry.id},
                 payload={"reason": reason})
    return entry


def active_conflicts(on: dt.date) -> sa.Select[tuple[int, str]]:
    """(user_id, uscc) of every conflict in force on ``on``."""
    return sa.select(ConflictDeclaration.user_id, ConflictDeclaration.uscc).where(ConflictDeclaration.in_force(on))


def is_conflicted(session: Session, user_id: int, target: Target, on: dt.date) -> bool:
    query = active_conflicts(on).where(ConflictDeclaration.user_id == user_id, ConflictDeclaration.uscc == target.uscc)
    return session.execute(query.limit(1)).first() is not None


def unavailable(session: Session, user_ids: Iterable[int], start: dt.date, end: dt.date) -> set[int]:
    """Inspectors with leave or training overlapping [start, end]."""
    ids = list(user_ids)
    if not ids:
        return set()
    return set(session.scalars(sa.select(Absence.user_id).where(
        among(Absence.user_id, ids), Absence.cancelled_at.is_(None),
        Absence.starts_on <= end, Absence.ends_on >= start)))


def request_recusal(session: Session, *, user_id: int, target_id: int, requested_by: str, grounds: str, by: User,
                    inspection_id: str | None = None) -> RecusalRequest:
    """行政处罚法 第43条: the party may ask for recusal, stating reasons; the inspection goes on meanwhile."""
    users.get_user(session, user_id)
    if session.get(Target, target_id) is None:
        raise inspections.TargetNotFound()
    if inspection_id is not None and inspections.get(session, inspection_id).target_id != target_id:
        raise errors.ValidationFailed(fields={"inspection_id": ["不是该检查对象的检查任务 / not an inspection of this target"]})
    request = RecusalRequest(user_id=user_id, target_id=target_id, inspection_id=inspection_id,
                             requested_by=requested_by, grounds=grounds, recorded_by=by.id)
    session.add(request)
    session.flush()
    audit.record(session, "roster:recusal:requested",
                 subjects=[("recusal", request.id), ("user", user_id), ("target", target_id)]
                 + ([("inspection", inspection_id)] if inspection_id else []),
                 payload={"requested_by": requested_by, "grounds": grounds})
    return request


def _open_inspection(session: Session, request: RecusalRequest) -> Inspection | None:
    """The open inspection (assigned or in progress) the request is about, if the officer is on its team."""
    if request.inspection_id is None:
        return None
    inspection = inspections.get(session, request.inspection_id)
    if inspection.status not in (InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS):
        return None
    return inspection if inspections.is_member(inspection, request.user_id) else None


def _leave_team(session: Session, request: RecusalRequest, inspection: Inspection, replacement_id: int | None,
                reason: str, by: User) -> None:
    """Take the recused officer off the team. 行政处罚法 第42条: if fewer than two certified inspectors
    would remain, the head names a replacement, checked like any member (certificate, conflicts)."""
    remaining = [m for m in inspection.members if m.user_id != request.user_id]
    certified = [m.user_id for m in remaining if m.team_role is not TeamRole.AUXILIARY]
    if replacement_id is None and len(certified) < inspections.MIN_INSPECTORS:
        raise ReplacementRequired(certified=len(certified), inspection=inspection.id)
    if replacement_id == request.user_id:
        raise errors.ValidationFailed(fields={"replacement_id": ["不能是被申请回避的人员 / must not be the recused officer"]})
    newcomer = [] if replacement_id is None else [replacement_id]
    leads = [m.user_id for m in remaining if m.team_role is TeamRole.LEAD]
    lead_id = (leads + certified + newcomer)[0]  # a recused lead hands over to a remaining inspector
    inspections.reassign(session, inspection, lead_id=lead_id, member_ids=[m.user_id for m in remaining] + newcomer,
                         by=by, reason=f"回避申请 #{request.id} 获准 / recusal granted: {reason}"[:400])


def decide_recusal(session: Session, request: RecusalRequest, *, granted: bool, reason: str, by: User,
                   replacement_id: int | None = None) -> RecusalRequest:
    """The head decides (rule 2). A granted request enters the conflict register, so the officer is
    excluded from this target in every later draw and assignment, and leaves the open inspection
    the request was about (with ``replacement_id`` joining when the team would drop below two)."""
    if request.status is not RecusalStatus.PENDING:
        raise RecusalDecided(status=request.status.value)
    if by.id == request.user_id:
        raise RecusalSelfDecision()
    if by.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise RecusalDecider()
    inspection = _open_inspection(session, request) if granted else None
    if replacement_id is not None and inspection is None:
        raise errors.ValidationFailed(fields={"replacement_id": [
            "仅在准予回避且被申请人仍在未结束的检查组中时指定 / only when granting the recusal of a member of an open inspection"]})
    if inspection is not None:
        _leave_team(session, request, inspection, replacement_id, reason, by)  # checks first: refusal writes nothing
    request.status = RecusalStatus.GRANTED if granted else RecusalStatus.REJECTED
    request.decided_by, request.decided_at, request.decision_reason = by.id, utcnow(), reason
    if granted:
        target = session.get(Target, request.target_id)
        assert target is not None
        entry = declare_conflict(session, users.get_user(session, request.user_id), uscc=target.uscc,
                                 relation=ConflictRelation.RECUSAL, detail=f"回避申请 #{request.id} 获准: {reason}"[:400],
                                 by=by)
        request.conflict_id = entry.id
    session.flush()
    audit.record(session, "roster:recusal:decided",
                 subjects=[("recusal", request.id), ("user", request.user_id), ("target", request.target_id)]
                 + ([("inspection", inspection.id)] if inspection else []),
                 payload={"granted": granted, "reason": reason, "conflict": request.conflict_id,
                          "left_inspection": inspection.id if inspection else None, "replacement": replacement_id})
    return request


def get_absence(session: Session, absence_id: int) -> Absence:
    absence = session.get(Absence, absence_id)
    if absence is None:
        raise AbsenceNotFound()
    return absence


def get_conflict(session: Session, conflict_id: int) -> ConflictDeclaration:
    entry = session.get(ConflictDeclaration, conflict_id)
    if entry is None:
        raise ConflictNotFound()
    return entry


def get_recusal(session: Session, request_id: int) -> RecusalRequest:
    request = session.get(RecusalRequest, request_id)
    if request is None:
        raise RecusalNotFound()
    return request
