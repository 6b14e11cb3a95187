"""Legal review of major decisions (法制审核, 行政处罚法 第58条): scope, queue, the reviewer's
screen, and outcomes. Every submission and every opinion is a new row and an audit entry."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from server.core import errors
from server.core.access import Role
from server.core.calendar import local_today
from server.modules.audit import operations as audit
from server.modules.cases import operations as cases
from server.modules.cases import predicates
from server.modules.cases.models import Case, CaseEvent, CaseEvidence, InvestigativeAct
from server.modules.cases.workflow import apply, check
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines.models import Deadline
from server.modules.discretion import operations as discretion
from server.modules.reviews.models import LegalReview, LegalReviewDecision, ReviewOutcome, ReviewStatus
from server.modules.roster.models import ConflictDeclaration
from server.modules.users.models import LegalQualification, User

ReviewNotFound = errors.error_code("review.not_found", 404, "法制审核记录不存在", "No such legal review")
NotQualified = errors.error_code(
    "review.reviewer_not_qualified", 403, "审核人员须为具有法律职业资格的法制审核人员（行政处罚法第58条）",
    "The reviewer must be a legal reviewer with a recorded legal qualification (Administrative Penalty Law art. 58)")
OwnCase = errors.error_code(
    "review.own_case", 403, "审核人员不得审核本人承办、调查或提交的案件（广东法制审核办法第6条）",
    "A reviewer may not review a case they handled, investigated or submitted (separation of duties)")
ReviewerConflict = errors.error_code(
    "review.reviewer_conflict", 403, "审核人员与当事人存在登记的利害关系，应当回避（广东法制审核办法第21条）",
    "The reviewer has a recorded conflict of interest with the party and must recuse")
AlreadyDecided = errors.error_code("review.already_decided", 409, "该次审核已有结论；再次审核须重新提交",
                                   "This review already has an outcome; resubmit for another round")
ReasonsRequired = errors.error_code("review.reasons_required", 422, "退回须注明编码化的退回理由",
                                    "A return needs coded reasons")

# 广东法制审核办法 第19–20条: the reasons a review may return a case for.
REASON_CODES = {
    "body_qualification": "主体或执法人员资格不合法",
    "facts_evidence": "事实不清、证据不足",
    "legal_basis": "适用法律依据错误",
    "discretion": "裁量基准运用不当",
    "procedure": "程序违法",
    "improper_decision": "处理决定明显不当",
    "exceeding_powers": "超越职权",
    "documents": "文书不规范、不齐全",
    "crime_transfer": "涉嫌犯罪应当移送",
}
_HERE = Path(__file__).parent


@lru_cache(maxsize=1)
def scope_rules() -> dict[str, Any]:
    return predicates.load(_HERE / "scope_rules.json")


def scope_hits(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Which catalogue rules (目录清单, DOMAIN-RULES rule 31) put a decision in review scope."""
    return predicates.evaluate(scope_rules()["rules"], facts)


def get(session: Session, review_id: int) -> LegalReview:
    review = session.get(LegalReview, review_id)
    if review is None:
        raise ReviewNotFound(review=review_id)
    return review


def passed_review(session: Session, case_id: str) -> LegalReview | None:
    """The latest round, if it passed (a later return or resubmission supersedes an earlier pass)."""
    latest = session.scalar(sa.select(LegalReview).where(LegalReview.case_id == case_id)
                            .order_by(LegalReview.round_no.desc()).limit(1))
    return latest if latest is not None and latest.status is ReviewStatus.PASSED else None


