from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.core.http import ErrorSchema
from server.modules.sync.models import ConflictStatus


class DeviceReportSchema(ma.Schema):
    outbox_depth = ma.fields.Integer(validate=validate.Range(min=0))
    pending_media_bytes = ma.fields.Integer(validate=validate.Range(min=0))
    app_version = ma.fields.String(validate=validate.Length(max=40))


class ClockSampleSchema(ma.Schema):
    offset_ms = ma.fields.Integer(metadata={"description": "device − server, from the previous exchange"})
    rtt_ms = ma.fields.Integer(validate=validate.Range(min=0))


class HelloSchema(ma.Schema):
    client_time = ma.fields.AwareDateTime(required=True, metadata={"description": "t0: device clock at send"})
    previous = ma.fields.Nested(ClockSampleSchema)
    report = ma.fields.Nested(DeviceReportSchema)


class HelloResultSchema(ma.Schema):
    protocol = ma.fields.Integer()
    device_id = ma.fields.String()
    client_time = ma.fields.String()
    server_receive = ma.fields.String(metadata={"description": "t1"})
    server_send = ma.fields.String(metadata={"description": "t2"})
    offset_estimate_ms = ma.fields.Integer()
    acked_seq = ma.fields.Integer()
    max_seq = ma.fields.Integer()
    head = ma.fields.String()


ENTITIES = ["inspection", "inspection_record", "note", "check_in", "media_manifest", "document_number"]
ACTIONS = ["set_status", "edit", "append", "use"]


class OperationSchema(ma.Schema):
    """One offline operation as the device queued it (sync/PROTOCOL.md §4). Documentation only:
    the push loads each item itself, so that one bad item is rejected alone, not the batch."""

    op_id = ma.fields.UUID(required=True, metadata={"description": "assigned when created; never changes on retry"})
    seq = ma.fields.Integer(required=True, validate=validate.Range(1, 2**62 - 1),
                            metadata={"description": "the device's sequence number: 1, 2, 3, … never reused"})
    entity = ma.fields.String(required=True, validate=validate.OneOf(ENTITIES))
    action = ma.fields.String(required=True, validate=validate.OneOf(ACTIONS))
    device_time = ma.fields.AwareDateTime(metadata={"description": "device clock when the operation was made"})
    data = ma.fields.Dict(required=True, metadata={
        "description": "per entity and action (PROTOCOL.md §4, Operations); always inspection_id"})


class DeviceSequenceSchema(ma.Schema):
    acked_seq = ma.fields.Integer(metadata={"description": "every seq up to this one is stored"})
    max_seq = ma.fields.Integer()
    missing = ma.fields.List(ma.fields.List(ma.fields.Integer(), validate=validate.Length(equal=2)),
                             metadata={"description": "[from, to] ranges the server has not seen"})


class OperationResultSchema(ma.Schema):
    index = ma.fields.Integer(metadata={"description": "position of the operation in this request"})
    op_id = ma.fields.String(allow_none=True)
    seq = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(validate=validate.OneOf(["applied", "merged", "conflict", "duplicate", "rejected"]))
    id = ma.fields.String(metadata={"description": "the entity the operation touched"})
    error = ma.fields.Nested(ErrorSchema, metadata={"description": "the error contract, when rejected"})
    version = ma.fields.Integer(metadata={"description": "inspection_record edits: the record's new version"})
    applied = ma.fields.List(ma.fields.String(), metadata={"description": "inspection_record edits: fields applied"})
    conflicts = ma.fields.List(ma.fields.Dict(), metadata={"description": "inspection_record edits: open conflicts"})


class PushSchema(ma.Schema):
    device_id = ma.fields.String(metadata={"description": "optional; must be the token's device"})
    ops = ma.fields.List(ma.fields.Raw(metadata={"openapi_schema": OperationSchema}), required=True,
                         metadata={"description": "at most 1000 operations, each checked on its own"})
    report = ma.fields.Nested(DeviceReportSchema)


class PushResultSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(OperationResultSchema), metadata={"description": "one per operation, in order"})
    device = ma.fields.Nested(DeviceSequenceSchema)
    replayed = ma.fields.Integer(metadata={"description": "operations answered from their stored first result"})
    server_time = ma.fields.String()


class PullQuerySchema(ma.Schema):
    cursor = ma.fields.String(load_default=None)
    limit = ma.fields.Integer(load_default=1000, validate=validate.Range(min=1, max=5000))


