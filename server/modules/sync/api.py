"""Staff API: the supervisors' conflict-resolution queue and device sync health."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.sync import conflicts
from server.modules.sync import operations as ops
from server.modules.sync import schemas
from server.modules.sync.models import SyncConflict
from server.modules.users import operations as users

blp = Blueprint("sync", __name__, description="离线同步：冲突处理与设备同步状态 / Offline sync: conflicts and device health")


@blp.route("/sync/conflicts")
class Conflicts(MethodView):
    @blp.arguments(schemas.ConflictQuerySchema, location="query")
    @blp.response(200, schemas.ConflictSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """本单位待处理的同步冲突 / Sync conflicts of the supervisor's unit"""
        return conflicts.conflicts_visible(current_principal()).where(SyncConflict.status == args["status"])


@blp.route("/sync/conflicts/<int:conflict_id>/resolve")
class ConflictResolve(MethodView):
    @blp.arguments(schemas.ResolveSchema)
    @blp.response(200, schemas.ConflictSchema)
    def post(self, data: dict[str, Any], conflict_id: int) -> Any:
        """选择一个值或给出合并值并说明理由 / Choose a kept value or give a merged one, with a reason"""
        principal = current_principal()
        conflict = conflicts.get_conflict(db.session, principal, conflict_id)
        by = users.get_user(db.session, principal.user_id)
        conflicts.resolve(db.session, conflict, by=by, **data)
        db.session.commit()
        return conflict


@blp.route("/sync/devices")
class SyncDevices(MethodView):
    @blp.response(200, schemas.DeviceHealthSchema(many=True))
    def get(self) -> Any:
        """各设备同步状态：最后联系、待传队列、时钟偏差、未决冲突 / Per-device sync health"""
        return ops.health(db.session, current_principal())
