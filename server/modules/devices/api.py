"""Staff API for devices: list, register for an inspector, revoke a lost one."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import Role, current_principal, require
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.devices import operations as ops
from server.modules.devices import schemas
from server.modules.devices.models import Device
from server.modules.users import operations as users
from server.modules.users.models import User

blp = Blueprint("devices", __name__, description="移动设备 / Devices")


def _require_device_scope(device: Device) -> None:
    principal = current_principal()
    if principal.role == Role.ADMIN.value or device.user_id == principal.user_id:
        return
    require(principal.role == Role.SUPERVISOR.value and device.user.unit_id == principal.unit_id,
            "device outside your unit")


@blp.route("/devices")
class Devices(MethodView):
    @blp.arguments(schemas.DeviceQuerySchema, location="query")
    @blp.response(200, schemas.DeviceSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """设备列表 / Devices within the caller's scope"""
        principal = current_principal()
        query = sa.select(Device).join(User, Device.user_id == User.id).order_by(Device.registered_at)
        if principal.role == Role.SUPERVISOR.value:
            query = query.where(User.unit_id == principal.unit_id)
        elif principal.role != Role.ADMIN.value:
            query = query.where(Device.user_id == principal.user_id)
        if "user_id" in args:
            query = query.where(Device.user_id == args["user_id"])
        if "active" in args:
            query = query.where(Device.revoked_at.is_(None) if args["active"] else Device.revoked_at.is_not(None))
        return query

    @blp.arguments(schemas.DeviceAdminRegisterSchema)
    @blp.response(201, schemas.DeviceSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """为执法人员登记设备 / Register a device for an inspector"""
        user = users.get_user(db.session, data.pop("user_id"))
        users.require_user_scope(current_principal(), user, manage=True)
        device = ops.register(db.session, user=user, public_key_b64=data.pop("public_key"),
                              registered_by=current_principal().user_id, **data)
        db.session.commit()
        return device


@blp.route("/devices/<device_id>/revoke")
class DeviceRevoke(MethodView):
    @blp.arguments(schemas.RevokeSchema)
    @blp.response(200, schemas.DeviceSchema)
    def post(self, data: dict[str, Any], device_id: str) -> Any:
        """注销设备（如遗失），立即生效 / Revoke a device (lost phone); takes effect at once"""
        device = ops.get_device(db.session, device_id)
        _require_device_scope(device)
        ops.revoke(db.session, device, data["reason"])
        db.session.commit()
        return device


@blp.route("/devices/<device_id>/reenrol")
class DeviceReenrol(MethodView):
    @blp.arguments(schemas.ReenrolSchema)
    @blp.response(201, schemas.EnrolmentSchema)
    def post(self, data: dict[str, Any], device_id: str) -> Any:
        """离线宽限期过后重新登记设备（保留设备编号与旧签名）/ Re-enrol a device after the offline grace period"""
        device = ops.get_device(db.session, device_id)
        _require_device_scope(device)
        result = ops.reenrol(db.session, device, by=users.get_user(db.session, current_principal().user_id),
                             reason=data["reason"], public_key_b64=data.get("public_key"))
        db.session.commit()
        return result
