"""tus against a real gunicorn (server/gunicorn_conf.py as deployed): what depends on the WSGI server.

Issue 15 items 1, 2, 3, 6 and 7, issue 21 item 2. Waits are bounded by deadlines that fail
clearly; nothing here asserts a duration.
"""
from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import io
import socket
import struct
import termios
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from server.core.db import utcnow
from server.extensions import db
from server.modules.evidence.models import Blob, Upload, UploadStatus
from tests.evidence.gunicorn_live import Live, gunicorn
from tests.evidence.media import jpeg_bytes

STREAM = "application/offset+octet-stream"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server whose silent bodies end after 2 s and whose expired uploads go every second."""
    with gunicorn(tmp_path_factory.mktemp("tus-quick"), "tusquick", UPLOAD_READ_TIMEOUT_S=2,
                  UPLOAD_LOCK_STALE_S=1, UPLOAD_EXPIRE_INTERVAL_S=1) as live:
        yield live


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server that waits 60 s for a silent body (the default), giving way to a newer PATCH after 1 s."""
    with gunicorn(tmp_path_factory.mktemp("tus-patient"), "tuspatient", UPLOAD_READ_TIMEOUT_S=60,
                  UPLOAD_LOCK_STALE_S=1) as live:
        yield live


def tus(live: Live, **extra: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", **live.values["auth"], **extra}


def meta(data: bytes) -> str:
    return f"sha256 {base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()}"


def request(live: Live, method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
    conn = live.connection()
    try:
        conn.request(method, path, body=body, headers=tus(live, **headers))
        response = conn.getresponse()
        response.body = response.read()
        return response
    finally:
        conn.close()


def create(live: Live, data: bytes) -> str:
    response = request(live, "POST", "/mobile/v1/uploads/", **{"Upload-Length": str(len(data)),
                                                               "Upload-Metadata": meta(data)})
    assert response.status == 201, response.body
    return response.getheader("Location")


def offset(live: Live, location: str) -> int:
    response = request(live, "HEAD", location)
    assert response.status == 200, response.status
    return int(response.getheader("Upload-Offset"))


def wait_for(check: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def open_patch(live: Live, location: str, start: int, length: int, sent: bytes) -> socket.socket:
    """A PATCH announcing ``length`` bytes that sends only ``sent`` and then goes silent."""
    sock = socket.create_connection((live.host, live.port))
    head = (f"PATCH {location} HTTP/1.1\r\nHost: {live.host}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {live.values['auth']['Authorization']}\r\nUpload-Offset: {start}\r\n"
            f"Content-Type: {STREAM}\r\nContent-Length: {length}\r\n\r\n")
    sock.sendall(head.encode() + sent)
    return sock


def drained(sock: socket.socket) -> bool:
    """Has the server's kernel acknowledged everything this socket sent?"""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0] == 0


def read_by_server(live: Live, sock: socket.socket) -> bool:
    """Has the server process read everything this socket sent (its end's receive queue is empty)?"""
    if not drained(sock):
        return False
    mine = sock.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local_port == live.port and remote_port == mine:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def held(live: Live, location: str) -> bool:
    """Does a request of the server hold the upload's lock (the flock on its partial file)?"""
    with live.app.app_context():
        from server.modules.evidence import uploads

        path = uploads.partial_path(location.rsplit("/", 1)[1])
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def uploader(live: Live, data: bytes, **kwargs: Any) -> Any:
    client = tus_client.TusClient(f"{live.base}/mobile/v1/uploads/", headers=dict(live.values["auth"]))
    return client.uploader(file_stream=io.BytesIO(data), metadata={"sha256": hashlib.sha256(data).hexdigest()},
                           **kwargs)


# ---- item 1: checksums on the final chunk ----------------------------------------------------

def test_tuspy_with_checksums_finishes_when_the_final_chunk_carries_one(quick):
    data = jpeg_bytes((300, 200), color="green") + bytes(range(256)) * 400
    upload = uploader(quick, data, chunk_size=40_000, upload_checksum=True)
    upload.upload()
    assert upload.offset == len(data)
    with quick.app.app_context():
        assert db.session.get(Blob, hashlib.sha256(data).hexdigest()) is not None
        db.session.remove()


def test_wrong_checksum_on_the_final_chunk_is_460_and_creation_with_upload_completes(quick):
    data = jpeg_bytes((120, 80), color="navy")
    location = create(quick, data)
    half = len(data) // 2
    sha1 = lambda body: "sha1 " + base64.b64encode(hashlib.sha1(body).digest()).decode()  # noqa: E731
    assert request(quick, "PATCH", location, data[:half], **{"Upload-Offset": "0", "Content-Type": STREAM,
                                                             "Upload-Checksum": sha1(data[:half])}).status == 204
    wrong = request(quick, "PATCH", location, data[half:], **{"Upload-Offset": str(half), "Content-Type": STREAM,
                                                              "Upload-Checksum": sha1(b"not these bytes")})
    assert wrong.status == 460 and b"upload.checksum_mismatch" in wrong.body
    assert offset(quick, location) == half
    right = request(quick, "PATCH", location, data[half:], **{"Upload-Offset": str(half), "Content-Type": STREAM,
                                                              "Upload-Checksum": sha1(data[half:])})
    assert right.status == 204 and right.getheader("Upload-Offset") == str(len(data))

    whole = jpeg_bytes((90, 90), color="olive")
    created = request(quick, "POST", "/mobile/v1/uploads/", whole, **{
        "Upload-Length": str(len(whole)), "Upload-Metadata": meta(whole), "Content-Type": STREAM,
        "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(whole).digest()).decode()})
    assert created.status == 201 and created.getheader("Upload-Offset") == str(len(whole))


# ---- item 3: a chunked body longer than Upload-Length ------------------------------------------

def test_chunked_patch_past_upload_length_is_413_and_appends_nothing(quick):
    data = jpeg_bytes((64, 64), color="teal")
    location = create(quick, data)
    assert request(quick, "PATCH", location, data[:100], **{"Upload-Offset": "0", "Content-Type": STREAM}).status == 204
    conn = quick.connection()
    conn.putrequest("PATCH", location)
    for key, value in tus(quick, **{"Upload-Offset": "100", "Content-Type": STREAM,
                                    "Transfer-Encoding": "chunked"}).items():
        conn.putheader(key, value)
    conn.endheaders()
    body = data[100:] + b"\xff" * 5000  # goes past the end
    for start in range(0, len(body), 4096):
        piece = body[start:start + 4096]
        conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    text = response.read()
    conn.close()
    assert response.status == 413 and b"upload.beyond_length" in text
    assert offset(quick, location) == 100
    done = request(quick, "PATCH", location, data[100:], **{"Upload-Offset": "100", "Content-Type": STREAM})
    assert done.status == 204 and done.getheader("Upload-Offset") == str(len(data))


# ---- items 2 and 6: stalls, resets, takeover, slow clients ---------------------------------------

def test_a_stalled_patch_ends_after_the_read_timeout_keeping_every_byte(quick):
    data = jpeg_bytes((200, 200), color="maroon") + b"\x07" * 400_000
    location = create(quick, data)
    sock = open_patch(quick, location, 0, len(data), data[:100_123])
    try:  # the phone lost signal: the socket stays open, nothing more comes
        kept = wait_for(lambda: offset(quick, location), "the stalled PATCH to end and keep its bytes")
        assert kept == 100_123
        done = request(quick, "PATCH", location, data[kept:], **{"Upload-Offset": str(kept), "Content-Type": STREAM})
        assert done.status == 204, done.body  # the lock was released
    finally:
        sock.close()


def test_a_reset_mid_patch_keeps_every_byte_that_arrived(quick):
    data = jpeg_bytes((150, 150), color="purple") + b"\x09" * 1_500_000
    location = create(quick, data)
    sent = 1_000_123  # less than one 1 MiB read: all of it used to be lost
    sock = open_patch(quick, location, 0, len(data), data[:sent])
    wait_for(lambda: read_by_server(quick, sock), "the server process to read the bytes from its socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST, as a dropped link
    assert wait_for(lambda: offset(quick, location), "the reset PATCH to keep its bytes") == sent


def test_a_newer_patch_of_the_same_device_takes_over_a_stale_lock(patient):
    data = jpeg_bytes((180, 120), color="gray") + b"\x05" * 300_000
    location = create(patient, data)
    sock = open_patch(patient, location, 0, len(data), data[:100_000])
    try:
        wait_for(lambda: drained(sock) and held(patient, location), "the stalled PATCH to hold the lock")
        # tus client after reconnecting: PATCH from the offset it knew; the idle holder gives way
        resumed = request(patient, "PATCH", location, data, **{"Upload-Offset": "0", "Content-Type": STREAM})
        assert resumed.status == 409, resumed.body  # it had moved on: what the holder received is kept
        kept = offset(patient, location)
        assert kept == 100_000
        done = request(patient, "PATCH", location, data[kept:], **{"Upload-Offset": str(kept), "Content-Type": STREAM})
        assert done.status == 204 and done.getheader("Upload-Offset") == str(len(data))
    finally:
        sock.close()


def test_twenty_stalled_uploads_leave_the_api_answering(patient):
    stalled = []
    try:
        for index in range(20):
            data = jpeg_bytes((64, 64), color=(index, 0, 0)) + bytes([index]) * 200_000
            location = create(patient, data)
            stalled.append(open_patch(patient, location, 0, len(data), data[:100_000]))
        for sock in stalled:
            wait_for(lambda: drained(sock), "the stalled uploads to reach the server")
        with patient.app.app_context():  # waiting bodies hold no transaction, so no pooled connection
            if db.engine.dialect.name == "postgresql":
                waiting = db.session.scalar(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))
                assert waiting == 0
            db.session.remove()
        # while all twenty wait (60 s read timeout), the device API keeps answering
        for index in range(10):
            assert request(patient, "OPTIONS", "/mobile/v1/uploads/").status == 204
            data = jpeg_bytes((32, 32), color="white") + bytes([index]) * 200
            location = create(patient, data)
            done = request(patient, "PATCH", location, data, **{"Upload-Offset": "0", "Content-Type": STREAM})
            assert done.status == 204, done.body
    finally:
        for sock in stalled:
            sock.close()


# ---- item 7: X-HTTP-Method-Override -----------------------------------------------------------

def test_method_override_is_honoured(quick):
    data = jpeg_bytes((40, 40), color="black")
    location = create(quick, data)
    patched = request(quick, "POST", location, data, **{"X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0",
                                                        "Content-Type": STREAM})
    assert patched.status == 204 and patched.getheader("Upload-Offset") == str(len(data))
    other = create(quick, data + b"x")
    deleted = request(quick, "POST", other, **{"X-HTTP-Method-Override": "DELETE"})
    assert deleted.status == 204
    assert request(quick, "HEAD", other).status == 410


# ---- item 5: expired uploads go without anyone asking ---------------------------------------------

def test_the_embedded_default_removes_expired_partial_files_by_itself(quick):
    data = jpeg_bytes((50, 50), color="yellow")
    location = create(quick, data)
    assert request(quick, "PATCH", location, data[:50], **{"Upload-Offset": "0", "Content-Type": STREAM}).status == 204
    upload_id = location.rsplit("/", 1)[1]
    with quick.app.app_context():
        from server.modules.evidence import uploads

        path = uploads.partial_path(upload_id)
        assert path.exists()
        db.session.execute(sa.update(Upload).where(Upload.id == upload_id)
                           .values(expires_at=utcnow() - dt.timedelta(days=1)))
        db.session.commit()
        wait_for(lambda: not path.exists(), "the in-process job to remove the expired partial file")
        db.session.remove()
        assert db.session.get(Upload, upload_id).status is UploadStatus.TERMINATED
        db.session.remove()


# ---- issue 21 item 2: the same bytes finishing together ------------------------------------------

def test_two_uploads_of_the_same_bytes_finishing_together_both_complete(patient):
    for round_ in range(4):
        data = jpeg_bytes((100, 100), color=(round_, 9, 9)) + bytes([round_]) * 300_000
        first, second = create(patient, data), create(patient, data)
        last = len(data) - 1000
        for location in (first, second):
            assert request(patient, "PATCH", location, data[:last],
                           **{"Upload-Offset": "0", "Content-Type": STREAM}).status == 204
        barrier = threading.Barrier(2)
        answers: dict[str, Any] = {}

        def finish(location: str) -> None:
            barrier.wait()
            answers[location] = request(patient, "PATCH", location, data[last:],
                                        **{"Upload-Offset": str(last), "Content-Type": STREAM})

        threads = [threading.Thread(target=finish, args=(location,)) for location in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [answers[location].status for location in (first, second)] == [204, 204], \
            [answers[location].body for location in (first, second)]
        with patient.app.app_context():
            digest = hashlib.sha256(data).hexdigest()
            statuses = db.session.scalars(sa.select(Upload.status).where(Upload.sha256 == digest)).all()
            assert statuses == [UploadStatus.COMPLETED, UploadStatus.COMPLETED]
            assert db.session.get(Blob, digest) is not None
            db.session.remove()


def test_an_active_patch_keeps_its_lock_and_a_newcomer_gets_423(patient):
    """An upload that is really receiving bytes keeps its lock: the newcomer gets 423, not a takeover."""
    data = jpeg_bytes((64, 48), color="pink") + b"\x03" * 300_000
    location = create(patient, data)
    sock = open_patch(patient, location, 0, len(data), data[:1000])
    stop = threading.Event()

    def trickle() -> None:
        sent = 1000
        while not stop.is_set() and sent < len(data) - 1:
            sock.sendall(data[sent:sent + 10])
            sent += 10
            time.sleep(0.1)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        wait_for(lambda: held(patient, location), "the trickling PATCH to hold the lock")
        with pytest.raises(TusCommunicationError) as raised:
            uploader(patient, data, url=f"{patient.base}{location}", chunk_size=100_000).upload_chunk()
        assert raised.value.status_code in (409, 423)
    finally:
        stop.set()
        thread.join(10)
        sock.close()
