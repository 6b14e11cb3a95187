from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.roster.models import AbsenceKind, ConflictRelation, RecusalStatus


class AbsenceSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    user_id = ma.fields.Integer(dump_only=True)
    kind = ma.fields.Enum(AbsenceKind, by_value=True, required=True)
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)
    note = ma.fields.String(allow_none=True, validate=validate.Length(max=400))
    cancelled_at = ma.fields.DateTime(dump_only=True, allow_none=True)


class ConflictEntrySchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    user_id = ma.fields.Integer(dump_only=True)
    uscc = ma.fields.String(required=True, validate=validate.Length(18, 18))
    relation = ma.fields.Enum(ConflictRelation, by_value=True, required=True)
    detail = ma.fields.String(required=True, validate=validate.Length(2, 400))
    valid_until = ma.fields.Date(allow_none=True)
    withdrawn_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    withdrawn_reason = ma.fields.String(dump_only=True, allow_none=True)


class RosterReasonSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class RecusalSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    user_id = ma.fields.Integer(required=True, metadata={"description": "inspector whose recusal is requested"})
    target_id = ma.fields.Integer(required=True)
    inspection_id = ma.fields.String(allow_none=True)
    requested_by = ma.fields.String(required=True, validate=validate.Length(2, 200))
    grounds = ma.fields.String(required=True, validate=validate.Length(4, 1000))
    status = ma.fields.Enum(RecusalStatus, by_value=True, dump_only=True)
    requested_at = ma.fields.DateTime(dump_only=True)
    decided_by = ma.fields.Integer(dump_only=True, allow_none=True)
    decided_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    decision_reason = ma.fields.String(dump_only=True, allow_none=True)
    conflict_id = ma.fields.Integer(dump_only=True, allow_none=True)


class RecusalDecisionSchema(ma.Schema):
    granted = ma.fields.Boolean(required=True)
    reason = ma.fields.String(required=True, validate=validate.Length(2, 1000))
    replacement_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "granted for an open inspection: the inspector who takes the recused officer's place "
                       "(required when fewer than two certified inspectors would remain)"})


class RecusalQuerySchema(ma.Schema):
    status = ma.fields.Enum(RecusalStatus, by_value=True)
