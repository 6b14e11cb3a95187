"""Nothing acknowledged is lost: a dropped connection keeps what arrived, and a restarted server
(a new app object over the same database and folders) resumes with the saved hash state."""
from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import time

from server import create_app
from server.extensions import db
from server.modules.evidence import hashstate
from server.modules.evidence.models import Blob, Upload
from tests.evidence.media import photo_with_exif


def test_resumable_sha256_state_survives_serialisation():
    data = bytes(range(256)) * 5000
    first = hashstate.ResumableSha256()
    first.update(data[:77_777])
    resumed = hashstate.ResumableSha256(first.state())
    resumed.update(data[77_777:])
    assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_hash_state_saved_by_another_libcrypto_build_is_never_resumed(tmp_path):
    """The raw SHA256_CTX is the library build's ABI: a state tagged by another build (or an
    untagged one from before the tag) is ignored and the received prefix is hashed again."""
    data = bytes(range(256)) * 4000
    first = hashstate.ResumableSha256()
    first.update(data[:100_000])
    state = first.state()
    assert hashstate.compatible(state)
    foreign = b"QFS2" + bytes(11) + state[len(hashstate.TAG):]
    legacy = state[len(hashstate.TAG):]  # what was stored before the tag
    partial = tmp_path / "partial"
    partial.write_bytes(data[:100_000])
    for stored in (foreign, legacy):
        assert not hashstate.compatible(stored)
        with open(partial, "rb") as fh:
            resumed = hashstate.resume(stored, fh, 100_000)
        assert isinstance(resumed, hashstate.PrefixSha256)
        resumed.update(data[100_000:])
        assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()


def _create(base: str, auth: dict[str, str], data: bytes) -> str:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    meta = f"sha256 {base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()}"
    conn.request("POST", "/mobile/v1/uploads/", headers={"Tus-Resumable": "1.0.0", **auth,
                                                         "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    response = conn.getresponse()
    response.read()
    assert response.status == 201
    return response.getheader("Location")


def test_dropped_patch_keeps_the_received_bytes_and_a_restarted_server_finishes(app, live):
    suite_app = app
    app, base, values = live
    data = photo_with_exif("2026:11:30 09:00:00", 33.87, 109.94, size=(300, 300)) + b"\x01" * 2_000_000
    location = _create(base, values["auth"], data)
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {values['auth']['Authorization']}\r\nUpload-Offset: 0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n")
    sock.sendall(head.encode() + data[:1_000_000])
    sock.close()  # the link drops mid-body (FIN after the bytes: all of them reach the server)
    upload_id = location.rsplit("/", 1)[1]
    with app.app_context():
        deadline = time.monotonic() + 60
        while True:  # the server finishes the dropped request on its own time: wait, with a deadline
            upload = db.session.get(Upload, upload_id, populate_existing=True)
            db.session.rollback()
            if upload.upload_offset or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        kept = upload.upload_offset
        assert kept == 1_000_000, "the dropped PATCH did not keep every byte that arrived"
        assert upload.hash_state is not None
        db.session.remove()

    restarted = create_app(dict(app.config))  # same database, same upload folder, fresh process state
    client = restarted.test_client()
    tus = {"Tus-Resumable": "1.0.0", **values["auth"]}
    assert client.head(location, headers=tus).headers["Upload-Offset"] == str(kept)
    replay = client.patch(location, data=data[:10], headers={**tus, "Upload-Offset": "0",
                                                             "Content-Type": "application/offset+octet-stream"})
    assert replay.status_code == 409
    done = client.patch(location, data=data[kept:], headers={**tus, "Upload-Offset": str(kept),
                                                             "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204, done.get_data(as_text=True)
    suite_app.extensions["celery"].set_current()
    suite_app.extensions["celery"].set_default()  # creating an app made its Celery the default
    with restarted.app_context():
        assert db.session.get(Blob, hashlib.sha256(data).hexdigest()) is not None
        db.session.remove()
        db.engine.dispose()
