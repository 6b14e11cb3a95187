"""Resumable uploads (tus 1.0): partial files on local disk, offsets and hash state in the database.

Durability: bytes are fsynced before the new offset is written and committed, and only then is
the offset acknowledged to the client, so a crash loses nothing that was acknowledged; bytes
written but not acknowledged are cut off (``truncate``) by the next PATCH, so a replayed chunk is
never appended twice. One writer per upload: an exclusive ``flock`` on the partial file, taken
without waiting, works across gunicorn worker processes. A second connection of the same device
asks the holder to give way (a marker file beside the partial): a holder that has received
nothing for ``UPLOAD_LOCK_STALE_S`` keeps what arrived and lets go; an active one keeps the lock
and the newcomer gets 423.

Whole-file SHA-256: computed while the bytes stream in; its state is saved with every
acknowledged offset (``hashstate``), so neither a restart nor another worker re-reads the file.
The hash is fed exactly the bytes that were written (every write checked, see ``receive``).
At completion it must equal the ``sha256`` announced in ``Upload-Metadata``; otherwise the
upload is discarded (422 ``evidence.hash_mismatch``; 460 is only for ``Upload-Checksum``) and
nothing of it becomes evidence.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from server.core import errors
from server.core.db import utcnow
from server.core.storage import get_store
from server.core.tasks import send_after_commit
from server.modules.audit import operations as audit
from server.modules.devices.models import Device
from server.modules.evidence import s3parts, sniff
from server.modules.evidence.models import Blob, EvidenceItem, EvidenceStatus, Upload, UploadStatus
from server.modules.evidence.operations import SHA256_HEX, link_blob
from server.modules.evidence.receive import (  # noqa: F401  (the error codes are part of this API)
    CHECKSUMS, BeyondLength, ChecksumMismatch, PartialLost, Received)
from server.modules.evidence.refusals import ManifestHashMismatch, manifest_for_upload, reject_upload

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"

UploadNotFound = errors.error_code("upload.not_found", 404, "上传不存在", "No such upload")
UploadGone = errors.error_code("upload.gone", 410, "上传已终止、过期或被拒绝，请重新开始",
                               "The upload was terminated, has expired or was rejected; start again")
OffsetMismatch = errors.error_code("upload.offset_mismatch", 409, "Upload-Offset 与服务器已确认的偏移量不一致，请先用 HEAD 查询",
                                   "Upload-Offset differs from the server's acknowledged offset; ask with HEAD first")
UploadLocked = errors.error_code("upload.locked", 423, "另一个连接正在写入此上传", "Another connection is writing this upload")
ChecksumUnsupported = errors.error_code("upload.checksum_unsupported", 400, "不支持的校验算法（支持 sha1、sha256）",
                                        "Unsupported checksum algorithm (sha1 and sha256 are supported)")
VersionUnsupported = errors.error_code("upload.version_unsupported", 412, "不支持的 tus 协议版本（仅 1.0.0）",
                                       "Unsupported tus version (only 1.0.0)")
UploadTooLarge = errors.error_code("upload.too_large", 413, "文件超过允许的最大大小", "The file is larger than allowed")
MetadataInvalid = errors.error_code("upload.metadata_invalid", 400, "Upload-Metadata 缺失或格式错误（须含 sha256）",
                                    "Upload-Metadata is missing or malformed (sha256 is required)")
HeaderInvalid = errors.error_code("upload.header_invalid", 400, "tus 请求头缺失或格式错误",
                                  "A tus header is missing or malformed")
HashMismatch = errors.error_code("evidence.hash_mismatch", 422, "文件的 SHA-256 与声明不符，上传已作废，未形成证据",
                                 "The file's SHA-256 differs from the announced one; the upload was discarded and is not evidence")
UnsupportedType = errors.error_code("evidence.unsupported_type", 415, "文件内容不是允许的证据格式（按文件内容识别）",
                                    "The file's content is not an accepted evidence format (judged by its bytes)")
ImageTooLarge = errors.error_code("evidence.image_too_large", 422, "图像像素数超出上限（疑似解压炸弹），上传已作废",
                                  "The image has too many pixels (possible decompression bomb); the upload was discarded")


# ---- headers --------------------------------------------------------------------------------

def parse_metadata(header: str | None) -> dict[str, str]:
    """``key base64value,key2 base64value2`` → dict (values decoded as UTF-8)."""
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise MetadataInvalid(f"metadata value of {key!r} is not base64 UTF-8") from None
    return result


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise ChecksumUnsupported(algorithm=algorithm)
    try:
        return algorithm, base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise HeaderInvalid("Upload-Checksum value is not base64") from None


def parse_int(value: str | None, name: str) -> int:
    if value is None or not value.isdigit():
        raise HeaderInvalid(f"{name} must be a non-negative integer", header=name)
    return int(value)


# ---- files and locks ------------------------------------------------------------------------

def partial_path(upload_id: str) -> Path:
    return Path(current_app.config["UPLOAD_DIR"]) / upload_id[:2] / upload_id


def _takeover_marker(upload_id: str) -> Path:
    return partial_path(upload_id).with_suffix(".takeover")


def takeover_requested(upload_id: str) -> Callable[[float], bool]:
    """For the lock holder: has a newer PATCH asked for the lock while we sat idle long enough?"""
    stale = current_app.config["UPLOAD_LOCK_STALE_S"]
    marker = _takeover_marker(upload_id)
    return lambda idle: idle >= stale and marker.exists()


@contextmanager
def locked(upload_id: str, *, take_over: Callable[[], Any] | None = None) -> Iterator[IO[bytes]]:
    """The partial file, opened for writing under an exclusive lock (423 if someone holds it).

    ``take_over``: when the lock is held, call it (it raises if the caller may not take over, and
    ends the caller's transaction: none is held while waiting), then ask a holder that sits idle
    to give way, and wait for it up to ``UPLOAD_LOCK_STALE_S`` and five seconds."""
    try:
        fh = open(partial_path(upload_id), "r+b", buffering=0)
    except FileNotFoundError:
        raise UploadGone() from None
    try:
        if not _try_lock(fh):
            if take_over is None:
                raise UploadLocked()
            take_over()
            marker = _takeover_marker(upload_id)
            marker.touch()
            try:
                deadline = time.monotonic() + current_app.config["UPLOAD_LOCK_STALE_S"] + 5  # two ticks, a commit, load
                while not _try_lock(fh):
                    if time.monotonic() > deadline:
                        raise UploadLocked()
                    time.sleep(0.05)
            finally:
                marker.unlink(missing_ok=True)
        yield fh
    finally:
        fh.close()  # closing releases the lock


def _try_lock(fh: IO[bytes]) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _discard(upload_id: str, digest: str) -> None:
    s3parts.abort(partial_path(upload_id), digest)
    partial_path(upload_id).unlink(missing_ok=True)
    _takeover_marker(upload_id).unlink(missing_ok=True)


def before_write(upload_id: str, acknowledged: int) -> None:
    """Under the lock, before a PATCH writes at the acknowledged offset."""
    s3parts.forget_beyond(partial_path(upload_id), acknowledged)


def after_commit(upload: Upload, fh: IO[bytes]) -> None:
    """Under the lock, once the new offset is committed: S3 gets the whole parts acknowledged so far."""
    if upload.status is UploadStatus.ACTIVE:
        s3parts.send_acknowledged(partial_path(upload.id), fh, upload.sha256, upload.upload_offset)


# ---- operations -----------------------------------------------------------------------------

def create(session: Session, *, device: Device, length: int, metadata: dict[str, str]) -> Upload:
    """Start an upload (tus creation). ``metadata['sha256']`` is the announced whole-file hash."""
    config = current_app.config
    if length > config["UPLOAD_MAX_BYTES"]:
        raise UploadTooLarge(max_size=config["UPLOAD_MAX_BYTES"], length=length)
    digest = metadata.get("sha256", "").strip().lower()
    if not SHA256_HEX.match(digest):
        raise MetadataInvalid(fields={"sha256": ["64 位十六进制 / 64 hex digits"]})
    now = utcnow()
    upload = Upload(device_id=device.id, user_id=device.user_id, upload_length=length, upload_offset=0,
                    sha256=digest, upload_metadata=metadata, created_at=now,
                    expires_at=now + dt.timedelta(days=config["UPLOAD_EXPIRY_DAYS"]))
    session.add(upload)
    session.flush()
    path = partial_path(upload.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:
        os.fsync(fh.fileno())
    audit.record(session, "mobile:upload:created", subjects={"upload": upload.id, "device": device.id},
                 payload={"length": length, "sha256": digest, "metadata": metadata})
    return upload


def get_for_device(session: Session, upload_id: str, device_id: str | None, *, allow_finished: bool = False,
                   allow_expired: bool = False) -> Upload:
    upload = session.get(Upload, upload_id, populate_existing=True)
    if upload is None or upload.device_id != device_id:
        raise UploadNotFound()  # another device's upload is not revealed
    if upload.status is UploadStatus.COMPLETED and allow_finished:
        return upload
    if upload.status is not UploadStatus.ACTIVE:
        raise UploadGone(status=upload.status.value)
    if upload.expires_at <= utcnow() and not allow_expired:
        raise UploadGone(status="expired")
    return upload


def acknowledge(session: Session, upload: Upload, received: Received) -> None:
    """Record the new offset (only if nobody moved it meanwhile: the file lock makes that a bug)."""
    if received.offset == received.start:
        return
    result = session.execute(sa.update(Upload).where(Upload.id == upload.id, Upload.upload_offset == received.start)
                             .values(upload_offset=received.offset, hash_state=received.state))
    if result.rowcount != 1:
        raise OffsetMismatch()
    set_committed_value(upload, "upload_offset", received.offset)  # what the UPDATE wrote: no re-read
    set_committed_value(upload, "hash_state", received.state)


def complete(session: Session, upload: Upload, digest: str, fh: IO[bytes]) -> Blob | errors.DomainError:
    """All bytes are here: check the hash and the content, store the blob, verify announced items.

    Returns the error instead of raising it when the upload is rejected, so that the caller can
    commit the rejection (status + audit entry) before answering.
    """
    fh.seek(0)
    head = fh.read(sniff.HEADER_BYTES)
    media_type = sniff.sniff(head)
    problem: errors.DomainError | None = None
    named = manifest_for_upload(session, upload.upload_metadata, upload.device_id)
    if digest != upload.sha256:
        problem = HashMismatch(announced=upload.sha256, received=digest)
    elif named is not None and named.sha256 != digest:  # right for Upload-Metadata, wrong for its manifest
        problem = ManifestHashMismatch(manifest=named.sha256, received=digest, capture_id=named.client_id)
    elif media_type not in sniff.ACCEPTED:
        problem = UnsupportedType(sniffed=media_type, declared=upload.upload_metadata.get("filetype"))
    elif media_type.startswith("image/"):
        pixels = _pixels(partial_path(upload.id))
        if pixels is not None and pixels > current_app.config["EVIDENCE_MAX_IMAGE_PIXELS"]:
            problem = ImageTooLarge(pixels=pixels, limit=current_app.config["EVIDENCE_MAX_IMAGE_PIXELS"])
    if problem is not None:
        upload.status = UploadStatus.REJECTED
        upload.finished_at = utcnow()
        upload.hash_state = None
        session.flush()
        _discard(upload.id, upload.sha256)
        audit.record(session, "mobile:upload:rejected", subjects={"upload": upload.id, "device": upload.device_id},
                     payload={"code": problem.code, **problem.context})
        reject_upload(session, device_id=upload.device_id, problem=problem, sha256=upload.sha256, upload_id=upload.id,
                      capture_id=upload.upload_metadata.get("capture_id"))
        return problem

    if not s3parts.finish(partial_path(upload.id), fh, digest, upload.upload_length):  # S3: join the parts sent
        get_store().put_file(digest, partial_path(upload.id), move=True)
    blob = _blob(session, digest, upload.upload_length, media_type)
    upload.status = UploadStatus.COMPLETED
    upload.finished_at = utcnow()
    upload.hash_state = None
    session.flush()
    audit.record(session, "mobile:upload:completed", subjects={"upload": upload.id, "blob": digest,
                                                               "device": upload.device_id},
                 payload={"size": upload.upload_length, "media_type": media_type})
    # Locked, so that two uploads of the same bytes finishing together verify each item once
    # (on PostgreSQL the second waits, then no longer finds the item announced).
    items = session.scalars(sa.select(EvidenceItem).where(EvidenceItem.sha256 == digest,
                                                          EvidenceItem.status == EvidenceStatus.ANNOUNCED)
                            .order_by(EvidenceItem.id).with_for_update()).all()
    for item in items:
        link_blob(session, item, blob, upload_id=upload.id)  # sends the processing task
    if not items:
        from server.modules.evidence import tasks

        send_after_commit(session, tasks.process_blob, digest)
    return blob


def _blob(session: Session, digest: str, size: int, media_type: str) -> Blob:
    """The blob row, inserted unless there is one: two uploads of the same bytes may finish
    together, and the second simply links to the stored blob (no duplicate-key error)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(Blob).values(sha256=digest, size=size, media_type=media_type)
                    .on_conflict_do_nothing(index_elements=["sha256"]))
    blob = session.get(Blob, digest, populate_existing=True)
    assert blob is not None
    return blob


