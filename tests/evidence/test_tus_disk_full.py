"""A full disk never turns into acknowledged or stored bytes that are not there (issue 22 items 1-2).

Real small file systems (tmpfs of a few MiB, mounted as root); skipped where mounting is not
allowed. Each test asserts what is on disk against what was acknowledged.
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from server.core.storage import LocalStore
from server.extensions import db
from server.modules.evidence import operations as evidence
from server.modules.evidence import uploads as ops
from server.modules.evidence.models import Blob, EvidenceFlag, EvidenceItem, EvidenceStatus, FixityAlert
from tests.evidence.helpers import device_auth, make_team, manifest
from tests.evidence.media import jpeg_bytes
from tests.evidence.test_tus_protocol import create, patch

MIB = 1 << 20


@contextmanager
def small_fs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Take all free space of ``folder``'s file system but ``leave`` bytes."""
    st = os.statvfs(folder)
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


@pytest.fixture()
def team(db_session):
    team = make_team()
    db_session.commit()
    return team


def test_full_upload_disk_answers_507_and_acknowledges_only_what_is_on_disk(app, client, db_session, team, tmp_path,
                                                                            monkeypatch):
    with small_fs(tmp_path / "uploads", "4m") as folder:
        monkeypatch.setitem(app.config, "UPLOAD_DIR", str(folder))
        monkeypatch.setitem(app.config, "STORAGE_MIN_FREE_BYTES", 3 * MIB)
        data = jpeg_bytes((64, 64)) + os.urandom(2 * MIB)
        location = create(client, team, data).headers["Location"]
        filler = fill(folder, leave=700 * 1024)
        response = patch(client, team, location, data, 0)
        assert response.status_code == 507 and response.json["code"] == "storage.full"
        upload = db_session.get(ops.Upload, location.rsplit("/", 1)[1], populate_existing=True)
        kept = upload.upload_offset
        assert kept < len(data)
        assert ops.partial_path(upload.id).read_bytes()[:kept] == data[:kept]  # acknowledged = on disk

        health = client.get("/healthz").json
        assert any(w["code"] == "storage.low_space" and w["folder"] == "uploads" for w in health["warnings"])

        filler.unlink()  # space returns: the upload goes on from what was acknowledged
        response = patch(client, team, location, data[kept:], kept)
        assert response.status_code == 204, response.get_data(as_text=True)
        digest = hashlib.sha256(data).hexdigest()
        assert hashlib.sha256(b"".join(LocalStore(Path(app.config["STORAGE_URL"][7:])).iter_chunks(digest))
                              ).hexdigest() == digest
        assert db_session.get(Blob, digest) is not None


def test_full_blob_disk_at_completion_answers_507_keeps_the_partial_and_deletes_it_after_the_copy(
        app, client, db_session, team, tmp_path, monkeypatch):
    with small_fs(tmp_path / "blobs", "2m") as blobs:
        store = LocalStore(blobs)  # another file system than the upload folder: completion copies
        monkeypatch.setitem(app.extensions, "blob_store", store)
        data = jpeg_bytes((80, 80)) + os.urandom(MIB)
        location = create(client, team, data).headers["Location"]
        half = len(data) // 2
        assert patch(client, team, location, data[:half], 0).status_code == 204
        filler = fill(blobs, leave=300 * 1024)
        response = patch(client, team, location, data[half:], half)
        assert response.status_code == 507 and response.json["code"] == "storage.full"
        partial = ops.partial_path(location.rsplit("/", 1)[1])
        assert partial.exists() and partial.stat().st_mode & stat.S_IWUSR  # a non-root server can reopen it
        digest = hashlib.sha256(data).hexdigest()
        assert not store.exists(digest) and db_session.get(Blob, digest) is None  # nothing half-stored
        assert not [p for p in blobs.rglob(".incoming-*")]

        filler.unlink()
        head = client.head(location, headers={"Tus-Resumable": "1.0.0", **device_auth(team.device)})
        offset = int(head.headers["Upload-Offset"])
        response = patch(client, team, location, data[offset:], offset)
        assert response.status_code == 204, response.get_data(as_text=True)
        assert store.exists(digest) and not partial.exists()  # copied, fsynced, then the partial deleted


def test_content_already_stored_leaves_no_partial_file(client, db_session, team):
    data = jpeg_bytes((70, 70), color="red")
    for _ in range(2):
        location = create(client, team, data).headers["Location"]
        assert patch(client, team, location, data, 0).status_code == 204
        assert not ops.partial_path(location.rsplit("/", 1)[1]).exists()


def test_fixity_check_catches_a_blob_whose_bytes_differ_from_its_name_and_flags_the_item(app, client, db_session,
                                                                                         team):
    data = jpeg_bytes((90, 60), color="blue")
    item = evidence.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                             manifest=manifest(team, data))
    db_session.commit()
    location = create(client, team, data).headers["Location"]
    assert patch(client, team, location, data, 0).status_code == 204
    item = db_session.get(EvidenceItem, item.id, populate_existing=True)
    assert item.status is EvidenceStatus.VERIFIED
    store = LocalStore(Path(app.config["STORAGE_URL"][7:]))
    path = store._path(item.blob_sha256)  # noqa: SLF001 - corrupting the stored file on purpose
    os.chmod(path, 0o644)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:1000] + b"\0" * 24 + original[1024:])  # zeros where bytes were
        assert evidence.fixity_check(db_session, item.blob) is False
        assert db_session.query(FixityAlert).filter_by(sha256=item.blob_sha256, problem="mismatch").count() == 1
        flags = {f.code for f in db_session.query(EvidenceFlag).filter_by(item_id=item.id)}
        assert "fixity_mismatch" in flags
    finally:
        path.write_bytes(original)
        os.chmod(path, 0o444)


class _Blocks:
    """A request body as ``BodyReader`` hands it over."""

    def __init__(self, data: bytes, size: int) -> None:
        self.pieces = [data[i:i + size] for i in range(0, len(data), size)]

    def read(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_short_writes_then_enospc_at_a_chosen_byte_acknowledge_only_whole_writes(monkeypatch, tmp_path):
    """Where no small file system can be mounted: the disk 'fills' at byte 300,007 of the file."""
    from server.modules.evidence import receive as receiving

    limit, real_pwrite = 300_007, os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        room = limit - offset
        if room <= 0:
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, bytes(memoryview(data)[:room]), offset)  # a short write first, as Linux does

    monkeypatch.setattr(receiving.os, "pwrite", pwrite)
    data = os.urandom(500_000)
    path = tmp_path / "partial"
    path.write_bytes(b"")
    with open(path, "r+b", buffering=0) as fh:
        got = receiving.receive(fh, 0, len(data), None, _Blocks(data, 65_536), None)
    assert got.error is not None and got.error.code == "storage.full" and got.error.status == 507
    assert got.digest is None and got.offset == 4 * 65_536  # the block that did not fit is not counted
    assert path.read_bytes() == data[:got.offset]  # what is acknowledged is exactly what is on disk
    assert receiving.hashstate.ResumableSha256(got.state).hexdigest() == hashlib.sha256(data[:got.offset]).hexdigest()
