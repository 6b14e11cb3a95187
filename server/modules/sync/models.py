"""Offline sync: the change log devices pull, the operations they pushed, and the records they edit.

Editable entities (the on-site inspection record) carry a version and a history of full field
snapshots, so a three-way merge always knows the base a device edited. Check-ins, notes and media
manifests are append-only: their id is the client's, a second arrival of the same id is a
duplicate, never an overwrite.
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, utcnow

SHA256_HEX = "length({col}) = 64"


def _enum(cls: type[enum.Enum], length: int = 20) -> sa.Enum:
    return sa.Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class SyncHead(Base):
    """The single row whose lock sequences change-log writers at commit (like ``audit_head``)."""

    __tablename__ = "sync_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, comment="highest committed change seq")
    floor_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0,
                                           comment="cursors below this were compacted away: full resync")

    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),
                      sa.CheckConstraint("floor_seq <= last_seq", name="floor_below_last"))


class SyncChange(Base):
    """One entry of the change log. ``seq`` is assigned at commit under the head lock: gap-free,
    in commit order, so a pull never skips a row committed later with a lower number."""

    __tablename__ = "sync_change"

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False,
                                     comment="server cursor position; commit order")
    inspection_id: Mapped[str] = mapped_column(sa.String(36), comment="scope: who may pull it")
    audience_user_id: Mapped[int | None] = mapped_column(
        sa.Integer, comment="only this user pulls it (a tombstone for a removed member); null = the team")
    entity: Mapped[str] = mapped_column(sa.String(40), comment="entity type, e.g. inspection_record")
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    op: Mapped[str] = mapped_column(sa.String(16), comment="upsert | append | tombstone")
    body: Mapped[str] = mapped_column(sa.Text, comment="the change as the JSON text sent to devices")
    committed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("seq > 0", name="seq_positive"),
        sa.Index("ix_sync_change_scope", "inspection_id", "seq"),
        sa.Index("ix_sync_change_audience", "audience_user_id", "seq"),
    )


class SyncDevice(Base):
    """Per-device sync state: the sequence it has pushed, its clock, and the health it reports."""

    __tablename__ = "sync_device"

    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), primary_key=True)
    acked_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0,
                                           comment="every device seq up to this one is stored")
    max_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, comment="highest device seq seen")
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(comment="last request of any sync kind")
    clock_offset_ms: Mapped[int | None] = mapped_column(sa.BigInteger,
                                                        comment="device clock minus server clock (NTP estimate)")
    clock_rtt_ms: Mapped[int | None] = mapped_column(sa.Integer, comment="round trip of the offset sample")
    clock_measured_at: Mapped[dt.datetime | None]
    outbox_depth: Mapped[int | None] = mapped_column(comment="unpushed operations, as the device reports")
    pending_media_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, comment="media not yet uploaded")
    app_version: Mapped[str | None] = mapped_column(sa.String(40))
    last_pull_seq: Mapped[int | None] = mapped_column(sa.BigInteger, comment="cursor of its last pull")

    __table_args__ = (sa.CheckConstraint("acked_seq <= max_seq", name="acked_below_max"),)


class OperationStatus(str, enum.Enum):
    APPLIED = "applied"
    MERGED = "merged"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class SyncOperation(Base):
    """Every operation a device pushed, with the result it got: a replay returns the same result."""

    __tablename__ = "sync_operation"

    op_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, comment="client-generated UUID")
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"))
    device_seq: Mapped[int] = mapped_column(sa.BigInteger, comment="per-device sequence, from 1")
    entity: Mapped[str] = mapped_column(sa.String(40))
    action: Mapped[str] = mapped_column(sa.String(20))
    inspection_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    digest: Mapped[str] = mapped_column(sa.String(64), comment="sha256 of the canonical operation")
    status: Mapped[OperationStatus] = mapped_column(_enum(OperationStatus))
    result: Mapped[str] = mapped_column(sa.Text, comment="per-item result JSON as first answered")
    device_time: Mapped[dt.datetime | None] = mapped_column(comment="the device's clock when it recorded")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="server receive time")

    __table_args__ = (
        sa.UniqueConstraint("device_id", "device_seq", name="uq_sync_operation_device_seq"),
        sa.CheckConstraint("device_seq > 0", name="device_seq_positive"),
        sa.CheckConstraint("length(digest) = 64", name="digest_sha256"),
    )


class InspectionRecord(Base):
    """现场检查笔录: one per inspection and template; its id is uuid5(inspection, template) so two
    devices that start it offline edit the same record."""

    __tablename__ = "inspection_record"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    template_code: Mapped[str] = mapped_column(sa.String(40))
    template_version: Mapped[int]
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict, comment="current field values")
    version: Mapped[int] = mapped_column(default=0, comment="0 = nothing recorded yet; +1 per change")
    open_conflicts: Mapped[int] = mapped_column(default=0, comment="unresolved same-field conflicts")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("inspection_id", "template_code", name="uq_inspection_record_template"),
        sa.CheckConstraint("version >= 0", name="version_nonnegative"),
        sa.CheckConstraint("open_conflicts >= 0", name="open_conflicts_nonnegative"),
    )


class InspectionRecordVersion(Base):
    """Every version's full field snapshot: the base of a three-way merge, and the history."""

    __tablename__ = "inspection_record_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection_record.id"))
    version: Mapped[int]
    fields: Mapped[dict[str, Any]] = mapped_column(comment="snapshot of all fields at this version")
    changed: Mapped[list[Any]] = mapped_column(comment="names of the fields this version changed")
    op_id: Mapped[str | None] = mapped_column(sa.String(36), comment="device operation that made it")
    device_id: Mapped[str | None] = mapped_column(sa.String(36))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    reason: Mapped[str | None] = mapped_column(sa.String(400), comment="why (conflict resolution)")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("record_id", "version", name="uq_inspection_record_version"),
        sa.CheckConstraint("version > 0", name="version_positive"),
    )


