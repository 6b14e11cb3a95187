"""Supervisors: directory and import, roster, sampling rules and plans, the draw ceremony,
inspections, sync health and conflicts, the unit's deadlines."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from server.core import errors
from server.core.access import MANAGERS, Role, current_principal, require
from server.core.bulk import collector_paused
from server.core.calendar import local_today
from server.extensions import db
from server.modules.deadlines import operations as deadlines
from server.modules.directory import operations as directory
from server.modules.directory import tasks as directory_tasks
from server.modules.directory.models import DirectoryImport, RiskClass
from server.modules.draws import operations as draws
from server.modules.draws import schemas as draws_schemas
from server.modules.draws.models import (AnnualPlan, Basis, Draw, Level, Period, RedrawReason, RedrawRequest,
                                         SamplingRule)
from server.modules.devices import operations as devices
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionStatus
from server.modules.roster.models import ConflictDeclaration
from server.modules.sync import conflicts as sync_conflicts
from server.modules.sync import operations as sync
from server.modules.sync.models import ConflictStatus, InspectionRecord, SyncConflict
from server.modules.users import operations as users
from server.modules.users.models import Region, Unit, UnitKind, User
from server.web import console, i18n
from server.web.common import (form_date, form_int, load_form, me, paged, paged_list, render_error, required, run,
                               run_keeping)


# ---- directory ---------------------------------------------------------------------------------

@console.get("/directory", endpoint="directory")
def directory_page() -> Any:
    """名录库检索 / Search the target directory"""
    q = (request.args.get("q") or "").strip()
    region = request.args.get("region") or None
    risk = request.args.get("risk") or None
    return render_template("console/directory.html", **_directory_context(q, region, risk))


def _directory_context(q: str = "", region: str | None = None, risk: str | None = None) -> dict[str, Any]:
    imports = sa.select(DirectoryImport).order_by(DirectoryImport.created_at.desc(), DirectoryImport.id)
    return {"page": paged(directory.search(q or None, region_code=region, risk_class=risk)), "q": q, "region": region,
            "risk": risk, "regions": db.session.scalars(sa.select(Region).order_by(Region.code)).all(),
            "imports": paged(imports, per_page=10, param="imports_page")}


@console.post("/directory/import")
def directory_import() -> Any:
    """导入 CSV/XLSX（后台执行，页面显示进度与逐行错误报告）/ Import CSV or XLSX in the background, with progress and the row error report"""
    upload = request.files.get("file")

    def start() -> Any:
        if upload is None or not upload.filename:
            raise errors.ValidationFailed(fields={"file": ["请选择文件 / choose a file"]})
        job = directory.request_import(db.session, by_user_id=current_principal().user_id, filename=upload.filename,
                                       content=upload.read(), accept_valid=request.form.get("accept_valid") == "1")
        directory_tasks.send_import(db.session, job.id)  # runs once this commits
        return job

    job, error = run(start)
    if error is not None:
        return render_error("console/directory.html", error, **_directory_context())
    return redirect(url_for("console.directory_import_status", import_id=job.id))


@console.get("/directory/imports/<import_id>")
def directory_import_status(import_id: str) -> Any:
    """导入进度与逐行错误报告 / An import's progress and its row error report"""
    job = directory.get_import(db.session, import_id)
    template = "console/_import_status.html" if request.headers.get("HX-Request") else "console/directory_import.html"
    return render_template(template, job=job, requester=db.session.get(User, job.requested_by))


# ---- roster ------------------------------------------------------------------------------------

@console.get("/roster")
def roster() -> Any:
    """执法人员名册：执法证到期提醒与利害关系 / Inspectors, certificate expiry warnings, conflicts"""
    today = local_today()
    people = db.session.scalars(users.scoped_users(db.session, current_principal())
                                .where(User.role.in_([Role.INSPECTOR, Role.SUPERVISOR]))
                                .options(selectinload(User.certificates))).all()
    conflicts = db.session.scalars(sa.select(ConflictDeclaration).where(
        ConflictDeclaration.user_id.in_([p.id for p in people]), ConflictDeclaration.withdrawn_at.is_(None))).all()
    by_user: dict[int, list[ConflictDeclaration]] = {}
    for c in conflicts:
        by_user.setdefault(c.user_id, []).append(c)
    rows = []
    for person in people:
        cert = users.valid_certificate(person, today)
        latest = max(person.certificates, key=lambda c: c.valid_until, default=None)
        warn = "none" if cert is None else "soon" if cert.valid_until <= today + dt.timedelta(days=90) else "ok"
        rows.append({"user": person, "cert": cert or latest, "warn": warn, "conflicts": by_user.get(person.id, [])})
    order = {"none": 0, "soon": 1, "ok": 2}
    rows.sort(key=lambda r: (order[r["warn"]], r["user"].id))
    return render_template("console/roster.html", page=paged_list(rows), today=today)


