"""Evidence (证据) and its chain of custody (证据保全): blobs, items, custody events, uploads.

An item is *announced* when its signed capture manifest arrives (usually by sync, before the
bytes) and *verified* when bytes with the same SHA-256 are stored. History is append-only:
custody events and flags are new rows, never updates.
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, new_uuid, utcnow, value_enum

def _sha256_sql(column: str) -> str:
    """Lower-case hex, 64 characters; ltrim(x, chars) exists in SQLite and PostgreSQL alike."""
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


_enum = value_enum


class EvidenceKind(str, enum.Enum):
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    SIGNATURE = "signature"
    DOCUMENT = "document"


class EvidenceStatus(str, enum.Enum):
    ANNOUNCED = "announced"  # manifest synced, bytes not yet here
    VERIFIED = "verified"  # bytes with the manifest's sha256 stored
    REJECTED = "rejected"  # the bytes sent for it were refused (type, size, hash): ``rejection`` says why
    DELETED = "deleted"  # removed under a retention policy with approval


class Derivation(str, enum.Enum):
    THUMBNAIL = "thumbnail"
    CLIP = "clip"
    REDACTION = "redaction"


class CustodyAction(str, enum.Enum):
    CAPTURED = "captured"  # device-side capture, as stated in the signed manifest
    ANNOUNCED = "announced"  # manifest received by the server
    RECEIVED = "received"  # bytes received
    VERIFIED = "verified"  # bytes match the manifest hash
    VIEWED = "viewed"
    DOWNLOADED = "downloaded"
    EXPORTED = "exported"
    DERIVED = "derived"  # a derivative was made from this item
    HANDED_OVER = "handed_over"
    FIXITY_CHECKED = "fixity_checked"
    REJECTED = "rejected"  # the bytes sent for the item were refused
    DELETED = "deleted"


class Blob(Base):
    """Stored bytes, named by their SHA-256: the same bytes are stored once whatever refers to them."""

    __tablename__ = "evidence_blob"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True, comment="lower-case hex SHA-256 of the bytes")
    size: Mapped[int] = mapped_column(sa.BigInteger, comment="bytes")
    media_type: Mapped[str] = mapped_column(sa.String(80), comment="type sniffed from the bytes, not declared")
    stored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    merkle_chunk_size: Mapped[int | None] = mapped_column(comment="bytes per leaf of the chunk tree (video)")
    merkle_root: Mapped[str | None] = mapped_column(sa.String(64), comment="RFC 9162 root over the chunks (hex)")
    last_fixity_at: Mapped[dt.datetime | None] = mapped_column(comment="last time the stored bytes were re-hashed")
    fixity_ok: Mapped[bool | None] = mapped_column(comment="result of the last fixity check")

    __table_args__ = (
        sa.CheckConstraint(_sha256_sql("sha256"), name="sha256_hex"),
        sa.CheckConstraint("size >= 0", name="size_nonnegative"),
    )


class EvidenceItem(Base):
    """One item of evidence: a capture manifest signed on the device, linked to its bytes once they arrive."""

    __tablename__ = "evidence_item"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True, comment="id the device gave the capture")
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True, comment="hash of the original bytes (manifest)")
    size: Mapped[int] = mapped_column(sa.BigInteger, comment="bytes, as claimed by the manifest")
    media_type: Mapped[str] = mapped_column(sa.String(80), comment="declared by the device; the blob has the sniffed one")
    kind: Mapped[EvidenceKind] = mapped_column(_enum(EvidenceKind))
    status: Mapped[EvidenceStatus] = mapped_column(_enum(EvidenceStatus), default=EvidenceStatus.ANNOUNCED, index=True)
    blob_sha256: Mapped[str | None] = mapped_column(sa.ForeignKey("evidence_blob.sha256"), index=True,
                                                    comment="set when matching bytes are stored")
    inspection_id: Mapped[str | None] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    case_id: Mapped[str | None] = mapped_column(sa.String(36), index=True, comment="case (future issue), no FK yet")
    step: Mapped[str | None] = mapped_column(sa.String(60), comment="procedure step, e.g. check_in, on_site, record")
    captured_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), comment="capturing inspector")
    certificate_number: Mapped[str | None] = mapped_column(sa.String(40), comment="capturing inspector's 执法证号")
    second_inspector_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"),
                                                            comment="second inspector present (行政处罚法 第42条)")
    witness: Mapped[dict[str, Any] | None] = mapped_column(comment="见证人 if any: name, id document, phone")
    device_id: Mapped[str | None] = mapped_column(sa.ForeignKey("device.id"), index=True)
    app_version: Mapped[str | None] = mapped_column(sa.String(40))
    acquisition_method: Mapped[str] = mapped_column(sa.String(60), comment="e.g. app_camera, bodycam_dock, scan")
    captured_at_device: Mapped[dt.datetime | None] = mapped_column(comment="capture time claimed by the device")
    device_clock_offset_s: Mapped[float | None] = mapped_column(comment="device clock minus server clock, if known")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="server time the manifest arrived")
    verified_at: Mapped[dt.datetime | None] = mapped_column(comment="server time matching bytes were stored")
    lat: Mapped[float | None] = mapped_column(comment="device-reported latitude, WGS-84")
    lon: Mapped[float | None] = mapped_column(comment="device-reported longitude, WGS-84")
    accuracy_m: Mapped[float | None] = mapped_column(comment="reported accuracy radius, metres")
    manifest: Mapped[dict[str, Any]] = mapped_column(comment="the capture manifest as received (without signature)")
    signature: Mapped[bytes | None] = mapped_column(sa.LargeBinary(64), comment="device Ed25519 signature")
    signature_valid: Mapped[bool] = mapped_column(comment="signature verified against the registered device key")
    parent_id: Mapped[str | None] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True,
                                                  comment="original this derivative was made from")
    derivation: Mapped[Derivation | None] = mapped_column(_enum(Derivation))
    custodian_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"),
                                                     comment="person currently responsible (changes by hand-over)")
    retention_until: Mapped[dt.date | None] = mapped_column(comment="earliest date deletion may be requested")
    media_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        comment="what was read from the bytes: capture time and its source, GPS (WGS-84 and GCJ-02), camera, size")
    rejection: Mapped[dict[str, Any] | None] = mapped_column(
        comment="why the bytes sent for it were refused: code, message_zh, message_en, detail, at")

    flags: Mapped[list[EvidenceFlag]] = relationship(order_by="EvidenceFlag.id", viewonly=True)
    blob: Mapped[Blob | None] = relationship(viewonly=True)
    custody: Mapped[list[CustodyEvent]] = relationship(order_by="CustodyEvent.seq", viewonly=True)
    derivatives: Mapped[list[EvidenceItem]] = relationship(order_by="EvidenceItem.received_at", viewonly=True)

    __table_args__ = (
        sa.CheckConstraint(_sha256_sql("sha256"), name="sha256_hex"),
        sa.CheckConstraint("size >= 0", name="size_nonnegative"),
        sa.CheckConstraint("(parent_id IS NULL) = (derivation IS NULL)", name="derivative_has_parent"),
        sa.CheckConstraint("status != 'verified' OR blob_sha256 IS NOT NULL", name="verified_has_blob"),
    )


class EvidenceFlag(Base):
    """A plausibility or integrity finding shown to reviewers. Flags are never hidden or removed."""

    __tablename__ = "evidence_flag"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(60), comment="e.g. signature_invalid, gps_far_from_target")
    detail: Mapped[dict[str, Any]] = mapped_column(comment="numbers behind the finding")
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("item_id", "code", name="uq_evidence_flag_item_code"),)


class CustodyEvent(Base):
    """One link of the chain of custody. Append-only; ``seq`` numbers an item's events 1, 2, 3…"""

    __tablename__ = "custody_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True)
    seq: Mapped[int] = mapped_column(comment="position in the item's chain, from 1, gap-free")
    action: Mapped[CustodyAction] = mapped_column(_enum(CustodyAction))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="server time")
    actor_kind: Mapped[str] = mapped_column(sa.String(16), comment="user | device | system")
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    sha256: Mapped[str | None] = mapped_column(sa.String(64), comment="hash of the bytes concerned, at that moment")
    detail: Mapped[dict[str, Any]] = mapped_column(comment="purpose, counterpart, signatures, derivative ids…")

    __table_args__ = (
        sa.UniqueConstraint("item_id", "seq", name="uq_custody_event_item_seq"),
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
    )