class ChangeSchema(ma.Schema):
    """One entry of the change log as a device pulls it (PROTOCOL.md §3)."""

    seq = ma.fields.Integer(required=True)
    entity = ma.fields.String(required=True, validate=validate.OneOf(ENTITIES))
    id = ma.fields.String(required=True)
    op = ma.fields.String(required=True, validate=validate.OneOf(["upsert", "append", "tombstone"]))
    inspection_id = ma.fields.String(allow_none=True)
    at = ma.fields.String(metadata={"description": "commit time, ISO 8601 UTC"})
    data = ma.fields.Dict(metadata={"description": "the entity (upsert, append) or the reason (tombstone)"})


class PullResultSchema(ma.Schema):
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))
    cursor = ma.fields.String()
    more = ma.fields.Boolean()


class PackageQuerySchema(ma.Schema):
    inspection_id = ma.fields.String(load_default=None)


class PackageSchema(ma.Schema):
    protocol = ma.fields.Integer()
    cursor = ma.fields.String()
    generated_at = ma.fields.String()
    inspections = ma.fields.List(ma.fields.Dict())
    targets = ma.fields.List(ma.fields.Dict())
    team = ma.fields.List(ma.fields.Dict())
    records = ma.fields.List(ma.fields.Dict())
    notes = ma.fields.List(ma.fields.Dict())
    check_ins = ma.fields.List(ma.fields.Dict())
    media_manifests = ma.fields.List(ma.fields.Dict())
    templates = ma.fields.List(ma.fields.Dict())
    checklists = ma.fields.List(ma.fields.Dict())
    document_numbers = ma.fields.List(ma.fields.Dict())


class ConflictAuthorSchema(ma.Schema):
    value = ma.fields.Raw(allow_none=True)
    version = ma.fields.Integer(allow_none=True, metadata={"description": "record version that set it (kept values "
                                                                          "a device pushed have none)"})
    user_id = ma.fields.Integer(allow_none=True)
    display_name = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "server time it was recorded"})


class ConflictCandidateSchema(ConflictAuthorSchema):
    index = ma.fields.Integer(metadata={"description": "what `choice` names"})
    op_id = ma.fields.String(allow_none=True)
    is_current = ma.fields.Boolean(metadata={"description": "equal to the record's current value"})


class ConflictSchema(ma.Schema):
    id = ma.fields.Integer()
    record_version = ma.fields.Integer(attribute="described.record_version", metadata={
        "description": "the record's version now: a resolution sends it back as `record_version`"})
    current = ma.fields.Nested(ConflictAuthorSchema, attribute="described.current", metadata={
        "description": "the field's current value, and who set it and when"})
    candidates = ma.fields.List(ma.fields.Nested(ConflictCandidateSchema), attribute="described.candidates",
                                metadata={"description": "every kept value with author and time; `index` is "
                                                         "the `choice`"})
    record_id = ma.fields.String()
    inspection_id = ma.fields.String()
    unit_id = ma.fields.Integer()
    field = ma.fields.String()
    base_value = ma.fields.Raw()
    values = ma.fields.List(ma.fields.Dict())
    status = ma.fields.Enum(ConflictStatus, by_value=True)
    created_at = ma.fields.DateTime()
    resolved_value = ma.fields.Raw()
    resolved_reason = ma.fields.String()
    resolved_by = ma.fields.Integer()
    resolved_at = ma.fields.DateTime()
    resolved_version = ma.fields.Integer()


class ConflictQuerySchema(ma.Schema):
    status = ma.fields.Enum(ConflictStatus, by_value=True, load_default=ConflictStatus.OPEN)


class ResolveSchema(ma.Schema):
    record_version = ma.fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "the record version the decision was made against (`record_version` of the conflict as "
                       "shown); 409 sync.conflict_stale if the record changed since"})
    choice = ma.fields.Integer(metadata={"description": "index into values"})
    value = ma.fields.Raw(allow_none=True, metadata={"description": "a merged value instead of a choice"})
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))

    @ma.validates_schema
    def _one_of(self, data: dict, **_: object) -> None:
        if ("choice" in data) == ("value" in data):
            raise ma.ValidationError("give either choice or value / 二选一", "choice")


class DeviceHealthSchema(ma.Schema):
    device_id = ma.fields.String()
    label = ma.fields.String()
    user_id = ma.fields.Integer()
    display_name = ma.fields.String()
    revoked = ma.fields.Boolean()
    last_contact_at = ma.fields.DateTime(allow_none=True)
    outbox_depth = ma.fields.Integer(allow_none=True)
    pending_media_bytes = ma.fields.Integer(allow_none=True)
    clock_offset_ms = ma.fields.Integer(allow_none=True)
    clock_rtt_ms = ma.fields.Integer(allow_none=True)
    acked_seq = ma.fields.Integer()
    max_seq = ma.fields.Integer()
    app_version = ma.fields.String(allow_none=True)
    open_conflicts = ma.fields.Integer()