# ---- sampling rules and plans --------------------------------------------------------------------

@console.get("/sampling")
def sampling() -> Any:
    """抽查规则与年度计划 / Sampling rules and annual plans"""
    return render_template("console/sampling.html", **_sampling_context())


RULE_FIELDS = ("level", "region_code", "category", "basis", "value", "period", "positive_list_factor",
               "exclude_recent_periods", "cap_per_year", "coverage_goal", "effective_from", "effective_until", "source")


def _sampling_context(rule_form: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rules (newest version first within each level, region and category) and the plans, each
    paged; the new-rule form is filled from ``?version_of=<rule>`` to add that rule's next version."""
    version_of = request.args.get("version_of", "")
    if rule_form is None and version_of.isdigit():
        base = db.session.get(SamplingRule, int(version_of))
        if base is not None:
            rule_form = {name: _form_value(getattr(base, name)) for name in RULE_FIELDS}
            rule_form.update(effective_from="", effective_until="", source="")
    rules = sa.select(SamplingRule).order_by(SamplingRule.level, SamplingRule.region_code, SamplingRule.category,
                                             SamplingRule.effective_from.desc())
    plans = sa.select(AnnualPlan).order_by(AnnualPlan.year.desc(), AnnualPlan.id)
    return {"rules": paged(rules), "plans": paged(plans, param="plans_page"),
            "regions": db.session.scalars(sa.select(Region).order_by(Region.code)).all(),
            "units": db.session.scalars(sa.select(Unit).where(Unit.kind != UnitKind.OFFICE).order_by(Unit.id)).all(),
            "categories": [c.value for c in RiskClass], "levels": [v.value for v in Level],
            "bases": [v.value for v in Basis], "periods": [v.value for v in Period],
            "rule_form": rule_form or {}, "version_of": version_of if rule_form else "",
            "authors": {u.id: u for u in db.session.scalars(sa.select(User).where(User.role.in_(
                [Role.SUPERVISOR, Role.ADMIN])))}}


def _form_value(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


@console.post("/sampling/rules")
def rule_new() -> Any:
    """新增抽查规则或其新版本（按生效日期）/ Add a sampling rule, or a new version of one from a date"""
    def add() -> SamplingRule:
        loaded = load_form(draws_schemas.SamplingRuleSchema(),
                           {name: request.form.get(name, "").strip() for name in RULE_FIELDS})
        if loaded.get("positive_list_factor") is None:
            loaded.pop("positive_list_factor", None)
        return draws.add_rule(db.session, me(), **loaded)

    rule, error = run(add)
    if error is not None:
        return render_error("console/sampling.html", error, failed="rule",
                            **_sampling_context(rule_form=request.form.to_dict()))
    flash(f"{'抽查规则已保存' if i18n.current() == 'zh' else 'Sampling rule saved'} ✓ #{rule.id}")
    return redirect(url_for("console.sampling"))


@console.post("/sampling/plans")
def plan_new() -> Any:
    """编制年度现场检查计划（草稿，待另一负责人批准）/ Draft an annual plan (another manager approves it)"""
    principal = current_principal()

    def create() -> AnnualPlan:
        form = request.form
        data = {"year": form.get("year", "").strip(), "title": form.get("title", "").strip(),
                "cap_per_enterprise": form.get("cap_per_enterprise", "").strip(),
                "basis": form.get("basis", "").strip(),
                "planned": {c.value: form.get(f"planned_{c.value}", "").strip() or "0" for c in RiskClass}}
        if principal.role == Role.ADMIN.value and form.get("unit_id"):
            data["unit_id"] = form["unit_id"]  # a supervisor plans for their own unit only
        return draws.create_plan(db.session, me(), **load_form(draws_schemas.AnnualPlanSchema(), data))

    plan, error = run(create)
    if error is not None:
        return render_error("console/sampling.html", error, failed="plan", **_sampling_context())
    flash(f"{'年度计划草稿已保存，待另一负责人批准' if i18n.current() == 'zh' else 'Plan drafted; another manager approves it'}"
          f" ✓ {plan.year}")
    return redirect(url_for("console.sampling"))


@console.post("/sampling/plans/<int:plan_id>/approve")
def plan_approve(plan_id: int) -> Any:
    """批准年度计划（须另一负责人）/ Approve a plan (a manager other than its author)"""
    _, error = run(lambda: draws.approve_plan(db.session, plan_id, me()))
    if error is not None:
        return render_error("console/sampling.html", error, **_sampling_context())
    return redirect(url_for("console.sampling"))


# ---- draws ---------------------------------------------------------------------------------------

def _own_draw(found: Draw) -> bool:
    """As the draws API: a supervisor acts only on their own unit's draws."""
    principal = current_principal()
    return principal.role != Role.SUPERVISOR.value or principal.unit_id == found.unit_id


def _draw(draw_id: str) -> Draw:
    found = draws.get(db.session, draw_id)
    require(_own_draw(found), "another unit's draw")
    return found


def _pending_redraws() -> list[tuple[RedrawRequest, Draw]]:
    """Re-draw requests awaiting a second manager: the unit's own for a supervisor, all for an admin
    (only a manager of the drawing unit approves one, rule 7)."""
    principal = current_principal()
    if principal.role not in MANAGERS:
        return []
    query = (sa.select(RedrawRequest, Draw).join(Draw, Draw.id == RedrawRequest.draw_id)
             .where(RedrawRequest.approved_at.is_(None)).order_by(RedrawRequest.created_at, RedrawRequest.id))
    if principal.role == Role.SUPERVISOR.value:
        query = query.where(Draw.unit_id == principal.unit_id)
    return [(row.RedrawRequest, row.Draw) for row in db.session.execute(query)]


def _names(user_ids: set[int | None]) -> dict[int, str]:
    wanted = user_ids - {None}
    if not wanted:
        return {}
    return dict(db.session.execute(sa.select(User.id, User.display_name).where(User.id.in_(wanted))).all())


def _draws_context() -> dict[str, Any]:
    pending = _pending_redraws()
    return {"page": paged(sa.select(Draw).order_by(Draw.created_at.desc(), Draw.id)),
            "regions": db.session.scalars(sa.select(Region).order_by(Region.code)).all(),
            "plans": db.session.scalars(sa.select(AnnualPlan).order_by(AnnualPlan.year.desc())).all(),
            "today": local_today(), "pending_redraws": pending,
            "people": _names({asked.requested_by for asked, _ in pending})}


@console.get("/draws", endpoint="draws")
def draws_page() -> Any:
    """双随机抽取 / Draws"""
    return render_template("console/draws.html", **_draws_context())



@console.post("/draws")
def draw_new() -> Any:
    """发起抽取 / Open a draw"""
    def create() -> Draw:
        required("title", "period_label", "window_start", "window_end")
        codes = request.form.getlist("region_codes")
        if not codes:
            raise errors.ValidationFailed(fields={"region_codes": ["至少一个 / at least one"]})
        plan = request.form.get("plan_id")
        return draws.create(db.session, me(), title=request.form["title"].strip(), region_codes=codes,
                            level=Level(request.form.get("level", "county")),
                            period_label=request.form["period_label"].strip(),
                            window_start=form_date("window_start"), window_end=form_date("window_end"),
                            team_size=form_int("team_size") if request.form.get("team_size") else 2,
                            plan_id=int(plan) if plan else None)

    created, error = run(create)
    if error is not None:
        return render_error("console/draws.html", error, **_draws_context())
    return redirect(url_for("console.draw", draw_id=created.id))


@console.get("/draws/<draw_id>")
def draw(draw_id: str) -> Any:
    """抽取仪式：承诺、冻结、公开值、揭示、执行、公开 / The draw ceremony, step by step"""
    return render_template("console/draw.html", **_draw_context(_draw(draw_id)))


def _draw_context(found: Draw) -> dict[str, Any]:
    principal = current_principal()
    manager = principal.role in MANAGERS
    mine = next((p for p in found.parties if p.user_id == principal.user_id), None)
    assignments = draws.outcome(found)["result"]["assignments"] if manager and found.result_hash else None
    # rule 7: the pending re-draw request, and the approved ones linking this draw to the one before and after
    requests = db.session.scalars(sa.select(RedrawRequest).where(sa.or_(
        RedrawRequest.draw_id == found.id, RedrawRequest.new_draw_id == found.id))).all()
    pending = next((r for r in requests if r.approved_at is None), None)
    superseded_by = next((r for r in requests if r.draw_id == found.id and r.approved_at is not None), None)
    redrawn_from = next((r for r in requests if r.new_draw_id == found.id), None)
    return {"draw": found, "manager": manager, "mine": mine, "party": f"user:{principal.user_id}",
            "seed": found.seed if draws.discloses_seed(principal, found) else None,
            "assignments": assignments, "redraw": pending, "superseded_by": superseded_by,
            "redrawn_from": redrawn_from, "redraw_reasons": [r.value for r in RedrawReason],
            "people": _names({r.requested_by for r in requests} | {r.approved_by for r in requests})}


STEPS = {
    "commit": lambda d: draws.commit(db.session, d, me(), (request.form.get("commitment") or "").strip().lower()),
    "freeze": lambda d: draws.freeze(db.session, d, me()),
    "public_value": lambda d: draws.set_public_value(db.session, d, (request.form.get("public_value") or "").strip()),
    "reveal": lambda d: draws.reveal(db.session, d, me(), request.form.get("secret") or ""),
    "run": lambda d: draws.run(db.session, d, me()),
    "publish": lambda d: draws.publish(db.session, d),
}
PARTY_STEPS = {"commit", "reveal"}  # observers (legal reviewers) take these; the rest are the managers'


@console.post("/draws/<draw_id>/<action>")
@collector_paused()  # freezing and running a draw handle every target of the directory
def draw_step(draw_id: str, action: str) -> Any:
    """抽取仪式的一步 / One step of the ceremony"""
    if action not in STEPS:
        raise errors.NotFound(f"unknown step {action}")
    require(action in PARTY_STEPS or current_principal().role in MANAGERS,
            f"{action}: the supervisor takes this step")
    found = _draw(draw_id)
    if action == "public_value":
        required("public_value")
    # a wrong reveal is kept in the audit log even though the step fails
    _, error = (run_keeping if action == "reveal" else run)(lambda: STEPS[action](found))
    if error is not None:
        return render_error("console/draw.html", error, **_draw_context(_draw(draw_id)))
    flash(f"{action} ✓")
    return redirect(url_for("console.draw", draw_id=draw_id))


@console.post("/draws/<draw_id>/redraw-requests")
def redraw_request(draw_id: str) -> Any:
    """申请重新抽取（须说明理由，另一名负责人批准）/ Ask for a re-draw, with a reason; another manager approves it"""
    found = _draw(draw_id)

    def ask() -> RedrawRequest:
        loaded = load_form(draws_schemas.RedrawRequestSchema(),
                           {name: (request.form.get(name) or "").strip() for name in ("reason_code", "reason")})
        return draws.request_redraw(db.session, found, me(), **loaded)

    _, error = run(ask)
    if error is not None:
        return render_error("console/draw.html", error, failed="redraw", **_draw_context(_draw(draw_id)))
    flash("重新抽取申请已提交，待本单位另一名负责人批准" if i18n.current() == "zh"
          else "Re-draw requested; another manager of the unit approves it")
    return redirect(url_for("console.draw", draw_id=draw_id))


@console.post("/redraw-requests/<int:request_id>/approve")
def redraw_approve(request_id: int) -> Any:
    """本单位另一名负责人批准重新抽取，原抽取作废 / Another manager of the unit approves; the old draw is superseded"""
    new, error = run(lambda: draws.approve_redraw(db.session, request_id, me()))
    if error is not None:
        asked = db.session.get(RedrawRequest, request_id)
        old = db.session.get(Draw, asked.draw_id) if asked else None
        if old is not None and _own_draw(old):
            return render_error("console/draw.html", error, **_draw_context(old))
        return render_error("console/draws.html", error, **_draws_context())
    flash(f"{'已批准重新抽取，新的抽取' if i18n.current() == 'zh' else 'Re-draw approved; new draw, attempt'}"
          f" #{new.attempt} ✓")
    return redirect(url_for("console.draw", draw_id=new.id))


# ---- inspections ---------------------------------------------------------------------------------

@console.get("/inspections", endpoint="inspections")
def inspections_page() -> Any:
    """检查任务（按状态）/ Inspections by status"""
    status = request.args.get("status") or None
    query = inspections.visible(db.session, current_principal()).options(selectinload(Inspection.target))
    if status in {s.value for s in InspectionStatus}:
        query = query.where(Inspection.status == InspectionStatus(status))
    counts = dict(db.session.execute(
        sa.select(Inspection.status, sa.func.count()).where(Inspection.id.in_(
            inspections.visible(db.session, current_principal()).with_only_columns(Inspection.id).order_by(None)))
        .group_by(Inspection.status)).all())
    return render_template("console/inspections.html", page=paged(query), status=status,
                           counts={k.value: v for k, v in counts.items()}, statuses=[s.value for s in InspectionStatus])



# ---- sync health and conflicts -------------------------------------------------------------------

def _sync_context() -> dict[str, Any]:
    principal = current_principal()
    conflicts = paged(sync_conflicts.conflicts_visible(principal).where(SyncConflict.status == ConflictStatus.OPEN),
                      per_page=20, param="conflicts_page")
    records = {r.id: r for r in db.session.scalars(sa.select(InspectionRecord).where(
        InspectionRecord.id.in_([c.record_id for c in conflicts["rows"]])))}
    people = {u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(
        {v.get("user_id") for c in conflicts["rows"] for v in c.values if v.get("user_id")})))}
    labels = {}
    for record in records.values():
        labels.update({f["name"]: f.get("label_zh", f["name"]) for f in sync.template(record.template_code)["fields"]})
    return {"devices": paged_list(sync.health(db.session, principal), param="devices_page"), "conflicts": conflicts,
            "people": people, "labels": labels}


