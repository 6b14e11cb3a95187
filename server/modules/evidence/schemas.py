from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class EvidenceFlagSchema(ma.Schema):
    code = ma.fields.String()
    detail = ma.fields.Dict()
    raised_at = ma.fields.DateTime()


class CustodyEventSchema(ma.Schema):
    seq = ma.fields.Integer()
    action = ma.fields.Function(lambda e: e.action.value)
    at = ma.fields.DateTime()
    actor_kind = ma.fields.String()
    actor_id = ma.fields.String(allow_none=True)
    sha256 = ma.fields.String(allow_none=True)
    detail = ma.fields.Dict()


class PositionSchema(ma.Schema):
    lat = ma.fields.Float()
    lon = ma.fields.Float()


class LocationSchema(ma.Schema):
    wgs84 = ma.fields.Nested(PositionSchema, metadata={"description": "WGS-84 (GPS, what is stored and compared)"})
    gcj02 = ma.fields.Nested(PositionSchema, metadata={"description": "GCJ-02, for Chinese map services"})
    accuracy_m = ma.fields.Float(allow_none=True)


class ExifGpsSchema(LocationSchema):
    status = ma.fields.String(metadata={"description": "ok | invalid (out of range) | no_fix (0/0) | missing"})
    source = ma.fields.String()
    datum_in_file = ma.fields.String(allow_none=True, metadata={"description": "GPSMapDatum as written"})
    altitude_m = ma.fields.Float(allow_none=True)
    raw = ma.fields.Dict(metadata={"description": "the values read, when they are not a usable position"})


class MediaMetadataSchema(ma.Schema):
    """What the server read from the stored bytes (``server/modules/evidence/metadata.py``)."""

    capture_time = ma.fields.String(allow_none=True, metadata={"description": "ISO 8601 with offset"})
    capture_time_source = ma.fields.String(metadata={
        "description": "exif_with_offset | exif_zone_assumed (no OffsetTimeOriginal: China time assumed) | "
                       "device (manifest) | unknown"})
    zone_assumed = ma.fields.String(allow_none=True)
    exif_time_raw = ma.fields.String(allow_none=True)
    exif_offset_raw = ma.fields.String(allow_none=True)
    gps = ma.fields.Nested(ExifGpsSchema)
    device_location = ma.fields.Nested(LocationSchema, allow_none=True)
    make = ma.fields.String(allow_none=True)
    model = ma.fields.String(allow_none=True)
    orientation = ma.fields.Integer(allow_none=True, metadata={"description": "EXIF Orientation 1-8"})
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    format = ma.fields.String(allow_none=True)
    duration_s = ma.fields.Float(allow_none=True, metadata={"description": "video: from the MP4/MOV movie header"})


class RejectionSchema(ma.Schema):
    code = ma.fields.String()
    message_zh = ma.fields.String()
    message_en = ma.fields.String()
    detail = ma.fields.Dict()
    upload = ma.fields.String(allow_none=True)
    at = ma.fields.String()


