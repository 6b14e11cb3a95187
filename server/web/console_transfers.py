"""Police and prosecutors (and the bureau): transferred cases, receipts, supplement requests,
decisions, evidence packages with build progress, downloads and the verification report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for

from server.core.access import current_principal, require
from server.core.db import utcnow
from server.extensions import db
from server.modules.transfers import operations as ops
from server.modules.transfers import package as package_ops
from server.modules.transfers import tasks
from server.modules.transfers import verify as package_verify
from server.modules.transfers.models import EvidencePackage, Transfer, TransferEvent
from server.modules.transfers.workflow import STEPS
from server.web import console, i18n
from server.web.common import me, paged, render_error, run

# Form fields each step reads (the operation's guard validates them). Steps that need what a form
# here does not collect (a team of certified officers, a material file) are taken through the API.
STEP_FIELDS = {
    "sign_receipt": ("typed_confirmation",), "request_supplement": ("items", "note"), "supplement": ("note",),
    "extend_filing_period": ("period", "approved_by", "reason"), "decide": ("decision", "reason"),
    "notify_agency": ("notice_number",), "decide_reconsideration": ("outcome", "reasons"),
    "supervision_opinion": ("reason",), "notify_non_prosecution": ("reason",), "procuratorate_recommends": ("reason",),
    "refuse": ("reason",), "request_reconsideration": ("reason",), "request_supervision": ("reason",),
    "resume_admin_penalty": ("reason",), "hand_over_items": ("items", "note"), "close": ("note",),
    "return_for_supplementary_investigation": ("outline",), "complete_supplementary_investigation": ("note",),
    "consult": ("to", "question"), "answer_consultation": ("consultation", "answer"),
    "request_early_involvement": ("reason",),
    "record_platform_entry": ("reference",),
}
API_ONLY_STEPS = frozenset({"form_team", "add_material"})
LIST_FIELDS = ("items",)  # one entry per line
CHOICES = {"decision": {"criminal": ("filed", "not_filed", "forwarded", "returned", "withdrawn"),
                        "detention": ("detained", "rejected")},
           "outcome": ("upheld", "reversed"), "period": ("7", "30"), "to": ("police", "prosecutor", "bureau")}


def _transfer(transfer_id: str) -> tuple[Transfer, set[str]]:
    transfer = ops.get(db.session, transfer_id)
    return transfer, ops.require_visible(db.session, current_principal(), transfer)


@console.get("/transfers")
def transfers() -> Any:
    """移送案件与期限 / Transferred cases and their clocks"""
    principal = current_principal()
    return render_template("console/transfers.html", page=paged(ops.visible(db.session, principal)),
                           board=ops.dashboard(db.session, principal, utcnow()))


def _transfer_context(transfer: Transfer, found: set[str]) -> dict[str, Any]:
    now = utcnow()
    events = db.session.scalars(sa.select(TransferEvent).where(TransferEvent.transfer_id == transfer.id)
                                .order_by(TransferEvent.seq)).all()
    packages = db.session.scalars(sa.select(EvidencePackage).where(EvidencePackage.transfer_id == transfer.id)
                                  .order_by(EvidencePackage.created_at)).all()
    steps = [s for s in STEPS.values() if transfer.kind in s.kinds and transfer.state in s.sources
             and s.sides & found and s.action not in API_ONLY_STEPS]
    return {"transfer": transfer, "sides": found, "events": events, "packages": packages, "steps": steps,
            "fields": STEP_FIELDS, "choices": CHOICES, "materials": ops.materials(db.session, transfer),
            "missing": ops.missing_documents(db.session, transfer),
            "evidence": ops.evidence_items(db.session, transfer.case_id),
            "acks": ops.acknowledgements(db.session, transfer),
            "clocks": [ops.deadline_view(r, now, transfer) for r in ops.transfer_deadlines(db.session, transfer)]}


@console.get("/transfers/<transfer_id>")
def transfer(transfer_id: str) -> Any:
    """一件移送案件（接收方查看即留痕）/ One transfer (a view by the receiving side is recorded)"""
    found_transfer, found = _transfer(transfer_id)
    ops.record_access(db.session, found_transfer, current_principal(), "transfer_detail", [])
    db.session.commit()
    return render_template("console/transfer.html", **_transfer_context(found_transfer, found))


@console.post("/transfers/<transfer_id>/steps/<action>")
def transfer_step(transfer_id: str, action: str) -> Any:
    """办理一步（由操作校验法定条件与办理机关）/ Take one step; the operation checks its rule and side"""
    found_transfer, found = _transfer(transfer_id)
    data: dict[str, Any] = {k: request.form[k].strip() for k in STEP_FIELDS.get(action, ())
                            if (request.form.get(k) or "").strip()}
    for name in LIST_FIELDS:
        if name in data:
            data[name] = [line.strip() for line in data[name].splitlines() if line.strip()]
    if action == "sign_receipt":
        data["method"] = "typed"
    principal = current_principal()
    _, error = run(lambda: ops.step(db.session, found_transfer, action, by=me(), principal=principal, data=data))
    if error is not None:
        return render_error("console/transfer.html", error, **_transfer_context(*_transfer(transfer_id)))
    flash(f"{i18n.pick(STEPS[action].name_zh, i18n.t('step_' + action))} ✓")
    return redirect(url_for("console.transfer", transfer_id=transfer_id))


@console.post("/transfers/<transfer_id>/acknowledge")
def transfer_acknowledge(transfer_id: str) -> Any:
    """检察院签收抄送 / The procuratorate acknowledges its copy"""
    found_transfer, _ = _transfer(transfer_id)
    principal = current_principal()
    data = {"method": "typed", "typed_confirmation": (request.form.get("typed_confirmation") or "").strip()}
    _, error = run(lambda: ops.acknowledge_copy(db.session, found_transfer, by=me(), principal=principal, data=data))
    if error is not None:
        return render_error("console/transfer.html", error, **_transfer_context(*_transfer(transfer_id)))
    flash(f"{i18n.t('acknowledge')} ✓")
    return redirect(url_for("console.transfer", transfer_id=transfer_id))


@console.post("/transfers/<transfer_id>/packages")
def package_build(transfer_id: str) -> Any:
    """生成移送证据包（后台生成，页面显示进度）/ Build the evidence package in the background, with progress"""
    found_transfer, found = _transfer(transfer_id)
    require(bool(found & {"bureau", "head"}), "packages are built by the transferring bureau")

    def start() -> EvidencePackage:
        return package_ops.request(db.session, case_id=found_transfer.case_id, transfer_id=found_transfer.id,
                                   by_user_id=current_principal().user_id, max_volume_bytes=None)

    package, error = run(start)
    if error is not None:
        return render_error("console/transfer.html", error, **_transfer_context(found_transfer, found))
    tasks.send_build(db.session, package.id)
    db.session.commit()
    return redirect(url_for("console.package", package_id=package.id))


def _package(package_id: str) -> EvidencePackage:
    package = db.session.get(EvidencePackage, package_id)
    if package is None or package.transfer_id is None:
        raise package_ops.PackageNotFound(package=package_id)
    _transfer(package.transfer_id)
    return package


@console.get("/packages/<package_id>")
def package(package_id: str) -> Any:
    """证据包：进度、下载与校验报告 / A package: progress, download and verification report"""
    found = _package(package_id)
    template = "console/_package_status.html" if request.headers.get("HX-Request") else "console/package.html"
    return render_template(template, package=found)


@console.get("/packages/<package_id>/report")
def package_report(package_id: str) -> Any:
    """证据包校验报告（与包内 verify.py 相同的检查）/ The package's verification report (the checks of its verify.py)"""
    found = _package(package_id)
    if found.status.value != "done":
        raise package_ops.PackageNotReady(package=found.id, status=found.status.value)
    paths = [str(Path(package_ops.package_dir()) / found.id / v["name"]) for v in found.volumes]
    report = package_verify.verify(package_verify.open_source(paths))
    return render_template("console/package_report.html", package=found, report=report)
