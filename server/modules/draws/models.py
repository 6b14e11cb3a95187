"""Sampling rules, annual plans and draws (抽查计划 / 抽取). Rules and plans are data, versioned by date."""
from __future__ import annotations

import datetime as dt
import decimal
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, TimestampMixin, new_uuid, utcnow, value_enum
from server.modules.directory.models import RiskClass


_enum = value_enum


class Level(str, enum.Enum):
    CITY = "city"
    COUNTY = "county"


class Basis(str, enum.Enum):
    PERCENT = "percent"  # percent of the category per period
    RATIO = "ratio"  # targets per inspector per period
    FIXED = "fixed"  # a fixed count per period


class Period(str, enum.Enum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class DrawStatus(str, enum.Enum):
    COMMITTING = "committing"  # parties commit to secrets
    FROZEN = "frozen"  # pools frozen and hashed; public value, then reveals
    EXECUTED = "executed"  # result computed, inspections created (secret)
    PUBLISHED = "published"  # inputs and result public; anyone can replay
    SUPERSEDED = "superseded"  # replaced by an approved re-draw


class PlanStatus(str, enum.Enum):
    DRAFT = "draft"
    APPROVED = "approved"


class RedrawReason(str, enum.Enum):
    DATA_ERROR = "data_error"  # 名录库或人员库数据错误
    REVEAL_WITHHELD = "reveal_withheld"  # a party did not reveal
    NO_TEAM = "no_team"  # a drawn target cannot be staffed
    OTHER = "other"




class SamplingRule(TimestampMixin, Base):
    """DOMAIN-RULES §A rule 5: proportion and frequency for one category, per region and level,
    effective from a date. A change is a new row with a later ``effective_from``; rows are not edited."""

    __tablename__ = "sampling_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[Level] = mapped_column(_enum(Level))
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("region.code"), comment="611000 for city-wide rules")
    category: Mapped[RiskClass] = mapped_column(_enum(RiskClass))
    basis: Mapped[Basis] = mapped_column(_enum(Basis))
    value: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 3), comment="percent, targets per inspector, or count")
    period: Mapped[Period] = mapped_column(_enum(Period))
    positive_list_factor: Mapped[decimal.Decimal] = mapped_column(
        sa.Numeric(4, 3), default=decimal.Decimal("0"), comment="rate multiplier for 正面清单 targets (0 = not drawn)")
    exclude_recent_periods: Mapped[int] = mapped_column(default=0, comment="not drawn again within K periods")
    cap_per_year: Mapped[int | None] = mapped_column(comment="max inspections per enterprise per year")
    coverage_goal: Mapped[str | None] = mapped_column(sa.String(200), comment="e.g. all key units once a year")
    effective_from: Mapped[dt.date]
    effective_until: Mapped[dt.date | None]
    source: Mapped[str] = mapped_column(sa.String(400), comment="where the figure comes from, with its tag [V]/[S]/[R]")
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    __table_args__ = (
        sa.UniqueConstraint("level", "region_code", "category", "effective_from", name="uq_sampling_rule_version"),
        sa.CheckConstraint("value > 0", name="value_positive"),
        sa.CheckConstraint("positive_list_factor >= 0 AND positive_list_factor <= 1", name="factor_fraction"),
        sa.CheckConstraint("exclude_recent_periods >= 0", name="exclude_nonnegative"),
        sa.CheckConstraint("cap_per_year IS NULL OR cap_per_year > 0", name="cap_positive"),
        sa.CheckConstraint("effective_until IS NULL OR effective_from <= effective_until", name="effective_ordered"),
    )


class AnnualPlan(TimestampMixin, Base):
    """年度现场检查计划 (DOMAIN-RULES §M rule 51): planned counts per category and the per-enterprise cap."""

    __tablename__ = "annual_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int]
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    planned: Mapped[dict[str, Any]] = mapped_column(comment="risk class -> planned on-site inspections")
    cap_per_enterprise: Mapped[int] = mapped_column(comment="max inspections per enterprise per year")
    basis: Mapped[str | None] = mapped_column(sa.String(400), comment="legal basis / filing with the superior")
    status: Mapped[PlanStatus] = mapped_column(_enum(PlanStatus), default=PlanStatus.DRAFT)
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("year", "unit_id", name="uq_annual_plan_year_unit"),
        sa.CheckConstraint("cap_per_enterprise > 0", name="cap_positive"),
        sa.CheckConstraint("approved_by IS NULL OR approved_by <> created_by", name="approved_by_another"),
    )


