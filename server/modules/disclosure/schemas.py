from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.disclosure.models import Outcome
from server.modules.draws.schemas import AnnualPlanSchema, SamplingRuleSchema


class SamplingItemSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    code = ma.fields.String(required=True, validate=validate.Length(2, 40))
    name = ma.fields.String(required=True, validate=validate.Length(2, 200))
    legal_basis = ma.fields.String(required=True, validate=validate.Length(2, 1000))
    implementing_body = ma.fields.String(required=True, validate=validate.Length(2, 200))
    content = ma.fields.String(required=True, validate=validate.Length(2, 1000))
    method = ma.fields.String(required=True, validate=validate.Length(2, 400))
    active = ma.fields.Boolean(dump_only=True)


class DisclosedResultPublishSchema(ma.Schema):
    inspection_id = ma.fields.String(required=True)
    findings = ma.fields.String(required=True, validate=validate.Length(2, 2000))
    outcome = ma.fields.Enum(Outcome, by_value=True, required=True)


class DisclosedResultSchema(ma.Schema):
    id = ma.fields.Integer()
    inspection_id = ma.fields.String()
    draw_id = ma.fields.String(allow_none=True)
    target_name = ma.fields.String()
    target_uscc = ma.fields.String()
    inspected_on = ma.fields.Date()
    team_certificates = ma.fields.List(ma.fields.String())
    findings = ma.fields.String()
    outcome = ma.fields.Enum(Outcome, by_value=True)
    due_on = ma.fields.Date()
    published_at = ma.fields.DateTime()
    on_time = ma.fields.Boolean()


class ResultDeadlineQuerySchema(ma.Schema):
    overdue = ma.fields.Boolean(load_default=False, metadata={"description": "only overdue results"})


class ResultDeadlineSchema(ma.Schema):
    inspection_id = ma.fields.String()
    draw_id = ma.fields.String(allow_none=True)
    target_id = ma.fields.Integer()
    target_name = ma.fields.String()
    inspected_on = ma.fields.Date()
    due_on = ma.fields.Date()
    overdue = ma.fields.Boolean()
    working_days_left = ma.fields.Integer()


class PublicPlansSchema(ma.Schema):
    plans = ma.fields.List(ma.fields.Nested(AnnualPlanSchema))
    rules = ma.fields.List(ma.fields.Nested(SamplingRuleSchema))
