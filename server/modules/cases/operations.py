"""Case operations from lead to archive. Each one checks its step in ``workflow.STEPS`` and the
guards of its legal rule, records the step (history + audit) and flushes; the caller commits."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal, Role
from server.core.calendar import get_calendar, local_today, to_local_date
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.cases import predicates
from server.modules.cases.models import (AgencyRole, Case, CaseAgency, CaseCorrection, CaseEvidence, CaseHandler,
                                         CaseState as S, DailyFineRound, InvestigativeAct, PartyKind)
from server.modules.cases.workflow import STEPS, apply, check, fail
from server.modules.deadlines import clock
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines.models import Deadline, DeadlineStatus
from server.modules.directory.models import Target
from server.modules.discretion import calculator as calc
from server.modules.discretion import operations as discretion
from server.modules.users import operations as users
from server.modules.users.models import Unit, User

CaseNotFound = errors.error_code("case.not_found", 404, "案件不存在", "No such case")
OutOfScope = errors.error_code("case.out_of_scope", 403, "无权办理或查看该案件（不在本单位、承办人或联合办案机关范围内）",
                               "The case is outside your unit, your handling or your agency's part in a joint case")

MIN_HANDLERS = 2  # 行政处罚法 第42条、第55条: at least two enforcement officers
HEADS = frozenset({Role.SUPERVISOR, Role.ADMIN})  # the agency's head (负责人): 第56、57条
_HERE = Path(__file__).parent
SERVICE_METHODS = ("in_person", "post", "left_at_address", "public_notice", "electronic")


@lru_cache(maxsize=1)
def procedure_rules() -> dict[str, Any]:
    return predicates.load(_HERE / "procedure_rules.json")


@lru_cache(maxsize=1)
def crime_rules() -> dict[str, Any]:
    return predicates.load(_HERE / "crime_rules.json")


def get(session: Session, case_id: str) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(case=case_id)
    return case


# ---- scope ------------------------------------------------------------------------------------

def _agency_of(session: Session, principal: Principal) -> int | None:
    if principal.unit_id is None:
        return None
    return session.scalar(sa.select(Unit.agency_id).where(Unit.id == principal.unit_id))


def access(session: Session, principal: Principal, case: Case) -> str | None:
    """"full" (may act), "read", "evidence" (joint-case participant) or None."""
    role = principal.role
    if role == Role.ADMIN.value:
        return "full"
    if role == Role.LEGAL_REVIEWER.value:
        return "read"
    if principal.kind != "user":
        return None
    if role == Role.SUPERVISOR.value and case.unit_id == principal.unit_id:
        return "full"
    if any(h.user_id == principal.user_id for h in case.handlers):
        return "full"
    if case.joint and role in (Role.SUPERVISOR.value, Role.INSPECTOR.value):
        agency = _agency_of(session, principal)
        for link in case.agencies:
            if link.agency_id == agency:
                return link.access
    if role == Role.INSPECTOR.value and case.unit_id == principal.unit_id:
        return "read"
    return None


def require_access(session: Session, principal: Principal, case: Case, *, act: bool = False,
                   evidence: bool = False) -> str:
    level = access(session, principal, case)
    allowed = {"full"} if act else {"full", "read"} | ({"evidence"} if evidence else set())
    if evidence and act:
        allowed = {"full", "evidence"} if case.joint else {"full"}
    if level not in allowed:
        raise OutOfScope(case=case.id)
    return level  # type: ignore[return-value]


def visible(session: Session, principal: Principal) -> sa.Select[tuple[Case]]:
    query = sa.select(Case).order_by(Case.created_at.desc(), Case.id)
    role = principal.role
    if role in (Role.ADMIN.value, Role.LEGAL_REVIEWER.value):
        return query
    mine = sa.select(CaseHandler.case_id).where(CaseHandler.user_id == principal.user_id)
    agency = _agency_of(session, principal)
    joint = sa.select(CaseAgency.case_id).where(CaseAgency.agency_id == agency)
    return query.where(sa.or_(Case.unit_id == principal.unit_id, Case.id.in_(mine), Case.id.in_(joint)))


def handled_by(session: Session, user_id: int | None) -> sa.Select[tuple[Case]]:
    """The cases the person handles (承办人) that still ask something of them: not yet closed,
    archived or dropped, or with a clock still open (publication, withdrawal, a supervised report)."""
    mine = sa.select(CaseHandler.case_id).where(CaseHandler.user_id == user_id)
    return sa.select(Case).where(Case.id.in_(mine), sa.or_(
        Case.state.not_in([S.CLOSED, S.ARCHIVED, S.DROPPED]), Case.id.in_(deadlines.open_case_ids()))
    ).order_by(Case.created_at, Case.id)


# ---- lead, filing, investigation ----------------------------------------------------------------

def create_lead(session: Session, *, by: User, title: str, party_name: str | None = None,
                target_id: int | None = None, source_inspection_id: str | None = None,
                party_kind: PartyKind = PartyKind.ORGANISATION, facts: str = "", violation_code: str | None = None,
                legal_basis: str | None = None, act_ended_on: dt.date | None = None,
                discovered_on: dt.date | None = None, unit_id: int | None = None,
                crime_facts: dict[str, Any] | None = None) -> Case:
    """A lead (线索) becomes a case only by filing. A finding on site names its inspection."""
    target = session.get(Target, target_id) if target_id else None
    if target_id and target is None:
        raise errors.ValidationFailed(fields={"target_id": ["不存在 / does not exist"]})
    if not (party_name or target):
        raise errors.ValidationFailed(fields={"party_name": ["当事人必填 / the party is required"]})
    case = Case(unit_id=unit_id or by.unit_id, target_id=target_id, source_inspection_id=source_inspection_id,
                title=title, party_name=party_name or target.name, party_kind=party_kind,  # type: ignore[union-attr]
                party_uscc=target.uscc if target else None, party_address=target.address if target else None,
                facts=facts, violation_code=violation_code, legal_basis=legal_basis, act_ended_on=act_ended_on,
                discovered_on=discovered_on, crime_facts=crime_facts or {}, measures=[], crime_hits=[])
    session.add(case)
    session.flush()
    if case.crime_facts:  # facts known at the lead are checked at once (法释〔2023〕7号 第1条)
        _evaluate_crime_facts(case)
    # 立案审查: decide whether to file within the period the rules set from the lead's discovery
    deadlines.start(session, case_id=case.id, type_code="filing", on=discovered_on or local_today(),
                    unit_id=case.unit_id, assignee_id=by.id)
    audit.record(session, "web:case:lead_created", subjects={"case": case.id, "unit": case.unit_id},
                 payload={"title": title, "party": case.party_name, "inspection": source_inspection_id,
                          "crime_hits": [h["code"] for h in case.crime_hits]})
    return case


def _evaluate_crime_facts(case: Case) -> list[dict[str, Any]]:
    hits = predicates.evaluate(crime_rules()["rules"], case.crime_facts or {})
    case.crime_hits = hits
    case.suspected_crime = bool(hits)
    case.crime_checked_facts = dict(case.crime_facts or {})
    return hits


def limitation(case: Case, on: dt.date) -> tuple[bool, bool]:
    """行政处罚法 第36条: (warning: more than 2 years, barred: more than 5 years) between the act's
    end and its discovery."""
    if case.act_ended_on is None:
        return False, False
    discovered = case.discovered_on or on
    rules = procedure_rules()["limitation_years"]

    def years_later(n: int) -> dt.date:
        try:
            return case.act_ended_on.replace(year=case.act_ended_on.year + n)  # type: ignore[union-attr]
        except ValueError:  # 29 February
            return case.act_ended_on.replace(year=case.act_ended_on.year + n, day=28)  # type: ignore[union-attr]

    return discovered > years_later(rules["default"]), discovered > years_later(rules["life_health_financial"])


def _certified(session: Session, user_ids: Iterable[int], day: dt.date, rule: str) -> list[tuple[User, str]]:
    """行政处罚法 第42条: each officer holds a certificate valid on ``day``; at least two of them."""
    team: list[tuple[User, str]] = []
    for user_id in dict.fromkeys(user_ids):
        user = users.get_user(session, user_id)
        try:
            cert = users.require_inspector(user, day)
        except (users.CertificateInvalid, users.NotAnInspector) as exc:
            raise fail("inspector_certified", rule, f"{user.username}: {exc.message_en}", user=user.username,
                       date=day.isoformat(), cause=exc.code) from None
        team.append((user, cert.number))
    if len(team) < MIN_HANDLERS:
        raise fail("two_inspectors", rule, "at least two certified inspectors", count=len(team))
    return team


LIMITATION_GROUNDS = {"life_health": "涉及公民生命健康安全且有危害后果",
                      "financial": "涉及金融安全且有危害后果"}


def file(session: Session, case: Case, *, by: User, on: dt.date, handler_ids: list[int],
         limitation_ground: str | None = None) -> Case:
    """立案 (行政处罚法 第54条) with at least two certified handlers (第42、55条). Limitation
    (第36条): more than 2 years between act and discovery is warned and a decision then needs a
    recorded five-year ground (``limitation_ground``: life, health or financial safety harmed);
    more than 5 years is refused."""
    check(case, "file")
    if limitation_ground is not None and limitation_ground not in LIMITATION_GROUNDS:
        raise errors.ValidationFailed(fields={"limitation_ground": [f"one of {', '.join(LIMITATION_GROUNDS)}"]})
    warn, barred = limitation(case, on)
    if barred:
        raise fail("limitation_period", "行政处罚法 第36条", "the act was discovered more than 5 years after it ended",
                   act_ended_on=case.act_ended_on.isoformat() if case.act_ended_on else None)
    team = _certified(session, handler_ids, on, "行政处罚法 第42、55条")
    for position, (user, cert) in enumerate(team):
        session.add(CaseHandler(case_id=case.id, user_id=user.id, lead=position == 0, certificate_number=cert))
    case.filed_on = on
    case.discovered_on = case.discovered_on or on
    case.limitation_warning = warn
    case.limitation_ground = limitation_ground
    from server.modules.cases import documents

    case.number = documents.allocate(session, unit_id=case.unit_id, year=on.year, doc_type="case")
    deadlines.meet(session, deadlines.open_deadline(session, case.id, "filing"), on)
    apply(session, case, "file", by_user_id=by.id, on=on,
          payload={"number": case.number, "handlers": [u.id for u, _ in team], "limitation_warning": warn,
                   "limitation_ground": limitation_ground})
    deadlines.start(session, case_id=case.id, type_code="decision", on=on, unit_id=case.unit_id,
                    assignee_id=team[0][0].id)
    session.refresh(case, ["handlers"])
    return case


def start_investigation(session: Session, case: Case, *, by: User, on: dt.date) -> Case:
    apply(session, case, "start_investigation", by_user_id=by.id, on=on)
    return case


# Acts that take items, with the clock each starts and the rule that governs it.
TAKING_ACTS = {
    "preservation": ("preservation", "行政处罚法 第56条"),  # 先行登记保存: decide within 7 (working) days
    "seizure": ("seizure", "行政强制法 第18、24、25条"),  # 查封、扣押: decision document, 30 days (+30)
}


def record_act(session: Session, case: Case, *, by: User, kind: str, act_date: dt.date, inspector_ids: list[int],
               summary: str, inspection_id: str | None = None, agency_id: int | None = None,
               approved_by_id: int | None = None, document_number: str | None = None) -> InvestigativeAct:
    """行政处罚法 第42、55条: every investigative act by at least two inspectors whose certificates
    are valid on the act's date. Taking items needs the head's approval: 先行登记保存 (第56条) and
    查封、扣押 (行政强制法 第18条), the latter with its decision document (第24条); each starts its
    clock (7 working days to deal with preserved items; 30 days of seizure, extendable once by 30)."""
    check(case, "record_act")
    team = _certified(session, inspector_ids, act_date, "行政处罚法 第42、55条")
    taking = TAKING_ACTS.get(kind)
    if taking:
        clock_code, rule = taking
        approver = session.get(User, approved_by_id) if approved_by_id else None
        if approver is None or approver.role not in HEADS:
            raise fail("head_approval", rule, "taking items needs the approval of the agency's head",
                       approved_by_id=approved_by_id)
        if kind == "seizure" and not (document_number or "").strip():
            raise fail("seizure_decision", "行政强制法 第24条", "a seizure needs its decision document (查封、扣押决定书)")
    act = InvestigativeAct(case_id=case.id, kind=kind, act_date=act_date, summary=summary,
                           inspectors=[{"user_id": u.id, "certificate_number": c} for u, c in team],
                           inspection_id=inspection_id, agency_id=agency_id,
                           approved_by_id=approved_by_id if taking else None,
                           document_number=document_number if taking else None)
    session.add(act)
    session.flush()
    apply(session, case, "record_act", by_user_id=by.id, on=act_date,
          payload={"act": act.id, "kind": kind, "inspectors": [u.id for u, _ in team],
                   **({"approved_by": approved_by_id, "document_number": document_number} if taking else {})})
    if taking:
        deadlines.start(session, case_id=case.id, type_code=taking[0], on=act_date, unit_id=case.unit_id,
                        assignee_id=by.id)
    return act


def decide_on_items(session: Session, case: Case, *, by: User, act_id: int, on: dt.date, decision: str) -> InvestigativeAct:
    """Deal with preserved or seized items: a 处理决定 for preserved items (行政处罚法 第56条), or lifting
    the seizure or deciding on the items (行政强制法 第27、28条). It meets the act's clock; done after
    the period it is recorded late. Only the head decides (第56条: 负责人批准)."""
    check(case, "decide_on_items")
    act = session.get(InvestigativeAct, act_id)
    if act is None or act.case_id != case.id or act.kind not in TAKING_ACTS:
        raise errors.ValidationFailed(fields={"act_id": ["本案先行登记保存或查封、扣押的行为 / a preservation or seizure act of this case"]})
    if act.items_decided_on is not None:
        raise fail("items_open", TAKING_ACTS[act.kind][1], "these items were already dealt with")
    if on < act.act_date:
        raise fail("items_after_act", TAKING_ACTS[act.kind][1], "the decision cannot precede taking the items")
    act.items_decided_on, act.items_decision = on, decision
    row = session.scalars(sa.select(Deadline).where(
        Deadline.case_id == case.id, Deadline.type_code == TAKING_ACTS[act.kind][0],
        Deadline.started_on == act.act_date, Deadline.status == DeadlineStatus.OPEN).order_by(Deadline.id)).first()
    deadlines.meet(session, row, on)
    apply(session, case, "decide_on_items", by_user_id=by.id, on=on,
          payload={"act": act.id, "kind": act.kind, "decision": decision, "late": bool(row and row.late)})
    return act


def link_evidence(session: Session, case: Case, *, by: User, evidence_ids: list[str], purpose: str | None = None,
                  agency_id: int | None = None) -> list[CaseEvidence]:
    """Evidence from inspections and the evidence store (行政处罚法 第46条); in a joint case it is
    shared with every participating agency."""
    from server.modules.evidence.models import EvidenceItem

    check(case, "link_evidence")
    links = []
    for evidence_id in dict.fromkeys(evidence_ids):
        if session.get(EvidenceItem, evidence_id) is None:
            raise errors.ValidationFailed(fields={"evidence_ids": [f"{evidence_id}: 不存在 / does not exist"]})
        existing = session.scalar(sa.select(CaseEvidence).where(CaseEvidence.case_id == case.id,
                                                                CaseEvidence.evidence_id == evidence_id))
        if existing is None:
            existing = CaseEvidence(case_id=case.id, evidence_id=evidence_id, purpose=purpose, linked_by=by.id,
                                    agency_id=agency_id)
            session.add(existing)
        links.append(existing)
    session.flush()
    apply(session, case, "link_evidence", by_user_id=by.id, payload={"evidence": list(dict.fromkeys(evidence_ids))})
    return links


def propose(session: Session, case: Case, *, by: User, on: dt.date, inputs: dict[str, Any],
            corrections: Iterable[str] = (), circumstance: str = "ordinary", measures: list[str] | None = None,
            reduction: dict[str, Any] | None = None, violation_code: str | None = None,
            version: str | None = None) -> Any:
    """Discretion calculation with the benchmark in force on ``on`` (行政处罚法 第34条)."""
    check(case, "propose")
    if violation_code:
        case.violation_code = violation_code
    if not case.violation_code:
        raise errors.ValidationFailed(fields={"violation_code": ["必填 / required"]})
    record = discretion.calculate(session, case_id=case.id, violation_code=case.violation_code, on=on, inputs=inputs,
                                  corrections=corrections, circumstance=circumstance, reduction=reduction,
                                  version=version, by_user_id=by.id)
    if measures is not None:
        case.measures = list(measures)
    case.legal_basis = record.result["legal_basis"]
    case.reduction_basis = (reduction or {}).get("basis") or None
    apply(session, case, "propose", by_user_id=by.id, on=on,
          payload={"record": record.id, "amount": record.amount, "measures": case.measures})
    return record


# ---- suspected crime (DOMAIN-RULES rule 45) ------------------------------------------------------------

def crime_check(session: Session, case: Case, *, by: User | None, facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """法释〔2023〕7号 第1条: rule checks on the case facts. A hit marks the case suspected; the
    handler must start a transfer or record a reasoned refusal, which is legally reviewed
    (行政处罚法 第27、82条; 国务院令第310号: no 以罚代刑)."""
    check(case, "crime_check")
    if facts is not None:
        case.crime_facts = {**(case.crime_facts or {}), **facts}
    hits = _evaluate_crime_facts(case)
    apply(session, case, "crime_check", by_user_id=by.id if by else None,
          payload={"hits": [h["code"] for h in hits], "rules_version": crime_rules()["version"]})
    return hits


def start_transfer(session: Session, case: Case, *, by: User, reason: str, on: dt.date) -> Case:
    """Hook for the transfer issue: marks the start; the decision clock stops while the case is with
    the police (衔接办法 2017 第16条)."""
    check(case, "start_transfer")
    if case.transfer_started_at is None:
        case.transfer_started_at = utcnow()
    apply(session, case, "start_transfer", by_user_id=by.id, on=on,
          payload={"reason": reason, "hits": [h["code"] for h in case.crime_hits]})
    clock_row = deadlines.open_deadline(session, case.id, "decision")
    if clock_row is not None and clock_row.due_on is not None:
        deadlines.pause(session, clock_row, on=on,
                        reason_code=clock.PauseReason.CRIMINAL_TRANSFER, reason=reason, by_user_id=by.id)
    return case


def refuse_transfer(session: Session, case: Case, *, by: User, reason: str) -> Case:
    """A reasoned non-transfer (国务院令第310号 第5条). It puts the case in legal-review scope and
    needs collective discussion before any decision."""
    check(case, "refuse_transfer")
    if not case.suspected_crime:
        raise fail("no_crime_flag", "法释〔2023〕7号 第1条", "there is no suspected-crime flag to refuse")
    if len(reason.strip()) < 2:  # the law asks for a reason, not a length (证据不足 is complete)
        raise fail("reason_required", "国务院令第310号 第5条", "the refusal needs a stated reason")
    case.transfer_refusal_reason = reason
    apply(session, case, "refuse_transfer", by_user_id=by.id, payload={"reason": reason})
    return case


# ---- notice, statement, hearing --------------------------------------------------------------------

def hearing_triggered(case: Case, fine: int | None, measures: list[str], on: dt.date) -> dict[str, Any] | None:
    """行政处罚法 第63条: a relatively large fine (threshold by party kind and date, as data) or a
    heavy measure gives the party the right to a hearing."""
    rules = procedure_rules()
    applicable = [t for t in rules["hearing_thresholds"] if dt.date.fromisoformat(t["effective_from"]) <= on]
    threshold = max(applicable, key=lambda t: t["effective_from"]) if applicable else None
    if threshold and fine is not None and fine >= threshold[case.party_kind.value]:
        return {"reason": "large_fine", "threshold": threshold[case.party_kind.value], "source": threshold["source"]}
    heavy = set(measures) & set(rules["hearing_measures"])
    if heavy:
        return {"reason": "measure", "measures": sorted(heavy), "source": "行政处罚法 第63条"}
    return None


def serve_notice(session: Session, case: Case, *, by: User, on: dt.date, fine: int | None = None,
                 measures: list[str] | None = None, reduction_basis: str | None = None) -> Case:
    """行政处罚事先告知 (行政处罚法 第44条): the intended penalty, facts, reasons, basis and the
    rights to statement, defence and (when triggered, 第63条) a hearing. The notified fine lies in
    the statutory range, or below it with the 减轻 ground (第32条) recorded here or at the proposal."""
    check(case, "serve_notice")
    if reduction_basis:
        case.reduction_basis = reduction_basis
    acts = session.scalar(sa.select(sa.func.count(InvestigativeAct.id)).where(InvestigativeAct.case_id == case.id))
    if not acts:
        raise fail("investigated", "行政处罚法 第54、55条", "no investigative act is recorded")
    record = discretion.latest(session, case.id)
    amount = fine if fine is not None else (record.amount if record else None)
    if amount is not None and amount > 0:
        if record is None:
            raise fail("discretion_recorded", "行政处罚法 第34条", "a fine needs a recorded discretion calculation")
        _statutory_range(session, case, record, amount, "notified")
    measures = list(measures if measures is not None else case.measures or [])
    case.notified_fine, case.notified_measures, case.notice_served_on = amount, measures, on
    case.statement_made = case.statement_reviewed = case.statement_waived = False
    trigger = hearing_triggered(case, amount, measures, on)
    case.hearing_rights = trigger is not None
    apply(session, case, "serve_notice", by_user_id=by.id, on=on,
          payload={"fine": amount, "measures": measures, "hearing": trigger})
    deadlines.cancel_open(session, case.id, ("statement", "hearing_request"))
    lead = _lead(case)
    deadlines.start(session, case_id=case.id, type_code="statement", on=on, unit_id=case.unit_id, assignee_id=lead)
    if trigger:
        deadlines.start(session, case_id=case.id, type_code="hearing_request", on=on, unit_id=case.unit_id,
                        assignee_id=lead)
    return case


def _statutory_range(session: Session, case: Case, record: Any, amount: int, what: str,
                     reduction_basis: str | None = None) -> Any:
    """The fine lies within the range of the provision the benchmark applies (its 法律责任 article):
    never above the maximum; below the minimum only with a recorded 减轻 ground (行政处罚法 第32条).
    Checked when the amount is notified (第44条) as well as when it is decided, so a case cannot
    notify an amount that no lawful decision could then match."""
    bench = discretion.parsed(discretion.benchmark_of(session, record))
    article = bench.legal_basis.split(":", 1)[0].strip()  # "大气污染防治法 第99条第(二)项: …"
    if bench.stat_max is not None and amount > bench.stat_max:
        raise fail("statutory_maximum", article, f"the {what} fine exceeds the statutory maximum",
                   stat_max=bench.stat_max, amount=amount)
    if bench.stat_min is not None and amount < bench.stat_min and not (reduction_basis or case.reduction_basis):
        raise fail("statutory_minimum", f"{article}; 行政处罚法 第32条",
                   f"a {what} fine below the statutory minimum needs a recorded ground for reduction (减轻处罚)",
                   stat_min=bench.stat_min, amount=amount)
    return bench


def _lead(case: Case) -> int | None:
    return next((h.user_id for h in case.handlers if h.lead), None)


def record_statement(session: Session, case: Case, *, by: User, on: dt.date, summary: str,
                     adopted: str | None = None) -> Case:
    """行政处罚法 第45条: the agency hears and reviews the party's statement and defence."""
    check(case, "record_statement")
    case.statement_made = True
    case.statement_reviewed = True
    apply(session, case, "record_statement", by_user_id=by.id, on=on, payload={"summary": summary, "adopted": adopted})
    # a statement made at a hearing requested in time is in time (第64条: the party states and defends there)
    deadlines.meet(session, deadlines.open_deadline(session, case.id, "statement"), on,
                   in_time=case.hearing_requested_on is not None)
    return case


