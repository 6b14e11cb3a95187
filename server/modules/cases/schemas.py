from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.cases.models import AgencyRole, CaseState, PartyKind


class HandlerSchema(ma.Schema):
    user_id = ma.fields.Integer()
    lead = ma.fields.Boolean()
    certificate_number = ma.fields.String()


class AgencySchema(ma.Schema):
    agency_id = ma.fields.Integer()
    role = ma.fields.Enum(AgencyRole, by_value=True)
    access = ma.fields.String()
    tasks = ma.fields.String(allow_none=True)


class CaseSchema(ma.Schema):
    id = ma.fields.String()
    number = ma.fields.String(allow_none=True)
    unit_id = ma.fields.Integer()
    target_id = ma.fields.Integer(allow_none=True)
    source_inspection_id = ma.fields.String(allow_none=True)
    state = ma.fields.Enum(CaseState, by_value=True)
    title = ma.fields.String()
    party_name = ma.fields.String()
    party_kind = ma.fields.Enum(PartyKind, by_value=True)
    party_uscc = ma.fields.String(allow_none=True)
    facts = ma.fields.String()
    violation_code = ma.fields.String(allow_none=True)
    legal_basis = ma.fields.String(allow_none=True)
    measures = ma.fields.List(ma.fields.String())
    act_ended_on = ma.fields.Date(allow_none=True)
    discovered_on = ma.fields.Date(allow_none=True)
    filed_on = ma.fields.Date(allow_none=True)
    limitation_warning = ma.fields.Boolean()
    special_case = ma.fields.Boolean()
    supervised_level = ma.fields.String(allow_none=True)
    joint = ma.fields.Boolean()
    notified_fine = ma.fields.Integer(allow_none=True)
    notified_measures = ma.fields.List(ma.fields.String(), allow_none=True)
    notice_served_on = ma.fields.Date(allow_none=True)
    hearing_rights = ma.fields.Boolean()
    hearing_requested_on = ma.fields.Date(allow_none=True)
    hearing_date = ma.fields.Date(allow_none=True)
    hearing_held = ma.fields.Boolean()
    suspected_crime = ma.fields.Boolean()
    crime_hits = ma.fields.List(ma.fields.Dict())
    transfer_started_at = ma.fields.DateTime(allow_none=True)
    transfer_refusal_reason = ma.fields.String(allow_none=True)
    collective_discussed_on = ma.fields.Date(allow_none=True)
    decision_date = ma.fields.Date(allow_none=True)
    decided_fine = ma.fields.Integer(allow_none=True)
    reduction_basis = ma.fields.String(allow_none=True)
    service_method = ma.fields.String(allow_none=True)
    served_on = ma.fields.Date(allow_none=True)
    paid_on = ma.fields.Date(allow_none=True)
    paid_amount = ma.fields.Integer(allow_none=True)
    late_fee = ma.fields.Integer(allow_none=True)
    published_on = ma.fields.Date(allow_none=True)
    non_publication_reason = ma.fields.String(allow_none=True)
    closed_on = ma.fields.Date(allow_none=True)
    archived_at = ma.fields.DateTime(allow_none=True)
    version = ma.fields.Integer()
    handlers = ma.fields.List(ma.fields.Nested(HandlerSchema))
    agencies = ma.fields.List(ma.fields.Nested(AgencySchema))


class CaseCreateSchema(ma.Schema):
    title = ma.fields.String(required=True, validate=validate.Length(2, 200))
    target_id = ma.fields.Integer()
    party_name = ma.fields.String(validate=validate.Length(1, 200))
    party_kind = ma.fields.Enum(PartyKind, by_value=True, load_default=PartyKind.ORGANISATION)
    source_inspection_id = ma.fields.String()
    facts = ma.fields.String(load_default="")
    violation_code = ma.fields.String()
    legal_basis = ma.fields.String()
    act_ended_on = ma.fields.Date()
    discovered_on = ma.fields.Date()
    crime_facts = ma.fields.Dict()


class CaseQuerySchema(ma.Schema):
    state = ma.fields.Enum(CaseState, by_value=True)