class HandoverStatus(str, enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"


class Handover(Base):
    """Hand-over of custody (or of the physical media) from one person to another, signed by both.

    Either both parties sign the statement (``statement()``) with their registered device keys, or
    the releasing person initiates it signed in and the receiving person confirms it signed in.
    """

    __tablename__ = "evidence_handover"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    item_id: Mapped[str] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True)
    from_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    to_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    purpose: Mapped[str] = mapped_column(sa.String(400))
    location: Mapped[str | None] = mapped_column(sa.String(200), comment="where the hand-over took place")
    physical_media: Mapped[str | None] = mapped_column(sa.String(200), comment="e.g. bodycam SD card serial")
    method: Mapped[str] = mapped_column(sa.String(20), comment="device_signatures | staff_confirmation")
    status: Mapped[HandoverStatus] = mapped_column(_enum(HandoverStatus), default=HandoverStatus.PENDING)
    initiated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    from_signature: Mapped[bytes | None] = mapped_column(sa.LargeBinary(64))
    to_signature: Mapped[bytes | None] = mapped_column(sa.LargeBinary(64))
    from_device_id: Mapped[str | None] = mapped_column(sa.ForeignKey("device.id"))
    to_device_id: Mapped[str | None] = mapped_column(sa.ForeignKey("device.id"))

    __table_args__ = (sa.CheckConstraint("from_user_id != to_user_id", name="two_parties"),)


