"""Transfer operations: start, each step of the state machine with its legal guard, materials,
receipts, scope of the receiving offices and what they touch (custody + audit). Operations flush;
the caller commits."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal
from server.core.calendar import CHINA
from server.core.canonical import canonical_json
from server.core.db import utcnow
from server.core.storage import put_bytes
from server.modules.audit import operations as audit
from server.modules.audit import verifier
from server.modules.cases import operations as cases
from server.modules.cases.models import Case, CaseEvidence, InvestigativeAct
from server.modules.deadlines import clock
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines.models import Deadline, DeadlineStatus
from server.modules.evidence import operations as evidence
from server.modules.evidence.models import CustodyAction, EvidenceItem
from server.modules.reviews import operations as reviews
from server.modules.transfers import documents
from server.modules.transfers.models import (Acknowledgement, AckMethod, ReceiverKey, Transfer, TransferEvent,
                                             TransferKind, TransferMaterial, TransferState as S)
from server.modules.transfers.scope import OutOfScope, receiving, require_visible, shown_to, sides, visible  # noqa: F401
from server.modules.transfers.workflow import DEADLINE_KINDS, DEADLINE_OWNER, PARTIES, STEPS, WrongSide, check, fail
from server.modules.users.models import Agency, AgencyKind, Unit, User

TransferNotFound = errors.error_code("transfer.not_found", 404, "移送记录不存在", "No such transfer")
AlreadyTransferring = errors.error_code("transfer.already_open", 409, "该案件已有进行中的移送",
                                        "The case already has an open transfer")
MissingDocuments = errors.error_code("transfer.missing_documents", 409, "移送材料不全，不得移送（衔接办法 第6条）",
                                     "Required transfer documents are missing")
BadReceiver = errors.error_code("transfer.bad_receiver", 422, "接收机关须为公安机关，抄送机关须为检察院",
                                "The receiving office must be police and the copy must go to a procuratorate")
BadAcknowledgement = errors.error_code("transfer.bad_acknowledgement", 422, "回执签名、确认或扫描件无效",
                                       "The receipt signature, confirmation or scan is invalid")
BadKey = errors.error_code("transfer.bad_key", 422, "公钥须为 32 字节 Ed25519 公钥（base64）",
                           "The key must be a base64 32-byte Ed25519 public key")
UnknownDocumentCode = errors.error_code("transfer.unknown_document", 422, "未知的移送材料类别",
                                        "Unknown transfer document code")

_HERE = Path(__file__).parent
MIN_TEAM = 2  # 国务院令第310号 第5条: a special team of at least two officers
TRANSFER_DEADLINES = tuple(DEADLINE_OWNER)
_OPEN = frozenset(S) - {S.CLOSED, S.ADMIN_PENALTY_RESUMED, S.REFUSED}


@lru_cache(maxsize=1)
def required_documents() -> dict[str, list[dict[str, Any]]]:
    raw = json.loads((_HERE / "required_documents.json").read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def get(session: Session, transfer_id: str) -> Transfer:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None:
        raise TransferNotFound(transfer=transfer_id)
    return transfer


# ---- start ------------------------------------------------------------------------------------

def _unit_of_kind(session: Session, unit_id: int | None, kind: AgencyKind) -> Unit | None:
    if unit_id is None:
        return None
    unit = session.get(Unit, unit_id)
    if unit is None or session.get(Agency, unit.agency_id).kind is not kind:  # type: ignore[union-attr]
        raise BadReceiver(unit=unit_id, expected=kind.value)
    return unit


def create(session: Session, case: Case, *, by: User, kind: TransferKind, police_unit_id: int,
           procuratorate_unit_id: int | None, suspected_offence: str, legal_basis: str, reason: str,
           on: dt.date, handler_contact: str | None = None) -> Transfer:
    """Start a transfer (行政处罚法 第27、82条; 国务院令第310号 第3条: mandatory when facts suggest a
    crime, no 以罚代刑). Uses the cases module's hook, which pauses the decision clock (衔接办法 第16条)."""
    _unit_of_kind(session, police_unit_id, AgencyKind.PUBLIC_SECURITY)
    if kind is TransferKind.CRIMINAL and procuratorate_unit_id is None:
        raise fail("procuratorate_copy", "衔接办法 (2017) 第6条", "a criminal transfer is copied to the procuratorate")
    _unit_of_kind(session, procuratorate_unit_id, AgencyKind.PROCURATORATE)
    if kind is TransferKind.CRIMINAL and not case.suspected_crime and not stated(reason):
        raise fail("crime_suspected", "法释〔2023〕7号 第1条",
                   "without a crime-check hit the transfer needs a substantive reason")
    open_one = session.scalar(sa.select(Transfer.id).where(Transfer.case_id == case.id, Transfer.state.in_(_OPEN)))
    if open_one is not None:
        raise AlreadyTransferring(case=case.id, transfer=open_one)
    if case.transfer_started_at is None:
        cases.start_transfer(session, case, by=by, reason=reason, on=on)
    transfer = Transfer(case_id=case.id, kind=kind, bureau_unit_id=case.unit_id, police_unit_id=police_unit_id,
                        procuratorate_unit_id=procuratorate_unit_id, suspected_offence=suspected_offence,
                        legal_basis=legal_basis, reason=reason, team=[], handler_contact=handler_contact)
    session.add(transfer)
    session.flush()
    _event(session, transfer, "start", S.SUSPECTED, S.SUSPECTED, "行政处罚法 第27、82条; 国务院令第310号 第3条",
           "bureau", on, by.id, {"kind": kind.value, "police_unit": police_unit_id,
                                 "procuratorate_unit": procuratorate_unit_id, "reason": reason})
    return transfer