def waive_statement(session: Session, case: Case, *, by: User, on: dt.date, note: str,
                    hearing_too: bool = False) -> Case:
    """行政处罚法 第44、62条: the party may expressly waive statement and defence. That is not a
    waiver of the hearing (第63、64条): the hearing right ends only when the party waives it
    expressly (``hearing_too``, recorded in the same written statement) or by conduct (第64条第(六)项),
    or its 5-working-day window passes."""
    check(case, "waive_statement")
    case.statement_waived = True
    hearing_too = hearing_too and case.hearing_rights
    apply(session, case, "waive_statement", by_user_id=by.id, on=on, payload={"note": note, "hearing_too": hearing_too})
    deadlines.meet(session, deadlines.open_deadline(session, case.id, "statement"), on)
    if hearing_too:
        case.hearing_waived = True
        deadlines.meet(session, deadlines.open_deadline(session, case.id, "hearing_request"), on)
    return case


def request_hearing(session: Session, case: Case, *, by: User, on: dt.date) -> Case:
    """行政处罚法 第63、64条: the party requests a hearing within 5 working days of the notice."""
    check(case, "request_hearing")
    if not case.hearing_rights:
        raise fail("hearing_right", "行政处罚法 第63条", "the notified penalty does not carry a hearing right")
    window = deadlines.open_deadline(session, case.id, "hearing_request")
    if window is None or window.due_on is None or on > window.due_on:
        raise fail("hearing_request_window", "行政处罚法 第64条第(一)项; 第85条",
                   "a hearing must be requested within 5 working days of the notice",
                   due_on=window.due_on.isoformat() if window and window.due_on else None)
    case.hearing_requested_on = on
    apply(session, case, "request_hearing", by_user_id=by.id, on=on)
    deadlines.meet(session, window, on)
    decision = deadlines.open_deadline(session, case.id, "decision")
    if decision is not None and decision.due_on is not None:
        deadlines.pause(session, decision, on=on, reason_code=clock.PauseReason.HEARING,
                        reason="听证期间不计入 (2010 MEE 第55条)", by_user_id=by.id)
    return case


