"""Staff API for cases: lead, steps of the workflow, history, deadlines, documents."""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import downloads, errors
from server.core.access import Role, current_principal, require
from server.core.calendar import local_today
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.cases import documents
from server.modules.cases import operations as ops
from server.modules.cases import schemas
from server.modules.cases.models import Case, CaseDocument, CaseEvent
from server.modules.deadlines import operations as deadline_ops
from server.modules.deadlines.models import Deadline
from server.modules.reviews import operations as reviews
from server.modules.users import operations as users

blp = Blueprint("cases", __name__, description="行政处罚案件 / Penalty cases")

HEADS = {Role.SUPERVISOR.value, Role.ADMIN.value}  # the head decides (行政处罚法 第57条)


def _step(fn: Callable[..., Any], *required: str, optional: tuple[str, ...] = (), heads: bool = False,
          on: bool = True) -> tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...], bool, bool]:
    return fn, required, optional, heads, on


# action -> (operation, required fields, optional fields, heads only, takes "on")
STEPS: dict[str, tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...], bool, bool]] = {
    "file": _step(ops.file, "handler_ids", optional=("limitation_ground",)),
    "start_investigation": _step(ops.start_investigation),
    "record_act": _step(ops.record_act, "kind", "act_date", "inspector_ids", "summary",
                        optional=("inspection_id", "agency_id", "approved_by_id", "document_number"), on=False),
    "decide_on_items": _step(ops.decide_on_items, "act_id", "decision", heads=True),
    "link_evidence": _step(ops.link_evidence, "evidence_ids", optional=("purpose", "agency_id"), on=False),
    "propose": _step(ops.propose, "inputs", optional=("corrections", "circumstance", "measures", "reduction",
                                                      "violation_code", "version")),
    "crime_check": _step(ops.crime_check, optional=("facts",), on=False),
    "start_transfer": _step(ops.start_transfer, "reason"),
    "refuse_transfer": _step(ops.refuse_transfer, "reason", on=False),
    "serve_notice": _step(ops.serve_notice, optional=("fine", "measures", "reduction_basis")),
    "record_statement": _step(ops.record_statement, "summary", optional=("adopted",)),
    "waive_statement": _step(ops.waive_statement, "note", optional=("hearing_too",)),
    "request_hearing": _step(ops.request_hearing),
    "schedule_hearing": _step(ops.schedule_hearing, "notice_on", "hearing_date", "presider_id", on=False),
    "hold_hearing": _step(ops.hold_hearing, "record_summary"),
    "waive_hearing": _step(ops.waive_hearing, "reason"),
    "submit_review": _step(reviews.submit, optional=("fine", "measures")),
    "collective_discussion": _step(ops.collective_discussion, "minutes", "participants", heads=True),
    "decide": _step(ops.decide, "fine", optional=("measures", "reduction_basis"), heads=True),
    "serve_decision": _step(ops.serve_decision, "method", optional=("consent_signed",)),
    "pay": _step(ops.pay, "amount"),
    "enforce": _step(ops.enforce, "measure", heads=True),
    "publish": _step(ops.publish, optional=("non_publication_reason",)),
    "withdrawal_due": _step(ops.withdrawal_due, "reason"),
    "withdraw_publication": _step(ops.withdraw_publication, "reason"),
    "close": _step(ops.close, heads=True),
    "archive": _step(ops.archive, heads=True, on=False),
    "drop": _step(ops.drop, "reason", heads=True),
    "add_agency": _step(ops.add_agency, "agency_id", "role", optional=("access", "tasks"), heads=True, on=False),
    "supervise": _step(ops.supervise, optional=("level", "special_case"), heads=True),
    "daily_fine_order": _step(ops.daily_fine_order, "order_served_on", on=False),
    "daily_fine_recheck": _step(ops.daily_fine_recheck, "round_no", "recheck_on", "continuing", on=False),
    "correct": _step(ops.correct, "field", "value", "reason", heads=True, on=False),
}


def _case(case_id: str, *, act: bool = False, evidence: bool = False) -> Case:
    case = ops.get(db.session, case_id)
    ops.require_access(db.session, current_principal(), case, act=act, evidence=evidence)
    return case