def _event(session: Session, transfer: Transfer, action: str, before: S, after: S, rule: str, side: str,
           on: dt.date | None, by_user_id: int | None, payload: dict[str, Any]) -> TransferEvent:
    last = session.scalar(sa.select(sa.func.max(TransferEvent.seq)).where(TransferEvent.transfer_id == transfer.id)) or 0
    event = TransferEvent(transfer_id=transfer.id, seq=last + 1, action=action, from_state=before.value,
                          to_state=after.value, rule=rule, side=side, on=on, by_user_id=by_user_id, payload=payload)
    session.add(event)
    session.flush()
    audit.record(session, f"web:transfer:{action}", subjects={"transfer": transfer.id, "case": transfer.case_id},
                 payload={"seq": event.seq, "from": before.value, "to": after.value, "rule": rule, "side": side,
                          "on": on.isoformat() if on else None, **payload})
    return event


# ---- steps ------------------------------------------------------------------------------------

Guard = Callable[[Session, Transfer, User, dt.date, dt.datetime, dict[str, Any]], dict[str, Any]]
GUARDS: dict[str, Guard] = {}


def guard(action: str) -> Callable[[Guard], Guard]:
    def register(fn: Guard) -> Guard:
        GUARDS[action] = fn
        return fn
    return register


def step(session: Session, transfer: Transfer, action: str, *, by: User, principal: Principal,
         on: dt.date | None = None, at: dt.datetime | None = None, data: dict[str, Any] | None = None) -> TransferEvent:
    """Take one step: state check, side check, the step's legal guard, history, audit, clocks."""
    spec = check(transfer, action)
    mine = sides(session, principal, transfer)
    side = next((s for s in ("head", "bureau", "police", "prosecutor") if s in spec.sides & mine), None)
    if side is None:
        raise WrongSide(f"{action} is taken by the {spec.side}", action=action, side=spec.side, rule=spec.rule)
    at, on = _legal_time(spec, at, on)
    before = transfer.state
    payload = GUARDS[action](session, transfer, by, on, at, dict(data or {})) if action in GUARDS else {}
    if spec.target is not None:
        transfer.state = spec.target
    for code in spec.meets:
        _meet(session, transfer, code, on, at)
    for code in spec.starts:
        if transfer.kind in DEADLINE_KINDS[code]:
            _start_clock(session, transfer, code, on, at)
    if spec.enters and _enters_platform(transfer, action, spec.enters):
        payload["platform_entry_due_on"] = _start_clock(session, transfer, "transfer_platform_entry", on, at,
                                                        side=spec.enters).due_on.isoformat()  # type: ignore[union-attr]
    return _event(session, transfer, action, before, transfer.state, spec.rule, side, on, by.id, payload)


TimeNeeded = errors.error_code(
    "transfer.time_needed", 422, "该步骤起算或结束按小时计算的期限，补录其他日期的步骤须注明发生时间",
    "This step starts or meets a clock counted in hours: a step entered on another day needs the time it happened")


def _legal_time(spec: Any, at: dt.datetime | None, on: dt.date | None) -> tuple[dt.datetime, dt.date]:
    """Every clock runs from the legal time of its event, not from when it was entered. A step given
    only a past date cannot start or meet an hours clock (衔接办法 第6、8条: 24 hours), whose time of
    day matters: it must give ``at``, so that a step entered late is shown late."""
    now = utcnow()
    if at is None and on is not None and on != now.astimezone(CHINA).date():
        hours = [c for c in (*spec.starts, *spec.meets)
                 if clock.deadline_type(c).calendar is clock.CalendarKind.HOURS]
        if hours:
            raise TimeNeeded(action=spec.action, clocks=hours, on=on.isoformat(), rule="衔接办法 (2017) 第38条")
    at = at or now
    return at, on or at.astimezone(CHINA).date()


def party_side(transfer: Transfer, user: User) -> str:
    """Which party of the transfer ``user`` acts for (the step's side check already ran)."""
    if user.unit_id is not None and user.unit_id == transfer.police_unit_id:
        return "police"
    if user.unit_id is not None and user.unit_id == transfer.procuratorate_unit_id:
        return "prosecutor"
    return "bureau"


def side_unit(transfer: Transfer, side: str) -> int | None:
    """The office acting as ``side`` of this transfer."""
    return {"police": transfer.police_unit_id, "prosecutor": transfer.procuratorate_unit_id}.get(
        side, transfer.bureau_unit_id)


def _start_clock(session: Session, transfer: Transfer, code: str, on: dt.date, at: dt.datetime,
                 side: str | None = None) -> Deadline:
    """Start a clock owed by the deadline type's side, or by ``side`` for per-clock owners
    (platform entries, consultations)."""
    unit = side_unit(transfer, side or DEADLINE_OWNER[code])
    hours = clock.deadline_type(code).calendar is clock.CalendarKind.HOURS
    return deadlines.start(session, case_id=transfer.case_id, type_code=code, on=on, unit_id=unit,  # type: ignore[arg-type]
                           at=at if hours else None)


