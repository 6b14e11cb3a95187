"""Staff API: sampling rules, annual plans and the draw ceremony."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import MANAGERS, Role, current_principal, require
from server.core.bulk import collector_paused
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.draws import operations as ops
from server.modules.draws import rules, schemas
from server.modules.draws.models import AnnualPlan, Draw, SamplingRule
from server.modules.users import operations as users

blp = Blueprint("draws", __name__, description="双随机抽取 / Random draws, sampling rules and plans")


def _draw(draw_id: str) -> Draw:
    """A supervisor acts on their own unit's draws; admins and observers on any."""
    draw = ops.get(db.session, draw_id)
    principal = current_principal()
    require(principal.role != Role.SUPERVISOR.value or principal.unit_id == draw.unit_id, "another unit's draw")
    return draw


def _staff_view(draw: Draw) -> Draw:
    """Managers see the drawn assignments and the seed; observers only what the public will see, until publication."""
    principal = current_principal()
    manager = principal.role in MANAGERS
    shown = manager and draw.result_hash is not None
    draw.assignments = ops.outcome(draw)["result"]["assignments"] if shown else None  # type: ignore[attr-defined]
    draw.redraws = ops.redraws_of(db.session, draw)  # type: ignore[attr-defined]
    draw.disclosed_seed = draw.seed if ops.discloses_seed(principal, draw) else None  # type: ignore[attr-defined]
    draw.changes = ops.changes_after_run(db.session, draw) if shown else None  # type: ignore[attr-defined]
    return draw