@console.get("/sync", endpoint="sync")
def sync_page() -> Any:
    """设备同步状态与冲突处理 / Sync health per device and the conflict queue"""
    return render_template("console/sync.html", **_sync_context())



@console.post("/sync/conflicts/<int:conflict_id>")
def conflict_resolve(conflict_id: int) -> Any:
    """选择或合并冲突值并说明理由 / Choose or merge the values, with a reason"""
    principal = current_principal()

    def resolve() -> Any:
        required("reason")
        conflict = sync_conflicts.get_conflict(db.session, principal, conflict_id)
        choice = request.form.get("choice", "")
        made_against = request.form.get("record_version", "")
        if not made_against.isdigit():
            raise errors.ValidationFailed(fields={"record_version": ["必填 / required"]})
        version = int(made_against)
        if choice == "current":
            record = db.session.get(InspectionRecord, conflict.record_id)
            return sync_conflicts.resolve(db.session, conflict, by=me(), reason=request.form["reason"].strip(),
                                record_version=version, value=record.fields.get(conflict.field))
        if choice == "merge":
            required("merged")
            record = db.session.get(InspectionRecord, conflict.record_id)
            spec = {f["name"]: f for f in sync.template(record.template_code)["fields"]}[conflict.field]
            text = request.form["merged"]
            try:
                value = text if spec["type"] in ("string", "text", "datetime", "sha256") else json.loads(text)
            except ValueError:
                raise errors.ValidationFailed(fields={"merged": ["JSON"]}) from None
            return sync_conflicts.resolve(db.session, conflict, by=me(), reason=request.form["reason"].strip(),
                                record_version=version, value=value)
        if not choice.isdigit():
            raise errors.ValidationFailed(fields={"choice": ["选择一个值或合并 / choose a value or merge"]})
        return sync_conflicts.resolve(db.session, conflict, by=me(), reason=request.form["reason"].strip(),
                            record_version=version, choice=int(choice))

    _, error = run(resolve)
    if error is not None:
        return render_error("console/sync.html", error, **_sync_context())
    flash("✓")
    return redirect(url_for("console.sync"))


