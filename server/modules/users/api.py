"""Staff API: regions, units, users, certificates, legal qualifications."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.users import operations as ops
from server.modules.users import schemas
from server.modules.users.models import Certificate, Region, Unit, User

blp = Blueprint("users", __name__, description="人员、单位与区划 / People, units and regions")


@blp.route("/regions")
class Regions(MethodView):
    @blp.response(200, schemas.RegionSchema(many=True))
    def get(self) -> Any:
        """商洛市及七个县区 / Shangluo and its seven regions"""
        return db.session.scalars(sa.select(Region).order_by(Region.code)).all()


@blp.route("/units")
class Units(MethodView):
    @blp.response(200, schemas.UnitSchema(many=True))
    def get(self) -> Any:
        """执法单位 / Units of every agency"""
        return db.session.scalars(sa.select(Unit).order_by(Unit.id)).all()


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(schemas.UserQuerySchema, location="query")
    @blp.response(200, schemas.UserSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """人员列表（按权限范围）/ Users within the caller's scope"""
        query = ops.scoped_users(db.session, current_principal())
        for key in ("role", "unit_id", "region_code"):
            if key in args:
                query = query.where(getattr(User, key) == args[key])
        return query

    @blp.arguments(schemas.UserCreateSchema)
    @blp.response(201, schemas.UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """新建账号 / Create an account"""
        user = ops.create_user(db.session, **data)
        db.session.commit()
        return user


@blp.route("/users/<int:user_id>")
class UserDetail(MethodView):
    @blp.response(200, schemas.UserSchema)
    def get(self, user_id: int) -> Any:
        """人员详情 / One user"""
        user = ops.get_user(db.session, user_id)
        ops.require_user_scope(current_principal(), user)
        return user

    @blp.arguments(schemas.UserUpdateSchema)
    @blp.response(200, schemas.UserSchema)
    def patch(self, changes: dict[str, Any], user_id: int) -> Any:
        """修改账号（含停用、重置密码）/ Change an account (deactivate, reset password)"""
        user = ops.update_user(db.session, ops.get_user(db.session, user_id), changes)
        db.session.commit()
        return user


@blp.route("/users/<int:user_id>/sessions/end")
class UserSessionsEnd(MethodView):
    @blp.response(204)
    def post(self, user_id: int) -> None:
        """结束该账号的全部登录会话与令牌 / End every console session and bearer token of an account"""
        ops.end_sessions(db.session, ops.get_user(db.session, user_id), "admin:user:sessions_ended")
        db.session.commit()


@blp.route("/users/<int:user_id>/certificates")
class UserCertificates(MethodView):
    @blp.arguments(schemas.CertificateSchema)
    @blp.response(201, schemas.CertificateSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """登记执法证 / Record an enforcement certificate"""
        user = ops.get_user(db.session, user_id)
        ops.require_user_scope(current_principal(), user, manage=True)
        cert = ops.add_certificate(db.session, user, **data)
        db.session.commit()
        return cert


@blp.route("/certificates/<int:certificate_id>/status")
class CertificateStatus(MethodView):
    @blp.arguments(schemas.CertificateStatusSchema)
    @blp.response(200, schemas.CertificateSchema)
    def post(self, data: dict[str, Any], certificate_id: int) -> Any:
        """暂扣、吊销或恢复执法证 / Suspend, revoke or reinstate a certificate"""
        cert = db.session.get(Certificate, certificate_id)
        if cert is None:
            raise ops.CertificateNotFound()
        ops.require_user_scope(current_principal(), cert.user, manage=True)
        ops.set_certificate_status(db.session, cert, data["status"], data["reason"])
        db.session.commit()
        return cert


@blp.route("/users/<int:user_id>/legal-qualifications")
class LegalQualifications(MethodView):
    @blp.arguments(schemas.LegalQualificationSchema)
    @blp.response(201, schemas.LegalQualificationSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """登记法制审核人员资格 / Record a legal reviewer's qualification"""
        qualification = ops.add_legal_qualification(db.session, ops.get_user(db.session, user_id), **data)
        db.session.commit()
        return qualification


@blp.route("/users/<int:user_id>/eligibility")
class Eligibility(MethodView):
    @blp.arguments(schemas.EligibilityQuerySchema, location="query")
    @blp.response(200, schemas.EligibilitySchema)
    def get(self, args: dict[str, Any], user_id: int) -> Any:
        """某日能否作为执法人员 / Can this person act as an inspector on that date"""
        user = ops.get_user(db.session, user_id)
        day: dt.date = args["on"]
        result: dict[str, Any] = {"user_id": user.id, "on": day, "eligible": True, "reason": None}
        try:
            cert = ops.require_inspector(user, day)
        except (ops.CertificateInvalid, ops.NotAnInspector) as exc:
            result.update(eligible=False, certificate_number=None, valid_until=None, reason=exc.as_dict())
        else:
            result.update(certificate_number=cert.number, valid_until=cert.valid_until)
        return result