class StepSchema(ma.Schema):
    """The body of any step; each step names the fields it needs (``api.STEP_FIELDS``)."""

    on = ma.fields.Date()
    handler_ids = ma.fields.List(ma.fields.Integer())
    kind = ma.fields.String(validate=validate.OneOf(["inquiry", "on_site", "sampling", "survey", "preservation", "seizure"]))
    act_date = ma.fields.Date()
    inspector_ids = ma.fields.List(ma.fields.Integer())
    summary = ma.fields.String(validate=validate.Length(1, 4000))
    inspection_id = ma.fields.String()
    evidence_ids = ma.fields.List(ma.fields.String())
    purpose = ma.fields.String(validate=validate.Length(max=200))
    violation_code = ma.fields.String()
    version = ma.fields.String()
    inputs = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict())
    corrections = ma.fields.List(ma.fields.String())
    circumstance = ma.fields.String(validate=validate.OneOf(["lighter", "ordinary", "aggravated"]))
    reduction = ma.fields.Dict()
    measures = ma.fields.List(ma.fields.String())
    fine = ma.fields.Integer(validate=validate.Range(min=0))
    facts = ma.fields.Dict()
    reason = ma.fields.String(validate=validate.Length(1, 2000))
    note = ma.fields.String()
    hearing_too = ma.fields.Boolean(metadata={"description": "the party waives the hearing too, expressly (第64条)"})
    adopted = ma.fields.String()
    notice_on = ma.fields.Date()
    hearing_date = ma.fields.Date()
    presider_id = ma.fields.Integer()
    record_summary = ma.fields.String()
    minutes = ma.fields.String()
    participants = ma.fields.List(ma.fields.String())
    reduction_basis = ma.fields.String()
    method = ma.fields.String()
    consent_signed = ma.fields.Boolean()
    amount = ma.fields.Integer(validate=validate.Range(min=0))
    measure = ma.fields.String()
    non_publication_reason = ma.fields.String()
    agency_id = ma.fields.Integer()
    role = ma.fields.Enum(AgencyRole, by_value=True)
    access = ma.fields.String(validate=validate.OneOf(["evidence", "full"]))
    tasks = ma.fields.String()
    level = ma.fields.String()
    special_case = ma.fields.Boolean()
    order_served_on = ma.fields.Date()
    round_no = ma.fields.Integer()
    recheck_on = ma.fields.Date()
    continuing = ma.fields.Boolean()
    field = ma.fields.String()
    value = ma.fields.Raw()
    approved_by_id = ma.fields.Integer(metadata={"description": "the head approving 先行登记保存 or 查封、扣押"})
    document_number = ma.fields.String(validate=validate.Length(1, 80))
    act_id = ma.fields.Integer()
    decision = ma.fields.String(validate=validate.Length(1, 400))
    limitation_ground = ma.fields.String(validate=validate.OneOf(["life_health", "financial"]))


class DocumentSchema(ma.Schema):
    id = ma.fields.Integer()
    case_id = ma.fields.String()
    doc_type = ma.fields.String()
    number = ma.fields.String()
    sha256 = ma.fields.String()
    created_at = ma.fields.DateTime()


class DocumentCreateSchema(ma.Schema):
    doc_type = ma.fields.String(required=True, validate=validate.OneOf(
        ["notice", "hearing_notice", "decision", "inspection_record"]))
    on = ma.fields.Date()


class DeadlineActionSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=validate.OneOf(["pause", "resume", "extend"]))
    on = ma.fields.Date()
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))
    reason_code = ma.fields.String(validate=validate.OneOf(
        ["hearing", "monitoring", "appraisal", "service", "criminal_transfer", "public_notice"]))
    amount = ma.fields.Integer(validate=validate.Range(min=1))
    approval = ma.fields.String(validate=validate.OneOf(["head", "collective_discussion"]), metadata={
        "description": "for an extension: approved by the head, or decided by the heads' collective discussion"})


class DashboardQuerySchema(ma.Schema):
    unit_id = ma.fields.Integer()
    horizon_days = ma.fields.Integer(load_default=7, validate=validate.Range(0, 90))
    mine = ma.fields.Boolean(load_default=False)