def _pixels(path: Path) -> int | None:
    """Width × height from the image header only (Pillow decodes nothing here)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as image:
                    return image.width * image.height
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception:  # noqa: BLE001 - corrupt headers are for the metadata task to flag
        return None


def terminate(session: Session, upload: Upload) -> None:
    """tus termination: the partial bytes are deleted; later requests get 410."""
    upload.status = UploadStatus.TERMINATED
    upload.finished_at = utcnow()
    upload.hash_state = None
    session.flush()
    _discard(upload.id, upload.sha256)
    audit.record(session, "mobile:upload:terminated", subjects={"upload": upload.id, "device": upload.device_id},
                 payload={"offset": upload.upload_offset})


def expire(session: Session, now: dt.datetime | None = None) -> int:
    """Delete the partial files of uploads past their expiry (tus expiration). Returns how many.

    Each upload is claimed by a conditional update, so that several processes running this at
    once (every web process runs it in the embedded default) expire each upload once."""
    now = now or utcnow()
    stale = session.execute(sa.select(Upload.id, Upload.device_id, Upload.upload_offset, Upload.upload_length,
                                      Upload.sha256)
                            .where(Upload.status == UploadStatus.ACTIVE, Upload.expires_at <= now)).all()
    count = 0
    for upload_id, device_id, offset, length, digest in stale:
        claimed = session.execute(sa.update(Upload).where(Upload.id == upload_id, Upload.status == UploadStatus.ACTIVE)
                                  .values(status=UploadStatus.TERMINATED, finished_at=now, hash_state=None))
        if claimed.rowcount != 1:
            continue
        _discard(upload_id, digest)
        audit.record(session, "system:upload:expired", subjects={"upload": upload_id, "device": device_id},
                     payload={"offset": offset, "length": length}, actor=audit.system("evidence.expire_uploads"))
        count += 1
    session.flush()
    return count


def expire_one(session: Session, upload: Upload) -> None:
    """An expired upload that its device deletes: free it now (tus termination of an expired upload)."""
    if upload.status is UploadStatus.ACTIVE:
        upload.status = UploadStatus.TERMINATED
        upload.finished_at = utcnow()
        upload.hash_state = None
        session.flush()
        audit.record(session, "system:upload:expired", subjects={"upload": upload.id, "device": upload.device_id},
                     payload={"offset": upload.upload_offset, "length": upload.upload_length, "on": "delete"},
                     actor=audit.system("evidence.expire_uploads"))
    _discard(upload.id, upload.sha256)


def headers(upload: Upload) -> dict[str, Any]:
    from email.utils import format_datetime

    return {"Upload-Offset": str(upload.upload_offset), "Upload-Length": str(upload.upload_length),
            "Upload-Expires": format_datetime(upload.expires_at.astimezone(dt.UTC), usegmt=True)}