def submit(session: Session, case: Case, *, by: User, on: dt.date, fine: int | None = None,
           measures: list[str] | None = None) -> LegalReview:
    """提交法制审核 (行政处罚法 第58条) with the draft decision. The party's statement period must be
    over (第62条) so that the reviewed draft is final; the review clock is 5 working days (广东 第18条)."""
    check(case, "submit_review")
    cases.statement_gate(session, case, on)
    record = discretion.latest(session, case.id)
    draft_fine = fine if fine is not None else case.notified_fine
    draft_measures = list(measures if measures is not None else case.notified_measures or [])
    hits = scope_hits({**cases.review_facts(case, draft_fine), "measures": draft_measures})
    last = session.scalar(sa.select(sa.func.max(LegalReview.round_no)).where(LegalReview.case_id == case.id)) or 0
    clock_row = deadlines.start(session, case_id=case.id, type_code="legal_review", on=on, unit_id=case.unit_id)
    review = LegalReview(case_id=case.id, round_no=last + 1, scope_hits=hits, submitted_on=on, submitted_by=by.id,
                         due_on=clock_row.due_on, subject="transfer_refusal" if case.transfer_refusal_reason else "decision",
                         proposal={"fine": draft_fine, "measures": draft_measures,
                                   "discretion_record": record.id if record else None,
                                   "deadline_id": clock_row.id})
    session.add(review)
    session.flush()
    apply(session, case, "submit_review", by_user_id=by.id, on=on,
          payload={"review": review.id, "round": review.round_no, "scope": [h["code"] for h in hits]})
    return review


def extend(session: Session, review: LegalReview, *, by: User, reason: str) -> LegalReview:
    """广东法制审核办法 第18条: +3 working days for a complex case, approved by the head in charge."""
    if review.status is not ReviewStatus.PENDING:
        raise AlreadyDecided(review=review.id)
    row = session.get(Deadline, review.proposal["deadline_id"])
    deadlines.extend(session, row, amount=3, reason=reason, by_user_id=by.id, on=local_today())  # type: ignore[arg-type]
    review.extended, review.extension_reason, review.due_on = True, reason, row.due_on  # type: ignore[union-attr]
    session.flush()
    audit.record(session, "web:legal_review:extended", subjects={"case": review.case_id, "legal_review": review.id},
                 payload={"reason": reason, "due_on": review.due_on.isoformat()})
    return review


@deadlines.recomputed.connect
def _follow_clock(row: Deadline, *, session: Session) -> None:
    """A pending review's due date is its clock's: recounted on an official holiday schedule, it moves too."""
    if row.type_code != "legal_review" or row.due_on is None:
        return
    for review in session.scalars(sa.select(LegalReview).where(LegalReview.case_id == row.case_id,
                                                               LegalReview.status == ReviewStatus.PENDING)):
        if review.proposal.get("deadline_id") == row.id:
            review.due_on = row.due_on
    session.flush()


def handled_by(session: Session, case: Case) -> set[int]:
    """Everyone who handled the case: handlers, investigators, submitters, the hearing presider."""
    people = {h.user_id for h in case.handlers}
    for inspectors in session.scalars(sa.select(InvestigativeAct.inspectors).where(InvestigativeAct.case_id == case.id)):
        people |= {i["user_id"] for i in inspectors}
    people |= set(session.scalars(sa.select(LegalReview.submitted_by).where(LegalReview.case_id == case.id)))
    if case.hearing_presider_id:
        people.add(case.hearing_presider_id)
    return people


def require_reviewer(session: Session, reviewer: User, case: Case, today: dt.date) -> LegalQualification:
    """行政处罚法 第58条 (qualified reviewer); 广东法制审核办法 第6条 (separate from the handling)
    and 第21条 (recusal for a direct interest, from the conflict register)."""
    qualification = session.scalar(sa.select(LegalQualification).where(LegalQualification.user_id == reviewer.id)
                                   .order_by(LegalQualification.obtained_on).limit(1))
    if reviewer.role is not Role.LEGAL_REVIEWER or not reviewer.active or qualification is None:
        raise NotQualified(user=reviewer.username, rule="行政处罚法 第58条")
    if reviewer.id in handled_by(session, case):
        raise OwnCase(user=reviewer.username, case=case.id, rule="广东法制审核办法 第6条; DOMAIN-RULES rule 32")
    if case.party_uscc:
        conflict = session.scalar(sa.select(ConflictDeclaration.id).where(
            ConflictDeclaration.user_id == reviewer.id, ConflictDeclaration.uscc == case.party_uscc,
            ConflictDeclaration.withdrawn_at.is_(None),
            sa.or_(ConflictDeclaration.valid_until.is_(None), ConflictDeclaration.valid_until >= today)))
        if conflict:
            raise ReviewerConflict(user=reviewer.username, conflict=conflict, rule="广东法制审核办法 第21条")
    return qualification