@blp.route("/sampling-rules")
class SamplingRules(MethodView):
    @blp.arguments(schemas.SamplingRuleQuerySchema, location="query")
    @blp.response(200, schemas.SamplingRuleSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """抽查规则（含来源）/ Sampling rules with their sources"""
        found = db.session.scalars(sa.select(SamplingRule).order_by(SamplingRule.level, SamplingRule.region_code,
                                                                    SamplingRule.category, SamplingRule.effective_from))
        on: dt.date | None = args.get("on")
        return [r for r in found if on is None or rules.applies(r, r.level.value, r.region_code, r.category.value, on)]

    @blp.arguments(schemas.SamplingRuleSchema)
    @blp.response(201, schemas.SamplingRuleSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """新增抽查规则版本（按生效日期）/ Add a rule version effective from a date"""
        if data.get("positive_list_factor") is None:
            data.pop("positive_list_factor", None)
        rule = ops.add_rule(db.session, users.current_user(db.session), **data)
        db.session.commit()
        return rule


@blp.route("/annual-plans")
class AnnualPlans(MethodView):
    @blp.response(200, schemas.AnnualPlanSchema(many=True))
    def get(self) -> Any:
        """年度现场检查计划 / Annual on-site inspection plans"""
        return db.session.scalars(sa.select(AnnualPlan).order_by(AnnualPlan.year.desc(), AnnualPlan.id))

    @blp.arguments(schemas.AnnualPlanSchema)
    @blp.response(201, schemas.AnnualPlanSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """编制年度计划 / Draft an annual plan"""
        plan = ops.create_plan(db.session, users.current_user(db.session), **data)
        db.session.commit()
        return plan


@blp.route("/annual-plans/<int:plan_id>/approve")
class AnnualPlanApprove(MethodView):
    @blp.response(200, schemas.AnnualPlanSchema)
    def post(self, plan_id: int) -> Any:
        """批准年度计划（须另一负责人）/ Approve a plan (another manager)"""
        plan = ops.approve_plan(db.session, plan_id, users.current_user(db.session))
        db.session.commit()
        return plan


@blp.route("/draws")
class Draws(MethodView):
    @blp.arguments(schemas.DrawQuerySchema, location="query")
    @blp.response(200, schemas.DrawSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """抽取列表 / Draws"""
        query = sa.select(Draw).order_by(Draw.created_at.desc(), Draw.id)
        if "status" in args:
            query = query.where(Draw.status == args["status"])
        return query

    @blp.arguments(schemas.DrawCreateSchema)
    @blp.response(201, schemas.DrawSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """发起抽取 / Open a draw (parties then commit)"""
        draw = ops.create(db.session, users.current_user(db.session), **data)
        db.session.commit()
        return draw


@blp.route("/draws/<draw_id>")
class DrawDetail(MethodView):
    @blp.response(200, schemas.StaffDrawSchema)
    def get(self, draw_id: str) -> Any:
        """抽取详情 / One draw"""
        return _staff_view(_draw(draw_id))


@blp.route("/draws/<draw_id>/commitments")
class DrawCommitments(MethodView):
    @blp.arguments(schemas.DrawCommitmentSchema)
    @blp.response(201, schemas.DrawPartySchema)
    def post(self, data: dict[str, Any], draw_id: str) -> Any:
        """提交秘密值的承诺（哈希）/ Commit to a secret by its hash"""
        party = ops.commit(db.session, _draw(draw_id), users.current_user(db.session), data["commitment"])
        db.session.commit()
        return party


@blp.route("/draws/<draw_id>/freeze")
class DrawFreeze(MethodView):
    @blp.response(200, schemas.DrawSchema)
    @collector_paused()
    def post(self, draw_id: str) -> Any:
        """冻结并哈希候选池 / Freeze and hash the eligible pools"""
        draw = ops.freeze(db.session, _draw(draw_id), users.current_user(db.session))
        db.session.commit()
        return draw


@blp.route("/draws/<draw_id>/public-value")
class DrawPublicValue(MethodView):
    @blp.arguments(schemas.DrawPublicValueSchema)
    @blp.response(200, schemas.DrawSchema)
    def post(self, data: dict[str, Any], draw_id: str) -> Any:
        """录入公开随机值（如彩票开奖号）/ Enter the public value (e.g. a lottery number)"""
        draw = ops.set_public_value(db.session, _draw(draw_id), data["public_value"])
        db.session.commit()
        return draw


@blp.route("/draws/<draw_id>/reveals")
class DrawReveals(MethodView):
    @blp.arguments(schemas.DrawRevealSchema)
    @blp.response(201, schemas.DrawPartySchema)
    def post(self, data: dict[str, Any], draw_id: str) -> Any:
        """公开秘密值 / Reveal your secret"""
        draw = _draw(draw_id)
        try:
            party = ops.reveal(db.session, draw, users.current_user(db.session), data["secret"])
        except ops.RevealMismatch:
            db.session.commit()  # the refused attempt stays in the audit log
            raise
        db.session.commit()
        return party


@blp.route("/draws/<draw_id>/run")
class DrawRun(MethodView):
    @blp.response(200, schemas.StaffDrawSchema)
    @collector_paused()
    def post(self, draw_id: str) -> Any:
        """执行抽取并派发保密检查任务 / Run the draw and assign the secret inspections"""
        draw = ops.run(db.session, _draw(draw_id), users.current_user(db.session))
        db.session.commit()
        return _staff_view(draw)


@blp.route("/draws/<draw_id>/publish")
class DrawPublish(MethodView):
    @blp.response(200, schemas.PublishedDrawSchema)
    def post(self, draw_id: str) -> Any:
        """检查结束后公开抽取输入与结果 / Publish inputs and result after the visits"""
        draw = ops.publish(db.session, _draw(draw_id))
        db.session.commit()
        draw.redraws = ops.redraws_of(db.session, draw)  # type: ignore[attr-defined]
        return draw


@blp.route("/draws/<draw_id>/document")
class DrawDocument(MethodView):
    @blp.response(200, content_type="application/json")
    def get(self, draw_id: str) -> Any:
        """下载抽取文件（可复核）/ Download the verifiable draw document"""
        draw = _draw(draw_id)
        return Response(ops.document_bytes(draw), mimetype="application/json",
                        headers={"Content-Disposition": f'attachment; filename="draw-{draw.id}.json"'})


@blp.route("/draws/<draw_id>/redraw-requests")
class RedrawRequests(MethodView):
    @blp.arguments(schemas.RedrawRequestSchema)
    @blp.response(201, schemas.DrawRedrawSchema)
    def post(self, data: dict[str, Any], draw_id: str) -> Any:
        """申请重新抽取（须说明理由）/ Ask for a re-draw, with a reason"""
        request = ops.request_redraw(db.session, _draw(draw_id), users.current_user(db.session), **data)
        db.session.commit()
        return request


@blp.route("/redraw-requests/<int:request_id>/approve")
class RedrawApprove(MethodView):
    @blp.response(200, schemas.DrawSchema)
    def post(self, request_id: int) -> Any:
        """第二负责人批准重新抽取 / A second manager approves the re-draw"""
        draw = ops.approve_redraw(db.session, request_id, users.current_user(db.session))
        db.session.commit()
        return draw
