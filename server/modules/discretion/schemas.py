from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class BenchmarkSchema(ma.Schema):
    id = ma.fields.Integer()
    violation_code = ma.fields.String()
    version = ma.fields.String()
    effective_from = ma.fields.Date()
    effective_until = ma.fields.Date(allow_none=True)
    method = ma.fields.String()
    legal_basis = ma.fields.String()
    sha256 = ma.fields.String()
    loaded_at = ma.fields.DateTime()


class BenchmarkLoadSchema(ma.Schema):
    data = ma.fields.Dict(required=True)


class BenchmarkQuerySchema(ma.Schema):
    violation_code = ma.fields.String()


class PreviewSchema(ma.Schema):
    violation_code = ma.fields.String(required=True)
    on = ma.fields.Date()
    inputs = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(), load_default=dict)
    corrections = ma.fields.List(ma.fields.String(), load_default=list)
    circumstance = ma.fields.String(load_default="ordinary",
                                    validate=validate.OneOf(["lighter", "ordinary", "aggravated"]))
