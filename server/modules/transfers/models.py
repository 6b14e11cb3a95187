"""Transfers to the police and procuratorate (行政执法与刑事司法衔接): the transfer, its append-only
history, the materials handed over, receipts (回执) and the evidence packages built for it."""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, TimestampMixin, new_uuid, utcnow, value_enum


def _enum(cls: type[enum.Enum], length: int = 32) -> sa.Enum:
    return value_enum(cls, length)


def _sha256_sql(column: str) -> str:
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


class TransferKind(str, enum.Enum):
    CRIMINAL = "criminal"  # 涉嫌犯罪案件移送 (衔接办法 2017; 国务院令第310号)
    DETENTION = "detention"  # 适用行政拘留案件移送 (2014 暂行办法)


class TransferState(str, enum.Enum):
    SUSPECTED = "suspected"  # 涉嫌犯罪，启动移送
    TEAM_FORMED = "team_formed"  # 专案组 (≥2)
    REPORT_SUBMITTED = "report_submitted"  # 移送报告 / 审批表 报负责人
    APPROVED = "approved"  # 负责人批准移送
    REFUSED = "refused"  # 负责人不批准（理由，法制审核）
    HANDED_OVER = "handed_over"  # 已移送公安，抄送检察院
    RECEIPT_SIGNED = "receipt_signed"  # 公安签收回执
    SUPPLEMENT_REQUESTED = "supplement_requested"  # 公安书面要求补正
    DECIDED = "decided"  # 公安作出立案 / 不立案 / 移交 / 退回 (或拘留 / 不予拘留) 决定
    AGENCY_NOTIFIED = "agency_notified"  # 书面通知移送机关
    ITEMS_HANDED_OVER = "items_handed_over"  # 涉案物品移交
    RECONSIDERATION_REQUESTED = "reconsideration_requested"  # 申请复议
    RECONSIDERATION_DECIDED = "reconsideration_decided"
    SUPERVISION_REQUESTED = "supervision_requested"  # 提请检察院立案监督
    NON_PROSECUTED = "non_prosecuted"  # 检察院不起诉，通知移送机关
    ADMIN_PENALTY_RESUMED = "admin_penalty_resumed"  # 回到行政处罚程序
    CLOSED = "closed"


class Transfer(TimestampMixin, Base):
    """One transfer of a case to the police (copied to the procuratorate). Columns hold the current facts."""

    __tablename__ = "transfer"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    kind: Mapped[TransferKind] = mapped_column(_enum(TransferKind), comment="criminal | detention")
    state: Mapped[TransferState] = mapped_column(_enum(TransferState), default=TransferState.SUSPECTED, index=True)
    bureau_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="transferring unit")
    police_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="receiving police office")
    procuratorate_unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("unit.id"), index=True,
                                                              comment="procuratorate copied (衔接办法 第6条)")
    suspected_offence: Mapped[str] = mapped_column(sa.String(200), comment="涉嫌罪名 / detention ground")
    legal_basis: Mapped[str] = mapped_column(sa.String(400), comment="main legal basis of the transfer")
    reason: Mapped[str] = mapped_column(sa.Text, comment="why the transfer was started")
    team: Mapped[list[Any]] = mapped_column(default=list, comment="专案组: [{user_id, certificate_number}]")
    handler_contact: Mapped[str | None] = mapped_column(sa.String(200), comment="case handler and contact on the letter")
    report_submitted_at: Mapped[dt.datetime | None]
    decided_at: Mapped[dt.datetime | None] = mapped_column(comment="head's decision")
    refusal_reason: Mapped[str | None] = mapped_column(sa.Text)
    handed_over_at: Mapped[dt.datetime | None]
    receipt_at: Mapped[dt.datetime | None]
    supplement_requested_at: Mapped[dt.datetime | None]
    police_decision: Mapped[str | None] = mapped_column(
        sa.String(20), comment="filed | not_filed | forwarded | returned | withdrawn | detained | rejected")
    police_decided_on: Mapped[dt.date | None]
    police_reasons: Mapped[str | None] = mapped_column(sa.Text)
    notified_on: Mapped[dt.date | None] = mapped_column(comment="day the bureau received the written notice")
    reconsideration_outcome: Mapped[str | None] = mapped_column(sa.String(20), comment="upheld | reversed")
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("kind = 'detention' OR procuratorate_unit_id IS NOT NULL", name="criminal_copies_procuratorate"),
        sa.CheckConstraint("state != 'refused' OR refusal_reason IS NOT NULL", name="refusal_reasoned"),
        sa.Index("ix_transfer_police_state", "police_unit_id", "state"),
    )