# 衔接办法 第34条(二): of the police's decisions, opening, not opening and withdrawing a case are
# entered (forwarding to another police office or returning a case outside police jurisdiction is not).
_PLATFORM_DECISIONS = frozenset({"filed", "not_filed", "withdrawn"})


def platform_sides() -> frozenset[str]:
    """Offices connected to the information-sharing platform (``TRANSFER_PLATFORM_SIDES``): 第34条
    binds those already connected; the others notify each other without a fixed period."""
    return current_app.config.get("TRANSFER_PLATFORM_SIDES", PARTIES) if has_app_context() else PARTIES


def _enters_platform(transfer: Transfer, action: str, side: str) -> bool:
    """衔接办法 (2017) 第34条: within 7 days of each decision it lists, the deciding office enters it on
    the shared platform: transfers, reconsideration and supervision requests (bureau); opening, not
    opening or withdrawing a case and reconsideration decisions (police); recommended transfers and
    case-filing supervision (procuratorate). Criminal transfers only (the 2014 detention rules have
    no such duty)."""
    if transfer.kind is not TransferKind.CRIMINAL or side not in platform_sides():
        return False
    return action != "decide" or transfer.police_decision in _PLATFORM_DECISIONS


def _meet(session: Session, transfer: Transfer, code: str, on: dt.date, at: dt.datetime) -> None:
    row = deadlines.open_deadline(session, transfer.case_id, code)
    if row is None:
        return
    deadlines.meet(session, row, on)
    if row.due_at is not None:  # HOURS clocks: "24 hours" is literal (衔接办法 第38条)
        row.late = at > row.due_at
        session.flush()


def stated(text: str | None) -> bool:
    """A written reason is required; the law sets no length, and 证据不足 (four characters) is a
    complete reason. Two characters is the least that states anything in Chinese."""
    return len((text or "").strip()) >= 2


def _reason(data: dict[str, Any], rule: str, guard_name: str = "reason_required") -> str:
    reason = str(data.get("reason") or "").strip()
    if not stated(reason):
        raise fail(guard_name, rule, "a written reason is required")
    return reason


