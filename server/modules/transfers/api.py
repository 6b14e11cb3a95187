"""Staff API for transfers: the bureau starts and hands over; the police and the procuratorate see
only what was transferred to (or copied to) their office, sign receipts and record decisions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import downloads, errors
from server.core.access import current_principal, require
from server.core.calendar import local_today
from server.core.db import utcnow
from server.core.pagination import SelectPage
from server.core.storage import get_store
from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.evidence import operations as evidence_ops
from server.modules.transfers import operations as ops
from server.modules.transfers import package as package_ops
from server.modules.transfers import schemas, tasks, workflow
from server.modules.transfers.models import EvidencePackage, Transfer, TransferEvent, TransferMaterial
from server.modules.users import operations as users

blp = Blueprint("transfers", __name__, description="移送公安机关与检察院 / Transfers to police and prosecutors")


def _transfer(transfer_id: str) -> tuple[Transfer, set[str]]:
    transfer = ops.get(db.session, transfer_id)
    return transfer, ops.require_visible(db.session, current_principal(), transfer)


def _stream(chunks: Any, media_type: str, size: int, filename: str, digest: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=media_type)
    response.headers["Content-Length"] = str(size)
    response.headers["X-Content-SHA256"] = digest
    response.headers["Content-Disposition"] = downloads.attachment(filename, media_type)
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/transfers")
class Transfers(MethodView):
    @blp.arguments(schemas.TransferQuerySchema, location="query")
    @blp.response(200, schemas.TransferSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """移送案件列表（按机关范围）/ Transfers of, to or copied to the caller's office"""
        query = ops.visible(db.session, current_principal())
        if "state" in args:
            query = query.where(Transfer.state == args["state"])
        return query

    @blp.arguments(schemas.TransferCreateSchema)
    @blp.response(201, schemas.TransferSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """启动移送（涉嫌犯罪或适用行政拘留）/ Start a transfer of a case"""
        principal = current_principal()
        case = cases.get(db.session, data.pop("case_id"))
        cases.require_access(db.session, principal, case, act=True)
        on = data.pop("on", None) or local_today()
        transfer = ops.create(db.session, case, by=users.get_user(db.session, principal.user_id), on=on, **data)
        db.session.commit()
        return transfer


@blp.route("/transfers/workflow")
class Workflow(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """移送流程、期限与法律依据 / The transfer state machine with the legal source of each step"""
        return {"steps": workflow.steps_view(), "required_documents": ops.required_documents(),
                "deadline_owner": workflow.DEADLINE_OWNER}


@blp.route("/transfers/deadlines")
class Dashboard(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """移送期限：到期与逾期（本机关可见的移送）/ Due and overdue transfer clocks visible to the caller"""
        return ops.dashboard(db.session, current_principal(), utcnow())


@blp.route("/transfers/receiver-keys")
class ReceiverKeys(MethodView):
    @blp.arguments(schemas.ReceiverKeySchema)
    @blp.response(201, schemas.ReceiverKeySchema)
    def post(self, data: dict[str, Any]) -> Any:
        """登记签收用 Ed25519 公钥 / Register an Ed25519 key for signing receipts"""
        user = users.current_user(db.session)
        key = ops.register_key(db.session, user, public_key=data["public_key"], label=data["label"])
        db.session.commit()
        return key


@blp.route("/transfers/<transfer_id>")
class TransferDetail(MethodView):
    @blp.response(200, schemas.TransferSchema)
    def get(self, transfer_id: str) -> Any:
        """移送详情（接收方查看即留痕）/ One transfer (a view by the receiving side is recorded)"""
        transfer, _ = _transfer(transfer_id)
        ops.record_access(db.session, transfer, current_principal(), "transfer_detail", [])
        db.session.commit()
        return transfer


@blp.route("/transfers/<transfer_id>/steps/<action>")
class TransferStep(MethodView):
    @blp.arguments(schemas.TransferStepSchema)
    @blp.response(200, schemas.TransferSchema)
    def post(self, data: dict[str, Any], transfer_id: str, action: str) -> Any:
        """办理移送步骤（逐步校验法定条件与办理机关）/ Take one step; every guard names its rule"""
        transfer, _ = _transfer(transfer_id)
        principal = current_principal()
        on, at = data.pop("on", None), data.pop("at", None)
        ops.step(db.session, transfer, action, by=users.get_user(db.session, principal.user_id), principal=principal,
                 on=on, at=at, data=data)
        db.session.commit()
        db.session.refresh(transfer)
        return transfer


@blp.route("/transfers/<transfer_id>/history")
class TransferHistory(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str) -> Any:
        """移送办理记录（只增不改）/ The transfer's append-only history"""
        transfer, _ = _transfer(transfer_id)
        events = db.session.scalars(sa.select(TransferEvent).where(TransferEvent.transfer_id == transfer.id)
                                    .order_by(TransferEvent.seq))
        return [{"seq": e.seq, "action": e.action, "from": e.from_state, "to": e.to_state, "rule": e.rule,
                 "side": e.side, "on": e.on.isoformat() if e.on else None, "at": e.at.isoformat(),
                 "by": e.by_user_id, "payload": e.payload} for e in events]


@blp.route("/transfers/<transfer_id>/deadlines")
class TransferDeadlines(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str) -> Any:
        """移送期限（双方可见）/ The transfer's clocks, visible to both sides"""
        transfer, _ = _transfer(transfer_id)
        now = utcnow()
        return [ops.deadline_view(r, now, transfer) for r in ops.transfer_deadlines(db.session, transfer)]


@blp.route("/transfers/<transfer_id>/materials")
class TransferMaterials(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str) -> Any:
        """移送材料及缺件 / Materials held and required documents still missing"""
        transfer, _ = _transfer(transfer_id)
        return {"materials": [{"id": m.id, "code": m.code, "title": m.title, "filename": m.filename,
                               "media_type": m.media_type, "sha256": m.sha256, "size": m.size,
                               "generated": m.generated, "supplement": m.supplement, "added_at": m.added_at.isoformat()}
                              for m in ops.materials(db.session, transfer)],
                "missing": ops.missing_documents(db.session, transfer)}


@blp.route("/transfers/<transfer_id>/materials/<int:material_id>/file")
class TransferMaterialFile(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str, material_id: int) -> Any:
        """下载移送材料（接收方下载即留痕）/ Download one material (recorded for the receiving side)"""
        transfer, _ = _transfer(transfer_id)
        material = db.session.get(TransferMaterial, material_id)
        if material is None or material.transfer_id != transfer.id:
            raise errors.NotFound()
        ops.record_access(db.session, transfer, current_principal(), f"material:{material.code}", [], download=True)
        db.session.commit()
        return _stream(get_store().iter_chunks(material.sha256), material.media_type, material.size,
                       material.filename, material.sha256)


@blp.route("/transfers/<transfer_id>/evidence")
class TransferEvidence(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str) -> Any:
        """移送案件的证据（接收方查看每件均记入保管链）/ Evidence of the case; each item viewed is a custody event"""
        transfer, _ = _transfer(transfer_id)
        rows = ops.evidence_items(db.session, transfer.case_id)
        ops.record_access(db.session, transfer, current_principal(), "evidence_list", [i for i, _ in rows])
        db.session.commit()
        return [{"id": i.id, "kind": i.kind.value, "sha256": i.sha256, "size": i.size, "media_type": i.media_type,
                 "purpose": purpose, "captured_by": i.captured_by, "captured_at": i.captured_at_device.isoformat()
                 if i.captured_at_device else None, "lat": i.lat, "lon": i.lon, "status": i.status.value,
                 "flags": [f.code for f in i.flags]} for i, purpose in rows]


@blp.route("/transfers/<transfer_id>/evidence/<item_id>/original")
class TransferEvidenceOriginal(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str, item_id: str) -> Any:
        """下载移送证据原件（下载即记入保管链）/ Download an original of the transferred case (recorded)"""
        transfer, _ = _transfer(transfer_id)
        item = next((i for i, _ in ops.evidence_items(db.session, transfer.case_id) if i.id == item_id), None)
        if item is None:
            raise evidence_ops.EvidenceNotFound(evidence=item_id)
        if ops.receiving(current_principal()):
            ops.record_access(db.session, transfer, current_principal(), "original", [item], download=True)
        else:
            evidence_ops.record_download(db.session, item, purpose=f"transfer {transfer.id}")
        if item.blob_sha256 is None:
            raise evidence_ops.NotArrived()
        db.session.commit()
        return _stream(get_store().iter_chunks(item.blob_sha256), item.media_type, item.size, item.sha256,
                       item.blob_sha256)


@blp.route("/transfers/<transfer_id>/summary")
class TransferSummary(MethodView):
    @blp.response(200)
    def get(self, transfer_id: str) -> Any:
        """签收用规范化移送摘要（对其字节签名）/ The canonical summary whose bytes a signed receipt covers"""
        transfer, _ = _transfer(transfer_id)
        body = ops.summary_bytes(db.session, transfer)
        return Response(body, mimetype="application/json")


@blp.route("/transfers/<transfer_id>/acknowledgements")
class TransferAcknowledgements(MethodView):
    @blp.response(200, schemas.AcknowledgementSchema(many=True))
    def get(self, transfer_id: str) -> Any:
        """签收回执 / Receipts of the transfer"""
        transfer, _ = _transfer(transfer_id)
        return ops.acknowledgements(db.session, transfer)


def _start_package(data: dict[str, Any], *, case_id: str, transfer_id: str | None) -> EvidencePackage:
    principal = current_principal()
    mib = data.get("max_volume_mib")
    package = package_ops.request(db.session, case_id=case_id, transfer_id=transfer_id, by_user_id=principal.user_id,
                                  max_volume_bytes=mib << 20 if mib else None)
    db.session.commit()
    if data["background"]:
        tasks.send_build(db.session, package.id)
        db.session.commit()
    else:
        tasks.build_package.run(package.id)  # small packages: built within the request
    db.session.refresh(package)
    return package


@blp.route("/transfers/<transfer_id>/packages")
class TransferPackages(MethodView):
    @blp.response(200, schemas.PackageSchema(many=True))
    def get(self, transfer_id: str) -> Any:
        """移送证据包列表 / Evidence packages of a transfer"""
        transfer, _ = _transfer(transfer_id)
        return db.session.scalars(sa.select(EvidencePackage).where(EvidencePackage.transfer_id == transfer.id)
                                  .order_by(EvidencePackage.created_at)).all()

    @blp.arguments(schemas.PackageRequestSchema)
    @blp.response(201, schemas.PackageSchema)
    def post(self, data: dict[str, Any], transfer_id: str) -> Any:
        """生成移送证据包（可分卷；大包后台生成）/ Build the transfer's evidence package (volumes; large ones in the background)"""
        transfer, found = _transfer(transfer_id)
        require(bool(found & {"bureau", "head"}), "packages are built by the transferring bureau")
        return _start_package(data, case_id=transfer.case_id, transfer_id=transfer.id)


@blp.route("/cases/<case_id>/evidence-packages")
class CasePackages(MethodView):
    @blp.arguments(schemas.PackageRequestSchema)
    @blp.response(201, schemas.PackageSchema)
    def post(self, data: dict[str, Any], case_id: str) -> Any:
        """按需生成案件证据包 / Build an evidence package for any case on demand"""
        case = cases.get(db.session, case_id)
        cases.require_access(db.session, current_principal(), case)
        return _start_package(data, case_id=case.id, transfer_id=None)


def _package(package_id: str) -> EvidencePackage:
    package = db.session.get(EvidencePackage, package_id)
    if package is None:
        raise package_ops.PackageNotFound(package=package_id)
    if package.transfer_id:
        _transfer(package.transfer_id)
    else:
        cases.require_access(db.session, current_principal(), cases.get(db.session, package.case_id))
    return package


@blp.route("/transfer-packages/<package_id>")
class PackageDetail(MethodView):
    @blp.response(200, schemas.PackageSchema)
    def get(self, package_id: str) -> Any:
        """证据包状态与进度 / Package status and build progress"""
        return _package(package_id)


@blp.route("/transfer-packages/<package_id>/volumes/<int:number>")
class PackageVolume(MethodView):
    @blp.response(200)
    def get(self, package_id: str, number: int) -> Any:
        """下载证据包（分卷）；接收方下载的每件证据均记入保管链 / Download a package volume (recorded per item)"""
        package = _package(package_id)
        if package.status.value != "done" or not 1 <= number <= len(package.volumes):
            raise package_ops.PackageNotReady(package=package.id, status=package.status.value)
        volume = package.volumes[number - 1]
        if package.transfer_id:
            transfer = ops.get(db.session, package.transfer_id)
            items = [i for i, _ in ops.evidence_items(db.session, package.case_id) if i.id in set(volume.get("items", []))]
            ops.record_access(db.session, transfer, current_principal(), f"package:{package.id}:{number}", items,
                              download=True)
            db.session.commit()
        path = Path(package_ops.package_dir()) / package.id / volume["name"]
        return _stream(package_ops.iter_file(path), "application/zip", volume["size"], volume["name"], volume["sha256"])