@console.post("/devices/<device_id>/reenrol")
def device_reenrol(device_id: str) -> Any:
    """离线宽限期过后重新登记设备：显示一次性登记令牌 / Re-enrol a device after the offline grace period"""
    principal = current_principal()

    def reenrol() -> Any:
        required("reason")
        device = devices.get_device(db.session, device_id)
        if principal.role != Role.ADMIN.value and device.user.unit_id != principal.unit_id:
            raise devices.DeviceNotFound()
        return devices.reenrol(db.session, device, by=me(), reason=request.form["reason"].strip(),
                               public_key_b64=(request.form.get("public_key") or "").strip() or None)

    result, error = run(reenrol)
    if error is not None:
        return render_error("console/sync.html", error, **_sync_context())
    return render_template("console/sync.html", enrolment=result, **_sync_context())


# ---- deadlines -----------------------------------------------------------------------------------

@console.get("/deadlines", endpoint="deadlines")
def deadlines_page() -> Any:
    """本单位期限看板 / The unit's deadlines dashboard"""
    principal = current_principal()
    unit_id = None if principal.role == Role.ADMIN.value else principal.unit_id
    horizon = request.args.get("days", "14")
    board = deadlines.dashboard(db.session, unit_id=unit_id, today=local_today(),
                                horizon_days=int(horizon) if horizon.isdigit() else 14)
    return render_template("console/deadlines.html", board=board)

