from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from server.core.access import Role
from server.modules.users.models import CertificateStatus


class RegionSchema(ma.Schema):
    code = ma.fields.String()
    name_zh = ma.fields.String()
    name_en = ma.fields.String()
    parent_code = ma.fields.String(allow_none=True)


class UnitSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.Function(lambda u: u.kind.value)
    name_zh = ma.fields.String()
    name_en = ma.fields.String()
    region_code = ma.fields.String()
    agency_id = ma.fields.Integer()
    agency_kind = ma.fields.Function(lambda u: u.agency.kind.value)


class CertificateSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    number = ma.fields.String(required=True, validate=validate.Length(3, 40))
    issuer = ma.fields.String(required=True, validate=validate.Length(2, 100))
    scope = ma.fields.String(required=True, validate=validate.Length(2, 200))
    valid_from = ma.fields.Date(required=True)
    valid_until = ma.fields.Date(required=True)
    status = ma.fields.Enum(CertificateStatus, by_value=True, dump_only=True)
    status_reason = ma.fields.String(dump_only=True, allow_none=True)


class CertificateStatusSchema(ma.Schema):
    status = ma.fields.Enum(CertificateStatus, by_value=True, required=True)
    reason = ma.fields.String(required=True, validate=validate.Length(2, 400))


class LegalQualificationSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    kind = ma.fields.String(required=True, validate=validate.Length(2, 60))
    number = ma.fields.String(required=True, validate=validate.Length(3, 60))
    obtained_on = ma.fields.Date(required=True)


class UserSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    username = ma.fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_.-]{3,64}$"))
    display_name = ma.fields.String(required=True, validate=validate.Length(1, 100))
    role = ma.fields.Enum(Role, by_value=True, required=True)
    unit_id = ma.fields.Integer(required=True)
    region_code = ma.fields.String(validate=validate.Regexp(r"^\d{6}$"))
    phone = ma.fields.String(allow_none=True, validate=validate.Length(max=20))
    active = ma.fields.Boolean(dump_only=True)
    certificates = ma.fields.List(ma.fields.Nested(CertificateSchema), dump_only=True)
    legal_qualifications = ma.fields.List(ma.fields.Nested(LegalQualificationSchema), dump_only=True)


class UserCreateSchema(UserSchema):
    # the policy (server.core.passwords) decides, the same for the API, the console and the CLI
    password = ma.fields.String(load_only=True, validate=validate.Length(max=200))


class UserUpdateSchema(ma.Schema):
    display_name = ma.fields.String(validate=validate.Length(1, 100))
    role = ma.fields.Enum(Role, by_value=True)
    unit_id = ma.fields.Integer()
    region_code = ma.fields.String(validate=validate.Regexp(r"^\d{6}$"))
    phone = ma.fields.String(allow_none=True, validate=validate.Length(max=20))
    active = ma.fields.Boolean()
    # the policy (server.core.passwords) decides, the same for the API, the console and the CLI
    password = ma.fields.String(load_only=True, validate=validate.Length(max=200))


class UserQuerySchema(ma.Schema):
    role = ma.fields.Enum(Role, by_value=True)
    unit_id = ma.fields.Integer()
    region_code = ma.fields.String()


class EligibilityQuerySchema(ma.Schema):
    on = ma.fields.Date(required=True, metadata={"description": "date of the enforcement act"})


class EligibilitySchema(ma.Schema):
    user_id = ma.fields.Integer()
    on = ma.fields.Date()
    eligible = ma.fields.Boolean()
    certificate_number = ma.fields.String(allow_none=True)
    valid_until = ma.fields.Date(allow_none=True)
    reason = ma.fields.Dict(allow_none=True)
