"""Issue 15 item 23: a capture manifest is signed over its RFC 8785 (JCS) bytes, which a browser or
an Android app reproduces (``5.0`` is written ``5``, ``1e-07`` is ``1e-7``); manifests signed over
the legacy form (Python's json.dumps) by protocol-v1 apps are still accepted."""
import base64
import datetime as dt
import hashlib
import json
import uuid

import rfc8785
import sqlalchemy as sa

from server.core.canonical import legacy_canonical_json
from server.modules.evidence.models import EvidenceItem
from tests.sync.test_evidence_bridge import push


def _body(field, **extra):
    data = uuid.uuid4().bytes
    return {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id, "kind": "photo",
            "sha256": hashlib.sha256(data).hexdigest(), "size": 2048, "media_type": "image/jpeg",
            "captured_at": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(),
            "lat": 33.0, "lon": 109.94, "accuracy_m": 5.0, "clock_offset_s": 1e-07, **extra}


def test_a_manifest_signed_over_its_jcs_bytes_is_applied(client, db_session, field):
    phone = field.phone_a
    body = _body(field)
    jcs = rfc8785.dumps(body)
    assert b'"accuracy_m":5,' in jcs and b'"lat":33,' in jcs and b'"clock_offset_s":1e-7' in jcs
    assert jcs != legacy_canonical_json(body)
    signed = {**body, "signature": base64.b64encode(phone.key.sign(jcs)).decode()}
    # sent as a browser would send it: JSON.stringify writes 5.0 as 5
    raw = json.loads(json.dumps({"ops": [phone.op("media_manifest", "append", signed)]}).replace("5.0,", "5,"))
    response = client.post("/mobile/v1/sync/push", json=raw, headers=phone.headers).json
    assert response["results"][0]["status"] == "applied", response["results"][0]
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    assert item.signature_valid


def test_a_manifest_signed_over_the_legacy_form_is_still_accepted(client, db_session, field):
    phone = field.phone_a
    body = _body(field)
    signed = {**body, "signature": base64.b64encode(phone.key.sign(legacy_canonical_json(body))).decode()}
    result = push(client, phone, phone.op("media_manifest", "append", signed))["results"][0]
    assert result["status"] == "applied", result
