from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.directory.models import PermitClass, RiskClass
from server.modules.inspections.models import InspectionKind, InspectionStatus


class TargetInputSchema(ma.Schema):
    """A target as entered by staff or read from an import row (coordinates WGS-84 or GCJ-02)."""

    uscc = ma.fields.String(required=True, validate=validate.Length(18, 18))
    name = ma.fields.String(required=True, validate=validate.Length(2, 200))
    region_code = ma.fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))
    address = ma.fields.String(required=True, validate=validate.Length(2, 300))
    lat = ma.fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    lon = ma.fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    coord_system = ma.fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]),
                                    metadata={"description": "wgs84 (GPS) or gcj02 (Chinese map SDKs); stored as WGS-84"})
    industry = ma.fields.String(allow_none=True, validate=validate.Length(max=100))
    risk_class = ma.fields.Enum(RiskClass, by_value=True, required=True)
    risk_basis = ma.fields.String(allow_none=True, validate=validate.Length(max=400))
    permit_class = ma.fields.Enum(PermitClass, by_value=True, load_default=PermitClass.NONE)
    permit_number = ma.fields.String(allow_none=True, validate=validate.Length(max=40))
    positive_list = ma.fields.Boolean(load_default=False)
    positive_list_since = ma.fields.Date(allow_none=True)
    positive_list_basis = ma.fields.String(allow_none=True, validate=validate.Length(max=400))
    credit_rating = ma.fields.String(allow_none=True, validate=validate.Length(max=20))
    credit_rated_on = ma.fields.Date(allow_none=True)


class TargetUpdateSchema(TargetInputSchema):
    version = ma.fields.Integer(required=True, metadata={"description": "the version you edited"})
    active = ma.fields.Boolean()
    positive_list_removal_reason = ma.fields.String(allow_none=True, validate=validate.Length(max=400))

    class Meta:
        exclude = ("uscc",)


class TargetSchema(ma.Schema):
    id = ma.fields.Integer()
    uscc = ma.fields.String()
    name = ma.fields.String()
    region_code = ma.fields.String()
    address = ma.fields.String()
    lat = ma.fields.Float(allow_none=True)
    lon = ma.fields.Float(allow_none=True)
    industry = ma.fields.String(allow_none=True)
    risk_class = ma.fields.Enum(RiskClass, by_value=True)
    risk_basis = ma.fields.String(allow_none=True)
    permit_class = ma.fields.Enum(PermitClass, by_value=True)
    permit_number = ma.fields.String(allow_none=True)
    positive_list = ma.fields.Boolean()
    positive_list_since = ma.fields.Date(allow_none=True)
    positive_list_basis = ma.fields.String(allow_none=True)
    positive_list_removed_on = ma.fields.Date(allow_none=True)
    positive_list_removal_reason = ma.fields.String(allow_none=True)
    credit_rating = ma.fields.String(allow_none=True)
    credit_rated_on = ma.fields.Date(allow_none=True)
    active = ma.fields.Boolean()
    last_inspected_on = ma.fields.Date(allow_none=True)
    version = ma.fields.Integer()


class TargetHistoryItemSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.Enum(InspectionKind, by_value=True)
    status = ma.fields.Enum(InspectionStatus, by_value=True)
    window_start = ma.fields.Date()
    window_end = ma.fields.Date()
    completed_at = ma.fields.DateTime(allow_none=True)


class TargetDetailSchema(TargetSchema):
    inspections = ma.fields.List(ma.fields.Nested(TargetHistoryItemSchema))


class TargetQuerySchema(ma.Schema):
    q = ma.fields.String(metadata={"description": "name contains, or credit code starts with"})
    region_code = ma.fields.String()
    risk_class = ma.fields.Enum(RiskClass, by_value=True)
    positive_list = ma.fields.Boolean()


class TargetImportFormSchema(ma.Schema):
    accept_valid = ma.fields.Boolean(load_default=False,
                                     metadata={"description": "take the valid rows even if some rows have errors"})


class TargetImportFileSchema(ma.Schema):
    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class TargetImportReportSchema(ma.Schema):
    filename = ma.fields.String()
    sha256 = ma.fields.String()
    total = ma.fields.Integer()
    valid = ma.fields.Integer()
    invalid = ma.fields.Integer()
    created = ma.fields.Integer()
    applied = ma.fields.Boolean()
    errors = ma.fields.List(ma.fields.Dict())
