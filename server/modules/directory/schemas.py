from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.directory.models import ImportStatus, PermitClass, RiskClass
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


class DirectoryImportSchema(ma.Schema):
    """An import run as a task: its progress while it runs, its row error report once done."""

    id = ma.fields.String()
    filename = ma.fields.String()
    sha256 = ma.fields.String()
    size = ma.fields.Integer()
    accept_valid = ma.fields.Boolean()
    status = ma.fields.Enum(ImportStatus, by_value=True, metadata={
        "description": "queued, running, then applied (targets created), rejected (rows with errors; nothing "
                       "changed) or failed (the file could not be read, or the task broke: see error)"})
    done_rows = ma.fields.Integer(metadata={"description": "rows checked so far"})
    total_rows = ma.fields.Integer(allow_none=True, metadata={"description": "data rows in the file, once read"})
    progress = ma.fields.Method("_progress", metadata={"description": "share of the rows checked, 0 to 1"})
    report = ma.fields.Nested(TargetImportReportSchema, allow_none=True,
                              metadata={"description": "once applied or rejected: the synchronous import's report"})
    error = ma.fields.Dict(allow_none=True, metadata={"description": "once failed: the error contract's body"})
    requested_by = ma.fields.Integer()
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)

    def _progress(self, job: object) -> float:
        if getattr(job, "status", None) in (ImportStatus.APPLIED, ImportStatus.REJECTED):
            return 1.0
        total = getattr(job, "total_rows", None)
        return round(min(1.0, getattr(job, "done_rows", 0) / total), 4) if total else 0.0