class ConflictStatus(str, enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"


class SyncConflict(Base):
    """Two devices changed the same field from the same base: both values are kept here until a
    supervisor chooses or merges them (the resolution is a new version with a reason)."""

    __tablename__ = "sync_conflict"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection_record.id"), index=True)
    inspection_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection.id"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="whose supervisors resolve")
    field: Mapped[str] = mapped_column(sa.String(60))
    base_value: Mapped[Any] = mapped_column(sa.JSON, comment="value at the common base")
    values: Mapped[list[Any]] = mapped_column(comment="[{value, version|op_id, device_id, user_id}] all kept")
    status: Mapped[ConflictStatus] = mapped_column(_enum(ConflictStatus), default=ConflictStatus.OPEN)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_value: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    resolved_reason: Mapped[str | None] = mapped_column(sa.String(400))
    resolved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    resolved_at: Mapped[dt.datetime | None]
    resolved_version: Mapped[int | None] = mapped_column(comment="record version the resolution made")

    __table_args__ = (sa.Index("ix_sync_conflict_open", "unit_id", "status"),)

    @property
    def described(self) -> dict[str, Any]:
        """The current value and every candidate with author and time (``operations.describe``)."""
        from sqlalchemy.orm import object_session

        from server.modules.sync.conflicts import describe

        session = object_session(self)
        assert session is not None
        return describe(session, self)


class _Appended:
    """Columns every append-only item has: who, where from, and both clocks."""

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, comment="client-generated UUID")
    inspection_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    op_id: Mapped[str] = mapped_column(sa.String(36), comment="the operation that brought it")
    device_time: Mapped[dt.datetime | None] = mapped_column(comment="device clock (untrusted)")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="server clock on arrival")
    time_flags: Mapped[list[Any] | None] = mapped_column(comment="implausible device time, e.g. ['future']")


class CheckIn(_Appended, Base):
    """签到: arrival at the site with a GNSS fix."""

    __tablename__ = "check_in"

    lat: Mapped[float] = mapped_column(comment="WGS-84")
    lon: Mapped[float] = mapped_column(comment="WGS-84")
    accuracy_m: Mapped[float | None] = mapped_column(comment="horizontal accuracy, metres")

    __table_args__ = (
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
    )


class InspectionNote(_Appended, Base):
    """A free-text note; corrections are new notes."""

    __tablename__ = "inspection_note"

    text: Mapped[str] = mapped_column(sa.Text)


class ManifestKind(str, enum.Enum):
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    BODYCAM = "bodycam"  # 执法记录仪: hash before bytes
    SIGNATURE = "signature"  # the party's signature image
    DOCUMENT = "document"


class MediaManifest(_Appended, Base):
    """Hash before bytes: the team's view of a capture manifest a device pushed. The same push
    announces it as an evidence item (``evidence_item.client_id`` = this ``id``), which holds the
    signed manifest and the chain of custody; this row is what the team's devices pull."""

    __tablename__ = "media_manifest"

    kind: Mapped[ManifestKind] = mapped_column(_enum(ManifestKind))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    media_type: Mapped[str] = mapped_column(sa.String(100))
    captured_at: Mapped[dt.datetime | None] = mapped_column(comment="device clock at capture")
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    signature: Mapped[str | None] = mapped_column(sa.String(100), comment="device Ed25519 signature, base64")

    __table_args__ = (
        sa.CheckConstraint(SHA256_HEX.format(col="sha256"), name="sha256_hex"),
        sa.CheckConstraint("size >= 0", name="size_nonnegative"),
    )


class DocumentNumberCounter(Base):
    """Next free number per unit, year and document kind; its row lock serialises allocation."""

    __tablename__ = "document_number_counter"

    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1)


class DocumentNumber(Base):
    """A document number pre-allocated to a device for on-site decisions, then used or left."""

    __tablename__ = "document_number"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"))
    year: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(40), comment="e.g. on_site_decision (当场处罚决定书)")
    number: Mapped[int]
    text: Mapped[str] = mapped_column(sa.String(60), comment="as printed, e.g. 商环当罚〔2026〕7号")
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), index=True)
    allocated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(comment="device time it was used")
    used_op_id: Mapped[str | None] = mapped_column(sa.String(36))
    used_inspection_id: Mapped[str | None] = mapped_column(sa.ForeignKey("inspection.id"))

    __table_args__ = (
        sa.UniqueConstraint("unit_id", "year", "kind", "number", name="uq_document_number_per_unit_year"),
        sa.UniqueConstraint("text", name="uq_document_number_text"),
        sa.CheckConstraint("number > 0", name="number_positive"),
    )


# The change-log hooks watch these tables and the inspections; load them with the models.
from server.modules.sync import changes as _changes  # noqa: E402,F401
