"""tus 1.0 protocol checks through the Flask test client: every MUST, plus replays and locks."""
import base64
import hashlib

import pytest
import sqlalchemy as sa

from server.modules.evidence import uploads as ops
from server.modules.evidence.models import Blob, Upload, UploadStatus
from tests.evidence.helpers import device_auth, make_team
from tests.evidence.media import jpeg_bytes

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture()
def team(db_session):
    team = make_team()
    db_session.commit()
    return team


def meta(**values):
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in values.items())


def create(client, team, data, **extra_headers):
    headers = {**TUS, **device_auth(team.device), "Upload-Length": str(len(data)),
               "Upload-Metadata": meta(sha256=hashlib.sha256(data).hexdigest(), filename="a.jpg"), **extra_headers}
    return client.post("/mobile/v1/uploads/", headers=headers)


def patch(client, team, location, body, offset, **extra):
    return client.patch(location, data=body, headers={**TUS, **STREAM, **device_auth(team.device),
                                                      "Upload-Offset": str(offset), **extra})


def test_options_lists_version_extensions_and_limits(client):
    response = client.options("/mobile/v1/uploads/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) >= {
        "creation", "creation-with-upload", "checksum", "termination", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) > 0
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_full_upload_in_chunks_stores_the_blob(client, db_session, team):
    data = jpeg_bytes()
    response = create(client, team, data)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Tus-Resumable"] == "1.0.0" and response.headers["Upload-Expires"]
    location = response.headers["Location"]
    half = len(data) // 2
    first = patch(client, team, location, data[:half], 0)
    assert first.status_code == 204 and first.headers["Upload-Offset"] == str(half)
    head = client.head(location, headers={**TUS, **device_auth(team.device)})
    assert head.headers["Upload-Offset"] == str(half) and head.headers["Cache-Control"] == "no-store"
    last = patch(client, team, location, data[half:], half)
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    blob = db_session.get(Blob, hashlib.sha256(data).hexdigest())
    assert blob is not None and blob.media_type == "image/jpeg"


def test_replayed_chunk_gets_409_and_is_not_appended_twice(client, db_session, team):
    data = jpeg_bytes()
    location = create(client, team, data).headers["Location"]
    assert patch(client, team, location, data[:100], 0).status_code == 204
    replay = patch(client, team, location, data[:100], 0)
    assert replay.status_code == 409 and replay.json["code"] == "upload.offset_mismatch"
    upload = db_session.get(Upload, location.rsplit("/", 1)[1], populate_existing=True)
    assert upload.upload_offset == 100
    assert ops.partial_path(upload.id).stat().st_size == 100


def test_checksum_mismatch_discards_the_chunk(client, db_session, team):
    data = jpeg_bytes()
    location = create(client, team, data).headers["Location"]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    response = patch(client, team, location, data[:50], 0, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert response.status_code == 460 and response.json["code"] == "upload.checksum_mismatch"
    right = base64.b64encode(hashlib.sha256(data[:50]).digest()).decode()
    ok = patch(client, team, location, data[:50], 0, **{"Upload-Checksum": f"sha256 {right}"})
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "50"
    unknown = patch(client, team, location, data[50:60], 50, **{"Upload-Checksum": f"md5 {right}"})
    assert unknown.status_code == 400 and unknown.json["code"] == "upload.checksum_unsupported"


def test_missing_or_wrong_tus_version_gets_412(client, team):
    response = client.post("/mobile/v1/uploads/", headers={**device_auth(team.device), "Upload-Length": "1"})
    assert response.status_code == 412 and response.headers["Tus-Version"] == "1.0.0"
    assert response.json["code"] == "upload.version_unsupported"


def test_wrong_content_type_gets_415(client, team):
    location = create(client, team, b"x" * 10).headers["Location"]
    response = client.patch(location, data=b"x", headers={**TUS, **device_auth(team.device), "Upload-Offset": "0",
                                                          "Content-Type": "application/json"})
    assert response.status_code == 415


def test_too_large_and_missing_hash_are_refused(client, app, team):
    response = create(client, team, b"", **{"Upload-Length": str(app.config["UPLOAD_MAX_BYTES"] + 1)})
    assert response.status_code == 413 and response.json["code"] == "upload.too_large"
    response = client.post("/mobile/v1/uploads/", headers={**TUS, **device_auth(team.device), "Upload-Length": "5"})
    assert response.status_code == 400 and response.json["code"] == "upload.metadata_invalid"


def test_creation_with_upload_and_termination(client, db_session, team):
    data = jpeg_bytes()
    response = client.post(
        "/mobile/v1/uploads/", data=data[:64],
        headers={**TUS, **STREAM, **device_auth(team.device), "Upload-Length": str(len(data)),
                 "Upload-Metadata": meta(sha256=hashlib.sha256(data).hexdigest())})
    assert response.status_code == 201 and response.headers["Upload-Offset"] == "64"
    location = response.headers["Location"]
    assert client.delete(location, headers={**TUS, **device_auth(team.device)}).status_code == 204
    gone = client.head(location, headers={**TUS, **device_auth(team.device)})
    assert gone.status_code == 410
    assert patch(client, team, location, data[64:], 64).status_code == 410


def test_hash_mismatch_discards_the_upload_and_makes_no_evidence(client, db_session, team):
    data = jpeg_bytes()
    headers = {**TUS, **device_auth(team.device), "Upload-Length": str(len(data)),
               "Upload-Metadata": meta(sha256=hashlib.sha256(b"something else").hexdigest())}
    location = client.post("/mobile/v1/uploads/", headers=headers).headers["Location"]
    response = patch(client, team, location, data, 0)
    assert response.status_code == 422 and response.json["code"] == "evidence.hash_mismatch"  # 460 is for Upload-Checksum only
    upload = db_session.get(Upload, location.rsplit("/", 1)[1], populate_existing=True)
    assert upload.status is UploadStatus.REJECTED
    assert not ops.partial_path(upload.id).exists()
    assert db_session.get(Blob, hashlib.sha256(data).hexdigest()) is None


def test_sniffed_type_not_trusting_the_name(client, db_session, team):
    data = b"MZ\x90\x00 this is a windows executable, not a photo" * 10
    location = create(client, team, data).headers["Location"]
    response = patch(client, team, location, data, 0)
    assert response.status_code == 415 and response.json["code"] == "evidence.unsupported_type"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Blob)) == 0


def test_another_devices_upload_is_not_found(client, db_session, team):
    from tests.evidence.helpers import make_device

    location = create(client, team, b"abc").headers["Location"]
    other, _ = make_device(team.member)
    db_session.commit()
    response = client.head(location, headers={**TUS, **device_auth(other)})
    assert response.status_code == 404


def test_second_writer_is_locked_out(client, team):
    location = create(client, team, b"x" * 10).headers["Location"]
    with ops.locked(location.rsplit("/", 1)[1]):
        response = patch(client, team, location, b"x", 0)
    assert response.status_code == 423 and response.json["code"] == "upload.locked"


def test_decompression_bomb_upload_is_rejected_and_leaves_no_evidence(client, app, db_session, team, monkeypatch):
    from tests.evidence.test_pipeline import _png_header

    monkeypatch.setitem(app.config, "EVIDENCE_MAX_IMAGE_PIXELS", 10_000)
    data = _png_header(40_000, 40_000)
    location = create(client, team, data).headers["Location"]
    response = patch(client, team, location, data, 0)
    assert response.status_code == 422 and response.json["code"] == "evidence.image_too_large"
    assert db_session.get(Blob, hashlib.sha256(data).hexdigest()) is None
