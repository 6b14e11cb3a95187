"""Legal reviewers' API: the queue, the one-screen case review, and outcomes."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.calendar import local_today
from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.reviews import operations as ops
from server.modules.reviews import schemas
from server.modules.users import operations as users

blp = Blueprint("reviews", __name__, description="重大执法决定法制审核 / Legal review of major decisions")


@blp.route("/legal-reviews")
class ReviewQueue(MethodView):
    @blp.arguments(schemas.QueueQuerySchema, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any]) -> Any:
        """待审核队列（按到期日排序）/ Pending reviews, most urgent first, with their due dates"""
        return ops.queue(db.session, local_today(), unit_id=args.get("unit_id"), limit=args["limit"])


@blp.route("/legal-reviews/<int(max=2147483647):review_id>/screen")
class ReviewScreen(MethodView):
    @blp.response(200)
    def get(self, review_id: int) -> Any:
        """审核一屏：事实、证据、依据、裁量、程序、涉罪 / Everything the reviewer must check, in one response"""
        review = ops.get(db.session, review_id)
        case = cases.get(db.session, review.case_id)
        cases.require_access(db.session, current_principal(), case)
        return ops.screen(db.session, case, local_today())


@blp.route("/legal-reviews/<int(max=2147483647):review_id>/decision")
class ReviewDecision(MethodView):
    @blp.arguments(schemas.ReviewDecisionCreateSchema)
    @blp.response(201, schemas.ReviewDecisionSchema)
    def post(self, data: dict[str, Any], review_id: int) -> Any:
        """审核结论：通过或附编码理由退回 / Pass, or return with coded reasons"""
        review = ops.get(db.session, review_id)
        reviewer = users.current_user(db.session)
        decision = ops.decide(db.session, review, reviewer=reviewer, outcome=data["outcome"], opinion=data["opinion"],
                              reason_codes=data.get("reason_codes"))
        db.session.commit()
        return decision


@blp.route("/legal-reviews/<int(max=2147483647):review_id>/extend")
class ReviewExtend(MethodView):
    @blp.arguments(schemas.ExtendSchema)
    @blp.response(200)
    def post(self, data: dict[str, Any], review_id: int) -> Any:
        """复杂案件审核期限延长3个工作日 / Extend a complex case's review by 3 working days"""
        review = ops.get(db.session, review_id)
        case = cases.get(db.session, review.case_id)
        cases.require_access(db.session, current_principal(), case, act=True)
        by = users.current_user(db.session)
        ops.extend(db.session, review, by=by, reason=data["reason"])
        db.session.commit()
        return {"review_id": review.id, "due_on": review.due_on.isoformat(), "extended": review.extended}
