from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from server.modules.directory.models import RiskClass
from server.modules.draws.models import Basis, DrawStatus, Level, Period, PlanStatus, RedrawReason


class SamplingRuleSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    level = ma.fields.Enum(Level, by_value=True, required=True)
    region_code = ma.fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))
    category = ma.fields.Enum(RiskClass, by_value=True, required=True)
    basis = ma.fields.Enum(Basis, by_value=True, required=True)
    value = ma.fields.Decimal(required=True, as_string=True, places=3, validate=validate.Range(min=0, min_inclusive=False))
    period = ma.fields.Enum(Period, by_value=True, required=True)
    positive_list_factor = ma.fields.Decimal(as_string=True, places=3, load_default=None,
                                             validate=validate.Range(0, 1))
    exclude_recent_periods = ma.fields.Integer(load_default=0, validate=validate.Range(0, 20))
    cap_per_year = ma.fields.Integer(allow_none=True, validate=validate.Range(min=1))
    coverage_goal = ma.fields.String(allow_none=True, validate=validate.Length(max=200))
    effective_from = ma.fields.Date(required=True)
    effective_until = ma.fields.Date(allow_none=True)
    source = ma.fields.String(required=True, validate=validate.Length(4, 400))


class SamplingRuleQuerySchema(ma.Schema):
    on = ma.fields.Date(metadata={"description": "only rules in force on this date"})


class AnnualPlanSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    year = ma.fields.Integer(required=True, validate=validate.Range(2000, 2100))
    unit_id = ma.fields.Integer()
    title = ma.fields.String(required=True, validate=validate.Length(2, 200))
    planned = ma.fields.Dict(keys=ma.fields.String(validate=validate.OneOf([c.value for c in RiskClass])),
                             values=ma.fields.Integer(validate=validate.Range(min=0)), required=True)
    cap_per_enterprise = ma.fields.Integer(required=True, validate=validate.Range(min=1))
    basis = ma.fields.String(allow_none=True, validate=validate.Length(max=400))
    status = ma.fields.Enum(PlanStatus, by_value=True, dump_only=True)
    approved_at = ma.fields.DateTime(dump_only=True, allow_none=True)


class DrawCreateSchema(ma.Schema):
    title = ma.fields.String(required=True, validate=validate.Length(2, 200))
    region_codes = ma.fields.List(ma.fields.String(validate=validate.Regexp(r"^\d{6}$")), required=True,
                                  validate=validate.Length(min=1, max=20))
    level = ma.fields.Enum(Level, by_value=True, required=True)
    period_label = ma.fields.String(required=True, validate=validate.Length(2, 20))
    window_start = ma.fields.Date(required=True)
    window_end = ma.fields.Date(required=True)
    team_size = ma.fields.Integer(load_default=2, validate=validate.Range(2, 6))
    cross_region = ma.fields.Boolean(load_default=False)
    joint_agencies = ma.fields.List(ma.fields.String(validate=validate.Length(2, 100)), load_default=list)
    plan_id = ma.fields.Integer(allow_none=True)


class DrawPartySchema(ma.Schema):
    party = ma.fields.String()
    role = ma.fields.String()
    commitment = ma.fields.String()
    committed_at = ma.fields.DateTime()
    revealed = ma.fields.Function(lambda p: p.revealed_at is not None)


class DrawRedrawSchema(ma.Schema):
    id = ma.fields.Integer()
    draw_id = ma.fields.String()
    reason_code = ma.fields.Enum(RedrawReason, by_value=True)
    reason = ma.fields.String()
    requested_by = ma.fields.Integer()
    approved_by = ma.fields.Integer(allow_none=True)
    approved_at = ma.fields.DateTime(allow_none=True)
    new_draw_id = ma.fields.String(allow_none=True)