class EvidenceSchema(ma.Schema):
    id = ma.fields.String()
    client_id = ma.fields.String()
    sha256 = ma.fields.String()
    size = ma.fields.Integer()
    media_type = ma.fields.String()
    sniffed_media_type = ma.fields.Function(lambda i: i.blob.media_type if i.blob else None)
    kind = ma.fields.Function(lambda i: i.kind.value)
    status = ma.fields.Function(lambda i: i.status.value)
    inspection_id = ma.fields.String(allow_none=True)
    case_id = ma.fields.String(allow_none=True)
    step = ma.fields.String(allow_none=True)
    captured_by = ma.fields.Integer()
    certificate_number = ma.fields.String(allow_none=True)
    second_inspector_id = ma.fields.Integer(allow_none=True)
    witness = ma.fields.Dict(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    app_version = ma.fields.String(allow_none=True)
    acquisition_method = ma.fields.String()
    captured_at_device = ma.fields.DateTime(allow_none=True)
    device_clock_offset_s = ma.fields.Float(allow_none=True)
    received_at = ma.fields.DateTime()
    verified_at = ma.fields.DateTime(allow_none=True)
    lat = ma.fields.Float(allow_none=True)
    lon = ma.fields.Float(allow_none=True)
    accuracy_m = ma.fields.Float(allow_none=True)
    signature_valid = ma.fields.Boolean()
    parent_id = ma.fields.String(allow_none=True)
    derivation = ma.fields.Function(lambda i: i.derivation.value if i.derivation else None)
    custodian_id = ma.fields.Integer(allow_none=True)
    merkle_root = ma.fields.Function(lambda i: i.blob.merkle_root if i.blob else None)
    flags = ma.fields.List(ma.fields.Nested(EvidenceFlagSchema))
    media_metadata = ma.fields.Nested(MediaMetadataSchema, allow_none=True)
    rejection = ma.fields.Nested(RejectionSchema, allow_none=True)


class EvidenceDetailSchema(EvidenceSchema):
    manifest = ma.fields.Dict()
    custody = ma.fields.List(ma.fields.Nested(CustodyEventSchema))
    derivatives = ma.fields.List(ma.fields.Nested(EvidenceSchema))


class EvidenceQuerySchema(ma.Schema):
    inspection_id = ma.fields.String(required=True)


class EvidenceAccessSchema(ma.Schema):
    purpose = ma.fields.String(validate=validate.Length(max=200))


class EvidenceHandoverCreateSchema(ma.Schema):
    to_user_id = ma.fields.Integer(required=True)
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=400))
    location = ma.fields.String(validate=validate.Length(max=200))
    physical_media = ma.fields.String(validate=validate.Length(max=200))
    from_user_id = ma.fields.Integer(metadata={"description": "device-signed only; default: the caller"})
    signatures = ma.fields.Dict(metadata={"description": "device-signed hand-over: at, from_device_id, "
                                                        "from_signature, to_device_id, to_signature (base64)"})


class EvidenceHandoverSchema(ma.Schema):
    id = ma.fields.String()
    item_id = ma.fields.String()
    from_user_id = ma.fields.Integer()
    to_user_id = ma.fields.Integer()
    purpose = ma.fields.String()
    method = ma.fields.String()
    status = ma.fields.Function(lambda h: h.status.value)
    initiated_at = ma.fields.DateTime()
    confirmed_at = ma.fields.DateTime(allow_none=True)


class EvidenceChunkProofQuerySchema(ma.Schema):
    start = ma.fields.Integer(required=True, validate=validate.Range(min=0))
    end = ma.fields.Integer(required=True, validate=validate.Range(min=1))


class EvidenceChunkProofSchema(ma.Schema):
    sha256 = ma.fields.String()
    chunk_size = ma.fields.Integer()
    tree_size = ma.fields.Integer()
    root = ma.fields.String()
    chunks = ma.fields.List(ma.fields.Dict())


class EvidenceOverdueSchema(ma.Schema):
    item = ma.fields.Nested(EvidenceSchema)
    reconnected_at = ma.fields.DateTime()
    due = ma.fields.Date()


class EvidenceFixityAlertSchema(ma.Schema):
    id = ma.fields.Integer()
    sha256 = ma.fields.String()
    problem = ma.fields.String()
    found_sha256 = ma.fields.String(allow_none=True)
    detected_at = ma.fields.DateTime()


class EvidenceDeletionRequestCreateSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=400))


class EvidenceDeletionRequestSchema(ma.Schema):
    id = ma.fields.Integer()
    item_id = ma.fields.String()
    requested_by = ma.fields.Integer()
    requested_at = ma.fields.DateTime()
    reason = ma.fields.String()
    approved_by = ma.fields.Integer(allow_none=True)
    approved_at = ma.fields.DateTime(allow_none=True)


class MediaMissingQuerySchema(ma.Schema):
    hashes = ma.fields.List(ma.fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$")), required=True,
                            validate=validate.Length(max=5000))


class MediaRejectedSchema(RejectionSchema):
    sha256 = ma.fields.String()
    capture_id = ma.fields.String(metadata={"description": "the manifest's id"})


class MediaMissingSchema(ma.Schema):
    missing = ma.fields.List(ma.fields.String())
    rejected = ma.fields.List(ma.fields.Nested(MediaRejectedSchema), metadata={
        "description": "refused bytes: do not upload them again (the item is rejected, with this reason)"})
    order = ma.fields.List(ma.fields.String())
    note = ma.fields.String()


class MediaOnlineSchema(ma.Schema):
    at = ma.fields.DateTime(metadata={"description": "when the device regained connectivity (device clock)"})