def schedule_hearing(session: Session, case: Case, *, by: User, notice_on: dt.date, hearing_date: dt.date,
                     presider_id: int) -> Case:
    """行政处罚法 第64条: notice at least 7 working days before the hearing (第85条), presided by
    someone who did not investigate the case. Neither article forbids a hearing on a rest day, so
    none is refused for its weekday. The notice period is served on the party and cannot be
    recounted later, so it is never counted by the provisional calendar rule: a year without its
    official holiday schedule is refused (calendar.unknown_year)."""
    check(case, "schedule_hearing")
    calendar = get_calendar(provisional=False)
    dtype = clock.deadline_type("hearing_notice")
    earliest = clock.compute(dtype, notice_on, calendar).due
    if earliest > hearing_date:  # type: ignore[operator]
        raise fail("hearing_notice_7_days", "行政处罚法 第64条第(二)项; 第85条",
                   "the hearing notice must precede the hearing by at least 7 working days",
                   notice_on=notice_on.isoformat(), earliest_hearing=earliest.isoformat())  # type: ignore[union-attr]
    investigators = {h.user_id for h in case.handlers} | {
        i["user_id"] for act in session.scalars(sa.select(InvestigativeAct).where(InvestigativeAct.case_id == case.id))
        for i in act.inspectors}
    if presider_id in investigators:
        raise fail("presider_not_investigator", "行政处罚法 第64条第(四)项",
                   "the presider must not be an investigator of the case", presider_id=presider_id)
    users.get_user(session, presider_id)
    case.hearing_notice_on, case.hearing_date, case.hearing_presider_id = notice_on, hearing_date, presider_id
    apply(session, case, "schedule_hearing", by_user_id=by.id, on=notice_on,
          payload={"hearing_date": hearing_date.isoformat(), "presider": presider_id})
    return case


