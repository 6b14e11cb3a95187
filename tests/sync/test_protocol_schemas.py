"""Issue 15 item 24: the JSON Schemas of sync/schemas/ (operations, results, changes) describe what
the reference client sends and what the server answers, for every entity, including rejections,
conflicts and tombstones."""
import hashlib
import json
import tempfile
import uuid
from pathlib import Path

import jsonschema
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from server.modules.inspections import operations as inspections
from sync.client import FlaskTransport, SyncClient

SCHEMAS = Path(__file__).resolve().parents[2] / "sync" / "schemas"


def _validator(name):
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _client(client, phone, workdir):
    token = phone.headers["Authorization"].split()[1]
    seed = phone.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SyncClient(str(Path(workdir) / f"{phone.device.id}.db"), FlaskTransport(client), token, phone.device.id,
                      private_key=seed)


def test_operations_results_and_changes_match_their_schemas(client, db_session, field):
    operation, result, change = _validator("operation"), _validator("result"), _validator("change")
    iid = field.inspection.id
    with tempfile.TemporaryDirectory() as workdir:
        a, b = _client(client, field.phone_a, workdir), _client(client, field.phone_b, workdir)
        a.full_resync()
        b.full_resync()
        a.set_status(iid, "in_progress")
        a.note(iid, "现场发现废水外排")
        a.check_in(iid, 33.87, 109.94, 5.0)
        a.manifest(iid, kind="photo", sha256=hashlib.sha256(b"x").hexdigest(), size=1, media_type="image/jpeg",
                   lat=33.0, lon=109.94, accuracy_m=4.0)
        a.edit_record(iid, {"findings": "甲", "identity_shown": True})
        b.edit_record(iid, {"findings": "乙"})
        numbers = json.loads(a._meta("package"))["document_numbers"]
        a.use_document_number(iid, numbers[0]["text"])
        a.enqueue("note", "append", {"id": str(uuid.uuid4()), "inspection_id": iid, "text": ""})  # rejected
        sent = [json.loads(body) for (body,) in a.db.execute("SELECT body FROM outbox ORDER BY seq")]
        sent += [json.loads(body) for (body,) in b.db.execute("SELECT body FROM outbox ORDER BY seq")]
        results = a.push() + b.push()
        for op in sent[:-3] + sent[-1:]:
            operation.validate(op)
        assert not operation.is_valid(sent[-2])  # the empty note: the schema says why it is refused
        assert {r["status"] for r in results} >= {"applied", "conflict", "rejected"}
        for item in results:
            result.validate(item)
        inspections.cancel(db_session, field.inspection, reason="企业已关停")
        db_session.commit()
        pages = []
        cursor = None
        while True:
            page = b._call("GET", "/mobile/v1/sync/changes" + (f"?cursor={cursor}" if cursor else ""))
            pages += page["changes"]
            cursor = page["cursor"]
            if not page["more"]:
                break
        kinds = {(c["entity"], c["op"]) for c in pages}
        assert {("inspection", "upsert"), ("inspection_record", "upsert"), ("note", "append"),
                ("check_in", "append"), ("media_manifest", "append"), ("document_number", "upsert"),
                ("inspection", "tombstone")} <= kinds
        for item in pages:
            change.validate(item)
        a.close()
        b.close()
