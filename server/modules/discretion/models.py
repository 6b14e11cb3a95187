"""Benchmark versions as stored data, and each recorded calculation (append-only)."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, utcnow


class DiscretionBenchmark(Base):
    """One version of one violation type's benchmark, in force from ``effective_from``."""

    __tablename__ = "discretion_benchmark"

    id: Mapped[int] = mapped_column(primary_key=True)
    violation_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    version: Mapped[str] = mapped_column(sa.String(40))
    effective_from: Mapped[dt.date]
    effective_until: Mapped[dt.date | None]
    method: Mapped[str] = mapped_column(sa.String(20), comment="WEIGHT_SUM | TWO_DIM | RANGE_MIDPOINT")
    legal_basis: Mapped[str] = mapped_column(sa.String(400))
    data: Mapped[dict[str, Any]] = mapped_column(comment="the benchmark as loaded (JSON)")
    sha256: Mapped[str] = mapped_column(sa.String(64), comment="hash of the canonical JSON")
    loaded_by: Mapped[str] = mapped_column(sa.String(64), comment="user id or console")
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("violation_code", "version", name="uq_discretion_benchmark_code_version"),
        sa.CheckConstraint("effective_until IS NULL OR effective_from <= effective_until", name="effective_ordered"),
        sa.CheckConstraint("method IN ('WEIGHT_SUM', 'TWO_DIM', 'RANGE_MIDPOINT')", name="method_known"),
    )


class DiscretionRecord(Base):
    """A calculation recorded on a case: factor values, evidence per factor, method, versions."""

    __tablename__ = "discretion_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    benchmark_id: Mapped[int] = mapped_column(sa.ForeignKey("discretion_benchmark.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger, comment="proposed fine, yuan")
    method: Mapped[str] = mapped_column(sa.String(20))
    formula_version: Mapped[str] = mapped_column(sa.String(40))
    calculated_on: Mapped[dt.date] = mapped_column(comment="date the benchmark version was chosen for")
    result: Mapped[dict[str, Any]] = mapped_column(comment="calculator result: factors, evidence, corrections, trace")
    by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    supersedes_id: Mapped[int | None] = mapped_column(sa.ForeignKey("discretion_record.id"))

    __table_args__ = (sa.CheckConstraint("amount >= 0", name="amount_nonnegative"),)
