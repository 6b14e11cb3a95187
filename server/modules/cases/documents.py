"""Case documents as PDF (reportlab, built-in CID font STSong-Light: no font file needed), each
with a number from the per-unit/year/type allocator and its SHA-256 in the audit log."""
from __future__ import annotations

import datetime as dt
import hashlib
import io

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.core import errors
from server.modules.audit import operations as audit
from server.modules.cases.models import Case, CaseDocument, CaseState, DocumentCounter, InvestigativeAct
from server.modules.cases.workflow import Archived
from server.modules.users.models import User

UnknownDocument = errors.error_code("document.unknown_type", 422, "未知的文书类型", "Unknown document type")
DocumentNotReady = errors.error_code("document.not_ready", 409, "案件尚未进行到可以制作该文书的阶段",
                                     "The case has not reached the step this document belongs to")

# doc_type -> (title, number word 字, states in which it may be made)
TYPES: dict[str, tuple[str, str, frozenset[CaseState] | None]] = {
    "case": ("立案编号", "立", None),
    "notice": ("行政处罚事先告知书", "告", frozenset(CaseState) - {CaseState.LEAD, CaseState.FILED, CaseState.INVESTIGATING,
                                                               CaseState.DROPPED}),
    "hearing_notice": ("听证通知书", "听", frozenset({CaseState.HEARING_SCHEDULED, CaseState.HEARING_HELD})),
    "decision": ("行政处罚决定书", "罚", frozenset({CaseState.DECIDED, CaseState.SERVED, CaseState.PAID,
                                                   CaseState.ENFORCEMENT, CaseState.CLOSED})),
    "inspection_record": ("现场检查笔录", "检", None),
}


def allocate(session: Session, *, unit_id: int, year: int, doc_type: str) -> str:
    """Next number for (unit, year, type), gap-free: the counter row is locked by an UPDATE."""
    if doc_type not in TYPES:
        raise UnknownDocument(doc_type=doc_type)
    bump = (sa.update(DocumentCounter).where(DocumentCounter.unit_id == unit_id, DocumentCounter.year == year,
                                            DocumentCounter.doc_type == doc_type)
            .values(last=DocumentCounter.last + 1).returning(DocumentCounter.last))
    bumped = session.execute(bump).scalar()
    if bumped is None:
        try:
            with session.begin_nested():
                session.add(DocumentCounter(unit_id=unit_id, year=year, doc_type=doc_type, last=1))
            bumped = 1
        except IntegrityError:  # another transaction made the first number of the year: take the next
            bumped = session.execute(bump).scalar_one()
    return f"商环{TYPES[doc_type][1]}〔{year}〕{unit_id:02d}-{bumped:04d}号"


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    path = current_app.config.get("DOCUMENT_FONT_FILE") if has_app_context() else None
    if path:
        if "CaseFont" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("CaseFont", path))
        return "CaseFont"
    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def _money(amount: int | None) -> str:
    return "—" if amount is None else f"{amount:,} 元"


