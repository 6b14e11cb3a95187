"""Staff API: supervisors assign inspections; inspectors see their own."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.inspections import operations as ops
from server.modules.inspections import schemas
from server.modules.inspections.models import Inspection
from server.modules.users import operations as users

blp = Blueprint("inspections", __name__, description="检查任务 / Inspections")


@blp.route("/inspections")
class Inspections(MethodView):
    @blp.arguments(schemas.InspectionQuerySchema, location="query")
    @blp.response(200, schemas.InspectionSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """检查任务列表（按权限范围）/ Inspections within the caller's scope"""
        query = ops.visible(db.session, current_principal())
        if "status" in args:
            query = query.where(Inspection.status == args["status"])
        if "target_id" in args:
            query = query.where(Inspection.target_id == args["target_id"])
        return query

    @blp.arguments(schemas.InspectionCreateSchema)
    @blp.response(201, schemas.InspectionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """指派检查任务（至少两名持证执法人员）/ Assign an inspection to a team of ≥2 certified inspectors"""
        creator = users.current_user(db.session)
        inspection = ops.create(db.session, created_by=creator, **data)
        db.session.commit()
        return inspection


@blp.route("/inspections/<inspection_id>")
class InspectionDetail(MethodView):
    @blp.response(200, schemas.InspectionSchema)
    def get(self, inspection_id: str) -> Any:
        """检查任务详情 / One inspection"""
        inspection = ops.get(db.session, inspection_id)
        ops.require_visible(db.session, current_principal(), inspection)
        return inspection


@blp.route("/inspections/<inspection_id>/team")
class InspectionTeam(MethodView):
    @blp.arguments(schemas.ReassignSchema)
    @blp.response(200, schemas.InspectionSchema)
    def put(self, data: dict[str, Any], inspection_id: str) -> Any:
        """调整检查组（须说明理由）/ Change the team, with a reason"""
        inspection = ops.get(db.session, inspection_id)
        ops.require_visible(db.session, current_principal(), inspection)
        by = users.current_user(db.session)
        ops.reassign(db.session, inspection, by=by, **data)
        db.session.commit()
        db.session.refresh(inspection)
        return inspection


@blp.route("/inspections/<inspection_id>/cancel")
class InspectionCancel(MethodView):
    @blp.arguments(schemas.CancelSchema)
    @blp.response(200, schemas.InspectionSchema)
    def post(self, data: dict[str, Any], inspection_id: str) -> Any:
        """撤销检查任务 / Cancel an inspection"""
        inspection = ops.get(db.session, inspection_id)
        ops.require_visible(db.session, current_principal(), inspection)
        ops.cancel(db.session, inspection, reason=data["reason"])
        db.session.commit()
        return inspection