def hold_hearing(session: Session, case: Case, *, by: User, on: dt.date, record_summary: str) -> Case:
    """行政处罚法 第64、65条: the decision rests on the hearing record."""
    check(case, "hold_hearing")
    if case.hearing_date and on < case.hearing_date:
        raise fail("hearing_date", "行政处罚法 第64条", "the hearing cannot be held before its notified date")
    case.hearing_held = True
    apply(session, case, "hold_hearing", by_user_id=by.id, on=on, payload={"record": record_summary})
    _resume_decision_clock(session, case, on, by.id, "听证结束")
    return case


def waive_hearing(session: Session, case: Case, *, by: User, on: dt.date, reason: str) -> Case:
    """行政处罚法 第64条第(六)项: withdrawal, or absence without good reason, waives the hearing."""
    check(case, "waive_hearing")
    case.hearing_waived = True
    apply(session, case, "waive_hearing", by_user_id=by.id, on=on, payload={"reason": reason})
    _resume_decision_clock(session, case, on, by.id, "放弃听证")
    return case


def _resume_decision_clock(session: Session, case: Case, on: dt.date, by_user_id: int, reason: str) -> None:
    decision = deadlines.open_deadline(session, case.id, "decision")
    if decision is not None and decision.due_on is None:
        deadlines.resume(session, decision, on=on, reason=reason, by_user_id=by_user_id)


