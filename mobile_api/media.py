"""Which media the server still needs, and explicit reports of regained connectivity."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.extensions import db
from server.modules.devices import operations as devices
from server.modules.evidence import operations as evidence
from server.modules.evidence import refusals, schemas

blp = Blueprint("mobile_media", __name__, description="证据文件补传 / Media the server still needs")


@blp.route("/media/missing")
class Missing(MethodView):
    @blp.arguments(schemas.MediaMissingQuerySchema)
    @blp.response(200, schemas.MediaMissingSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """服务器尚缺的文件哈希（按建议上传顺序）及被拒收的文件 / Hashes the server still needs, in upload order, and refused ones"""
        device = devices.get_device(db.session, current_principal().device_id)
        evidence.note_contact(db.session, device)
        needed = evidence.missing(db.session, data["hashes"])
        rejected = list(refusals.refused(db.session, data["hashes"]).values())
        db.session.commit()
        return {"missing": needed, "rejected": rejected, "order": list(evidence.UPLOAD_ORDER),
                "note": evidence.UPLOAD_ORDER_NOTE}


@blp.route("/media/online")
class Online(MethodView):
    @blp.arguments(schemas.MediaOnlineSchema)
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> None:
        """报告本设备恢复联网（开始1个工作日上传时限）/ Report regained connectivity (starts the 1-working-day clock)"""
        device = devices.get_device(db.session, current_principal().device_id)
        evidence.note_contact(db.session, device, source="client_report")
        db.session.commit()
