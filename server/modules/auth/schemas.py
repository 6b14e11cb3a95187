from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class LoginSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=validate.Length(1, 64))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(1, 200))


class PasswordChangeSchema(LoginSchema):
    new_password = ma.fields.String(required=True, load_only=True, validate=validate.Length(1, 200))


class TokenSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer(metadata={"description": "seconds"})


class DeviceTokenSchema(TokenSchema):
    refresh_token = ma.fields.String()
    refresh_expires_at = ma.fields.DateTime()
    device_id = ma.fields.String()


class RefreshSchema(ma.Schema):
    refresh_token = ma.fields.String(required=True, validate=validate.Length(10, 200))


class MeSchema(ma.Schema):
    kind = ma.fields.String()
    role = ma.fields.String()
    user_id = ma.fields.Integer(allow_none=True)
    username = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    unit_id = ma.fields.Integer(allow_none=True)
    region_code = ma.fields.String(allow_none=True)
