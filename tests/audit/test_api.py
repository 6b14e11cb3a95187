"""The audit API: reading the log, proofs, checkpoints, witnesses and cosignatures."""
from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.core.access import Role
from server.extensions import db
from server.modules.audit import merkle, verifier
from server.modules.audit import operations as audit
from server.modules.audit.tasks import PUBLISH, publish_checkpoint
from tests import factories
from tests.helpers import assert_contract, staff_headers

VERIFIER = Path(verifier.__file__)


def _log(n, **subjects):
    for i in range(n):
        audit.record(db.session, f"test:thing:step{i % 3}", subjects=subjects or {"thing": i},
                     payload={"i": i}, actor=audit.Actor("user", "42" if i % 2 else "43"))
    db.session.commit()


def _user(role):
    return factories.UserFactory(role=role)


def test_entries_filter_by_subject_actor_tag_and_time_and_page(client):
    staff = staff_headers(_user(Role.INSPECTOR))
    base, _ = audit.head(db.session)
    _log(6, case=77)
    _log(4)
    response = client.get("/api/v1/audit/entries?subject_type=case&subject_id=77&order=asc", headers=staff)
    assert response.status_code == 200, response.json
    assert [e["idx"] for e in response.json] == list(range(base, base + 6))
    assert response.json[0]["body"]["subjects"] == ["case:77"]
    assert response.json[0]["leaf_hash"] == base64.b64encode(
        merkle.leaf_hash(verifier.json.dumps(response.json[0]["body"], sort_keys=True, separators=(",", ":"),
                                             ensure_ascii=False).encode())).decode()

    response = client.get("/api/v1/audit/entries?actor_kind=user&actor_id=42&tag=test:thing", headers=staff)
    assert {e["idx"] for e in response.json} >= {base + 1, base + 3, base + 5}
    assert all(e["actor_id"] == "42" for e in response.json)

    response = client.get("/api/v1/audit/entries?tag=test:thing:step1&page_size=2&page=1", headers=staff)
    assert len(response.json) == 2 and all(e["tag"] == "test:thing:step1" for e in response.json)
    assert "X-Pagination" in response.headers

    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert client.get("/api/v1/audit/entries", query_string={"since": future}, headers=staff).json == []

    history = client.get("/api/v1/audit/subjects/case/77/history", headers=staff)
    assert [e["idx"] for e in history.json] == list(range(base, base + 6))
    assert client.get(f"/api/v1/audit/entries/{base}", headers=staff).json["idx"] == base
    assert_contract(client.get(f"/api/v1/audit/entries/{base + 10**6}", headers=staff), 404, "audit.entry_not_found")


def test_access_policy(client):
    assert_contract(client.get("/api/v1/audit/entries"), 401)
    inspector = staff_headers(_user(Role.INSPECTOR))
    assert_contract(client.post("/api/v1/audit/checkpoints", headers=inspector), 403)
    assert_contract(client.get("/api/v1/audit/witnesses", headers=inspector), 403)
    supervisor = staff_headers(_user(Role.SUPERVISOR))
    assert client.post("/api/v1/audit/checkpoints", headers=supervisor).status_code == 201
    assert client.get("/api/v1/public/audit/checkpoint").status_code == 200


