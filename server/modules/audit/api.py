"""Audit log API: staff read the log and export proofs; anyone fetches checkpoints and consistency
proofs; registered witnesses post cosignatures (authenticated by their signature)."""
from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.audit import checkpoints, schemas
from server.modules.audit import operations as audit
from server.modules.audit.models import AuditWitness

blp = Blueprint("audit", __name__, description="执法全过程记录 / Audit log (staff)")
public_blp = Blueprint("audit_public", __name__, description="执法全过程记录 公开校验 / Audit log, public verification")

TEXT = "text/plain; charset=utf-8"


def _text(body: str, filename: str | None = None) -> Response:
    response = Response(body, mimetype="text/plain")
    response.headers["Content-Type"] = TEXT
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@blp.route("/audit/entries")
class Entries(MethodView):
    @blp.arguments(schemas.AuditEntryQuerySchema, location="query")
    @blp.response(200, schemas.AuditEntrySchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """按对象、操作人、标签前缀、时间筛选记录 / Entries by subject, actor, tag prefix, time"""
        return audit.entries_query(**args, reader=current_principal())


@blp.route("/audit/entries/<int:idx>")
class EntryDetail(MethodView):
    @blp.response(200, schemas.AuditEntrySchema)
    def get(self, idx: int) -> Any:
        """单条记录 / One entry"""
        entry = audit.read_entry(db.session, idx, current_principal())
        if entry is None:  # sealed entries are not found either
            raise checkpoints.EntryNotFound(index=idx)
        return entry


@blp.route("/audit/subjects/<subject_type>/<subject_id>/history")
class SubjectHistory(MethodView):
    @blp.response(200, schemas.AuditEntrySchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, subject_type: str, subject_id: str) -> Any:
        """某一对象的全部记录（时间顺序）/ Full history of one subject, oldest first"""
        return audit.entries_query(subject_type=subject_type, subject_id=subject_id, order="asc",
                                   reader=current_principal())


@blp.route("/audit/entries/<int:idx>/proof")
class InclusionProof(MethodView):
    @blp.arguments(schemas.AuditProofQuerySchema, location="query")
    @blp.response(200, content_type="text/plain")
    def get(self, args: dict[str, Any], idx: int) -> Any:
        """导出包含证明（c2sp.org/tlog-proof@v1 文本，含条目内容；对本人封存的条目不存在）/ Inclusion proof as a tlog-proof file (it carries the entry: sealed entries are not found)"""
        checkpoint = None
        if "checkpoint_id" in args:
            checkpoint = checkpoints.get_checkpoint(db.session, args["checkpoint_id"])
        return _text(checkpoints.proof_file(db.session, idx, checkpoint, reader=current_principal()),
                     f"audit-entry-{idx}.tlog-proof")


@blp.route("/audit/checkpoints")
class Checkpoints(MethodView):
    @blp.response(201, schemas.AuditCheckpointSchema)
    def post(self) -> Any:
        """立即签署并发布检查点 / Sign and publish a checkpoint now"""
        checkpoint = checkpoints.publish(db.session, current_app.config)
        db.session.commit()
        return checkpoint


@blp.route("/audit/witnesses")
class Witnesses(MethodView):
    @blp.response(200, schemas.AuditWitnessSchema(many=True))
    def get(self) -> Any:
        """已登记的见证方 / Registered witnesses"""
        return db.session.scalars(sa.select(AuditWitness).order_by(AuditWitness.id)).all()

    @blp.arguments(schemas.AuditWitnessSchema)
    @blp.response(201, schemas.AuditWitnessSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """登记见证方公钥 / Register a witness key"""
        witness = checkpoints.add_witness(db.session, data["name"], data["public_key"], current_principal().user_id)
        db.session.commit()
        return witness


@public_blp.route("/audit/checkpoint")
class LatestCheckpoint(MethodView):
    @public_blp.response(200, content_type="text/plain")
    def get(self) -> Any:
        """最新的签名检查点（含见证方副署）/ Latest signed checkpoint with cosignatures"""
        checkpoint = checkpoints.latest_checkpoint(db.session)
        if checkpoint is None:
            raise checkpoints.NoCheckpoint()
        return _text(checkpoints.served_note(db.session, checkpoint))


@public_blp.route("/audit/checkpoints/<int:checkpoint_id>")
class CheckpointNote(MethodView):
    @public_blp.response(200, content_type="text/plain")
    def get(self, checkpoint_id: int) -> Any:
        """某一签名检查点 / One signed checkpoint"""
        checkpoint = checkpoints.get_checkpoint(db.session, checkpoint_id)
        return _text(checkpoints.served_note(db.session, checkpoint))


@public_blp.route("/audit/consistency")
class Consistency(MethodView):
    @public_blp.arguments(schemas.AuditConsistencyQuerySchema, location="query")
    @public_blp.response(200, schemas.AuditConsistencySchema)
    def get(self, args: dict[str, Any]) -> Any:
        """两个树大小之间的一致性证明 / Consistency proof between two tree sizes"""
        old, new = args["old"], args["new"]
        proof = audit.consistency_proof_stored(db.session, old, new)
        encode = lambda h: base64.b64encode(h).decode()  # noqa: E731
        return {"old_size": old, "new_size": new, "old_root": encode(audit.root_at(db.session, old)),
                "new_root": encode(audit.root_at(db.session, new)), "proof": [encode(h) for h in proof]}


@public_blp.route("/audit/checkpoints/<int:checkpoint_id>/cosignatures")
class Cosignatures(MethodView):
    @public_blp.arguments(schemas.AuditCosignatureInSchema)
    @public_blp.response(201, schemas.AuditCosignatureSchema)
    def post(self, data: dict[str, Any], checkpoint_id: int) -> Any:
        """见证方提交副署（以其签名认证）/ A registered witness posts its cosignature"""
        checkpoint = checkpoints.get_checkpoint(db.session, checkpoint_id)
        cosignature = checkpoints.add_cosignature(db.session, checkpoint, data["signature_line"])
        db.session.commit()
        return cosignature
