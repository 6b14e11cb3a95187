"""一公开: staff publish results and track deadlines; the public reads items, plans, results and
draws (no login). Nothing here shows a drawn target before its draw is published."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import Role, current_principal
from server.core.calendar import local_today
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.disclosure import operations as ops
from server.modules.disclosure import schemas
from server.modules.disclosure.models import ResultDisclosure, SamplingItem
from server.modules.draws import operations as draws
from server.modules.draws import rules
from server.modules.draws.models import AnnualPlan, Draw, DrawStatus, PlanStatus, SamplingRule
from server.modules.draws.schemas import PublishedDrawSchema

blp = Blueprint("disclosure", __name__, description="一公开（管理端）/ Disclosure, staff side")
public_blp = Blueprint("disclosure_public", __name__, description="公开信息（无需登录）/ Public information, no login")


@blp.route("/sampling-items")
class SamplingItems(MethodView):
    @blp.response(200, schemas.SamplingItemSchema(many=True))
    def get(self) -> Any:
        """随机抽查事项清单 / Sampling-item list"""
        return db.session.scalars(sa.select(SamplingItem).order_by(SamplingItem.code))

    @blp.arguments(schemas.SamplingItemSchema)
    @blp.response(201, schemas.SamplingItemSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """新增抽查事项 / Add a sampling item"""
        item = ops.add_sampling_item(db.session, **data)
        db.session.commit()
        return item


@blp.route("/disclosure/results")
class Results(MethodView):
    @blp.arguments(schemas.DisclosedResultPublishSchema)
    @blp.response(201, schemas.DisclosedResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """公开本单位的一项抽查结果 / Publish one of the unit's inspection results"""
        result = ops.publish_result(db.session, by_user_id=current_principal().user_id, **data)
        db.session.commit()
        return result


@blp.route("/disclosure/deadlines")
class Deadlines(MethodView):
    @blp.arguments(schemas.ResultDeadlineQuerySchema, location="query")
    @blp.response(200, schemas.ResultDeadlineSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """本单位待公开结果及期限（含逾期）/ The unit's results awaiting publication, with deadlines (admins: all)"""
        principal = current_principal()
        unit_id = None if principal.role == Role.ADMIN.value else principal.unit_id
        return ops.deadlines(db.session, unit_id=unit_id, overdue_only=args["overdue"])


@public_blp.route("/sampling-items")
class PublicSamplingItems(MethodView):
    @public_blp.response(200, schemas.SamplingItemSchema(many=True))
    def get(self) -> Any:
        """随机抽查事项清单 / Sampling-item list"""
        return db.session.scalars(sa.select(SamplingItem).where(SamplingItem.active.is_(True)).order_by(SamplingItem.code))


@public_blp.route("/plans")
class PublicPlans(MethodView):
    @public_blp.response(200, schemas.PublicPlansSchema)
    def get(self) -> Any:
        """年度计划与现行抽查比例 / Approved plans and the sampling rules in force"""
        today = local_today()
        plans = db.session.scalars(sa.select(AnnualPlan).where(AnnualPlan.status == PlanStatus.APPROVED)
                                   .order_by(AnnualPlan.year.desc(), AnnualPlan.id)).all()
        in_force = [r for r in db.session.scalars(sa.select(SamplingRule).order_by(SamplingRule.id))
                    if rules.applies(r, r.level.value, r.region_code, r.category.value, today)]
        return {"plans": plans, "rules": in_force}


@public_blp.route("/results")
class PublicResults(MethodView):
    @public_blp.response(200, schemas.DisclosedResultSchema(many=True))
    @public_blp.paginate(SelectPage)
    def get(self) -> Any:
        """双随机抽查结果 / Published random-inspection results"""
        return sa.select(ResultDisclosure).order_by(ResultDisclosure.published_at.desc(), ResultDisclosure.id)


def _public(draw: Draw) -> Draw:
    draw.redraws = draws.redraws_of(db.session, draw)  # type: ignore[attr-defined]
    draw.changes = draws.changes_after_run(db.session, draw) if draw.published_at else None  # type: ignore[attr-defined]
    return draw


@public_blp.route("/draws")
class PublicDraws(MethodView):
    @public_blp.response(200, PublishedDrawSchema(many=True))
    @public_blp.paginate(SelectPage)
    def get(self) -> Any:
        """抽取记录（含重新抽取次数）/ Draws, re-draws included; results only once published"""
        return sa.select(Draw).order_by(Draw.created_at.desc(), Draw.id)


@public_blp.route("/draws/<draw_id>")
class PublicDrawDetail(MethodView):
    @public_blp.response(200, PublishedDrawSchema)
    def get(self, draw_id: str) -> Any:
        """一次抽取的公开信息 / One draw's public record"""
        return _public(draws.get(db.session, draw_id))


@public_blp.route("/draws/<draw_id>/document")
class PublicDrawDocument(MethodView):
    @public_blp.response(200, content_type="application/json")
    def get(self, draw_id: str) -> Any:
        """下载抽取文件以复核 / Download the draw document to verify it"""
        draw = draws.get(db.session, draw_id)
        if draw.status is not DrawStatus.PUBLISHED:
            raise draws.NotPublished()
        return Response(draws.document_bytes(draw), mimetype="application/json",
                        headers={"Content-Disposition": f'attachment; filename="draw-{draw.id}.json"'})
