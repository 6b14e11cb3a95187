"""Issue 15 item 23: a capture manifest a protocol-v1 app signed over the legacy JSON form (``8.0``,
not RFC 8785's ``8``) still verifies in a transfer package: the package carries the bytes the
signature was made over, and the standalone verifier passes."""
import base64
import hashlib
import json
import shutil
import zipfile

from server.core.canonical import canonical_json, legacy_canonical_json
from server.modules.cases.models import CaseEvidence
from server.modules.evidence import operations as evidence
from tests.evidence.helpers import make_team, manifest
from tests.evidence.media import photo_with_exif
from tests.transfers.conftest import store_evidence
from tests.transfers.test_package import _build, _check


def test_a_legacy_signed_manifest_travels_with_the_bytes_it_signed(app, db_session, scene, tmp_path):
    team = make_team()
    data = photo_with_exif("2026:08:07 10:00:00", 33.873, 109.943)
    store_evidence(db_session, team, data)  # the blob; the item below is the legacy-signed one
    body = manifest(team, data, sign=False, accuracy_m=8.0, lat=33.0)
    legacy = legacy_canonical_json(body)
    assert legacy != canonical_json(body)
    body["signature"] = base64.b64encode(team.key.sign(legacy)).decode()
    item = evidence.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                             manifest=body)
    assert item.signature_valid
    db_session.add(CaseEvidence(case_id=scene.case.id, evidence_id=item.id, linked_by=scene.w.a.id,
                                purpose="证明现场（旧版应用签名）"))
    db_session.flush()
    package, (zip_path,) = _build(app, db_session, scene)
    folder = tmp_path / "package"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(folder)
    finally:
        shutil.rmtree(zip_path.parent, ignore_errors=True)
    failures, _ = _check(folder)
    assert failures == []
    captures = [json.loads(line) for line in (folder / "devices/captures.jsonl").read_text().splitlines()]
    [mine] = [c for c in captures if c["item"] == item.id]
    assert base64.b64decode(mine["signed_bytes"]) == legacy
    assert hashlib.sha256(data).hexdigest() == item.sha256