# ---- gates before a decision -------------------------------------------------------------------------

def statement_gate(session: Session, case: Case, on: dt.date) -> None:
    """行政处罚法 第44、45、62条: no decision (or review of a final draft) before the notice is
    served and its period has passed, been waived, or the statement was reviewed; and, where a
    hearing right exists, before the 5-working-day request window has closed (第64条)."""
    if case.notice_served_on is None:
        raise fail("notice_served", "行政处罚法 第44条、第62条", "the notice of intended penalty was not served")
    if not (case.statement_waived or case.statement_reviewed):
        period = deadlines.open_deadline(session, case.id, "statement")
        if period is not None and period.due_on is not None and on <= period.due_on:
            raise fail("statement_period", "行政处罚法 第62条; 第45条",
                       "the statement and defence period has not passed", due_on=period.due_on.isoformat())
    if case.hearing_rights and not case.hearing_waived and not case.hearing_requested_on:
        window = deadlines.open_deadline(session, case.id, "hearing_request")
        if window is not None and window.due_on is not None and on <= window.due_on:
            raise fail("hearing_request_window", "行政处罚法 第64条第(一)项",
                       "the party may still request a hearing", due_on=window.due_on.isoformat())


def review_facts(case: Case, fine: int | None = None) -> dict[str, Any]:
    """The flat facts the legal-review scope and collective-discussion predicates look at."""
    amount = fine if fine is not None else (case.decided_fine if case.decided_fine is not None else case.notified_fine)
    return {"fine": amount, "measures": list(case.notified_measures or case.measures or []),
            "hearing_held": case.hearing_held, "major_public_interest": case.major_public_interest,
            "complex_case": case.complex_case, "transfer_refused": bool(case.transfer_refusal_reason),
            "reduced": bool(case.reduction_basis), "party_kind": case.party_kind.value,
            "five_year_limitation": bool(case.limitation_warning)}


def collective_required(case: Case, fine: int | None = None) -> list[dict[str, Any]]:
    return predicates.evaluate(procedure_rules()["collective_discussion"]["rules"], review_facts(case, fine))


def collective_discussion(session: Session, case: Case, *, by: User, on: dt.date, minutes: str,
                          participants: list[str]) -> Case:
    """行政处罚法 第57条第2款: the heads discuss complex or serious cases collectively; minuted."""
    check(case, "collective_discussion")
    if len(participants) < 3:
        raise fail("collective_quorum", "行政处罚法 第57条第2款", "a collective discussion needs the heads (≥ 3 participants)")
    case.collective_discussed_on, case.collective_minutes = on, minutes
    apply(session, case, "collective_discussion", by_user_id=by.id, on=on, payload={"participants": participants})
    return case


