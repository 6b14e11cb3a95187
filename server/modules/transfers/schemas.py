"""Request and response schemas of the transfer API."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.transfers.models import AckMethod, PackageStatus, TransferKind, TransferState


class TransferCreateSchema(ma.Schema):
    case_id = ma.fields.String(required=True)
    kind = ma.fields.Enum(TransferKind, by_value=True, load_default=TransferKind.CRIMINAL)
    police_unit_id = ma.fields.Integer(required=True)
    procuratorate_unit_id = ma.fields.Integer(allow_none=True, load_default=None)
    suspected_offence = ma.fields.String(required=True, validate=validate.Length(1, 200))
    legal_basis = ma.fields.String(required=True, validate=validate.Length(1, 400))
    reason = ma.fields.String(required=True, validate=validate.Length(1, 4000))
    handler_contact = ma.fields.String(validate=validate.Length(1, 200))
    on = ma.fields.Date()


class TransferQuerySchema(ma.Schema):
    state = ma.fields.Enum(TransferState, by_value=True)


class TransferSchema(ma.Schema):
    id = ma.fields.String()
    case_id = ma.fields.String()
    kind = ma.fields.Enum(TransferKind, by_value=True)
    state = ma.fields.Enum(TransferState, by_value=True)
    bureau_unit_id = ma.fields.Integer()
    police_unit_id = ma.fields.Integer()
    procuratorate_unit_id = ma.fields.Integer(allow_none=True)
    suspected_offence = ma.fields.String()
    legal_basis = ma.fields.String()
    reason = ma.fields.String()
    team = ma.fields.List(ma.fields.Dict())
    handler_contact = ma.fields.String(allow_none=True)
    refusal_reason = ma.fields.String(allow_none=True)
    handed_over_at = ma.fields.DateTime(allow_none=True)
    receipt_at = ma.fields.DateTime(allow_none=True)
    police_decision = ma.fields.String(allow_none=True)
    police_decided_on = ma.fields.Date(allow_none=True)
    police_reasons = ma.fields.String(allow_none=True)
    notified_on = ma.fields.Date(allow_none=True)
    reconsideration_outcome = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


class TransferStepSchema(ma.Schema):
    """The body of any step; each step's guard reads the fields it needs (see /transfers/workflow)."""

    class Meta:
        unknown = ma.INCLUDE

    on = ma.fields.Date(metadata={"description": "legal date of the step (Beijing); today if absent"})
    at = ma.fields.AwareDateTime(metadata={"description": "when the step happened, with its zone; needed for a "
                                                          "step entered on another day that starts or meets a "
                                                          "clock counted in hours"})


class ReceiverKeySchema(ma.Schema):
    public_key = ma.fields.String(required=True, metadata={"description": "base64 raw 32-byte Ed25519 public key"})
    label = ma.fields.String(load_default="签收密钥", validate=validate.Length(1, 100))
    id = ma.fields.Integer(dump_only=True)
    created_at = ma.fields.DateTime(dump_only=True)


class AcknowledgementSchema(ma.Schema):
    id = ma.fields.Integer()
    method = ma.fields.Enum(AckMethod, by_value=True)
    by_user_id = ma.fields.Integer()
    unit_id = ma.fields.Integer()
    at = ma.fields.DateTime()
    summary_sha256 = ma.fields.String()
    key_id = ma.fields.Integer(allow_none=True)
    typed_confirmation = ma.fields.String(allow_none=True)
    scan_sha256 = ma.fields.String(allow_none=True)
    jurisdiction_ok = ma.fields.Boolean()


class PackageRequestSchema(ma.Schema):
    max_volume_mib = ma.fields.Integer(validate=validate.Range(1, 1 << 20), load_default=None, allow_none=True)
    background = ma.fields.Boolean(load_default=False, metadata={"description": "build in a Celery task"})


class PackageSchema(ma.Schema):
    id = ma.fields.String()
    case_id = ma.fields.String()
    transfer_id = ma.fields.String(allow_none=True)
    status = ma.fields.Enum(PackageStatus, by_value=True)
    total_bytes = ma.fields.Integer(allow_none=True)
    done_bytes = ma.fields.Integer()
    progress = ma.fields.Method("_progress")
    volumes = ma.fields.List(ma.fields.Dict())
    manifest_sha256 = ma.fields.String(allow_none=True)
    seal_idx = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime(allow_none=True)

    def _progress(self, obj: object) -> float:
        total = getattr(obj, "total_bytes", None)
        if getattr(obj, "status", None) is PackageStatus.DONE:
            return 1.0
        return round(min(1.0, getattr(obj, "done_bytes", 0) / total), 4) if total else 0.0
