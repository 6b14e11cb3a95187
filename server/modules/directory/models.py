from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, TimestampMixin, new_uuid, utcnow, value_enum


class RiskClass(str, enum.Enum):
    KEY = "key"  # 重点排污单位
    GENERAL = "general"  # 一般排污单位
    SPECIAL = "special"  # 特殊监管对象


class PermitClass(str, enum.Enum):
    KEY = "key"  # 重点管理
    SIMPLIFIED = "simplified"  # 简化管理
    REGISTRATION = "registration"  # 登记管理
    NONE = "none"


class Target(TimestampMixin, Base):
    """An inspection target in the directory (名录库)."""

    __tablename__ = "target"

    id: Mapped[int] = mapped_column(primary_key=True)
    uscc: Mapped[str] = mapped_column(sa.String(18), unique=True, comment="统一社会信用代码 (GB 32100-2015)")
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("region.code"), index=True)
    address: Mapped[str] = mapped_column(sa.String(300))
    lat: Mapped[float | None] = mapped_column(comment="WGS-84 latitude")
    lon: Mapped[float | None] = mapped_column(comment="WGS-84 longitude")
    industry: Mapped[str | None] = mapped_column(sa.String(100))
    risk_class: Mapped[RiskClass] = mapped_column(
        sa.Enum(RiskClass, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]))
    permit_class: Mapped[PermitClass] = mapped_column(
        sa.Enum(PermitClass, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=PermitClass.NONE)
    permit_number: Mapped[str | None] = mapped_column(sa.String(40), comment="排污许可证编号")
    risk_basis: Mapped[str | None] = mapped_column(sa.String(400), comment="entry criteria met for the risk class")
    positive_list: Mapped[bool] = mapped_column(default=False, comment="正面清单")
    positive_list_since: Mapped[dt.date | None] = mapped_column(comment="正面清单 entry date")
    positive_list_basis: Mapped[str | None] = mapped_column(sa.String(400), comment="正面清单 entry basis")
    positive_list_removed_on: Mapped[dt.date | None] = mapped_column(comment="正面清单 removal date")
    positive_list_removal_reason: Mapped[str | None] = mapped_column(sa.String(400))
    credit_rating: Mapped[str | None] = mapped_column(sa.String(20), comment="环境信用评价等级")
    credit_rated_on: Mapped[dt.date | None] = mapped_column(comment="date of the credit rating")
    active: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1, comment="optimistic concurrency version")
    last_inspected_on: Mapped[dt.date | None]

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("length(uscc) = 18", name="uscc_length"),
        sa.CheckConstraint("lat IS NULL OR (lat BETWEEN -90 AND 90)", name="lat_range"),
        sa.CheckConstraint("lon IS NULL OR (lon BETWEEN -180 AND 180)", name="lon_range"),
        sa.CheckConstraint("NOT positive_list OR positive_list_since IS NOT NULL", name="positive_list_dated"),
    )


class ImportStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    APPLIED = "applied"  # targets created: every row, or the valid ones when the requester asked for that
    REJECTED = "rejected"  # some rows have errors; nothing was changed
    FAILED = "failed"  # the file could not be read, or the task broke


class DirectoryImport(Base):
    """One import of a CSV/XLSX file into the directory, run as a task: its progress while it runs
    and its row error report after. The file itself is kept in blob storage under its SHA-256."""

    __tablename__ = "directory_import"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    filename: Mapped[str] = mapped_column(sa.String(255))
    sha256: Mapped[str] = mapped_column(sa.String(64), comment="SHA-256 of the file; its blob name")
    size: Mapped[int] = mapped_column(sa.BigInteger, comment="file size in bytes")
    accept_valid: Mapped[bool] = mapped_column(comment="take the valid rows and report the others")
    status: Mapped[ImportStatus] = mapped_column(value_enum(ImportStatus, 16), default=ImportStatus.QUEUED)
    total_rows: Mapped[int | None] = mapped_column(comment="data rows in the file, once read")
    done_rows: Mapped[int] = mapped_column(default=0, comment="rows checked so far")
    report: Mapped[dict[str, Any] | None] = mapped_column(comment="summary and row error report")
    error: Mapped[dict[str, Any] | None] = mapped_column(comment="the error contract's body when it failed")
    requested_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.CheckConstraint("length(sha256) = 64", name="sha256_length"),
        sa.CheckConstraint("done_rows >= 0", name="done_nonnegative"),
        sa.CheckConstraint("total_rows IS NULL OR done_rows <= total_rows", name="done_within_total"),
    )