@blp.route("/cases")
class Cases(MethodView):
    @blp.arguments(schemas.CaseQuerySchema, location="query")
    @blp.response(200, schemas.CaseSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """案件列表（按权限范围）/ Cases within the caller's scope"""
        query = ops.visible(db.session, current_principal())
        if "state" in args:
            query = query.where(Case.state == args["state"])
        return query

    @blp.arguments(schemas.CaseCreateSchema)
    @blp.response(201, schemas.CaseSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """登记案件线索 / Register a lead (a possible case)"""
        by = users.current_user(db.session)
        case = ops.create_lead(db.session, by=by, **data)
        db.session.commit()
        return case


@blp.route("/cases/workflow")
class Workflow(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """案件流程与法律依据 / The case state machine with the legal source of each step"""
        return {"steps": ops.steps_view()}


@blp.route("/cases/<case_id>")
class CaseDetail(MethodView):
    @blp.response(200, schemas.CaseSchema)
    def get(self, case_id: str) -> Any:
        """案件详情 / One case"""
        return _case(case_id, evidence=True)


@blp.route("/cases/<case_id>/steps/<action>")
class CaseStep(MethodView):
    @blp.arguments(schemas.StepSchema)
    @blp.response(200, schemas.CaseSchema)
    def post(self, data: dict[str, Any], case_id: str, action: str) -> Any:
        """办理案件步骤（逐步校验法定条件）/ Take one step of the case workflow; every guard names its rule"""
        if action not in STEPS:
            raise errors.NotFound(f"unknown step {action}", known=sorted(STEPS))
        fn, required, optional, heads, takes_on = STEPS[action]
        principal = current_principal()
        require(not heads or principal.role in HEADS, f"{action}: the head (supervisor) decides")
        evidence_step = action in ("record_act", "link_evidence")
        case = _case(case_id, act=True, evidence=evidence_step)
        missing = [f for f in required if f not in data]
        if missing:
            raise errors.ValidationFailed(fields={f: ["必填 / required"] for f in missing})
        kwargs = {f: data[f] for f in required + optional if f in data}
        if takes_on:
            kwargs["on"] = data.get("on") or local_today()
        by = users.get_user(db.session, principal.user_id)
        fn(db.session, case, by=by, **kwargs)
        db.session.commit()
        db.session.refresh(case)
        return case


@blp.route("/cases/<case_id>/history")
class CaseHistory(MethodView):
    @blp.response(200)
    def get(self, case_id: str) -> Any:
        """案件办理记录（只增不改）/ The case's append-only history"""
        case = _case(case_id, evidence=True)
        events = db.session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
        return [{"id": e.id, "action": e.action, "from": e.from_state, "to": e.to_state, "rule": e.rule,
                 "on": e.on.isoformat() if e.on else None, "at": e.at.isoformat(), "by": e.by_user_id,
                 "payload": e.payload} for e in events]


@blp.route("/cases/<case_id>/deadlines")
class CaseDeadlines(MethodView):
    @blp.response(200)
    def get(self, case_id: str) -> Any:
        """案件期限（工作日/自然日/小时）/ The case's deadline clocks"""
        case = _case(case_id, evidence=True)
        rows = db.session.scalars(sa.select(Deadline).where(Deadline.case_id == case.id).order_by(Deadline.id))
        return [deadline_ops.view(r, local_today()) for r in rows]


@blp.route("/deadlines/<int(max=2147483647):deadline_id>/events")
class DeadlineEvents(MethodView):
    @blp.arguments(schemas.DeadlineActionSchema)
    @blp.response(200)
    def post(self, data: dict[str, Any], deadline_id: int) -> Any:
        """期限中止、恢复或延长（须说明理由）/ Pause, resume or extend a clock, with a reason"""
        row = db.session.get(Deadline, deadline_id)
        if row is None:
            raise deadline_ops.DeadlineNotFound()
        _case(row.case_id, act=True)
        on, by = data.get("on") or local_today(), current_principal().user_id
        if data["action"] == "pause":
            if "reason_code" not in data:
                raise errors.ValidationFailed(fields={"reason_code": ["必填 / required"]})
            deadline_ops.pause(db.session, row, on=on, reason_code=data["reason_code"], reason=data["reason"], by_user_id=by)
        elif data["action"] == "resume":
            deadline_ops.resume(db.session, row, on=on, reason=data["reason"], by_user_id=by)
        else:
            require(current_principal().role in HEADS, "extensions are approved by the head")
            deadline_ops.extend(db.session, row, amount=data.get("amount", 0), reason=data["reason"], by_user_id=by, on=on,
                                approval=data.get("approval", "head"))
        from server.modules.audit import operations as audit

        audit.record(db.session, f"web:deadline:{data['action']}", subjects={"case": row.case_id, "deadline": row.id},
                     payload={"reason": data["reason"], "amount": data.get("amount"), "on": on.isoformat(),
                              "approval": data.get("approval") if data["action"] == "extend" else None})
        db.session.commit()
        return deadline_ops.view(row, local_today())


@blp.route("/deadlines/dashboard")
class DeadlineDashboard(MethodView):
    @blp.arguments(schemas.DashboardQuerySchema, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any]) -> Any:
        """单位或个人到期与逾期期限 / What is due and overdue, per person, for a unit (or for me)"""
        principal = current_principal()
        unit_id = args.get("unit_id", principal.unit_id)
        require(principal.role == Role.ADMIN.value or unit_id == principal.unit_id, "another unit's dashboard")
        assignee = principal.user_id if args["mine"] or principal.role == Role.INSPECTOR.value else None
        return deadline_ops.dashboard(db.session, unit_id=unit_id, today=local_today(),
                                      horizon_days=args["horizon_days"], assignee_id=assignee)


@blp.route("/cases/<case_id>/documents")
class CaseDocuments(MethodView):
    @blp.response(200, schemas.DocumentSchema(many=True))
    def get(self, case_id: str) -> Any:
        """案件文书列表 / Documents of a case"""
        case = _case(case_id)
        return db.session.scalars(sa.select(CaseDocument).where(CaseDocument.case_id == case.id)
                                  .order_by(CaseDocument.id)).all()

    @blp.arguments(schemas.DocumentCreateSchema)
    @blp.response(201, schemas.DocumentSchema)
    def post(self, data: dict[str, Any], case_id: str) -> Any:
        """制作文书（编号、PDF、哈希入全过程记录）/ Generate a numbered PDF document; its hash is audited"""
        case = _case(case_id, act=True)
        document = documents.generate(db.session, case, data["doc_type"], by_user_id=current_principal().user_id,
                                      on=data.get("on") or local_today())
        db.session.commit()
        return document


@blp.route("/case-documents/<int(max=2147483647):document_id>")
class CaseDocumentFile(MethodView):
    @blp.response(200, content_type="application/pdf")
    def get(self, document_id: int) -> Any:
        """下载文书 PDF / The issued PDF"""
        document = db.session.get(CaseDocument, document_id)
        if document is None:
            raise errors.NotFound()
        _case(document.case_id)
        return Response(document.content, mimetype="application/pdf",
                        headers={"X-Content-SHA256": document.sha256,
                                 "Content-Disposition": downloads.attachment(f"{document.id}.pdf", "application/pdf"),
                                 "Cache-Control": "no-store"})
