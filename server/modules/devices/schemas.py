from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.modules.users.schemas import CertificateSchema


class DeviceRegisterSchema(ma.Schema):
    public_key = ma.fields.String(required=True, metadata={"description": "raw Ed25519 public key, base64"})
    label = ma.fields.String(required=True, validate=validate.Length(1, 100))
    platform = ma.fields.String(validate=validate.Length(max=40))
    app_version = ma.fields.String(validate=validate.Length(max=40))


class DeviceEnrolSchema(DeviceRegisterSchema):
    username = ma.fields.String(required=True, validate=validate.Length(1, 64))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(1, 200))


class DeviceAdminRegisterSchema(DeviceRegisterSchema):
    user_id = ma.fields.Integer(required=True)


class DeviceSchema(ma.Schema):
    id = ma.fields.String()
    user_id = ma.fields.Integer()
    label = ma.fields.String()
    platform = ma.fields.String(allow_none=True)
    app_version = ma.fields.String(allow_none=True)
    registered_at = ma.fields.DateTime()
    last_seen_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    revoked_reason = ma.fields.String(allow_none=True)


class RevokeSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class ReenrolSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))
    public_key = ma.fields.String(metadata={"description": "a new raw Ed25519 public key, base64; omit to keep the "
                                                           "device's key (the usual case)"})


class EnrolmentSchema(ma.Schema):
    device_id = ma.fields.String()
    enrolment_token = ma.fields.String(metadata={"description": "one-time; the phone exchanges it at "
                                                                "/mobile/v1/auth/refresh (valid 24 h)"})
    expires_at = ma.fields.AwareDateTime()
    key_changed = ma.fields.Boolean()


class DeviceQuerySchema(ma.Schema):
    user_id = ma.fields.Integer()
    active = ma.fields.Boolean()


class DeviceMeSchema(ma.Schema):
    device = ma.fields.Nested(DeviceSchema)
    user_id = ma.fields.Integer()
    display_name = ma.fields.String()
    role = ma.fields.String()
    certificates = ma.fields.List(ma.fields.Nested(CertificateSchema))
    certified_today = ma.fields.Boolean()