class UploadStatus(str, enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    TERMINATED = "terminated"
    REJECTED = "rejected"


class Upload(Base):
    """A tus upload in progress. The partial file lives on local disk; this row is the truth on the offset."""

    __tablename__ = "evidence_upload"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    upload_length: Mapped[int] = mapped_column(sa.BigInteger, comment="Upload-Length")
    upload_offset: Mapped[int] = mapped_column(sa.BigInteger, default=0, comment="bytes acknowledged (fsynced)")
    sha256: Mapped[str] = mapped_column(sa.String(64), comment="whole-file hash announced in Upload-Metadata")
    hash_state: Mapped[bytes | None] = mapped_column(sa.LargeBinary, comment="SHA-256 state after ``offset`` bytes")
    upload_metadata: Mapped[dict[str, Any]] = mapped_column(comment="decoded Upload-Metadata")
    status: Mapped[UploadStatus] = mapped_column(_enum(UploadStatus), default=UploadStatus.ACTIVE, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    finished_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.CheckConstraint(_sha256_sql("sha256"), name="sha256_hex"),
        sa.CheckConstraint("upload_offset >= 0 AND upload_offset <= upload_length", name="offset_in_range"),
    )


class DeviceReconnect(Base):
    """A device came back after a silence: starts the 1-working-day upload clock (DOMAIN-RULES rule 16)."""

    __tablename__ = "device_reconnect"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(comment="server time of the first contact after the gap")
    gap_s: Mapped[int | None] = mapped_column(comment="seconds of silence before it; null for a first contact")
    source: Mapped[str] = mapped_column(sa.String(20), comment="request | client_report")


class FixityAlert(Base):
    """A stored blob that no longer hashes to its name, or is missing."""

    __tablename__ = "evidence_fixity_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.ForeignKey("evidence_blob.sha256"), index=True)
    problem: Mapped[str] = mapped_column(sa.String(20), comment="mismatch | missing")
    found_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeletionRequest(Base):
    """Deletion of an item under the retention policy: requested by one person, approved by another."""

    __tablename__ = "evidence_deletion_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True)
    requested_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(sa.String(400))
    approved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.CheckConstraint("approved_by IS NULL OR approved_by != requested_by",
                                         name="four_eyes"),)