def decide(session: Session, review: LegalReview, *, reviewer: User, outcome: ReviewOutcome, opinion: str,
           reason_codes: list[str] | None = None, today: dt.date | None = None) -> LegalReviewDecision:
    """Pass, or return with coded reasons (广东 第19–20条). The decision is a new row; the case moves
    to ``reviewed`` or ``review_returned``; the review clock is met."""
    today = today or local_today()
    case = cases.get(session, review.case_id)
    if review.status is not ReviewStatus.PENDING:
        raise AlreadyDecided(review=review.id, status=review.status.value)
    qualification = require_reviewer(session, reviewer, case, today)
    reason_codes = list(dict.fromkeys(reason_codes or []))
    if outcome is ReviewOutcome.RETURN and not reason_codes:
        raise ReasonsRequired()
    unknown = [c for c in reason_codes if c not in REASON_CODES]
    if unknown:
        raise ReasonsRequired(fields={"reason_codes": unknown}, known=sorted(REASON_CODES))
    check(case, "review_pass" if outcome is ReviewOutcome.PASS else "review_return")
    previous = session.scalar(sa.select(LegalReviewDecision.id).join(LegalReview).where(
        LegalReview.case_id == case.id).order_by(LegalReviewDecision.id.desc()).limit(1))
    decision = LegalReviewDecision(review_id=review.id, reviewer_id=reviewer.id,
                                   qualification_number=qualification.number, outcome=outcome,
                                   reason_codes=reason_codes, opinion=opinion, supersedes_id=previous)
    session.add(decision)
    review.status = ReviewStatus.PASSED if outcome is ReviewOutcome.PASS else ReviewStatus.RETURNED
    session.flush()
    deadlines.meet(session, session.get(Deadline, review.proposal["deadline_id"]), today)
    apply(session, case, "review_pass" if outcome is ReviewOutcome.PASS else "review_return", by_user_id=reviewer.id,
          on=today, payload={"review": review.id, "decision": decision.id, "reasons": reason_codes})
    audit.record(session, f"web:legal_review:{outcome.value}", subjects={"case": case.id, "legal_review": review.id,
                                                                         "user": reviewer.id},
                 payload={"decision": decision.id, "reasons": reason_codes, "opinion": opinion,
                          "qualification": qualification.number})
    return decision


