from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.inspections.models import InspectionKind, InspectionStatus, TeamRole


class MemberSchema(ma.Schema):
    user_id = ma.fields.Integer()
    display_name = ma.fields.Function(lambda m: m.user.display_name)
    team_role = ma.fields.Enum(TeamRole, by_value=True)
    certificate_number = ma.fields.String(allow_none=True)
    assigned_at = ma.fields.DateTime()


class InspectionSchema(ma.Schema):
    id = ma.fields.String()
    target_id = ma.fields.Integer()
    target_name = ma.fields.Function(lambda i: i.target.name)
    unit_id = ma.fields.Integer()
    kind = ma.fields.Enum(InspectionKind, by_value=True)
    status = ma.fields.Enum(InspectionStatus, by_value=True)
    window_start = ma.fields.Date()
    window_end = ma.fields.Date()
    secret = ma.fields.Boolean()
    draw_id = ma.fields.String(allow_none=True)
    purpose = ma.fields.String(allow_none=True)
    version = ma.fields.Integer()
    members = ma.fields.List(ma.fields.Nested(MemberSchema))


class InspectionCreateSchema(ma.Schema):
    target_id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    member_ids = ma.fields.List(ma.fields.Integer(), required=True, validate=validate.Length(min=1, max=10))
    window_start = ma.fields.Date(required=True)
    window_end = ma.fields.Date(required=True)
    kind = ma.fields.Enum(InspectionKind, by_value=True, load_default=InspectionKind.ROUTINE)
    purpose = ma.fields.String(validate=validate.Length(max=400))


class ReassignSchema(ma.Schema):
    lead_id = ma.fields.Integer(required=True)
    member_ids = ma.fields.List(ma.fields.Integer(), required=True, validate=validate.Length(min=1, max=10))
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class CancelSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class InspectionQuerySchema(ma.Schema):
    status = ma.fields.Enum(InspectionStatus, by_value=True)
    target_id = ma.fields.Integer()
