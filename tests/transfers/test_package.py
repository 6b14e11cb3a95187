"""Evidence packages: built streamed, sealed in the audit log, verified offline by a plain python3;
every kind of tampering is caught and named."""
import base64
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.modules.audit import verifier as audit_verifier
from server.modules.cases.models import CaseEvidence
from server.modules.evidence.models import CustodyEvent
from server.modules.transfers import package as package_ops
from server.modules.transfers import verify as package_verify
from server.modules.transfers.models import EvidencePackage
from tests.evidence.helpers import make_team, manifest
from tests.helpers import audit_entries, staff_headers
from tests.transfers.conftest import store_evidence
from tests.transfers.test_workflow import H, handed_over

PLAIN = [sys.executable, "-I", "-S"]  # isolated, no site-packages: neither the project nor cryptography


def _build(app, db_session, scene, *, max_volume_bytes=None, transfer=None):
    transfer = transfer or handed_over(db_session, scene)
    scene.step(db_session, transfer, "sign_receipt", scene.police, at=H(21), method="typed",
               typed_confirmation="已签收 李四")
    db_session.commit()
    package = package_ops.request(db_session, case_id=transfer.case_id, transfer_id=transfer.id, by_user_id=scene.w.a.id,
                                  max_volume_bytes=max_volume_bytes)
    db_session.commit()
    package = package_ops.build(db_session, package.id, app.config, commit=db_session.commit)
    return package, [package_ops.package_dir() / package.id / v["name"] for v in package.volumes]


@pytest.fixture()
def unpacked(app, db_session, scene, tmp_path):
    package, (zip_path,) = _build(app, db_session, scene)
    folder = tmp_path / "package"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(folder)
    yield package, zip_path, folder
    shutil.rmtree(zip_path.parent, ignore_errors=True)


def _check(folder):
    report = package_verify.verify(package_verify.open_source([str(folder)]))
    return [en for _, en in report.failures], [en for _, en in report.warnings]