@guard("form_team")
def _form_team(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    ids = list(dict.fromkeys(int(i) for i in data.get("member_ids") or []))
    if len(ids) < MIN_TEAM:
        raise fail("team_size", "国务院令第310号 第5条", "the special team needs at least two officers", members=len(ids))
    team = [{"user_id": u.id, "name": u.display_name, "certificate_number": cert}
            for u, cert in cases._certified(session, ids, on, "国务院令第310号 第5条")]  # noqa: SLF001
    t.team = team
    return {"team": team}


@guard("submit_report")
def _submit_report(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    t.report_submitted_at = at
    if data.get("handler_contact"):
        t.handler_contact = str(data["handler_contact"])
    return {"summary": str(data.get("summary") or "")}


@guard("approve")
def _approve(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    t.decided_at = at
    made = [generate_document(session, t, code, by=by, on=on) for code in ("transfer_letter", "investigation_report")]
    return {"documents": [{"code": m.code, "sha256": m.sha256} for m in made]}


@guard("refuse")
def _refuse(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """国务院令第310号 第5条: reasons recorded; the refusal goes to legal review through the case."""
    reason = _reason(data, "国务院令第310号 第5条")
    t.refusal_reason, t.decided_at = reason, at
    case = cases.get(session, t.case_id)
    if not case.suspected_crime:
        case.suspected_crime = True  # the transfer was started, so the facts were treated as suspected
    cases.refuse_transfer(session, case, by=by, reason=reason)
    return {"reason": reason}


@guard("procuratorate_recommends")
def _recommend(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"opinion": _reason(data, "衔接办法 (2017) 第14条")}


@guard("add_material")
def _add_material(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    try:
        content = base64.b64decode(str(data.get("content_base64") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise errors.ValidationFailed(fields={"content_base64": ["base64"]}) from None
    material = add_material(session, t, code=str(data.get("code") or ""), title=str(data.get("title") or ""),
                            filename=str(data.get("filename") or "document.pdf"),
                            media_type=str(data.get("media_type") or "application/pdf"), content=content, by=by,
                            supplement=t.state is S.SUPPLEMENT_REQUESTED)
    return {"material": material.id, "code": material.code, "sha256": material.sha256, "size": material.size}


@guard("hand_over")
def _hand_over(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """衔接办法 第6条: the package must hold every required document; the procuratorate is copied."""
    generate_document(session, t, "materials_list", by=by, on=on)
    missing = missing_documents(session, t)
    if missing:
        raise MissingDocuments(missing=missing, rule="衔接办法 (2017) 第6条; DOMAIN-RULES §3.1")
    t.handed_over_at = at
    return {"summary_sha256": hashlib.sha256(summary_bytes(session, t)).hexdigest(),
            "copied_to": t.procuratorate_unit_id}


@guard("sign_receipt")
def _sign_receipt(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    ack = acknowledge(session, t, by=by, data=data, at=at)
    t.receipt_at = at
    return {"acknowledgement": ack.id, "method": ack.method.value, "summary_sha256": ack.summary_sha256,
            "jurisdiction_ok": ack.jurisdiction_ok}


@guard("request_supplement")
def _request_supplement(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """Criminal: within 24 hours of receipt (衔接办法 第8条); detention: 3 working days (2014 第13条)."""
    code = "transfer_supplement_request" if t.kind is TransferKind.CRIMINAL else "detention_evidence_request"
    row = deadlines.open_deadline(session, t.case_id, code)
    late = row is None or (at > row.due_at if row.due_at is not None else on > row.due_on)  # type: ignore[operator]
    if late:
        raise fail("supplement_window", STEPS["request_supplement"].rule,
                   "the written request for supplements must come within the period after receipt")
    items = [str(x) for x in data.get("items") or []]
    if not items:
        raise errors.ValidationFailed(fields={"items": ["须列明需补正的材料 / list the missing materials"]})
    t.supplement_requested_at = at
    return {"items": items, "note": str(data.get("note") or "")}


@guard("supplement")
def _supplement(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    generate_document(session, t, "materials_list", by=by, on=on, supplement=True)
    return {"note": str(data.get("note") or "")}


@guard("extend_filing_period")
def _extend_filing(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """衔接办法 第9条: 7 days when the lead must be checked; 30 days for a major or complex case with
    the county-level police head's approval."""
    period = int(data.get("period") or 0)
    if period not in (7, 30):
        raise fail("filing_period", "衔接办法 (2017) 第9条", "the filing period may become 7 or 30 days")
    if period == 30 and not str(data.get("approved_by") or "").strip():
        raise fail("county_head_approval", "衔接办法 (2017) 第9条", "30 days need the county-level police head's approval")
    row = deadlines.open_deadline(session, t.case_id, "transfer_filing_decision")
    if row is None:
        raise fail("filing_clock", "衔接办法 (2017) 第9条", "no running filing clock")
    used = 3 + sum(e.amount or 0 for e in row.events if e.kind.value == "extend")
    if period <= used:
        raise fail("filing_period", "衔接办法 (2017) 第9条", f"the period is already {used} days")
    deadlines.extend(session, row, amount=period - used, reason=_reason(data, "衔接办法 (2017) 第9条"),
                     by_user_id=by.id, on=on)
    return {"period": period, "approved_by": data.get("approved_by")}


_DECISIONS = {TransferKind.CRIMINAL: ("filed", "not_filed", "forwarded", "returned", "withdrawn"),
              TransferKind.DETENTION: ("detained", "rejected")}


@guard("decide")
def _decide(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    decision = str(data.get("decision") or "")
    if decision not in _DECISIONS[t.kind]:
        raise errors.ValidationFailed(fields={"decision": [", ".join(_DECISIONS[t.kind])]})
    reasons = None
    if decision not in ("filed", "detained"):
        reasons = _reason(data, "衔接办法 (2017) 第9条; 行政拘留移送暂行办法 (2014) 第15条")
        if data.get("reason_code") == "materials_incomplete":
            raise fail("incomplete_not_a_ground", "衔接办法 (2017) 第8条",
                       "the police may not refuse a transfer because materials are incomplete; request supplements")
    t.police_decision, t.police_decided_on, t.police_reasons = decision, on, reasons
    return {"decision": decision, "reasons": reasons, "files_returned": bool(data.get("files_returned"))}


@guard("notify_agency")
def _notify(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    t.notified_on = on
    if t.police_decision == "filed":
        _start_clock(session, t, "transfer_items_handover", on, at)
    elif t.police_decision in ("not_filed", "withdrawn"):
        _start_clock(session, t, "transfer_reconsideration_request", on, at)
    return {"decision": t.police_decision, "notice_number": data.get("notice_number")}


@guard("hand_over_items")
def _items(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    if t.police_decision != "filed":
        raise fail("case_filed", "衔接办法 (2017) 第10条", "items are handed over after the police open a case")
    return {"items": data.get("items") or [], "note": str(data.get("note") or "")}


@guard("request_reconsideration")
def _reconsider(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    if t.police_decision not in ("not_filed", "withdrawn"):
        raise fail("not_filed", "衔接办法 (2017) 第11条", "reconsideration is of a decision not to open a case")
    row = deadlines.open_deadline(session, t.case_id, "transfer_reconsideration_request")
    if row is not None and row.due_on is not None and on > row.due_on:
        raise fail("reconsideration_window", "衔接办法 (2017) 第11条",
                   "reconsideration must be requested within 3 working days of the notice", due_on=row.due_on.isoformat())
    return {"reason": _reason(data, "衔接办法 (2017) 第11条")}


@guard("decide_reconsideration")
def _decide_reconsideration(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    outcome = str(data.get("outcome") or "")
    if outcome not in ("upheld", "reversed"):
        raise errors.ValidationFailed(fields={"outcome": ["upheld, reversed"]})
    t.reconsideration_outcome = outcome
    if outcome == "reversed":
        t.police_decision = "filed"
        _start_clock(session, t, "transfer_items_handover", on, at)
    return {"outcome": outcome, "reasons": str(data.get("reasons") or "")}


@guard("request_supervision")
def _supervision(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """衔接办法 第12、13条: after a refusal to open the case, or when the police are overdue."""
    filing = deadlines.open_deadline(session, t.case_id, "transfer_filing_decision")
    overdue = filing is not None and filing.due_on is not None and on > filing.due_on
    if t.state is S.RECEIPT_SIGNED and not overdue:
        raise fail("police_overdue", "衔接办法 (2017) 第12条", "supervision before a decision needs the police to be overdue")
    if t.state is not S.RECEIPT_SIGNED and t.police_decision == "filed":
        raise fail("not_refused", "衔接办法 (2017) 第12、13条", "the police opened the case")
    return {"reason": _reason(data, "衔接办法 (2017) 第12、13条"), "police_overdue": overdue}


@guard("supervision_opinion")
def _opinion(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"opinion": _reason(data, "衔接办法 (2017) 第12、13条"), "police_to_file": bool(data.get("police_to_file"))}


@guard("notify_non_prosecution")
def _non_prosecution(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"reasons": _reason(data, "衔接办法 (2017) 第18条"),
            "recommends_admin_penalty": bool(data.get("recommends_admin_penalty"))}


@guard("resume_admin_penalty")
def _resume(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """No 以罚代刑 (行政处罚法 第27条; 国务院令第310号 第11条): the penalty procedure resumes only when
    no criminal case goes on, and after a refusal only once the legal review of the refusal passed."""
    if t.police_decision in ("filed", "detained") and t.state is not S.NON_PROSECUTED:
        raise fail("criminal_case_open", "行政处罚法 第27条; 国务院令第310号 第11条",
                   "the police opened a case: the administrative penalty may not replace prosecution")
    if t.state is S.REFUSED:
        passed = reviews.passed_review(session, t.case_id)
        if passed is None or passed.subject != "transfer_refusal":
            raise fail("refusal_reviewed", "国务院令第310号 第5条; 行政处罚法 第58条",
                       "a refused transfer returns to the penalty procedure only after its legal review passed")
    case = cases.get(session, t.case_id)
    row = deadlines.open_deadline(session, case.id, "decision")
    if row is not None and row.due_on is None:
        deadlines.resume(session, row, on=on, reason="移送程序结束，恢复行政处罚程序", by_user_id=by.id)
    return {"reason": _reason(data, "衔接办法 (2017) 第16、18条")}


@guard("close")
def _close(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    if t.state is S.AGENCY_NOTIFIED and t.police_decision not in ("detained", "rejected", "forwarded"):
        raise fail("not_finished", "衔接办法 (2017) 第10、11条", "items, reconsideration or supervision still pending")
    return {"note": str(data.get("note") or "")}


@guard("return_for_supplementary_investigation")
def _return_for_investigation(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime,
                              data: dict[str, Any]) -> dict[str, Any]:
    """衔接办法 第19条: a case returned for supplementary investigation carries an outline of its
    direction and requirements; the police finish within one month (the clock this step starts)."""
    if t.police_decision != "filed":
        raise fail("case_filed", "衔接办法 (2017) 第19条", "only a case the police opened is investigated")
    if deadlines.open_deadline(session, t.case_id, "transfer_supplementary_investigation") is not None:
        raise fail("investigation_open", "衔接办法 (2017) 第19条", "a supplementary investigation is already running")
    outline = str(data.get("outline") or "").strip()
    if not stated(outline):
        raise fail("outline_required", "衔接办法 (2017) 第19条",
                   "the outline (补充侦查提纲) states the direction and requirements")
    return {"outline": outline, "bureau_assistance": bool(data.get("bureau_assistance"))}


@guard("complete_supplementary_investigation")
def _complete_investigation(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime,
                            data: dict[str, Any]) -> dict[str, Any]:
    row = deadlines.open_deadline(session, t.case_id, "transfer_supplementary_investigation")
    if row is None:
        raise fail("investigation_open", "衔接办法 (2017) 第19条", "no supplementary investigation is running")
    return {"note": str(data.get("note") or ""), "due_on": _iso(row.due_on),
            "late": row.due_on is not None and on > row.due_on}


# 衔接办法 第24条: the bureau consults the police or the procuratorate (prosecution thresholds,
# securing evidence); they consult the bureau (technical questions). Police and procuratorate
# consulting each other is outside this rule.
_CONSULTATIONS = {("bureau", "police"), ("bureau", "prosecutor"), ("police", "bureau"), ("prosecutor", "bureau")}


@guard("consult")
def _consult(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """A written consultation: the consulted office answers in writing within 7 days (第24条), on a
    clock it owes."""
    asker, to = party_side(t, by), str(data.get("to") or "")
    if (asker, to) not in _CONSULTATIONS or side_unit(t, to) is None:
        raise fail("consultation_parties", "衔接办法 (2017) 第24条",
                   "consultations go between the bureau and the police or the procuratorate", asker=asker, to=to)
    question = str(data.get("question") or "").strip()
    if not stated(question):
        raise errors.ValidationFailed(fields={"question": ["书面咨询的问题必填 / the question is required"]})
    row = _start_clock(session, t, "transfer_consultation_reply", on, at, side=to)
    return {"consultation": row.id, "from": asker, "to": to, "question": question, "due_on": _iso(row.due_on)}


@guard("request_early_involvement")
def _early_involvement(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime,
                       data: dict[str, Any]) -> dict[str, Any]:
    """The bureau asks the procuratorate to look at the case before the hand-over (提前介入), which
    opens the transfer to it from now on (衔接办法 第4、24条)."""
    return {"reason": _reason(data, STEPS["request_early_involvement"].rule), "to": "prosecutor"}


@guard("answer_consultation")
def _answer(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The consulted office answers in writing; the answer meets that consultation's clock."""
    try:
        row = session.get(Deadline, int(data.get("consultation") or 0))
    except (TypeError, ValueError):
        row = None
    if row is None or row.case_id != t.case_id or row.type_code != "transfer_consultation_reply":
        raise errors.ValidationFailed(fields={"consultation": ["本移送案件的咨询编号 / a consultation of this transfer"]})
    if row.unit_id != side_unit(t, party_side(t, by)):
        raise WrongSide("the consulted office answers", side=owner(row, t), rule="衔接办法 (2017) 第24条")
    if row.status is not DeadlineStatus.OPEN:
        raise deadlines.DeadlineClosed(deadline=row.id, status=row.status.value)
    answer = str(data.get("answer") or "").strip()
    if not stated(answer):
        raise errors.ValidationFailed(fields={"answer": ["书面答复必填 / the written answer is required"]})
    deadlines.meet(session, row, on)
    return {"consultation": row.id, "answer": answer, "late": row.late}


@guard("record_platform_entry")
def _platform_entry(session: Session, t: Transfer, by: User, on: dt.date, at: dt.datetime,
                    data: dict[str, Any]) -> dict[str, Any]:
    """衔接办法 第34条: the office records that it entered its pending decisions on the shared
    platform; each of its open entry clocks is met (late if past its 7 days)."""
    unit = side_unit(t, party_side(t, by))
    rows = session.scalars(sa.select(Deadline).where(
        Deadline.case_id == t.case_id, Deadline.type_code == "transfer_platform_entry", Deadline.unit_id == unit,
        Deadline.status == DeadlineStatus.OPEN).order_by(Deadline.id)).all()
    if not rows:
        raise fail("nothing_to_enter", "衔接办法 (2017) 第34条", "no decision of your office awaits entry on the platform")
    for row in rows:
        deadlines.meet(session, row, on)
    return {"entered": [{"deadline": r.id, "decided_on": r.started_on.isoformat(), "due_on": _iso(r.due_on),
                         "late": r.late} for r in rows],
            "platform_reference": str(data.get("reference") or "") or None}


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---- materials and documents ------------------------------------------------------------------

# 先行登记保存 (行政处罚法 第56条) and 查封、扣押 (行政强制法 第24、25条): acts that take items, after
# which 衔接办法 第6条第(四)、(五)项 ask for the list of items and the photo index
SEIZING_ACTS = ("preservation", "seizure")


def _codes(kind: TransferKind) -> dict[str, dict[str, Any]]:
    return {d["code"]: d for d in required_documents()[kind.value]}


def add_material(session: Session, t: Transfer, *, code: str, title: str, filename: str, media_type: str,
                 content: bytes, by: User | None, supplement: bool = False, generated: bool = False) -> TransferMaterial:
    if code not in _codes(t.kind):
        raise UnknownDocumentCode(code=code, known=sorted(_codes(t.kind)))
    safe = Path(filename).name or "document"
    digest = put_bytes(content)
    material = TransferMaterial(transfer_id=t.id, code=code, title=title or _codes(t.kind)[code]["name_zh"],
                                filename=safe, media_type=media_type, sha256=digest, size=len(content),
                                generated=generated, supplement=supplement, added_by=by.id if by else None)
    session.add(material)
    session.flush()
    audit.record(session, "web:transfer_material:added", subjects={"transfer": t.id, "case": t.case_id},
                 payload={"material": material.id, "code": code, "sha256": digest, "size": len(content),
                          "generated": generated, "supplement": supplement})
    return material


def materials(session: Session, t: Transfer) -> list[TransferMaterial]:
    return list(session.scalars(sa.select(TransferMaterial).where(TransferMaterial.transfer_id == t.id)
                                .order_by(TransferMaterial.id)))


def evidence_scope(case_id: str) -> sa.ColumnElement[bool]:
    """Originals of the case: linked to it or captured for it (derivatives travel with their original)."""
    linked = sa.select(CaseEvidence.evidence_id).where(CaseEvidence.case_id == case_id)
    return sa.and_(sa.or_(EvidenceItem.id.in_(linked), EvidenceItem.case_id == case_id), EvidenceItem.parent_id.is_(None))


def evidence_items(session: Session, case_id: str) -> list[tuple[EvidenceItem, str | None]]:
    """Originals of the case, with what each proves, in a stable order (received_at, id): the
    order the evidence package numbers them in."""
    linked = dict(session.execute(sa.select(CaseEvidence.evidence_id, CaseEvidence.purpose)
                                  .where(CaseEvidence.case_id == case_id)).all())
    items = session.scalars(sa.select(EvidenceItem).where(evidence_scope(case_id))
                            .order_by(EvidenceItem.received_at, EvidenceItem.id)).all()
    return [(item, linked.get(item.id)) for item in items]


def has_evidence(session: Session, case_id: str) -> bool:
    return session.scalar(sa.select(sa.exists().where(evidence_scope(case_id)))) or False


def missing_documents(session: Session, t: Transfer) -> list[dict[str, str]]:
    """Required documents (required_documents.json) the transfer does not hold yet."""
    have = {m.code for m in materials(session, t)}
    case = cases.get(session, t.case_id)
    missing = []
    seized = session.scalar(sa.select(sa.func.count(InvestigativeAct.id)).where(
        InvestigativeAct.case_id == case.id, InvestigativeAct.kind.in_(SEIZING_ACTS))) > 0
    applies = {"always": True, "if_decided": case.decision_date is not None, "if_seized": seized, "optional": False}
    for doc in required_documents()[t.kind.value]:
        needed = applies[doc["when"]]
        present = has_evidence(session, t.case_id) if doc.get("evidence_index") else doc["code"] in have
        if needed and not present:
            missing.append({"code": doc["code"], "name_zh": doc["name_zh"], "source": doc["source"]})
    return missing


def _unit_name(session: Session, unit_id: int | None) -> str:
    unit = session.get(Unit, unit_id) if unit_id else None
    return unit.name_zh if unit else "—"


def document_lines(session: Session, t: Transfer, code: str) -> list[str]:
    case = cases.get(session, t.case_id)
    head = [f"案件：{case.title}（案号 {case.number or '—'}）", f"当事人：{case.party_name}"
            f"（统一社会信用代码 {case.party_uscc or '—'}）"]
    if code == "transfer_letter":
        return [f"{_unit_name(session, t.police_unit_id)}：", *head,
                f"经查，该案涉嫌{t.suspected_offence}，主要法律依据：{t.legal_basis}。",
                "依据《环境保护行政执法与刑事司法衔接工作办法》第六条及国务院令第310号，现将该案移送你单位审查。",
                f"抄送：{_unit_name(session, t.procuratorate_unit_id)}" if t.procuratorate_unit_id else "抄送：—",
                f"承办人及联系方式：{t.handler_contact or '—'}",
                "附件：移送材料清单（见本包 documents/materials_list.pdf 与 manifest.json）。"]
    if code == "investigation_report":
        hits = "、".join(h.get("name_zh", h.get("code", "")) for h in case.crime_hits or []) or "—"
        team = "、".join(f"{m['name']}（执法证 {m['certificate_number']}）" for m in t.team) or "—"
        return [*head, f"案件来源：{'现场检查' if case.source_inspection_id else '线索'}；立案日期：{case.filed_on or '—'}",
                f"违法事实：{case.facts or case.title}", f"涉嫌犯罪事实：{t.reason}",
                f"涉嫌犯罪规则命中：{hits}", f"法律依据：{t.legal_basis}", f"专案组：{team}",
                f"处理意见：移送{_unit_name(session, t.police_unit_id)}依法处理。"]
    lines = [*head, "移送材料："]
    for n, m in enumerate(materials(session, t), 1):
        lines.append(f"{n}. {m.title}（{m.filename}，{m.size} 字节，SHA-256 {m.sha256[:16]}…）")
    for n, (item, purpose) in enumerate(evidence_items(session, t.case_id), 1):
        lines.append(f"证据 {n}. {item.kind.value} {item.sha256[:16]}… {purpose or ''}")
    return lines


def generate_document(session: Session, t: Transfer, code: str, *, by: User | None, on: dt.date,
                      supplement: bool = False) -> TransferMaterial:
    content = documents.render(documents.TITLES[code], document_lines(session, t, code),
                               f"商洛市生态环境局（印章）  {on.isoformat()}")
    return add_material(session, t, code=code, title=documents.TITLES[code], filename=f"{code}.pdf",
                        media_type="application/pdf", content=content, by=by, supplement=supplement, generated=True)


# ---- receipts ---------------------------------------------------------------------------------

def summary(session: Session, t: Transfer) -> dict[str, Any]:
    """The canonical transfer summary a receipt acknowledges: who transfers what to whom."""
    case = cases.get(session, t.case_id)
    return {"format": "qinling-field/transfer-summary@1", "transfer": t.id, "kind": t.kind.value, "case": case.id,
            "case_number": case.number, "party": case.party_name, "suspected_offence": t.suspected_offence,
            "from_unit": _unit_name(session, t.bureau_unit_id), "to_unit": _unit_name(session, t.police_unit_id),
            "copied_to": _unit_name(session, t.procuratorate_unit_id) if t.procuratorate_unit_id else None,
            "materials": [{"code": m.code, "file": m.filename, "sha256": m.sha256} for m in materials(session, t)],
            "evidence": [{"id": i.id, "sha256": i.sha256} for i, _ in evidence_items(session, t.case_id)]}


def summary_bytes(session: Session, t: Transfer) -> bytes:
    return canonical_json(summary(session, t))


def register_key(session: Session, user: User, *, public_key: str, label: str) -> ReceiverKey:
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BadKey()
    key = ReceiverKey(user_id=user.id, public_key=raw, label=label)
    session.add(key)
    session.flush()
    audit.record(session, "web:transfer_receiver_key:registered", subjects={"user": user.id},
                 payload={"key": key.id, "public_key": public_key, "label": label})
    return key


def acknowledge(session: Session, t: Transfer, *, by: User, data: dict[str, Any], at: dt.datetime) -> Acknowledgement:
    """A receipt (衔接办法 第7条): Ed25519 signature over the summary by a registered key, a typed
    confirmation by the signed-in officer, or a scan of the signed slip (kept in the blob store)."""
    body = summary_bytes(session, t)
    method = AckMethod(str(data.get("method") or "typed"))
    ack = Acknowledgement(transfer_id=t.id, method=method, by_user_id=by.id, unit_id=by.unit_id, at=at,
                          summary_sha256=hashlib.sha256(body).hexdigest(), summary=body,
                          jurisdiction_ok=bool(data.get("jurisdiction_ok", True)))
    if method is AckMethod.SIGNATURE:
        key = session.get(ReceiverKey, int(data.get("key_id") or 0))
        if key is None or key.user_id != by.id or key.revoked_at is not None:
            raise BadAcknowledgement("the key is not an active key of this officer")
        try:
            signature = base64.b64decode(str(data.get("signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if not verifier.ed25519_verify(key.public_key, body, signature):
            raise BadAcknowledgement("the signature does not verify over the canonical transfer summary")
        ack.key_id, ack.signature = key.id, signature
    elif method is AckMethod.TYPED:
        text = str(data.get("typed_confirmation") or "").strip()
        if len(text) < 4:
            raise BadAcknowledgement("type the confirmation, e.g. 已签收")
        ack.typed_confirmation = text
    else:
        try:
            scan = base64.b64decode(str(data.get("scan_base64") or ""), validate=True)
        except (binascii.Error, ValueError):
            scan = b""
        if not scan:
            raise BadAcknowledgement("the scan of the signed slip is empty")
        ack.scan_sha256 = put_bytes(scan)
    session.add(ack)
    session.flush()
    return ack


def acknowledgements(session: Session, t: Transfer) -> list[Acknowledgement]:
    return list(session.scalars(sa.select(Acknowledgement).where(Acknowledgement.transfer_id == t.id)
                                .order_by(Acknowledgement.id)))


# ---- what the receiving side touches ----------------------------------------------------------

def record_access(session: Session, t: Transfer, principal: Principal, what: str,
                  items: list[EvidenceItem], *, download: bool = False) -> None:
    """Every view and download by the police or procuratorate: a custody event per evidence item
    touched and one audit entry for the transfer."""
    if not receiving(principal):
        return
    action = CustodyAction.DOWNLOADED if download else CustodyAction.VIEWED
    for item in items:
        evidence.custody(session, item, action, sha256=item.blob_sha256 or item.sha256,
                         detail={"what": what, "transfer": t.id, "purpose": "移送案件审查 / transferred case"})
    audit.record(session, f"web:transfer:{'downloaded' if download else 'viewed'}",
                 subjects={"transfer": t.id, "case": t.case_id},
                 payload={"what": what, "items": [i.id for i in items], "role": principal.role})


# ---- deadlines ----------------------------------------------------------------------------------

def transfer_deadlines(session: Session, t: Transfer) -> list[Deadline]:
    return list(session.scalars(sa.select(Deadline).where(Deadline.case_id == t.case_id,
                                                          Deadline.type_code.in_(TRANSFER_DEADLINES))
                                .order_by(Deadline.id)))


def owner(row: Deadline, t: Transfer | None) -> str | None:
    """The side that owes a transfer clock: fixed by its type, or (platform entries, consultation
    answers) the side whose office the clock was started for."""
    fixed = DEADLINE_OWNER.get(row.type_code)
    if fixed in PARTIES or t is None:
        return fixed
    return next((side for side in ("police", "prosecutor", "bureau") if side_unit(t, side) == row.unit_id), None)


def deadline_view(row: Deadline, now: dt.datetime, t: Transfer | None = None) -> dict[str, Any]:
    item = deadlines.view(row, now.astimezone(CHINA).date())
    item["owner"] = owner(row, t)
    if row.due_at is not None and row.status is DeadlineStatus.OPEN:
        item["overdue"] = now > row.due_at  # literal hours
    return item


def dashboard(session: Session, principal: Principal, now: dt.datetime) -> dict[str, Any]:
    """Open transfer clocks of the caller's transfers: overdue, due and paused, with the side that owes each."""
    ids = sa.select(Transfer.case_id).where(Transfer.id.in_(visible(session, principal).with_only_columns(Transfer.id)
                                                             .order_by(None)))
    rows = session.scalars(sa.select(Deadline).where(Deadline.case_id.in_(ids), Deadline.status == DeadlineStatus.OPEN,
                                                     Deadline.type_code.in_(TRANSFER_DEADLINES))
                           .order_by(Deadline.due_on, Deadline.id)).all()
    transfers = {t.case_id: t for t in session.scalars(sa.select(Transfer).where(Transfer.case_id.in_(ids))
                                                        .order_by(Transfer.created_at))}
    out: dict[str, list[Any]] = {"overdue": [], "due": [], "paused": []}
    for row in rows:
        t = transfers[row.case_id]
        item = {**deadline_view(row, now, t), "transfer_id": t.id}
        out["paused" if item["paused"] else "overdue" if item["overdue"] else "due"].append(item)
    return {"now": now.isoformat(), "totals": {k: len(v) for k, v in out.items()}, **out}



def acknowledge_copy(session: Session, t: Transfer, *, by: User, principal: Principal, data: dict[str, Any],
                     at: dt.datetime | None = None) -> Acknowledgement:
    """衔接办法 (2017) 第6条: the procuratorate is copied on the transfer. Its officer acknowledges the
    copy with the same kinds of receipt as the police (signature, typed confirmation or scan); the
    transfer's state does not change, the receipt and an audit entry are recorded."""
    if "prosecutor" not in sides(session, principal, t):
        raise WrongSide("the copy is acknowledged by the procuratorate it was copied to", side="prosecutor",
                        rule="衔接办法 (2017) 第6条")
    if t.handed_over_at is None:
        raise fail("handed_over", "衔接办法 (2017) 第6条", "the copy is acknowledged after the hand-over")
    ack = acknowledge(session, t, by=by, data=data, at=at or utcnow())
    audit.record(session, "web:transfer:copy_acknowledged", subjects={"transfer": t.id, "case": t.case_id},
                 payload={"acknowledgement": ack.id, "method": ack.method.value, "summary_sha256": ack.summary_sha256})
    return ack