class TransferEvent(Base):
    """The transfer's history: every step, with its legal source. Append-only."""

    __tablename__ = "transfer_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[str] = mapped_column(sa.ForeignKey("transfer.id"), index=True)
    seq: Mapped[int] = mapped_column(comment="position in the transfer's history, from 1")
    action: Mapped[str] = mapped_column(sa.String(40))
    from_state: Mapped[str] = mapped_column(sa.String(32))
    to_state: Mapped[str] = mapped_column(sa.String(32))
    rule: Mapped[str] = mapped_column(sa.String(200), comment="legal source of the step")
    side: Mapped[str] = mapped_column(sa.String(16), comment="bureau | head | police | prosecutor")
    on: Mapped[dt.date | None] = mapped_column(comment="legal date of the step")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (sa.UniqueConstraint("transfer_id", "seq", name="uq_transfer_event_transfer_seq"),)


class TransferMaterial(Base):
    """One document handed over (DOMAIN-RULES §3.1 codes); its bytes are in the blob store."""

    __tablename__ = "transfer_material"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[str] = mapped_column(sa.ForeignKey("transfer.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(40), comment="document code of required_documents.json")
    title: Mapped[str] = mapped_column(sa.String(200))
    filename: Mapped[str] = mapped_column(sa.String(200), comment="file name inside the package")
    media_type: Mapped[str] = mapped_column(sa.String(80))
    sha256: Mapped[str] = mapped_column(sa.String(64), comment="blob digest")
    size: Mapped[int] = mapped_column(sa.BigInteger)
    generated: Mapped[bool] = mapped_column(default=False, comment="made by the system (letter, report)")
    supplement: Mapped[bool] = mapped_column(default=False, comment="added as a supplement (补正)")
    added_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint(_sha256_sql("sha256"), name="sha256_hex"),
                      sa.CheckConstraint("size >= 0", name="size_nonnegative"))


class ReceiverKey(Base):
    """An Ed25519 key a police officer or prosecutor registered to sign receipts."""

    __tablename__ = "transfer_receiver_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True, comment="raw Ed25519 public key")
    label: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.CheckConstraint("length(public_key) = 32", name="public_key_ed25519"),)


class AckMethod(str, enum.Enum):
    SIGNATURE = "signature"  # Ed25519 over the canonical transfer summary
    TYPED = "typed"  # typed confirmation by the logged-in officer
    SCAN = "scan"  # uploaded scan of the signed slip (回执)


class Acknowledgement(Base):
    """A receipt (回执) by the receiving office: who, when, which summary, and the jurisdiction check."""

    __tablename__ = "transfer_acknowledgement"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[str] = mapped_column(sa.ForeignKey("transfer.id"), index=True)
    method: Mapped[AckMethod] = mapped_column(_enum(AckMethod, 16))
    by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), comment="receiving office")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    summary_sha256: Mapped[str] = mapped_column(sa.String(64), comment="SHA-256 of the canonical summary acknowledged")
    summary: Mapped[bytes] = mapped_column(sa.LargeBinary, comment="the canonical summary bytes acknowledged")
    key_id: Mapped[int | None] = mapped_column(sa.ForeignKey("transfer_receiver_key.id"))
    signature: Mapped[bytes | None] = mapped_column(sa.LargeBinary(64))
    typed_confirmation: Mapped[str | None] = mapped_column(sa.String(400))
    scan_sha256: Mapped[str | None] = mapped_column(sa.String(64), comment="blob of the scanned slip")
    jurisdiction_ok: Mapped[bool] = mapped_column(comment="within this office's jurisdiction (衔接办法 第9条)")

    __table_args__ = (
        sa.CheckConstraint(_sha256_sql("summary_sha256"), name="summary_sha256_hex"),
        sa.CheckConstraint("method != 'signature' OR (signature IS NOT NULL AND key_id IS NOT NULL)",
                           name="signature_has_key"),
        sa.CheckConstraint("method != 'scan' OR scan_sha256 IS NOT NULL", name="scan_has_blob"),
        sa.CheckConstraint("method != 'typed' OR typed_confirmation IS NOT NULL", name="typed_has_text"),
    )


class PackageStatus(str, enum.Enum):
    QUEUED = "queued"
    BUILDING = "building"
    DONE = "done"
    FAILED = "failed"


class EvidencePackage(Base):
    """One evidence package (ZIP, maybe in volumes) built for a transfer or a case."""

    __tablename__ = "transfer_package"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    transfer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("transfer.id"), index=True)
    status: Mapped[PackageStatus] = mapped_column(_enum(PackageStatus, 16), default=PackageStatus.QUEUED)
    max_volume_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, comment="split into volumes of at most this size")
    total_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, comment="content bytes to write")
    done_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, comment="content bytes written so far")
    volumes: Mapped[list[Any]] = mapped_column(default=list, comment="[{name, sha256, size}] of the ZIP files")
    manifest_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    seal_idx: Mapped[int | None] = mapped_column(sa.BigInteger, comment="audit entry sealing the manifest")
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.CheckConstraint("done_bytes >= 0", name="done_nonnegative"),
        sa.CheckConstraint("max_volume_bytes IS NULL OR max_volume_bytes >= 1048576", name="volume_min_1mib"),
        sa.CheckConstraint("status != 'done' OR manifest_sha256 IS NOT NULL", name="done_has_manifest"),
    )