def decide(session: Session, case: Case, *, by: User, on: dt.date, fine: int, measures: list[str] | None = None,
           reduction_basis: str | None = None) -> Case:
    """作出行政处罚决定 (行政处罚法 第57条). Refused unless: the notice was served and its period
    passed or was waived (第44、62条); any requested hearing was held (第65条); legal review passed
    when in scope (第58条); collective discussion held when required (第57条第2款); the fine is
    not heavier than notified (第45条, or a new notice under 第44条); within the statutory range
    unless a reasoned reduction (第32条); the benchmark used is the version in force on the decision
    date (第34条); past two years a five-year ground is recorded and reviewed (第36条); the crime
    check ran on the final facts and a suspected crime is transferred or its refusal reviewed (第27条)."""
    check(case, "decide")
    from server.modules.reviews import operations as reviews

    statement_gate(session, case, on)
    if case.hearing_requested_on and not case.hearing_held and case.state is not S.NOTIFIED:
        raise fail("hearing_held", "行政处罚法 第65条", "the requested hearing was not held")
    if case.limitation_warning and case.limitation_ground is None:  # with one, review is in scope below
        raise fail("limitation_period", "行政处罚法 第36条第1款",
                   "the act was discovered more than 2 years after it ended: no penalty unless a five-year "
                   "ground (life, health or financial safety, with harmful consequences) is recorded",
                   act_ended_on=case.act_ended_on.isoformat() if case.act_ended_on else None)
    measures = list(measures if measures is not None else case.notified_measures or [])
    if case.notified_fine is not None and fine > case.notified_fine or set(measures) - set(case.notified_measures or []):
        if case.statement_made:
            raise fail("no_heavier_after_defence", "行政处罚法 第45条第2款",
                       "the penalty may not be heavier because the party defended itself",
                       notified=case.notified_fine, decided=fine)
        raise fail("heavier_than_notified", "行政处罚法 第44条",
                   "a heavier penalty than notified needs a new notice", notified=case.notified_fine, decided=fine)
    record = discretion.latest(session, case.id)
    if fine > 0:
        if record is None:
            raise fail("discretion_recorded", "行政处罚法 第34条", "no discretion calculation is recorded")
        row = discretion.benchmark_of(session, record)
        current = discretion.in_force(session, row.violation_code, on)
        if current.id != row.id:
            raise calc.NotInForce(version=row.version, date=on.isoformat(), in_force=current.version,
                                  rule="行政处罚法 第34条")
        reduction_basis = reduction_basis or case.reduction_basis
        bench = _statutory_range(session, case, record, fine, "decided", reduction_basis)
        if bench.stat_min is not None and fine < bench.stat_min:
            case.reduction_basis = reduction_basis
    facts = review_facts(case, fine)
    scope = reviews.scope_hits(facts)
    if scope:
        passed = reviews.passed_review(session, case.id)
        if passed is None:
            raise fail("legal_review_passed", "行政处罚法 第58条", "the decision is in legal-review scope and has not passed",
                       scope=[h["code"] for h in scope])
        if passed.proposal.get("fine") is not None and fine > passed.proposal["fine"]:
            raise fail("reviewed_amount", "行政处罚法 第58条", "the fine exceeds what the legal review passed",
                       reviewed=passed.proposal["fine"], decided=fine)
    if case.crime_checked_facts is None or case.crime_checked_facts != (case.crime_facts or {}):
        raise fail("crime_check_run", "行政处罚法 第27条; 国务院令第310号 第3条",
                   "the suspected-crime check must be run on the final facts before the decision",
                   checked=case.crime_checked_facts is not None)
    if case.suspected_crime and case.transfer_started_at is None and not case.transfer_refusal_reason:
        raise fail("crime_transfer", "行政处罚法 第27条; 国务院令第310号 第11条",
                   "a suspected crime must be transferred or its refusal recorded and reviewed",
                   hits=[h["code"] for h in case.crime_hits])
    needed = collective_required(case, fine)
    if needed and case.collective_discussed_on is None:
        raise fail("collective_discussion", "行政处罚法 第57条第2款", "collective discussion is required",
                   triggers=[n["code"] for n in needed])
    case.decided_fine, case.decision_date, case.measures = fine, on, measures
    apply(session, case, "decide", by_user_id=by.id, on=on, payload={"fine": fine, "measures": measures,
                                                                      "review_scope": [h["code"] for h in scope]})
    deadlines.meet(session, deadlines.open_deadline(session, case.id, "decision"), on)
    lead = _lead(case)
    deadlines.start(session, case_id=case.id, type_code="service", on=on, unit_id=case.unit_id, assignee_id=lead)
    deadlines.start(session, case_id=case.id, type_code="publication_penalty", on=on, unit_id=case.unit_id,
                    assignee_id=lead)
    return case


# ---- after the decision ------------------------------------------------------------------------------

def serve_decision(session: Session, case: Case, *, by: User, on: dt.date, method: str,
                   consent_signed: bool = False) -> Case:
    """行政处罚法 第61条: served within 7 working days; electronic service only with the party's
    signed consent (确认书). Late service is recorded as late, not hidden."""
    check(case, "serve_decision")
    if method not in SERVICE_METHODS:
        raise errors.ValidationFailed(fields={"method": [f"one of {', '.join(SERVICE_METHODS)}"]})
    if method == "electronic" and not (consent_signed or case.e_service_consent):
        raise fail("electronic_service_consent", "行政处罚法 第61条第2款",
                   "electronic service needs the party's signed consent")
    if on < case.decision_date:  # type: ignore[operator]
        raise fail("service_after_decision", "行政处罚法 第61条", "service cannot precede the decision")
    case.e_service_consent = case.e_service_consent or consent_signed
    case.service_method, case.served_on = method, on
    service = deadlines.open_deadline(session, case.id, "service")
    deadlines.meet(session, service, on)
    apply(session, case, "serve_decision", by_user_id=by.id, on=on,
          payload={"method": method, "late": bool(service and service.late)})
    if case.decided_fine:
        deadlines.start(session, case_id=case.id, type_code="payment", on=on, unit_id=case.unit_id,
                        assignee_id=_lead(case))
    return case


