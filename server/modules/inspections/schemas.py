from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.inspections.models import InspectionKind, InspectionStatus, OutsidePlanReason, TeamRole


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
    plan_id = ma.fields.Integer(allow_none=True, metadata={"description": "年度检查计划 / the annual plan it counts against"})
    outside_plan_reason = ma.fields.Enum(OutsidePlanReason, by_value=True, allow_none=True,
                                         metadata={"description": "计划外原因 / why it is outside the plan"})
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
    outside_plan_reason = ma.fields.Enum(
        OutsidePlanReason, by_value=True, load_default=None,
        metadata={"description": "计划外任务的原因；不填则计入本单位当年已批准的年度检查计划 / why the task is outside "
                                 "the plan; left out, it counts against the unit's approved annual plan for the year"})


class ReassignSchema(ma.Schema):
    lead_id = ma.fields.Integer(required=True)
    member_ids = ma.fields.List(ma.fields.Integer(), required=True, validate=validate.Length(min=1, max=10))
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class CancelSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class InspectionQuerySchema(ma.Schema):
    status = ma.fields.Enum(InspectionStatus, by_value=True)
    target_id = ma.fields.Integer()
