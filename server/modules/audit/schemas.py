from __future__ import annotations

import base64
import json
from typing import Any

import marshmallow as ma
from marshmallow import validate


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class AuditEntrySchema(ma.Schema):
    idx = ma.fields.Integer()
    tag = ma.fields.String()
    actor_kind = ma.fields.String()
    actor_id = ma.fields.String(allow_none=True)
    recorded_at = ma.fields.DateTime()
    request_id = ma.fields.String(allow_none=True)
    supersedes = ma.fields.Integer(allow_none=True)
    leaf_hash = ma.fields.Function(lambda e: _b64(e.leaf_hash))
    body = ma.fields.Function(lambda e: json.loads(e.body), metadata={"description": "the hashed canonical JSON"})


class AuditEntryQuerySchema(ma.Schema):
    subject_type = ma.fields.String(validate=validate.Length(1, 40))
    subject_id = ma.fields.String(validate=validate.Length(1, 64))
    actor_kind = ma.fields.String(validate=validate.OneOf(["user", "device", "system", "anonymous"]))
    actor_id = ma.fields.String(validate=validate.Length(1, 64))
    tag = ma.fields.String(validate=validate.Length(1, 120), metadata={"description": "tag prefix, e.g. web:login"})
    since = ma.fields.AwareDateTime(default_timezone=None)
    until = ma.fields.AwareDateTime(default_timezone=None)
    order = ma.fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))

    @ma.validates_schema
    def _subject_pair(self, data: dict[str, Any], **_: Any) -> None:
        if "subject_id" in data and "subject_type" not in data:
            raise ma.ValidationError("subject_id needs subject_type", "subject_type")


class AuditProofQuerySchema(ma.Schema):
    checkpoint_id = ma.fields.Integer(validate=validate.Range(min=1),
                                      metadata={"description": "checkpoint to prove against; default latest"})


class AuditConsistencyQuerySchema(ma.Schema):
    old = ma.fields.Integer(required=True)
    new = ma.fields.Integer(required=True)


class AuditConsistencySchema(ma.Schema):
    old_size = ma.fields.Integer()
    new_size = ma.fields.Integer()
    old_root = ma.fields.String()
    new_root = ma.fields.String()
    proof = ma.fields.List(ma.fields.String(), metadata={"description": "base64 SHA-256 hashes, RFC 9162 §2.1.4"})


class AuditCheckpointSchema(ma.Schema):
    id = ma.fields.Integer()
    size = ma.fields.Integer()
    root_hash = ma.fields.Function(lambda c: _b64(c.root_hash))
    key_id = ma.fields.String()
    created_at = ma.fields.DateTime()
    note = ma.fields.String()


class AuditCosignatureInSchema(ma.Schema):
    signature_line = ma.fields.String(required=True, validate=validate.Length(10, 2000),
                                      metadata={"description": "— <witness name> <base64(keyid||timestamp||sig)>"})


class AuditCosignatureSchema(ma.Schema):
    id = ma.fields.Integer()
    checkpoint_id = ma.fields.Integer()
    witness_name = ma.fields.String()
    signature_line = ma.fields.String()
    received_at = ma.fields.DateTime()
    details = ma.fields.Dict()


class AuditWitnessSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=validate.Regexp(r"^[^\s+]{1,200}$"))
    public_key = ma.fields.String(required=True, load_only=True,
                                  metadata={"description": "vkey (type 0x04) or base64 Ed25519 public key"})
    vkey = ma.fields.Method("_vkey", dump_only=True)
    added_by_id = ma.fields.Integer(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)

    def _vkey(self, witness: Any) -> str:
        from server.modules.audit.checkpoints import witness_vkey

        return witness_vkey(witness)