def test_package_verifies_with_a_plain_python3_in_the_folder_and_on_the_zip(unpacked, tmp_path):
    package, zip_path, folder = unpacked
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"verify.py", "verifier.py", "README.txt", "manifest.json", "index.json", "seal.json", "evidence/index.json",
            "audit/entries.jsonl", "audit/consistency.json", "keys/log.vkey", "flags.json",
            "documents/" + next(n.split("/", 1)[1] for n in names if n.endswith("transfer_letter.pdf"))} <= names
    assert sum(n.startswith("evidence/0") for n in names) == 3
    assert {"custody/events.jsonl", "devices/captures.jsonl"} <= names  # one line per item, not a member each
    run = subprocess.run(PLAIN + ["verify.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RESULT: PASSED" in run.stdout and "结论：校验通过" in run.stdout
    assert "built-in (pure Python)" in run.stdout and not (folder / "__pycache__").exists()
    lonely = tmp_path / "elsewhere"
    lonely.mkdir()
    shutil.copy(zip_path, lonely / "package.zip")
    shutil.copy(folder / "verify.py", lonely / "verify.py")
    shutil.copy(folder / "verifier.py", lonely / "verifier.py")
    run = subprocess.run(PLAIN + ["verify.py", "package.zip"], cwd=lonely, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "RESULT: PASSED" in run.stdout, run.stdout + run.stderr
    index = json.loads((folder / "index.json").read_text())
    seal = json.loads((folder / "seal.json").read_text())
    assert seal["seal_idx"] == package.seal_idx and seal["index_sha256"] == package.manifest_sha256
    assert index["checkpoint"] < audit_verifier.parse_proof_file(seal["proof"]).index + 1
    photos = json.loads((folder / "evidence/index.json").read_text())["items"]
    assert photos[0]["proves"].startswith("证明危险废物") and photos[0]["captured_by"]["name"]
    assert photos[0]["location"]["lat"] == 33.87 and photos[0]["capture_signature"]


def _tamper_fails(folder, expected):
    failures, _ = _check(folder)
    assert failures, "tampering was not detected"
    assert any(expected in f for f in failures), failures
    return failures


def test_edited_evidence_file(unpacked):
    _, _, folder = unpacked
    photo = sorted((folder / "evidence").glob("0001-*"))[0]
    data = bytearray(photo.read_bytes())
    data[-10] ^= 0xFF
    photo.write_bytes(bytes(data))
    _tamper_fails(folder, f"file content changed: evidence/{photo.name}")
    run = subprocess.run(PLAIN + ["verify.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "RESULT: FAILED" in run.stdout and photo.name in run.stdout


def test_deleted_file(unpacked):
    _, _, folder = unpacked
    (folder / "custody" / "events.jsonl").unlink()
    failures = _tamper_fails(folder, "file listed in the manifest is missing: custody/events.jsonl")
    assert any("evidence 2: custody history missing" in f for f in failures)


def test_extra_file(unpacked):
    _, _, folder = unpacked
    (folder / "evidence" / "0004-planted.jpg").write_bytes(b"\xff\xd8 not ours")
    _tamper_fails(folder, "extra file not in any manifest: evidence/0004-planted.jpg")


def test_reordered_audit_entries(unpacked):
    _, _, folder = unpacked
    path = folder / "audit" / "entries.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    failures = _tamper_fails(folder, "audit entries reordered")
    assert any("file content changed: audit/entries.jsonl" in f for f in failures)


def test_altered_inclusion_proof(unpacked):
    _, _, folder = unpacked
    path = folder / "audit" / "entries.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["proof"][0] = base64.b64encode(b"\x00" * 32).decode()
    lines[3] = json.dumps(row, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    _tamper_fails(folder, f"inclusion proof of audit entry {row['idx']} fails")


def test_altered_checkpoint_signature(unpacked):
    _, _, folder = unpacked
    path = sorted((folder / "audit" / "checkpoints").glob("*.txt"))[-1]
    text = path.read_text()
    body, _, sig = text.rpartition("\n\n")
    name, encoded = sig.strip().rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 0x01
    path.write_text(f"{body}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n")
    _tamper_fails(folder, "the checkpoint signature is invalid")


def test_swapped_public_key(unpacked):
    _, _, folder = unpacked
    origin = json.loads((folder / "index.json").read_text())["log"]["origin"]
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (folder / "keys" / "log.vkey").write_text(audit_verifier.VerifierKey(origin, other).vkey() + "\n")
    failures = _tamper_fails(folder, "swapped key")
    assert any("checkpoint signature" in f or "seal" in f for f in failures)
    failures, _ = _check(folder)  # pinning the genuine key still flags the swapped file
    assert any("file content changed: keys/log.vkey" in f for f in failures)


def test_edited_manifest_is_caught_by_the_seal(unpacked):
    _, _, folder = unpacked
    photo = sorted((folder / "evidence").glob("0001-*"))[0]
    data = bytearray(photo.read_bytes())
    data[-10] ^= 0xFF
    photo.write_bytes(bytes(data))
    manifest_path = folder / "manifest.json"
    manifest_doc = json.loads(manifest_path.read_text())
    import hashlib

    for row in manifest_doc["files"]:
        if row["path"] == f"evidence/{photo.name}":
            row["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest_doc))
    failures = _tamper_fails(folder, "does not match its hash in index.json")
    assert any("file hash differs from its capture manifest" in f for f in failures)


def test_volumes_each_with_a_manifest_and_a_missing_volume_fails(app, db_session, scene, tmp_path):
    team = make_team()
    for n in range(2):
        video = os.urandom(700 * 1024)
        item = store_evidence(db_session, team, video, media_type="video/mp4", kind="video")
        db_session.add(CaseEvidence(case_id=scene.case.id, evidence_id=item.id, linked_by=scene.w.a.id,
                                    purpose=f"执法记录仪视频 {n + 1}"))
    db_session.flush()
    package, paths = _build(app, db_session, scene, max_volume_bytes=1 << 20)
    try:
        assert len(paths) >= 2 and all(p.stat().st_size <= (1 << 20) + 4096 for p in paths)
        with zipfile.ZipFile(paths[0]) as zf:
            assert "manifest-vol001.json" in zf.namelist()
            video = next(i for i in zf.infolist() if i.filename.startswith("evidence/") and i.file_size > 500_000)
            assert video.compress_type == zipfile.ZIP_STORED
        report = package_verify.verify(package_verify.open_source([str(p) for p in paths]))
        assert not report.failures, report.failures
        report = package_verify.verify(package_verify.open_source([str(p) for p in paths[1:]]))
        assert any("missing volume" in en for _, en in report.failures)
        only = tmp_path / "volumes"
        only.mkdir()
        for path in paths:
            shutil.copy(path, only / path.name)
        with zipfile.ZipFile(paths[0]) as zf:
            zf.extract("verify.py", only)
            zf.extract("verifier.py", only)
        run = subprocess.run(PLAIN + ["verify.py", "."], cwd=only, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "RESULT: PASSED" in run.stdout, run.stdout + run.stderr
    finally:
        shutil.rmtree(paths[0].parent, ignore_errors=True)


def test_background_build_with_progress_and_download_is_custody(client, app, db_session, scene, tmp_path):
    t = handed_over(db_session, scene)
    db_session.commit()
    response = client.post(f"/api/v1/transfers/{t.id}/packages", headers=staff_headers(scene.w.a),
                            json={"background": True})
    assert response.status_code == 201, response.json
    status = client.get(f"/api/v1/transfer-packages/{response.json['id']}", headers=staff_headers(scene.police)).json
    assert status["status"] == "done" and status["progress"] == 1.0 and status["total_bytes"] > 0
    denied = client.get(f"/api/v1/transfer-packages/{status['id']}", headers=staff_headers(scene.other_police))
    assert denied.status_code == 403
    download = client.get(f"/api/v1/transfer-packages/{status['id']}/volumes/1", headers=staff_headers(scene.police))
    assert download.status_code == 200
    (tmp_path / "p.zip").write_bytes(download.data)
    assert not package_verify.verify(package_verify.open_source([str(tmp_path / "p.zip")])).failures
    for item in scene.items:
        actions = [e.action.value for e in db_session.scalars(sa.select(CustodyEvent).where(
            CustodyEvent.item_id == item.id).order_by(CustodyEvent.seq))]
        assert actions[-1] == "downloaded"
    shutil.rmtree(package_ops.package_dir() / status["id"], ignore_errors=True)


def test_cli_builds_a_case_package_with_a_missing_item_flagged(app, db_session, scene, tmp_path):
    team = make_team()
    from server.modules.evidence import operations as evidence

    ghost = evidence.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                              manifest=manifest(team, b"never uploaded"))
    db_session.add(CaseEvidence(case_id=scene.case.id, evidence_id=ghost.id, linked_by=scene.w.a.id, purpose="未上传"))
    db_session.commit()
    out = tmp_path / "case.zip"
    from server.modules.transfers.cli import transfers_cli

    result = app.test_cli_runner().invoke(transfers_cli, ["package", scene.case.id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = package_verify.verify(package_verify.open_source([str(out)]))
    assert not report.failures, report.failures
    assert any("original missing" in en for _, en in report.warnings)
    ghost_chain = [e.action.value for e in db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == ghost.id))]
    assert "exported" not in ghost_chain  # only originals that left in the archive
    assert db_session.scalar(sa.select(EvidencePackage.status).where(EvidencePackage.case_id == scene.case.id)).value == "done"


def _custody_lines(folder):
    return {row["item"]: row for row in map(json.loads, (folder / "custody" / "events.jsonl").read_text().splitlines())}


def test_each_archived_original_gets_one_exported_event_with_the_seal_in_one_insert(app, db_session, scene, tmp_path):
    """The export is a custody event per original, written set-based in the seal's transaction, and
    the package's custody member holds exactly those events (same seq, time and detail)."""
    inserts = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CUSTODY_EVENT"):
            inserts.append(statement)

    transfer = handed_over(db_session, scene)
    db_session.commit()
    package = package_ops.request(db_session, case_id=transfer.case_id, transfer_id=transfer.id,
                                  by_user_id=scene.w.a.id)
    db_session.commit()
    engine = db_session.get_bind().engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        package = package_ops.build(db_session, package.id, app.config, commit=db_session.commit)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    zip_path = package_ops.package_dir() / package.id / package.volumes[0]["name"]
    try:
        assert len(inserts) == 1  # one INSERT … SELECT for all three items
        folder = tmp_path / "p"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(folder)
        lines = _custody_lines(folder)
        for item in scene.items:
            chain = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id)
                                       .order_by(CustodyEvent.seq)).all()
            exported = [e for e in chain if e.action.value == "exported"]
            assert len(exported) == 1 and exported[0] is chain[-1]
            assert exported[0].detail == {"package": package.id, "transfer": package.transfer_id,
                                          "purpose": package_ops.EXPORT_PURPOSE}
            assert exported[0].sha256 == item.blob_sha256 and exported[0].actor_id == str(scene.w.a.id)
            archived = lines[item.id]["events"]
            assert [e["seq"] for e in archived] == [e.seq for e in chain]
            assert archived[-1] == {"seq": exported[0].seq, "action": "exported", "at": exported[0].at.isoformat(),
                                    "actor_kind": "user", "actor_id": str(scene.w.a.id), "sha256": item.blob_sha256,
                                    "detail": exported[0].detail}
        (sealed,) = [e for e in audit_entries("server:transfer_package:sealed") if e["payload"]["package"] == package.id]
        assert sealed["idx"] == package.seal_idx and sealed["payload"]["custody"] == {"action": "exported", "events": 3}
        assert not _check(folder)[0]
    finally:
        shutil.rmtree(zip_path.parent, ignore_errors=True)


def test_items_are_read_in_keyset_pages_even_when_received_in_the_same_instant(app, db_session, scene, tmp_path,
                                                                             monkeypatch):
    """Pages of two items, five items, four of them received at the same instant (a sync batch):
    every item once, in (received_at, id) order, each exported once."""
    from server.modules.evidence.models import EvidenceItem

    team = make_team()
    extras = [store_evidence(db_session, team, os.urandom(2048) + bytes([n])) for n in range(2)]
    for extra in extras:
        db_session.add(CaseEvidence(case_id=scene.case.id, evidence_id=extra.id, linked_by=scene.w.a.id, purpose="补充照片"))
    db_session.flush()
    same = scene.items[1].received_at
    db_session.execute(sa.update(EvidenceItem).where(EvidenceItem.id.in_([i.id for i in scene.items[1:] + extras]))
                       .values(received_at=same))
    db_session.expire_all()
    expected = [i.id for i, _ in package_ops.ops.evidence_items(db_session, scene.case.id)]
    monkeypatch.setattr(package_ops, "_PAGE", 2)
    package, (zip_path,) = _build(app, db_session, scene)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            index = json.loads(zf.read("evidence/index.json"))
        assert [i["id"] for i in index["items"]] == expected and len(expected) == 5
        exported = db_session.scalars(sa.select(CustodyEvent.item_id).where(
            CustodyEvent.action == "exported", CustodyEvent.detail["package"].as_string() == package.id)).all()
        assert sorted(exported) == sorted(expected)
        assert not package_verify.verify(package_verify.open_source([str(zip_path)])).failures
    finally:
        shutil.rmtree(zip_path.parent, ignore_errors=True)


def test_exported_events_roll_back_with_the_seal(app, db_session, scene):
    transfer = handed_over(db_session, scene)
    db_session.commit()
    package = package_ops.request(db_session, case_id=transfer.case_id, transfer_id=transfer.id, by_user_id=None)
    db_session.commit()

    def refuse() -> None:
        raise RuntimeError("the database went away at COMMIT")

    with pytest.raises(RuntimeError):
        package_ops.build(db_session, package.id, app.config, commit=refuse, progress_every_s=3600)
    db_session.rollback()
    exported = db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent).where(
        CustodyEvent.item_id.in_([i.id for i in scene.items]), CustodyEvent.action == "exported"))
    assert exported == 0
    assert not [e for e in audit_entries("server:transfer_package:sealed") if e["payload"]["package"] == package.id]
    assert not list((package_ops.package_dir() / package.id).glob("*.zip"))  # no half-written archive either


def test_custody_chain_without_the_export_fails(unpacked):
    package, _, folder = unpacked
    path = folder / "custody" / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["events"] = rows[1]["events"][:-1]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    failures = _tamper_fails(folder, "evidence 2: custody history does not record its export in this package")
    assert any("file content changed: custody/events.jsonl" in f for f in failures)
    rows[1]["events"] = rows[1]["events"][:1] + rows[1]["events"][2:]  # and a chain with a hole
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _tamper_fails(folder, "evidence 2: custody chain is not numbered 1, 2, 3… without gaps")


def test_builtin_ed25519_agrees_with_the_reference_and_rfc_8032():
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
                              "39701cf9b46bd25bf5f0595bbe24655141438e7a100b")  # RFC 8032 §7.1 test 1
    assert package_verify.ed25519_verify_pure(public, b"", signature)
    assert not package_verify.ed25519_verify_pure(public, b"x", signature)
    for n in range(12):
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        message = os.urandom(n * 13)
        good = key.sign(message)
        bad = bytearray(good)
        bad[(n * 5) % 64] ^= 1 << (n % 8)
        for sig in (good, bytes(bad)):
            assert package_verify.ed25519_verify_pure(raw, message, sig) == audit_verifier.ed25519_verify(raw, message, sig)
        assert package_verify.ed25519_verify_pure(raw, message, good)
