"""The public disclosure portal (行政执法公示): no login; only what the law says must be disclosed."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response, render_template, request

from server.core.calendar import local_today
from server.extensions import db
from server.modules.audit import checkpoints
from server.modules.cases.models import Case, PartyKind
from server.modules.directory import operations as directory
from server.modules.directory.models import Target
from server.modules.disclosure.models import ResultDisclosure, SamplingItem
from server.modules.draws import algorithm
from server.modules.draws import operations as draws
from server.modules.draws import rules
from server.modules.draws.models import AnnualPlan, Draw, DrawStatus, PlanStatus, SamplingRule
from server.modules.users import operations as users
from server.modules.users.models import Role, Unit, User
from server.web import portal
from server.web.common import paged, paged_list

# 政府信息公开: no personal identity numbers or phone numbers of natural persons in what is published.
_ID_NUMBER = re.compile(r"\b\d{17}[\dXx]\b|\b\d{15}\b")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")


def redact(text: str | None) -> str:
    return _PHONE.sub("[电话已隐去]", _ID_NUMBER.sub("[身份证号已隐去]", text or ""))


def public_party(case: Case) -> str:
    """Organisations are named; a natural person is shown by surname only."""
    if case.party_kind is PartyKind.CITIZEN:
        return (case.party_name or "")[:1] + "某"
    return case.party_name


@portal.get("/")
def home() -> Any:
    """公示首页 / Public portal"""
    return render_template("portal/home.html")


@portal.get("/public/staff")
def staff() -> Any:
    """执法人员及执法证号 / Enforcement staff with certificate numbers"""
    today = local_today()
    people = db.session.scalars(sa.select(User).where(User.active.is_(True), User.role.in_(
        [Role.INSPECTOR, Role.SUPERVISOR])).order_by(User.unit_id, User.id)).all()
    units = {u.id: u for u in db.session.scalars(sa.select(Unit))}
    rows = [(p, units[p.unit_id], cert) for p in people if (cert := users.valid_certificate(p, today))]
    # 亮证: the field app's QR code opens this page for one certificate number
    number = (request.args.get("certificate") or "").strip()[:40]
    if number:
        rows = [row for row in rows if row[2].number == number]
    return render_template("portal/staff.html", page=paged_list(rows), total=len(rows), today=today,
                           certificate=number)


@portal.get("/public/sampling")
def sampling() -> Any:
    """抽查事项清单、年度计划与现行比例 / Sampling items, plans and the rules in force"""
    today = local_today()
    items = paged(sa.select(SamplingItem).where(SamplingItem.active.is_(True)).order_by(SamplingItem.code),
                  param="items_page")
    plans = paged(sa.select(AnnualPlan).where(AnnualPlan.status == PlanStatus.APPROVED)
                  .order_by(AnnualPlan.year.desc(), AnnualPlan.id), param="plans_page")
    in_force = [r for r in db.session.scalars(sa.select(SamplingRule).order_by(SamplingRule.id))
                if rules.applies(r, r.level.value, r.region_code, r.category.value, today)]
    return render_template("portal/sampling.html", items=items, plans=plans, rules=in_force)


@portal.get("/public/draws", endpoint="draws")
def draws_list() -> Any:
    """抽取记录 / Draws (results once published)"""
    return render_template("portal/draws.html", page=paged(sa.select(Draw).order_by(Draw.created_at.desc(), Draw.id)))


@portal.get("/public/draws/<draw_id>")
def draw(draw_id: str) -> Any:
    """一次抽取的输入、结果与复核方法 / One draw: inputs, result and how to verify it"""
    found = draws.get(db.session, draw_id)
    published = found.status is DrawStatus.PUBLISHED
    rows = []
    if published:
        doc = draws.document(found)
        uscc = {row[0]: row[1] for row in doc["targets"]}
        certs = {row[0]: row[1] for row in doc["inspectors"]}
        rows = [(uscc.get(a["target"]), [certs.get(i) for i in a["team"]]) for a in doc["result"]["assignments"]]
    return render_template("portal/draw.html", draw=found, rows=rows, published=published,
                           redraws=draws.redraws_of(db.session, found),
                           changes=draws.changes_after_run(db.session, found) if published else [])


@portal.get("/public/draws/<draw_id>/draw.json")
def draw_document(draw_id: str) -> Any:
    """下载抽取文件 / Download the draw document"""
    found = draws.get(db.session, draw_id)
    if found.status is not DrawStatus.PUBLISHED:
        raise draws.NotPublished()
    return Response(draws.document_bytes(found), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="draw-{found.id}.json"'})


@portal.get("/public/draw-verifier.py")
def draw_verifier() -> Any:
    """独立复核脚本（仅用 Python 标准库）/ The standalone verifier (Python standard library only)"""
    source = Path(algorithm.__file__).read_bytes()
    return Response(source, mimetype="text/x-python",
                    headers={"Content-Disposition": 'attachment; filename="draw_verify.py"'})


@portal.get("/public/decisions")
def decisions() -> Any:
    """已公开的行政处罚决定（已隐去个人身份证号、电话）/ Published penalty decisions, redacted"""
    query = sa.select(Case).where(Case.published_on.is_not(None)).order_by(Case.published_on.desc(), Case.id)
    return render_template("portal/decisions.html", page=paged(query), redact=redact, party=public_party)


@portal.get("/public/audit")
def checkpoint() -> Any:
    """最新签名检查点 / The latest signed audit checkpoint"""
    latest = checkpoints.latest_checkpoint(db.session)
    note = checkpoints.served_note(db.session, latest) if latest else None
    return render_template("portal/checkpoint.html", checkpoint=latest, note=note)


@portal.get("/public/enterprises")
def enterprises() -> Any:
    """企业执法记录查询 / Look up an enterprise"""
    q = (request.args.get("q") or "").strip()
    page = paged(directory.search(q).where(Target.active.is_(True)).order_by(Target.id)) if len(q) >= 2 else None
    return render_template("portal/enterprises.html", q=q, page=page)


def _quarter(day: dt.date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@portal.get("/public/enterprises/<int:target_id>")
def enterprise(target_id: int) -> Any:
    """企业按季度的执法记录（仅公开信息）/ An enterprise's quarterly record, from published information only"""
    target = directory.get(db.session, target_id)
    quarters: dict[str, dict[str, Any]] = {}

    def quarter(day: dt.date) -> dict[str, Any]:
        return quarters.setdefault(_quarter(day), {"inspections": 0, "violations": 0, "penalties": 0, "fines": 0})

    results = db.session.scalars(sa.select(ResultDisclosure).where(ResultDisclosure.target_id == target.id)
                                 .order_by(ResultDisclosure.inspected_on)).all()
    for r in results:
        q = quarter(r.inspected_on)
        q["inspections"] += 1
        q["violations"] += r.outcome.value in ("rectification_ordered", "case_filed", "transferred")
    published = db.session.scalars(sa.select(Case).where(Case.target_id == target.id, Case.published_on.is_not(None))
                                   .order_by(Case.decision_date)).all()
    for c in published:
        q = quarter(c.decision_date or c.published_on)
        q["penalties"] += 1
        q["fines"] += c.decided_fine or 0
    today = local_today()
    keys = []  # the last twelve quarters, newest first, so a clean record is shown as clean
    year, qn = today.year, (today.month - 1) // 3 + 1
    for _ in range(12):
        keys.append(f"{year}Q{qn}")
        year, qn = (year, qn - 1) if qn > 1 else (year - 1, 4)
    table = [(k, quarters.get(k, {"inspections": 0, "violations": 0, "penalties": 0, "fines": 0})) for k in keys]
    return render_template("portal/enterprise.html", target=target, table=table, redact=redact, party=public_party,
                           results=paged_list(results[::-1], param="results_page"),
                           cases=paged_list(published[::-1], param="cases_page"))
