from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.reviews.models import ReviewOutcome


class ReviewDecisionCreateSchema(ma.Schema):
    outcome = ma.fields.Enum(ReviewOutcome, by_value=True, required=True)
    opinion = ma.fields.String(required=True, validate=validate.Length(2, 4000))
    reason_codes = ma.fields.List(ma.fields.String())


class ReviewDecisionSchema(ma.Schema):
    id = ma.fields.Integer()
    review_id = ma.fields.Integer()
    reviewer_id = ma.fields.Integer()
    qualification_number = ma.fields.String()
    outcome = ma.fields.Enum(ReviewOutcome, by_value=True)
    reason_codes = ma.fields.List(ma.fields.String())
    opinion = ma.fields.String()
    decided_at = ma.fields.DateTime()
    supersedes_id = ma.fields.Integer(allow_none=True)


class ExtendSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class QueueQuerySchema(ma.Schema):
    unit_id = ma.fields.Integer()
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200))
