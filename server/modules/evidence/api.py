"""Staff API for evidence: lists and details by scope, originals streamed, custody recorded."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import downloads
from server.core.access import current_principal
from server.core.storage import get_store
from server.extensions import db
from server.modules.evidence import operations as ops
from server.modules.evidence import schemas
from server.modules.users import operations as users

blp = Blueprint("evidence", __name__, description="证据与保管链 / Evidence and chain of custody")
VIEW_ATTEMPTS = 3


def _item(item_id: str) -> Any:
    item = ops.get(db.session, item_id)
    ops.require_access(db.session, current_principal(), item)
    return item


@blp.route("/evidence")
class EvidenceList(MethodView):
    @blp.arguments(schemas.EvidenceQuerySchema, location="query")
    @blp.response(200, schemas.EvidenceSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """某检查任务的证据（按权限范围）/ Evidence of one inspection, within the caller's scope"""
        return ops.visible_items(db.session, current_principal(), args["inspection_id"])


@blp.route("/evidence/<item_id>")
class EvidenceDetail(MethodView):
    @blp.arguments(schemas.EvidenceAccessSchema, location="query")
    @blp.response(200, schemas.EvidenceDetailSchema)
    def get(self, args: dict[str, Any], item_id: str) -> Any:
        """证据详情、保管链与标记（查看即留痕）/ One item with custody history and flags (the view is recorded)"""
        for attempt in range(VIEW_ATTEMPTS):
            item = _item(item_id)
            try:
                ops.record_view(db.session, item, purpose=args.get("purpose"))
                db.session.commit()
                return item
            except sa.exc.OperationalError:  # a deadlock or lost connection: record it again, never fail the view
                db.session.rollback()
                if attempt == VIEW_ATTEMPTS - 1:
                    raise
        return None  # not reached


def _stream(digest: str, media_type: str, size: int, filename: str) -> Response:
    store = get_store()
    response = Response(stream_with_context(store.iter_chunks(digest)), mimetype=media_type)
    response.headers["Content-Length"] = str(size)
    response.headers["ETag"] = f'"{digest}"'
    response.headers["Content-Disposition"] = downloads.attachment(filename, media_type)
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/evidence/<item_id>/original")
class EvidenceOriginal(MethodView):
    @blp.arguments(schemas.EvidenceAccessSchema, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any], item_id: str) -> Any:
        """下载原始文件（流式；下载即留痕）/ Download the original bytes (streamed; the download is recorded)"""
        item = _item(item_id)
        ops.record_download(db.session, item, purpose=args.get("purpose"))
        db.session.commit()
        return _stream(item.blob_sha256, item.blob.media_type, item.blob.size, f"{item.sha256}")


@blp.route("/evidence/<item_id>/thumbnail")
class EvidenceThumbnail(MethodView):
    @blp.response(200)
    def get(self, item_id: str) -> Any:
        """缩略图（派生件）/ Thumbnail (a derivative)"""
        item = _item(item_id)
        thumb = next((d for d in ops.derivatives(db.session, item) if d.derivation and d.derivation.value == "thumbnail"),
                     None)
        if thumb is None:
            raise ops.NotArrived("no thumbnail for this item")
        return _stream(thumb.blob_sha256, thumb.media_type, thumb.size, f"{thumb.sha256}.jpg")


@blp.route("/evidence/<item_id>/handovers")
class EvidenceHandovers(MethodView):
    @blp.arguments(schemas.EvidenceHandoverCreateSchema)
    @blp.response(201, schemas.EvidenceHandoverSchema)
    def post(self, data: dict[str, Any], item_id: str) -> Any:
        """移交保管（双方设备签名，或对方登录确认）/ Hand over custody (both device signatures, or the receiver confirms)"""
        item = _item(item_id)
        principal = current_principal()
        from_id = data.get("from_user_id") if data.get("signatures") else principal.user_id
        handover = ops.hand_over(db.session, item, from_user=users.get_user(db.session, from_id or principal.user_id),
                                 to_user=users.get_user(db.session, data["to_user_id"]), purpose=data["purpose"],
                                 location=data.get("location"), physical_media=data.get("physical_media"),
                                 signatures=data.get("signatures"))
        db.session.commit()
        return handover


@blp.route("/evidence/handovers/<handover_id>/confirm")
class HandoverConfirm(MethodView):
    @blp.response(200, schemas.EvidenceHandoverSchema)
    def post(self, handover_id: str) -> Any:
        """接收方确认移交 / The receiving person confirms a hand-over"""
        handover = ops.confirm_handover(db.session, handover_id,
                                        by=users.current_user(db.session))
        db.session.commit()
        return handover


@blp.route("/evidence/<item_id>/chunk-proof")
class ChunkProof(MethodView):
    @blp.arguments(schemas.EvidenceChunkProofQuerySchema, location="query")
    @blp.response(200, schemas.EvidenceChunkProofSchema)
    def get(self, args: dict[str, Any], item_id: str) -> Any:
        """某字节区间所在分块对原始文件的 Merkle 证明 / Merkle proof of the chunks holding a byte range"""
        item = _item(item_id)
        proof = ops.chunk_proof(db.session, item, args["start"], args["end"])
        db.session.commit()
        return proof


@blp.route("/evidence/overdue")
class Overdue(MethodView):
    @blp.response(200, schemas.EvidenceOverdueSchema(many=True))
    def get(self) -> Any:
        """联网后超过1个工作日未上传的证据 / Evidence not uploaded within 1 working day of reconnecting"""
        return ops.overdue(db.session, current_principal())


@blp.route("/evidence/fixity-alerts")
class FixityAlerts(MethodView):
    @blp.response(200, schemas.EvidenceFixityAlertSchema(many=True))
    def get(self) -> Any:
        """存储完整性告警 / Fixity alerts on stored bytes"""
        return ops.fixity_alerts(db.session)


@blp.route("/evidence/<item_id>/deletion-requests")
class DeletionRequests(MethodView):
    @blp.arguments(schemas.EvidenceDeletionRequestCreateSchema)
    @blp.response(201, schemas.EvidenceDeletionRequestSchema)
    def post(self, data: dict[str, Any], item_id: str) -> Any:
        """按保存期限申请删除证据 / Request deletion under the retention policy"""
        item = _item(item_id)
        request = ops.request_deletion(db.session, item, by=users.current_user(db.session),
                                       reason=data["reason"])
        db.session.commit()
        return request


@blp.route("/evidence/deletion-requests/<int:request_id>/approve")
class DeletionApprove(MethodView):
    @blp.response(200, schemas.EvidenceDeletionRequestSchema)
    def post(self, request_id: int) -> Any:
        """批准删除（须为申请人以外的管理员）/ Approve a deletion (an admin other than the requester)"""
        request = ops.approve_deletion(db.session, request_id,
                                       by=users.current_user(db.session))
        db.session.commit()
        return request