def pay(session: Session, case: Case, *, by: User, on: dt.date, amount: int) -> Case:
    """行政处罚法 第67条 (15 days) and 第72条 (3 % a day late, capped at the fine)."""
    check(case, "pay")
    window = deadlines.open_deadline(session, case.id, "payment")
    due = window.due_on if window and window.due_on else on
    fee = clock.late_payment_surcharge(case.decided_fine or 0, due, on)
    if amount < (case.decided_fine or 0) + fee:
        raise fail("full_payment", "行政处罚法 第67、72条", "the payment is short of the fine plus the late surcharge",
                   fine=case.decided_fine, late_fee=fee, paid=amount)
    case.paid_on, case.paid_amount, case.late_fee = on, amount, fee
    deadlines.meet(session, window, on)
    apply(session, case, "pay", by_user_id=by.id, on=on, payload={"amount": amount, "late_fee": fee})
    return case


def enforce(session: Session, case: Case, *, by: User, on: dt.date, measure: str) -> Case:
    """行政处罚法 第72条: enforcement only after the payment period has passed."""
    check(case, "enforce")
    window = deadlines.open_deadline(session, case.id, "payment")
    if window is None or window.due_on is None or on <= window.due_on:
        raise fail("payment_period_passed", "行政处罚法 第72条", "the payment period has not passed",
                   due_on=window.due_on.isoformat() if window and window.due_on else None)
    apply(session, case, "enforce", by_user_id=by.id, on=on, payload={"measure": measure})
    return case


def publish(session: Session, case: Case, *, by: User, on: dt.date, non_publication_reason: str | None = None) -> Case:
    """行政处罚法 第48条; 国办发〔2018〕118号: publish a penalty decision within 7 working days, or
    record why it is not published (minor, secrets, privacy, security — 广东公示办法 第13–16条)."""
    check(case, "publish")
    if case.published_on or case.non_publication_reason:
        raise fail("published_once", "行政处罚法 第48条", "publication is already recorded")
    case.published_on = None if non_publication_reason else on
    case.non_publication_reason = non_publication_reason
    window = deadlines.open_deadline(session, case.id, "publication_penalty") or deadlines.open_deadline(
        session, case.id, "publication_other")
    deadlines.meet(session, window, on)
    apply(session, case, "publish", by_user_id=by.id, on=on,
          payload={"published": not non_publication_reason, "reason": non_publication_reason,
                   "late": bool(window and window.late)})
    return case


def withdrawal_due(session: Session, case: Case, *, by: User, on: dt.date, reason: str) -> Case:
    """行政处罚法 第48条第2款: a published decision that is changed, revoked or found illegal or void
    is withdrawn within 3 working days (第85条) of the trigger (e.g. the review decision's receipt)."""
    check(case, "withdrawal_due")
    if not case.published_on:
        raise fail("published", "行政处罚法 第48条第2款", "nothing was published")
    apply(session, case, "withdrawal_due", by_user_id=by.id, on=on, payload={"reason": reason})
    deadlines.start(session, case_id=case.id, type_code="withdrawal", on=on, unit_id=case.unit_id,
                    assignee_id=_lead(case))
    return case


def withdraw_publication(session: Session, case: Case, *, by: User, on: dt.date, reason: str) -> Case:
    """行政处罚法 第48条第2款: withdraw the publication and explain why, publicly."""
    check(case, "withdraw_publication")
    window = deadlines.open_deadline(session, case.id, "withdrawal")
    if window is None:
        raise fail("withdrawal_due", "行政处罚法 第48条第2款", "no change, revocation or illegality was recorded")
    deadlines.meet(session, window, on)
    apply(session, case, "withdraw_publication", by_user_id=by.id, on=on,
          payload={"reason": reason, "late": bool(window.late)})
    return case


def close(session: Session, case: Case, *, by: User, on: dt.date) -> Case:
    """结案 (行政处罚法 第47条). Publication (or a recorded reason not to) is required; a supervised
    case starts its closure-report clock (2010 第74条)."""
    check(case, "close")
    if not (case.published_on or case.non_publication_reason):
        raise fail("publication_recorded", "行政处罚法 第48条; 国办发〔2018〕118号",
                   "publication or a reason for non-publication must be recorded")
    case.closed_on = on
    apply(session, case, "close", by_user_id=by.id, on=on)
    if case.supervised_level:
        deadlines.start(session, case_id=case.id, type_code="supervised_report", on=on, unit_id=case.unit_id,
                        assignee_id=_lead(case))
    return case


def archive(session: Session, case: Case, *, by: User) -> Case:
    """环境行政处罚办法 (2010) 第69、70条: after archiving nobody may change, add or remove material."""
    check(case, "archive")
    case.archived_at = utcnow()
    deadlines.cancel_open(session, case.id)
    apply(session, case, "archive", by_user_id=by.id, on=to_local_date(case.archived_at))
    return case


def drop(session: Session, case: Case, *, by: User, on: dt.date, reason: str) -> Case:
    """不予处罚 / 撤销立案 (行政处罚法 第57条第1款第(二)、(三)项), with the reason."""
    check(case, "drop")
    if case.suspected_crime and not case.transfer_started_at and not case.transfer_refusal_reason:
        raise fail("crime_transfer", "行政处罚法 第27条; 国务院令第310号 第11条",
                   "a suspected crime must be transferred or its refusal recorded first")
    apply(session, case, "drop", by_user_id=by.id, on=on, payload={"reason": reason})
    deadlines.cancel_open(session, case.id)
    if case.filed_on:  # a 不予处罚 decision is an "other enforcement decision": public within 20 working days
        deadlines.start(session, case_id=case.id, type_code="publication_other", on=on, unit_id=case.unit_id,
                        assignee_id=_lead(case))
    return case


def correct(session: Session, case: Case, *, by: User, field: str, value: Any, reason: str) -> CaseCorrection:
    """A correction after archiving is a new linked record (2010 第70条); the file itself stays."""
    if case.state is not S.ARCHIVED:
        raise fail("archived_only", "环境行政处罚办法 (2010) 第70条", "before archiving, use the ordinary steps")
    previous = session.scalar(sa.select(CaseCorrection.id).where(
        CaseCorrection.case_id == case.id, CaseCorrection.field == field).order_by(CaseCorrection.id.desc()).limit(1))
    row = CaseCorrection(case_id=case.id, field=field, corrected_value={"value": value}, reason=reason,
                         by_user_id=by.id, supersedes_id=previous)
    session.add(row)
    session.flush()
    audit.record(session, "web:case:corrected", subjects={"case": case.id, "case_correction": row.id},
                 payload={"field": field, "value": value, "reason": reason, "supersedes": previous})
    return row


# ---- joint, special and supervised cases; daily fines --------------------------------------------------

