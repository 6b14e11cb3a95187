"""Staff sign-in for the API: password → bearer token."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import ratelimit
from server.core.access import current_principal
from server.extensions import db
from server.modules.auth import operations as ops
from server.modules.auth import schemas
from server.modules.users import operations as users
from server.modules.users.models import User

blp = Blueprint("auth", __name__, description="登录与令牌 / Sign-in and tokens")


@blp.route("/auth/login")
class Login(MethodView):
    @blp.arguments(schemas.LoginSchema)
    @blp.response(200, schemas.TokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """用户名密码登录，获取令牌 / Log in with a password and get a bearer token"""
        with ratelimit.login_limits():
            try:
                user = users.authenticate(db.session, data["username"], data["password"], request.remote_addr)
            except users.InvalidCredentials:
                db.session.commit()  # keep the failure count and its audit entry
                raise
        if user.must_change_password:
            db.session.commit()  # the sign-in is recorded; the token waits for a password of their own
            raise users.PasswordChangeRequired(next="POST /api/v1/auth/password")
        token = ops.staff_token(user)
        db.session.commit()
        return token


@blp.route("/auth/password")
class PasswordChange(MethodView):
    @blp.arguments(schemas.PasswordChangeSchema)
    @blp.response(200, schemas.TokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """修改本人密码（一次性密码须先修改）/ Change one's own password (a one-time password must be changed first)"""
        with ratelimit.login_limits():  # the current password is a sign-in: the same counters
            try:
                user = users.authenticate(db.session, data["username"], data["password"], request.remote_addr)
            except users.InvalidCredentials:
                db.session.commit()  # keep the failure count and its audit entry
                raise
        users.change_own_password(db.session, user, data["new_password"])
        token = ops.staff_token(user)
        db.session.commit()
        return token


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.response(204)
    def post(self) -> None:
        """注销本人全部令牌 / Invalidate every token of the caller"""
        users.end_sessions(db.session, db.session.get(User, current_principal().user_id), "web:login:logged_out",
                           via="api")
        db.session.commit()


@blp.route("/auth/me")
class Me(MethodView):
    @blp.response(200, schemas.MeSchema)
    def get(self) -> Any:
        """当前身份 / Who am I"""
        return current_principal()