class Draw(TimestampMixin, Base):
    """One verifiable draw. The frozen inputs live in ``document`` and the run's result in
    ``outcome`` (zlib-compressed canonical JSON; together, the file anyone can verify with
    server/modules/draws/algorithm.py)."""

    __tablename__ = "draw"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    title: Mapped[str] = mapped_column(sa.String(200))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="unit that runs the draw")
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("annual_plan.id"))
    level: Mapped[Level] = mapped_column(_enum(Level))
    region_codes: Mapped[list[Any]] = mapped_column(comment="regions whose targets are drawn")
    period_label: Mapped[str] = mapped_column(sa.String(20), comment="e.g. 2026Q4")
    window_start: Mapped[dt.date] = mapped_column(comment="first day of the visit window")
    window_end: Mapped[dt.date] = mapped_column(comment="last day of the visit window")
    team_size: Mapped[int] = mapped_column(default=2)
    cross_region: Mapped[bool] = mapped_column(default=False, comment="交叉执法: teams from another region")
    joint_agencies: Mapped[list[Any]] = mapped_column(default=list, comment="联合抽查: other departments")
    status: Mapped[DrawStatus] = mapped_column(_enum(DrawStatus), default=DrawStatus.COMMITTING)
    attempt: Mapped[int] = mapped_column(default=1, comment="1 + number of approved re-draws before this one")
    redraw_of: Mapped[str | None] = mapped_column(sa.ForeignKey("draw.id"), index=True)
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    algorithm_version: Mapped[str | None] = mapped_column(sa.String(20))
    target_pool_hash: Mapped[str | None] = mapped_column(sa.String(64))
    inspector_pool_hash: Mapped[str | None] = mapped_column(sa.String(64))
    conflict_pool_hash: Mapped[str | None] = mapped_column(sa.String(64))
    rules_hash: Mapped[str | None] = mapped_column(sa.String(64))
    public_value: Mapped[str | None] = mapped_column(sa.String(200), comment="published after the commitments")
    seed: Mapped[str | None] = mapped_column(sa.String(64))
    result_hash: Mapped[str | None] = mapped_column(sa.String(64))
    eligible_targets: Mapped[int | None]
    eligible_inspectors: Mapped[int | None]
    drawn_count: Mapped[int | None]
    exclusions: Mapped[dict[str, Any] | None] = mapped_column(comment="targets left out of the pool, by reason")
    strata: Mapped[list[Any] | None] = mapped_column(
        comment="region|category strata the pools were frozen for (each is drawn once per rule period)")
    document: Mapped[bytes | None] = mapped_column(sa.LargeBinary, comment="zlib(canonical JSON draw document)")
    run_input: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, comment="zlib(JSON): the frozen document without its targets, with the strata drawn from")
    outcome: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, comment="zlib(canonical JSON): commitments, reveals, public value, seed and result")
    frozen_at: Mapped[dt.datetime | None]
    executed_at: Mapped[dt.datetime | None]
    published_at: Mapped[dt.datetime | None]
    superseded_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    parties: Mapped[list[DrawParty]] = relationship(order_by="DrawParty.id", back_populates="draw")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("window_start <= window_end", name="window_ordered"),
        sa.CheckConstraint("team_size >= 2", name="team_of_two"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        *(sa.CheckConstraint(f"{col} IS NULL OR length({col}) = 64", name=f"{col}_sha256")
          for col in ("target_pool_hash", "inspector_pool_hash", "conflict_pool_hash", "rules_hash", "seed",
                      "result_hash")),
    )


class DrawParty(Base):
    """A party to the seed: commits to a secret by hash before the pools are frozen, then reveals it."""

    __tablename__ = "draw_party"

    id: Mapped[int] = mapped_column(primary_key=True)
    draw_id: Mapped[str] = mapped_column(sa.ForeignKey("draw.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    party: Mapped[str] = mapped_column(sa.String(40), comment="name used in the document, user:<id>")
    role: Mapped[str] = mapped_column(sa.String(20), comment="supervisor | observer")
    commitment: Mapped[str] = mapped_column(sa.String(64), comment="SHA-256(draw_id|party|secret), hex")
    committed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    secret: Mapped[str | None] = mapped_column(sa.String(200), comment="revealed secret")
    revealed_at: Mapped[dt.datetime | None]

    draw: Mapped[Draw] = relationship(back_populates="parties")

    __table_args__ = (
        sa.UniqueConstraint("draw_id", "user_id", name="uq_draw_party_user"),
        sa.CheckConstraint("length(commitment) = 64", name="commitment_sha256"),
        sa.CheckConstraint("(secret IS NULL) = (revealed_at IS NULL)", name="revealed_with_time"),
    )


class RedrawRequest(TimestampMixin, Base):
    """A re-draw: reason-coded, approved by a second manager, counted and shown publicly (rule 7)."""

    __tablename__ = "redraw_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    draw_id: Mapped[str] = mapped_column(sa.ForeignKey("draw.id"), index=True)
    reason_code: Mapped[RedrawReason] = mapped_column(_enum(RedrawReason))
    reason: Mapped[str] = mapped_column(sa.String(1000))
    requested_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_at: Mapped[dt.datetime | None]
    new_draw_id: Mapped[str | None] = mapped_column(sa.ForeignKey("draw.id"))

    __table_args__ = (
        sa.CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="second_approver"),
        sa.Index("uq_redraw_request_pending", "draw_id", unique=True,
                 sqlite_where=sa.text("approved_at IS NULL"), postgresql_where=sa.text("approved_at IS NULL")),
    )