class DrawSchema(ma.Schema):
    """What the public may know before publication: no pools, no seed, no result."""

    id = ma.fields.String()
    title = ma.fields.String()
    unit_id = ma.fields.Integer()
    level = ma.fields.Enum(Level, by_value=True)
    region_codes = ma.fields.List(ma.fields.String())
    period_label = ma.fields.String()
    window_start = ma.fields.Date()
    window_end = ma.fields.Date()
    team_size = ma.fields.Integer()
    cross_region = ma.fields.Boolean()
    joint_agencies = ma.fields.List(ma.fields.String())
    status = ma.fields.Enum(DrawStatus, by_value=True)
    attempt = ma.fields.Integer()
    redraw_of = ma.fields.String(allow_none=True)
    algorithm_version = ma.fields.String(allow_none=True)
    target_pool_hash = ma.fields.String(allow_none=True)
    inspector_pool_hash = ma.fields.String(allow_none=True)
    conflict_pool_hash = ma.fields.String(allow_none=True)
    rules_hash = ma.fields.String(allow_none=True)
    public_value = ma.fields.String(allow_none=True)
    eligible_targets = ma.fields.Integer(allow_none=True)
    eligible_inspectors = ma.fields.Integer(allow_none=True)
    exclusions = ma.fields.Dict(allow_none=True)
    parties = ma.fields.List(ma.fields.Nested(DrawPartySchema))
    frozen_at = ma.fields.DateTime(allow_none=True)
    executed_at = ma.fields.DateTime(allow_none=True)
    published_at = ma.fields.DateTime(allow_none=True)


class DrawChangeSchema(ma.Schema):
    target = ma.fields.String(metadata={"description": "the target's unified social credit code"})
    change = ma.fields.String(metadata={"description": "member_removed | member_added | cancelled"})
    certificate = ma.fields.String(allow_none=True, metadata={"description": "the member's certificate number"})
    reason = ma.fields.String(allow_none=True)
    at = ma.fields.DateTime()


class PublishedDrawSchema(DrawSchema):
    seed = ma.fields.Function(lambda d: d.seed if d.published_at else None)
    result_hash = ma.fields.Function(lambda d: d.result_hash if d.published_at else None)
    drawn_count = ma.fields.Function(lambda d: d.drawn_count if d.published_at else None)
    redraws = ma.fields.List(ma.fields.Nested(DrawRedrawSchema))
    changes = ma.fields.List(ma.fields.Nested(DrawChangeSchema), allow_none=True, metadata={
        "description": "抽取后对检查组或任务的变更及理由（公开后可见）/ changes to the drawn teams or inspections "
                       "after the run, with reasons (once published)"})


class DrawAssignmentSchema(ma.Schema):
    target = ma.fields.Integer()
    stratum = ma.fields.String()
    team = ma.fields.List(ma.fields.Integer())
    joint_with = ma.fields.List(ma.fields.String())


class AsDrawn(ma.fields.Nested):
    """Documented as ``DrawAssignmentSchema``, sent as the algorithm built it: a draw's 10,000
    assignments are plain dicts with exactly those keys, and field-by-field dumping cost 0.3 s."""

    def _serialize(self, nested_obj: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return nested_obj


class StaffDrawSchema(PublishedDrawSchema):
    seed = ma.fields.String(attribute="disclosed_seed", allow_none=True, metadata={
        "description": "公开前仅抽取单位负责人可见 / before publication, only the drawing unit's managers see it"})
    result_hash = ma.fields.String(allow_none=True)
    drawn_count = ma.fields.Integer(allow_none=True)
    assignments = AsDrawn(DrawAssignmentSchema, many=True, allow_none=True)


class DrawCommitmentSchema(ma.Schema):
    commitment = ma.fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"),
                                  metadata={"description": "SHA-256 hex of '<draw_id>|user:<your id>|<secret>'"})


class DrawRevealSchema(ma.Schema):
    secret = ma.fields.String(required=True, validate=validate.Length(16, 200))


class DrawPublicValueSchema(ma.Schema):
    public_value = ma.fields.String(required=True, validate=validate.Length(1, 200))


class RedrawRequestSchema(ma.Schema):
    reason_code = ma.fields.Enum(RedrawReason, by_value=True, required=True)
    reason = ma.fields.String(required=True, validate=validate.Length(4, 1000))


class DrawQuerySchema(ma.Schema):
    status = ma.fields.Enum(DrawStatus, by_value=True)