def _lines(session: Session, case: Case, doc_type: str, number: str, on: dt.date) -> list[str]:
    party = [f"当事人：{case.party_name}", f"统一社会信用代码：{case.party_uscc or '—'}",
             f"地址：{case.party_address or '—'}"]
    head = [f"案号：{case.number or '—'}", *party]
    if doc_type == "notice":
        return head + [
            f"经调查，你（单位）{case.facts or case.title}。",
            f"以上事实违反了{case.legal_basis or '—'}的规定。",
            f"依据行政处罚法第四十四条，本机关拟对你（单位）作出如下行政处罚：罚款 {_money(case.notified_fine)}；"
            f"{'、'.join(case.notified_measures or []) or '无其他处罚'}。",
            "你（单位）有权进行陈述和申辩。" + ("你（单位）有权要求听证，应当在收到本告知书之日起五个工作日内提出。"
                                      if case.hearing_rights else ""),
            "逾期视为放弃上述权利。"]
    if doc_type == "hearing_notice":
        presider = session.get(User, case.hearing_presider_id) if case.hearing_presider_id else None
        return head + [f"根据你（单位）的申请，本机关定于 {case.hearing_date} 举行听证会。",
                       "依据行政处罚法第六十四条，本通知于听证七个工作日前送达。",
                       f"听证主持人：{presider.display_name if presider else '—'}（非本案调查人员）。",
                       "你（单位）可以委托一至二人代理参加听证；无正当理由拒不出席的，视为放弃听证权利。"]
    if doc_type == "decision":
        return head + [
            f"违法事实：{case.facts or case.title}",
            f"法律依据：{case.legal_basis or '—'}",
            f"处罚决定：罚款 {_money(case.decided_fine)}；{'、'.join(case.measures or []) or '无其他处罚'}。",
            "请于收到本决定书之日起十五日内缴纳罚款。逾期不缴纳的，每日按罚款数额的百分之三加处罚款（行政处罚法第七十二条）。",
            "如不服本决定，可以在收到本决定书之日起六十日内申请行政复议，或者在六个月内依法提起行政诉讼。",
            f"决定日期：{case.decision_date or on}"]
    acts = session.scalars(sa.select(InvestigativeAct).where(InvestigativeAct.case_id == case.id,
                                                             InvestigativeAct.kind == "on_site")).all()
    body = [f"{a.act_date}：{a.summary}；执法人员执法证号 "
            + "、".join(i["certificate_number"] for i in a.inspectors) for a in acts] or ["（无现场检查记录）"]
    return head + ["检查情况："] + body + ["执法人员已出示执法证件，告知当事人申请回避的权利。"]


def render(session: Session, case: Case, doc_type: str, number: str, on: dt.date) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = _font()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(f"{TYPES[doc_type][0]} {number}")
    width, height = A4
    pdf.setFont(font, 18)
    pdf.drawCentredString(width / 2, height - 70, "商洛市生态环境局")
    pdf.drawCentredString(width / 2, height - 96, TYPES[doc_type][0])
    pdf.setFont(font, 11)
    pdf.drawRightString(width - 60, height - 120, number)
    y = height - 150
    for line in _lines(session, case, doc_type, number, on):
        for chunk in _wrap(line, 38):
            if y < 60:
                pdf.showPage()
                pdf.setFont(font, 11)
                y = height - 60
            pdf.drawString(60, y, chunk)
            y -= 18
    pdf.drawRightString(width - 60, max(y - 30, 40), f"商洛市生态环境局（印章）  {on.isoformat()}")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    return [text[i:i + width] for i in range(0, len(text), width)] or [""]


def generate(session: Session, case: Case, doc_type: str, *, by_user_id: int | None, on: dt.date) -> CaseDocument:
    """Number, render and store one document; its SHA-256 goes to the audit log (rule 14)."""
    if doc_type not in TYPES or doc_type == "case":
        raise UnknownDocument(doc_type=doc_type)
    if case.state is CaseState.ARCHIVED:
        raise Archived(case=case.id, rule="环境行政处罚办法 (2010) 第70条")
    states = TYPES[doc_type][2]
    if states is not None and case.state not in states:
        raise DocumentNotReady(doc_type=doc_type, state=case.state.value)
    number = allocate(session, unit_id=case.unit_id, year=on.year, doc_type=doc_type)
    content = render(session, case, doc_type, number, on)
    digest = hashlib.sha256(content).hexdigest()
    document = CaseDocument(case_id=case.id, doc_type=doc_type, number=number, sha256=digest, content=content,
                            created_by=by_user_id)
    session.add(document)
    session.flush()
    audit.record(session, "web:case_document:generated", subjects={"case": case.id, "case_document": document.id},
                 payload={"doc_type": doc_type, "number": number, "sha256": digest, "bytes": len(content)})
    return document