def add_agency(session: Session, case: Case, *, by: User, agency_id: int, role: AgencyRole, access: str = "evidence",
               tasks: str | None = None) -> CaseAgency:
    """Joint case (DOMAIN-RULES rule 47): one lead agency, participants with per-agency access."""
    check(case, "add_agency")
    if role is AgencyRole.LEAD and any(a.role is AgencyRole.LEAD for a in case.agencies):
        raise fail("one_lead_agency", "生态环境行政处罚办法 (2023) 管辖; 行政处罚法 第25条",
                   "a joint case has exactly one lead agency")
    link = CaseAgency(case_id=case.id, agency_id=agency_id, role=role, access=access, tasks=tasks)
    session.add(link)
    case.joint = True
    session.flush()
    apply(session, case, "add_agency", by_user_id=by.id, payload={"agency": agency_id, "role": role.value,
                                                                  "access": access})
    session.refresh(case, ["agencies"])
    return link


def supervise(session: Session, case: Case, *, by: User, on: dt.date, level: str | None = None,
              special_case: bool | None = None) -> Case:
    """挂牌督办 (衔接办法 第31条) and 专案查办 flags."""
    check(case, "supervise")
    if level:
        case.supervised_level, case.supervised_on = level, on
    if special_case is not None:
        case.special_case = special_case
    apply(session, case, "supervise", by_user_id=by.id, on=on, payload={"level": level, "special_case": special_case})
    return case


def daily_fine_order(session: Session, case: Case, *, by: User, order_served_on: dt.date) -> DailyFineRound:
    """按日连续处罚 (环境保护法 第59条; 部令第28号): a correction order starts a round; the agency must
    re-check unannounced within 30 days."""
    check(case, "daily_fine")
    if not case.decided_fine:
        raise fail("original_fine", "部令第28号 第5条", "daily fines follow an original fine decision")
    last = session.scalar(sa.select(sa.func.max(DailyFineRound.round_no)).where(DailyFineRound.case_id == case.id)) or 0
    row = DailyFineRound(case_id=case.id, round_no=last + 1, order_served_on=order_served_on,
                         original_fine=case.decided_fine)
    session.add(row)
    session.flush()
    apply(session, case, "daily_fine", by_user_id=by.id, on=order_served_on, payload={"round": row.round_no, "step": "order"})
    deadlines.start(session, case_id=case.id, type_code="daily_fine_recheck", on=order_served_on,
                    unit_id=case.unit_id, assignee_id=_lead(case))
    return row


def daily_fine_recheck(session: Session, case: Case, *, by: User, round_no: int, recheck_on: dt.date,
                       continuing: bool) -> DailyFineRound:
    """部令第28号 第17–19条: days from the day after the order was served to the re-check; the daily
    fine equals the original fine; none if corrected (第12条)."""
    check(case, "daily_fine")
    row = session.scalar(sa.select(DailyFineRound).where(DailyFineRound.case_id == case.id,
                                                        DailyFineRound.round_no == round_no))
    if row is None or row.recheck_on is not None:
        raise fail("open_round", "部令第28号", "no open round with that number")
    if recheck_on <= row.order_served_on:
        raise fail("recheck_after_order", "部令第28号 第17条", "the re-check follows the order")
    row.recheck_on, row.continuing = recheck_on, continuing
    row.days = clock.daily_fine_days(row.order_served_on, recheck_on) if continuing else 0
    row.amount = row.days * row.original_fine
    deadlines.meet(session, deadlines.open_deadline(session, case.id, "daily_fine_recheck"), recheck_on)
    session.flush()
    apply(session, case, "daily_fine", by_user_id=by.id, on=recheck_on,
          payload={"round": row.round_no, "step": "recheck", "continuing": continuing, "days": row.days,
                   "amount": row.amount})
    return row


def unit_of(session: Session, case: Case) -> Unit:
    return session.get(Unit, case.unit_id)  # type: ignore[return-value]


def steps_view() -> list[dict[str, Any]]:
    return [{"action": s.action, "name_zh": s.name_zh, "from": sorted(x.value for x in s.sources),
             "to": s.target.value if s.target else None, "rule": s.rule} for s in STEPS.values()]


# ---- a target's record of violations, for the inspector's offline dossier -----------------------

def past_violations(session: Session, target_ids: Iterable[int], *, user: User) -> dict[int, list[dict[str, Any]]]:
    """Decided penalty cases against each target, newest decision first, in one query.

    What an inspector may see: the decisions of their own unit and of cases they handled, and
    other units' decisions that were published (行政处罚法 第48条: penalty decisions are public)
    and not since changed, revoked or found illegal (第48条第2款). Only the decision's facts as
    published: case and decision numbers, date, violation and legal basis, outcome; no case file.
    """
    ids = sorted(set(target_ids))
    if not ids:
        return {}
    from server.modules.cases.models import CaseDocument, CaseEvent

    decision_number = (sa.select(CaseDocument.number)
                       .where(CaseDocument.case_id == Case.id, CaseDocument.doc_type == "decision")
                       .order_by(CaseDocument.id.desc()).limit(1).correlate(Case).scalar_subquery())
    changed = sa.exists().where(CaseEvent.case_id == Case.id, CaseEvent.action == "withdrawal_due")
    handled = sa.select(CaseHandler.case_id).where(CaseHandler.user_id == user.id)
    query = (sa.select(Case.target_id, Case.number, decision_number.label("decision_number"), Case.decision_date,
                       Case.title, Case.violation_code, Case.legal_basis, Case.decided_fine, Case.measures, Case.state,
                       Case.closed_on, changed.label("changed"))
             .where(Case.target_id.in_(ids), Case.decision_date.is_not(None),
                    sa.or_(Case.unit_id == user.unit_id, Case.id.in_(handled),
                           sa.and_(Case.published_on.is_not(None), ~changed)))
             .order_by(Case.target_id, Case.decision_date.desc(), Case.created_at.desc(), Case.id))
    out: dict[int, list[dict[str, Any]]] = {}
    for row in session.execute(query):
        out.setdefault(row.target_id, []).append({
            "case_number": row.number, "decision_number": row.decision_number,
            "decision_date": row.decision_date.isoformat(), "title": row.title, "violation_code": row.violation_code,
            "legal_basis": row.legal_basis, "fine": row.decided_fine, "measures": row.measures or [],
            "status": row.state.value, "closed_on": row.closed_on.isoformat() if row.closed_on else None,
            "decision_changed": bool(row.changed)})
    return out
