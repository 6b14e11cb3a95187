"""Staff API of the inspector roster: availability, conflicts of interest, recusal requests."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import Principal, Role, current_principal, require
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.roster import operations as ops
from server.modules.roster import schemas
from server.modules.roster.models import Absence, ConflictDeclaration, RecusalRequest
from server.modules.users import operations as users
from server.modules.users.models import User

blp = Blueprint("roster", __name__, description="执法人员名录：可用性、利益冲突与回避 / Inspector roster")


def _person(user_id: int, *, manage: bool) -> User:
    """Managers act on their unit's people; an inspector only reads and declares for themselves."""
    user = users.get_user(db.session, user_id)
    principal: Principal = current_principal()
    users.require_user_scope(principal, user, manage=manage and principal.user_id != user.id)
    return user


@blp.route("/roster/<int:user_id>/absences")
class Absences(MethodView):
    @blp.response(200, schemas.AbsenceSchema(many=True))
    def get(self, user_id: int) -> Any:
        """请假与培训 / Leave and training periods"""
        _person(user_id, manage=False)
        return db.session.scalars(sa.select(Absence).where(Absence.user_id == user_id).order_by(Absence.starts_on))

    @blp.arguments(schemas.AbsenceSchema)
    @blp.response(201, schemas.AbsenceSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """登记请假或培训 / Record leave or training"""
        require(current_principal().role in (Role.SUPERVISOR.value, Role.ADMIN.value), "managers record absences")
        absence = ops.add_absence(db.session, _person(user_id, manage=True), by=users.current_user(db.session), **data)
        db.session.commit()
        return absence


@blp.route("/roster/absences/<int:absence_id>/cancel")
class AbsenceCancel(MethodView):
    @blp.arguments(schemas.RosterReasonSchema)
    @blp.response(200, schemas.AbsenceSchema)
    def post(self, data: dict[str, Any], absence_id: int) -> Any:
        """撤销请假或培训登记 / Cancel an absence"""
        absence = ops.get_absence(db.session, absence_id)
        _person(absence.user_id, manage=True)
        ops.cancel_absence(db.session, absence, data["reason"])
        db.session.commit()
        return absence


@blp.route("/roster/<int:user_id>/conflicts")
class Conflicts(MethodView):
    @blp.response(200, schemas.ConflictEntrySchema(many=True))
    def get(self, user_id: int) -> Any:
        """利益冲突登记 / Conflict register of one officer"""
        _person(user_id, manage=False)
        return db.session.scalars(sa.select(ConflictDeclaration).where(ConflictDeclaration.user_id == user_id)
                                  .order_by(ConflictDeclaration.id))

    @blp.arguments(schemas.ConflictEntrySchema)
    @blp.response(201, schemas.ConflictEntrySchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """申报利益冲突（亲属、曾任职单位、持股）/ Declare a conflict of interest"""
        entry = ops.declare_conflict(db.session, _person(user_id, manage=True), by=users.current_user(db.session),
                                     **data)
        db.session.commit()
        return entry


@blp.route("/roster/conflicts/<int:conflict_id>/withdraw")
class ConflictWithdraw(MethodView):
    @blp.arguments(schemas.RosterReasonSchema)
    @blp.response(200, schemas.ConflictEntrySchema)
    def post(self, data: dict[str, Any], conflict_id: int) -> Any:
        """撤回利益冲突登记 / Withdraw a conflict entry"""
        entry = ops.get_conflict(db.session, conflict_id)
        _person(entry.user_id, manage=True)
        ops.withdraw_conflict(db.session, entry, data["reason"])
        db.session.commit()
        return entry


@blp.route("/recusals")
class Recusals(MethodView):
    @blp.arguments(schemas.RecusalQuerySchema, location="query")
    @blp.response(200, schemas.RecusalSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """回避申请列表 / Recusal requests"""
        query = sa.select(RecusalRequest).order_by(RecusalRequest.id.desc())
        if "status" in args:
            query = query.where(RecusalRequest.status == args["status"])
        return query

    @blp.arguments(schemas.RecusalSchema)
    @blp.response(201, schemas.RecusalSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """登记当事人回避申请 / Record a party's recusal request"""
        request = ops.request_recusal(db.session, by=users.current_user(db.session), **data)
        db.session.commit()
        return request


@blp.route("/recusals/<int:request_id>/decision")
class RecusalDecision(MethodView):
    @blp.arguments(schemas.RecusalDecisionSchema)
    @blp.response(200, schemas.RecusalSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """负责人作出回避决定 / The head decides a recusal request"""
        request = ops.decide_recusal(db.session, ops.get_recusal(db.session, request_id),
                                     by=users.current_user(db.session), **data)
        db.session.commit()
        return request