def test_checkpoint_consistency_and_proof_file_verify_offline(client, app, tmp_path):
    manager = staff_headers(_user(Role.SUPERVISOR))
    _log(5)
    first = client.post("/api/v1/audit/checkpoints", headers=manager).json
    assert client.post("/api/v1/audit/checkpoints", headers=manager).json["id"] == first["id"]  # head unchanged
    _log(9)
    second = client.post("/api/v1/audit/checkpoints", headers=manager).json
    assert second["size"] == first["size"] + 9

    note = client.get("/api/v1/public/audit/checkpoint")
    assert note.status_code == 200 and note.mimetype == "text/plain"
    from server.modules.audit.checkpoints import log_verifier_key

    key = log_verifier_key(app.config)
    parsed = verifier.verify_checkpoint(note.get_data(as_text=True), key, origin=app.config["AUDIT_LOG_ORIGIN"])
    assert (parsed.size, base64.b64encode(parsed.root).decode()) == (second["size"], second["root_hash"])
    assert note.get_data(as_text=True).startswith(f"{app.config['AUDIT_LOG_ORIGIN']}\n{second['size']}\n")

    consistency = client.get(f"/api/v1/public/audit/consistency?old={first['size']}&new={second['size']}").json
    assert verifier.verify_consistency(first["size"], second["size"], base64.b64decode(first["root_hash"]),
                                       base64.b64decode(second["root_hash"]),
                                       [base64.b64decode(h) for h in consistency["proof"]])

    idx = second["size"] - 3
    response = client.get(f"/api/v1/audit/entries/{idx}/proof", headers=manager)
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ") and f"\nindex {idx}\n" in text
    result = verifier.verify_inclusion_proof_file(text, key)
    assert result.index == idx and result.entry["idx"] == idx

    # the same file against the older checkpoint it is not in → clear error
    assert_contract(client.get(f"/api/v1/audit/entries/{idx}/proof?checkpoint_id={first['id']}", headers=manager),
                    422, "audit.index_out_of_range")

    # the standalone verifier, run as outsiders run it: plain python3, standard library only
    proof = tmp_path / "entry.tlog-proof"
    proof.write_text(text, encoding="utf-8")
    run = subprocess.run([sys.executable, "-I", str(VERIFIER), str(proof), "--key", key.vkey()],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "通过" in run.stdout and "OK: entry" in run.stdout
    bare = base64.b64encode(key.public_key).decode()
    assert subprocess.run([sys.executable, "-I", str(VERIFIER), str(proof), "--key", bare],
                          capture_output=True, check=False).returncode == 0
    proof.write_text(text.replace(f"index {idx}", f"index {idx - 1}"), encoding="utf-8")
    run = subprocess.run([sys.executable, "-I", str(VERIFIER), str(proof), "--key", key.vkey()],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "失败" in run.stdout and "FAILED" in run.stdout


def test_bad_requests_use_the_error_contract(client):
    manager = staff_headers(_user(Role.SUPERVISOR))
    _log(3)
    size, _ = audit.head(db.session)
    assert_contract(client.get(f"/api/v1/public/audit/consistency?old=0&new={size}"), 422, "audit.empty_consistency")
    assert_contract(client.get(f"/api/v1/public/audit/consistency?old=1&new={size + 5}"), 422,
                    "audit.size_out_of_range")
    assert_contract(client.get(f"/api/v1/public/audit/consistency?old={size}&new=1"), 422, "audit.size_out_of_range")
    assert_contract(client.get("/api/v1/public/audit/consistency?old=x&new=1"), 422, "request.validation_failed")
    assert_contract(client.get(f"/api/v1/audit/entries/{size - 1}/proof", headers=manager), 409,
                    "audit.entry_not_checkpointed")
    assert_contract(client.get("/api/v1/audit/entries/0/proof?checkpoint_id=999999", headers=manager), 404,
                    "audit.checkpoint_not_found")
    assert_contract(client.get(f"/api/v1/public/audit/checkpoints/{2**40}"), 404)
    assert_contract(client.get(f"/api/v1/audit/entries/{2**64}", headers=manager), 404)
    assert_contract(client.get(f"/api/v1/audit/entries/{2**64}/proof", headers=manager), 404)
    assert_contract(client.post("/api/v1/public/audit/checkpoints/999999/cosignatures",
                                json={"signature_line": "— w AAAAAAAAAAAA"}), 404, "audit.checkpoint_not_found")


def _witness_key():
    private = Ed25519PrivateKey.generate()
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _cosign(private, public, name, checkpoint_note, timestamp):
    body, _ = verifier.parse_note(checkpoint_note)
    sig = private.sign(verifier.cosignature_message(body, timestamp))
    kh = verifier.key_hash(name, verifier.ALG_COSIGNATURE_V1, public)
    return verifier.Signature(name, kh, timestamp.to_bytes(8, "big") + sig).line()


def test_witness_cosigns_a_checkpoint(client, app):
    admin = staff_headers(_user(Role.ADMIN))
    private, public = _witness_key()
    name = "procuratorate.shangluo.example/w1"
    vkey = verifier.VerifierKey(name, public, verifier.ALG_COSIGNATURE_V1).vkey()
    response = client.post("/api/v1/audit/witnesses", json={"name": name, "public_key": vkey}, headers=admin)
    assert response.status_code == 201, response.json
    assert response.json["vkey"] == vkey
    assert_contract(client.post("/api/v1/audit/witnesses", json={"name": name, "public_key": vkey}, headers=admin),
                    409, "audit.witness_exists")
    assert_contract(client.post("/api/v1/audit/witnesses", json={"name": "x.example/w", "public_key": "AAAA"},
                                headers=admin), 422, "audit.bad_witness_key")

    _log(4)
    checkpoint = client.post("/api/v1/audit/checkpoints", headers=staff_headers(_user(Role.SUPERVISOR))).json
    line = _cosign(private, public, name, checkpoint["note"], 1_760_000_000)
    url = f"/api/v1/public/audit/checkpoints/{checkpoint['id']}/cosignatures"
    response = client.post(url, json={"signature_line": line})
    assert response.status_code == 201, response.json
    assert response.json["details"]["timestamp"] == 1_760_000_000
    assert client.post(url, json={"signature_line": line}).json["id"] == response.json["id"]  # idempotent

    forged = _cosign(private, public, name, checkpoint["note"], 1_760_000_001)
    forged = forged[:-10] + ("A" if forged[-10] != "A" else "B") + forged[-9:]
    assert_contract(client.post(url, json={"signature_line": forged}), 422, "audit.invalid_cosignature")
    other_private, other_public = _witness_key()
    assert_contract(client.post(url, json={"signature_line": _cosign(other_private, other_public, "nobody.example/w",
                                                                     checkpoint["note"], 1)}),
                    422, "audit.unknown_witness")
    assert_contract(client.post(url, json={"signature_line": "not a signature line"}), 400,
                    "audit.malformed_cosignature")

    served = client.get("/api/v1/public/audit/checkpoint").get_data(as_text=True)
    assert served == checkpoint["note"] + line
    parsed = verifier.parse_checkpoint(served)
    witness_key = verifier.parse_key(vkey)
    assert verifier.verify_cosignature(parsed, parsed.signatures[1], witness_key) == 1_760_000_000

    text = client.get(f"/api/v1/audit/entries/{checkpoint['size'] - 1}/proof", headers=admin).get_data(as_text=True)
    from server.modules.audit.checkpoints import log_verifier_key

    result = verifier.verify_inclusion_proof_file(text, log_verifier_key(app.config), witnesses=(witness_key,))
    assert result.witnesses == {name: 1_760_000_000}


def test_periodic_task_publishes_and_is_scheduled(app, db_session):
    assert app.config["BEAT_SCHEDULE"]["audit-checkpoint"] == {
        "task": PUBLISH, "schedule": float(app.config["AUDIT_CHECKPOINT_INTERVAL_S"])}
    assert app.extensions["celery"].conf.beat_schedule["audit-checkpoint"]["task"] == PUBLISH
    _log(2)
    first = publish_checkpoint.delay().get()
    assert publish_checkpoint.delay().get() == first
    _log(1)
    assert publish_checkpoint.delay().get() > first