def queue(session: Session, today: dt.date, *, unit_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Pending reviews, most urgent first, with their 5 (+3) working-day due dates."""
    query = (sa.select(LegalReview.id, LegalReview.case_id, LegalReview.round_no, LegalReview.submitted_on,
                       LegalReview.due_on, LegalReview.extended, LegalReview.scope_hits, LegalReview.subject,
                       LegalReview.proposal, Case.number, Case.title, Case.party_name, Case.unit_id)
             .join(Case, Case.id == LegalReview.case_id)
             .where(LegalReview.status == ReviewStatus.PENDING)
             .order_by(LegalReview.due_on, LegalReview.id).limit(limit))
    if unit_id is not None:
        query = query.where(Case.unit_id == unit_id)
    rows = session.execute(query).all()
    assumed = dict(session.execute(sa.select(Deadline.id, Deadline.provisional_years).where(
        Deadline.id.in_([r.proposal.get("deadline_id") for r in rows]), Deadline.provisional.is_(True))).all())
    return [{"review_id": r.id, "case_id": r.case_id, "round": r.round_no, "case_number": r.number, "title": r.title,
             "party_name": r.party_name, "unit_id": r.unit_id, "subject": r.subject,
             "submitted_on": r.submitted_on.isoformat(), "due_on": r.due_on.isoformat(), "extended": r.extended,
             "overdue": r.due_on < today, "days_left": (r.due_on - today).days,
             "provisional": r.proposal.get("deadline_id") in assumed,
             "provisional_years": assumed.get(r.proposal.get("deadline_id")) or [],
             "scope": [h["code"] for h in r.scope_hits]} for r in rows]


def _evidence(session: Session, case: Case) -> dict[str, Any]:
    """Evidence with custody status and plausibility flags, read from the evidence module."""
    try:
        from server.modules.evidence.models import CustodyEvent, EvidenceFlag, EvidenceItem
    except ImportError:  # pragma: no cover - the evidence module is part of this tree
        return {"items": [], "note": "evidence module not installed"}
    rows = session.execute(sa.select(EvidenceItem, CaseEvidence.purpose).join(
        CaseEvidence, CaseEvidence.evidence_id == EvidenceItem.id).where(CaseEvidence.case_id == case.id)
        .order_by(CaseEvidence.id)).all()
    if not rows:
        return {"items": [], "note": "no evidence linked to the case yet"}
    ids = [item.id for item, _ in rows]
    flags: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for flag in session.scalars(sa.select(EvidenceFlag).where(EvidenceFlag.item_id.in_(ids)).order_by(EvidenceFlag.id)):
        flags[flag.item_id].append({"code": flag.code, "detail": flag.detail})
    custody: dict[str, dict[str, Any]] = {}
    last = (sa.select(CustodyEvent.item_id, sa.func.max(CustodyEvent.seq).label("seq"))
            .where(CustodyEvent.item_id.in_(ids)).group_by(CustodyEvent.item_id).subquery())
    for event in session.scalars(sa.select(CustodyEvent).join(
            last, sa.and_(last.c.item_id == CustodyEvent.item_id, last.c.seq == CustodyEvent.seq))):
        custody[event.item_id] = {"events": event.seq, "last_action": event.action.value, "at": event.at.isoformat()}
    return {"items": [{"id": item.id, "kind": item.kind.value, "status": item.status.value, "sha256": item.sha256,
                       "purpose": purpose, "captured_by": item.captured_by, "custodian_id": item.custodian_id,
                       "signature_valid": item.signature_valid, "inspection_id": item.inspection_id,
                       "custody": custody.get(item.id), "flags": flags[item.id],
                       "metadata": item.media_metadata, "rejection": item.rejection} for item, purpose in rows],
            "note": None}


def checklist(session: Session, case: Case, facts: dict[str, Any], *, acts: Any = None,
              record: Any = None) -> list[dict[str, Any]]:
    """The procedure checklist of DOMAIN-RULES rule 33, each item with its source and status."""
    if acts is None:
        acts = session.scalars(sa.select(InvestigativeAct).where(InvestigativeAct.case_id == case.id)).all()
    if record is None:
        record = discretion.latest(session, case.id)
    needed = cases.collective_required(case, facts.get("fine"))
    items = [
        ("handlers_certified", "两名以上持证执法人员承办", "行政处罚法 第42、55条", len(case.handlers) >= 2),
        ("acts_by_two_inspectors", "调查取证均由两名以上执法人员进行", "行政处罚法 第42、55条",
         bool(acts) and all(len(a.inspectors) >= 2 for a in acts)),
        ("filed", "已立案", "行政处罚法 第54条", case.filed_on is not None),
        ("limitation", "未超过追责时效（二年/五年）", "行政处罚法 第36条", not case.limitation_warning),
        ("notice_served", "已送达事先告知书", "行政处罚法 第44条", case.notice_served_on is not None),
        ("statement_handled", "陈述申辩已复核或放弃或期满", "行政处罚法 第45、62条",
         case.statement_reviewed or case.statement_waived or case.notice_served_on is not None),
        ("hearing", "听证权利已告知；申请的听证已举行", "行政处罚法 第63–65条",
         not case.hearing_requested_on or case.hearing_held),
        ("discretion", "已按生效裁量基准计算", "行政处罚法 第34条; rule 38", record is not None or not facts.get("fine")),
        ("collective_discussion", "需要时已集体讨论", "行政处罚法 第57条第2款", not needed or case.collective_discussed_on is not None),
        ("crime_checked", "涉嫌犯罪已移送或不移送理由已记录", "行政处罚法 第27条; 国务院令第310号",
         not case.suspected_crime or bool(case.transfer_started_at or case.transfer_refusal_reason)),
    ]
    return [{"code": c, "name_zh": n, "source": s, "ok": bool(ok)} for c, n, s, ok in items]


def screen(session: Session, case: Case, today: dt.date) -> dict[str, Any]:
    """Everything a reviewer must check (DOMAIN-RULES rule 33), in one response."""
    pending = session.scalar(sa.select(LegalReview).where(LegalReview.case_id == case.id)
                             .order_by(LegalReview.round_no.desc()).limit(1))
    fine = pending.proposal.get("fine") if pending else case.notified_fine
    facts = cases.review_facts(case, fine)
    record = discretion.latest(session, case.id)
    bench = discretion.benchmark_of(session, record) if record else None
    acts = session.scalars(sa.select(InvestigativeAct).where(InvestigativeAct.case_id == case.id)
                           .order_by(InvestigativeAct.act_date, InvestigativeAct.id)).all()
    history = session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id.desc())
                              .limit(30)).all()
    crime_hits = predicates.evaluate(cases.crime_rules()["rules"], case.crime_facts or {})
    reviews = session.scalars(sa.select(LegalReview).where(LegalReview.case_id == case.id)
                              .options(selectinload(LegalReview.decisions)).order_by(LegalReview.round_no)).all()
    decisions = {r.id: [{"id": d.id, "outcome": d.outcome.value, "reasons": d.reason_codes, "opinion": d.opinion,
                         "reviewer_id": d.reviewer_id, "decided_at": d.decided_at.isoformat()} for d in r.decisions]
                 for r in reviews}
    clocks = session.scalars(sa.select(Deadline).where(Deadline.case_id == case.id).order_by(Deadline.id)).all()
    return {
        "case": {"id": case.id, "number": case.number, "state": case.state.value, "title": case.title,
                 "unit_id": case.unit_id, "party": {"name": case.party_name, "kind": case.party_kind.value,
                                                    "uscc": case.party_uscc, "address": case.party_address},
                 "facts": case.facts, "filed_on": _iso(case.filed_on), "act_ended_on": _iso(case.act_ended_on),
                 "discovered_on": _iso(case.discovered_on), "limitation_warning": case.limitation_warning,
                 "special_case": case.special_case, "supervised_level": case.supervised_level, "joint": case.joint,
                 "handlers": [{"user_id": h.user_id, "lead": h.lead, "certificate_number": h.certificate_number}
                              for h in case.handlers]},
        "legal_basis": {"violation_code": case.violation_code, "basis": case.legal_basis,
                        "reduction_basis": case.reduction_basis},
        "draft_decision": {"fine": fine, "measures": facts["measures"], "notified_fine": case.notified_fine,
                           "notified_measures": case.notified_measures},
        "discretion": None if record is None else {
            "record_id": record.id, "amount": record.amount, "method": record.method,
            "formula_version": record.formula_version, "benchmark": f"{bench.violation_code}@{bench.version}",  # type: ignore[union-attr]
            "benchmark_in_force_today": _in_force_today(session, bench, today), "calculated_on": record.calculated_on.isoformat(),
            "factors": record.result["factors"], "corrections": record.result["corrections"],
            "clamped": record.result["clamped"], "reduction": record.result["reduction"], "trace": record.result["trace"]},
        "evidence": _evidence(session, case),
        "investigative_acts": [{"id": a.id, "kind": a.kind, "act_date": a.act_date.isoformat(), "summary": a.summary,
                                "inspectors": a.inspectors, "inspection_id": a.inspection_id} for a in acts],
        "procedure_checklist": checklist(session, case, facts, acts=acts, record=record),
        "crime_check": {"suspected": bool(crime_hits), "hits": crime_hits, "rules_version": cases.crime_rules()["version"],
                        "transfer_started_at": case.transfer_started_at.isoformat() if case.transfer_started_at else None,
                        "refusal_reason": case.transfer_refusal_reason},
        "review_scope": scope_hits(facts),
        "collective_discussion": {"required": cases.collective_required(case, fine),
                                  "held_on": _iso(case.collective_discussed_on)},
        "reviews": [{"id": r.id, "round": r.round_no, "status": r.status.value, "submitted_on": r.submitted_on.isoformat(),
                     "due_on": r.due_on.isoformat(), "extended": r.extended, "decisions": decisions[r.id]} for r in reviews],
        "deadlines": [deadlines.view(c, today) for c in clocks],
        "history": [{"action": e.action, "from": e.from_state, "to": e.to_state, "rule": e.rule, "on": _iso(e.on),
                     "by": e.by_user_id} for e in history],
        "reason_codes": REASON_CODES,
    }


def _in_force_today(session: Session, bench: Any, today: dt.date) -> bool:
    try:
        return discretion.in_force(session, bench.violation_code, today).id == bench.id
    except errors.DomainError:
        return False


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


