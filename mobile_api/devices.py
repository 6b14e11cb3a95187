"""Device registration, token refresh and identity for the phone and tablet apps."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import ratelimit
from server.core.access import current_principal
from server.core.calendar import local_today
from server.extensions import db
from server.modules.auth import schemas as auth_schemas
from server.modules.devices import operations as ops
from server.modules.devices import schemas
from server.modules.evidence import operations as evidence
from server.modules.users import operations as users

blp = Blueprint("mobile_devices", __name__, description="设备注册与令牌 / Device registration and tokens")


@blp.route("/devices")
class RegisterDevice(MethodView):
    @blp.arguments(schemas.DeviceRegisterSchema)
    @blp.response(201, auth_schemas.DeviceTokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """用执法人员账号注册本设备的 Ed25519 公钥 / Register this device's key with the inspector's login"""
        with ratelimit.registration_limits():
            user = users.current_user(db.session)
        return _register(user, data)


@blp.route("/devices/enrol")
class EnrolDevice(MethodView):
    @blp.arguments(schemas.DeviceEnrolSchema)
    @blp.response(201, auth_schemas.DeviceTokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """用账号密码一次完成设备注册（现场执法应用）/ Sign in and register this device in one call (the field app)"""
        with ratelimit.login_limits():  # a password sign-in like any other: the same counters
            try:
                user = users.authenticate(db.session, data.pop("username"), data.pop("password"), request.remote_addr)
            except users.InvalidCredentials:
                db.session.commit()  # keep the failure count and its audit entry
                raise
        if user.must_change_password:  # a one-time password opens nothing until it is changed
            db.session.commit()
            raise users.PasswordChangeRequired(next="POST /api/v1/auth/password")
        return _register(user, data)


def _register(user: Any, data: dict[str, Any]) -> Any:
    """Register the device's key for ``user`` and issue its first token pair."""
    device = ops.register(db.session, user=user, public_key_b64=data.pop("public_key"), registered_by=user.id, **data)
    result = ops.issue_tokens(db.session, device)
    db.session.commit()
    return result


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @blp.arguments(auth_schemas.RefreshSchema)
    @blp.response(200, auth_schemas.DeviceTokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """用刷新令牌换取新令牌（离线宽限期内）/ Exchange a refresh token within the offline grace period"""
        try:
            with ratelimit.refresh_limits():  # a refused token (401) counts against the address
                result = ops.refresh(db.session, data["refresh_token"])
        except ops.RefreshInvalid:
            db.session.commit()  # keep the revocation of a reused token's family and its audit entry
            raise
        # Usually the first request after a stretch without signal (the access token has expired):
        # it is what starts the upload clock, not the sync that follows.
        evidence.note_contact(db.session, ops.get_device(db.session, result["device_id"]))
        db.session.commit()
        return result


@blp.route("/me")
class DeviceMe(MethodView):
    @blp.response(200, schemas.DeviceMeSchema)
    def get(self) -> Any:
        """本设备及其执法人员、执法证有效期 / This device, its inspector and certificate validity"""
        principal = current_principal()
        device = ops.get_device(db.session, principal.device_id)
        evidence.note_contact(db.session, device)
        user = device.user
        today = local_today()
        db.session.commit()
        return {"device": device, "user_id": user.id, "display_name": user.display_name, "role": user.role.value,
                "certificates": user.certificates,
                "certified_today": users.valid_certificate(user, today) is not None}
