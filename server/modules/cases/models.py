"""Penalty cases (立案 → 结案归档): the case, its append-only history and the records of each step."""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, TimestampMixin, new_uuid, utcnow, value_enum


def _enum(cls: type[enum.Enum], length: int = 24) -> sa.Enum:
    return value_enum(cls, length)


class CaseState(str, enum.Enum):
    LEAD = "lead"  # 线索
    FILED = "filed"  # 立案
    INVESTIGATING = "investigating"  # 调查取证
    NOTIFIED = "notified"  # 事先告知已送达，陈述申辩期
    HEARING_REQUESTED = "hearing_requested"
    HEARING_SCHEDULED = "hearing_scheduled"
    HEARING_HELD = "hearing_held"
    IN_REVIEW = "in_review"  # 法制审核中
    REVIEW_RETURNED = "review_returned"
    REVIEWED = "reviewed"  # 法制审核通过
    DECIDED = "decided"  # 处罚决定
    SERVED = "served"  # 送达
    PAID = "paid"
    ENFORCEMENT = "enforcement"  # 强制执行 / 申请法院
    CLOSED = "closed"  # 结案
    ARCHIVED = "archived"  # 归档，案卷不得修改
    DROPPED = "dropped"  # 不予立案 / 撤销立案 / 不予处罚


class PartyKind(str, enum.Enum):
    ORGANISATION = "organisation"
    CITIZEN = "citizen"


class Case(TimestampMixin, Base):
    """One administrative-penalty case. Columns hold the current facts; ``CaseEvent`` the history."""

    __tablename__ = "penalty_case"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    number: Mapped[str | None] = mapped_column(sa.String(60), unique=True, comment="案号, given at filing")
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="handling (lead) unit")
    target_id: Mapped[int | None] = mapped_column(sa.ForeignKey("target.id"), index=True)
    source_inspection_id: Mapped[str | None] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    state: Mapped[CaseState] = mapped_column(_enum(CaseState), default=CaseState.LEAD, index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    party_name: Mapped[str] = mapped_column(sa.String(200), comment="当事人")
    party_kind: Mapped[PartyKind] = mapped_column(_enum(PartyKind), default=PartyKind.ORGANISATION)
    party_uscc: Mapped[str | None] = mapped_column(sa.String(18))
    party_address: Mapped[str | None] = mapped_column(sa.String(300))
    facts: Mapped[str] = mapped_column(sa.Text, default="", comment="违法事实 as established")
    crime_facts: Mapped[dict[str, Any]] = mapped_column(default=dict, comment="structured facts for the crime check")
    violation_code: Mapped[str | None] = mapped_column(sa.String(40), comment="discretion benchmark violation type")
    legal_basis: Mapped[str | None] = mapped_column(sa.String(400))
    measures: Mapped[list[Any]] = mapped_column(default=list, comment="other penalties: suspend_production, revoke_licence…")
    act_ended_on: Mapped[dt.date | None] = mapped_column(comment="day the act happened or ended")
    discovered_on: Mapped[dt.date | None]
    filed_on: Mapped[dt.date | None]
    limitation_warning: Mapped[bool] = mapped_column(default=False, comment="discovered > 2 years after the act (第36条)")
    limitation_ground: Mapped[str | None] = mapped_column(
        sa.String(30), comment="第36条 five-year ground: life_health or financial safety, with harmful consequences")
    special_case: Mapped[bool] = mapped_column(default=False, comment="专案查办")
    supervised_level: Mapped[str | None] = mapped_column(sa.String(20), comment="挂牌督办 level: province, city…")
    supervised_on: Mapped[dt.date | None]
    joint: Mapped[bool] = mapped_column(default=False, comment="several agencies (联合执法)")
    major_public_interest: Mapped[bool] = mapped_column(default=False)
    complex_case: Mapped[bool] = mapped_column(default=False, comment="complex / several legal relationships")
    # notice of intended penalty (告知)
    notified_fine: Mapped[int | None] = mapped_column(sa.BigInteger)
    notified_measures: Mapped[list[Any] | None]
    notice_served_on: Mapped[dt.date | None]
    hearing_rights: Mapped[bool] = mapped_column(default=False, comment="notice told the party of hearing rights (第63条)")
    statement_made: Mapped[bool] = mapped_column(default=False, comment="party made a statement or defence")
    statement_reviewed: Mapped[bool] = mapped_column(default=False)
    statement_waived: Mapped[bool] = mapped_column(default=False)
    hearing_waived: Mapped[bool] = mapped_column(
        default=False, server_default=sa.false(), comment="hearing waived expressly or by conduct (行政处罚法 第64条第(六)项)")
    # hearing (听证)
    hearing_requested_on: Mapped[dt.date | None]
    hearing_notice_on: Mapped[dt.date | None]
    hearing_date: Mapped[dt.date | None]
    hearing_presider_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    hearing_held: Mapped[bool] = mapped_column(default=False)
    # crime check (DOMAIN-RULES rule 45)
    suspected_crime: Mapped[bool] = mapped_column(default=False)
    crime_hits: Mapped[list[Any]] = mapped_column(default=list)
    crime_checked_facts: Mapped[dict[str, Any] | None] = mapped_column(
        comment="the crime_facts the last crime check ran on (None: never run)")
    transfer_started_at: Mapped[dt.datetime | None] = mapped_column(comment="hook for the transfer issue")
    transfer_refusal_reason: Mapped[str | None] = mapped_column(sa.Text, comment="reasoned non-transfer, legally reviewed")
    # collective discussion (集体讨论)
    collective_discussed_on: Mapped[dt.date | None]
    collective_minutes: Mapped[str | None] = mapped_column(sa.Text)
    # decision, service, payment, publication
    decision_date: Mapped[dt.date | None]
    decided_fine: Mapped[int | None] = mapped_column(sa.BigInteger)
    reduction_basis: Mapped[str | None] = mapped_column(sa.String(400), comment="减轻处罚 legal basis (第32条)")
    e_service_consent: Mapped[bool] = mapped_column(default=False, comment="signed 送达地址确认书 for electronic service")
    service_method: Mapped[str | None] = mapped_column(sa.String(20))
    served_on: Mapped[dt.date | None]
    paid_on: Mapped[dt.date | None]
    paid_amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    late_fee: Mapped[int | None] = mapped_column(sa.BigInteger, comment="加处罚款 (第72条)")
    published_on: Mapped[dt.date | None]
    non_publication_reason: Mapped[str | None] = mapped_column(sa.String(400))
    closed_on: Mapped[dt.date | None]
    archived_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    handlers: Mapped[list[CaseHandler]] = relationship(order_by="CaseHandler.id", viewonly=True)
    agencies: Mapped[list[CaseAgency]] = relationship(order_by="CaseAgency.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("notified_fine IS NULL OR notified_fine >= 0", name="notified_fine_nonnegative"),
        sa.CheckConstraint("decided_fine IS NULL OR decided_fine >= 0", name="decided_fine_nonnegative"),
        sa.CheckConstraint("state != 'archived' OR archived_at IS NOT NULL", name="archived_dated"),
        sa.CheckConstraint("state NOT IN ('decided', 'served', 'paid', 'enforcement') OR decision_date IS NOT NULL",
                           name="decision_dated"),
        sa.Index("ix_penalty_case_unit_state", "unit_id", "state"),
    )


class CaseEvent(Base):
    """The case's history: every transition and recorded step, in order. Append-only."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    from_state: Mapped[str] = mapped_column(sa.String(24))
    to_state: Mapped[str] = mapped_column(sa.String(24))
    rule: Mapped[str | None] = mapped_column(sa.String(200), comment="legal source of the step")
    on: Mapped[dt.date | None] = mapped_column(comment="legal date of the step")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CaseHandler(Base):
    """承办人: certified inspectors handling the case (at least two, 行政处罚法 第42、55条)."""

    __tablename__ = "case_handler"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    lead: Mapped[bool] = mapped_column(default=False)
    certificate_number: Mapped[str] = mapped_column(sa.String(40))
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("case_id", "user_id", name="uq_case_handler_case_user"),)


class AgencyRole(str, enum.Enum):
    LEAD = "lead"
    PARTICIPANT = "participant"


class CaseAgency(Base):
    """Agencies of a joint case (rule 47): one lead, participants with their own access."""

    __tablename__ = "case_agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agency.id"), index=True)
    role: Mapped[AgencyRole] = mapped_column(_enum(AgencyRole))
    access: Mapped[str] = mapped_column(sa.String(20), default="evidence", comment="evidence | full")
    tasks: Mapped[str | None] = mapped_column(sa.String(400), comment="assigned tasks, e.g. 公安: 控制现场、查明责任人")

    __table_args__ = (
        sa.UniqueConstraint("case_id", "agency_id", name="uq_case_agency_case_agency"),
        sa.Index("uq_case_agency_one_lead", "case_id", unique=True,
                 sqlite_where=sa.text("role = 'lead'"), postgresql_where=sa.text("role = 'lead'")),
        sa.CheckConstraint("access IN ('evidence', 'full')", name="access_known"),
    )


class InvestigativeAct(Base):
    """询问、勘验、现场检查、采样…: each done by at least two certified inspectors on its date."""

    __tablename__ = "investigative_act"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(30), comment="inquiry | on_site | sampling | survey | preservation | seizure")
    act_date: Mapped[dt.date]
    inspectors: Mapped[list[Any]] = mapped_column(comment="[{user_id, certificate_number}] valid on act_date")
    summary: Mapped[str] = mapped_column(sa.Text)
    inspection_id: Mapped[str | None] = mapped_column(sa.ForeignKey("inspection.id"))
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id"), comment="agency that did it (joint)")
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    approved_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id"), comment="the head who approved taking items (行政处罚法 第56条; 行政强制法 第18条)")
    document_number: Mapped[str | None] = mapped_column(sa.String(80), comment="查封、扣押决定书 number (行政强制法 第24条)")
    items_decided_on: Mapped[dt.date | None] = mapped_column(comment="day the taken items were dealt with or released")
    items_decision: Mapped[str | None] = mapped_column(sa.String(400), comment="处理决定 / 解除查封、扣押")


class CaseEvidence(Base):
    """Evidence linked to the case from the evidence store or an inspection (shared across a joint case)."""

    __tablename__ = "case_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    evidence_id: Mapped[str] = mapped_column(sa.ForeignKey("evidence_item.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id"), comment="contributing agency")
    purpose: Mapped[str | None] = mapped_column(sa.String(200), comment="what it proves")
    linked_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("case_id", "evidence_id", name="uq_case_evidence_case_evidence"),)


class DailyFineRound(Base):
    """按日连续处罚: one round (order served → unannounced re-check), 部令第28号."""

    __tablename__ = "daily_fine_round"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    round_no: Mapped[int]
    order_served_on: Mapped[dt.date] = mapped_column(comment="责令改正违法行为决定书 served")
    recheck_on: Mapped[dt.date | None] = mapped_column(comment="unannounced re-check (within 30 days)")
    continuing: Mapped[bool | None] = mapped_column(comment="violation found continuing at the re-check")
    original_fine: Mapped[int] = mapped_column(sa.BigInteger)
    days: Mapped[int | None]
    amount: Mapped[int | None] = mapped_column(sa.BigInteger, comment="days × original fine")
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("case_id", "round_no", name="uq_daily_fine_round_case_round"),
                      sa.CheckConstraint("recheck_on IS NULL OR recheck_on > order_served_on", name="recheck_after_order"))


class CaseCorrection(Base):
    """A correction after archiving: a new record linked to the case, never an edit (2010 第70条)."""

    __tablename__ = "case_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    supersedes_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case_correction.id"))
    field: Mapped[str] = mapped_column(sa.String(60))
    corrected_value: Mapped[dict[str, Any]] = mapped_column()
    reason: Mapped[str] = mapped_column(sa.String(400))
    by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseDocument(Base):
    """A generated document (告知书, 听证通知书, 决定书, 现场检查笔录) with its number and hash."""

    __tablename__ = "case_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    doc_type: Mapped[str] = mapped_column(sa.String(30))
    number: Mapped[str] = mapped_column(sa.String(60), unique=True, comment="文书编号")
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary, comment="the PDF as issued")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    __table_args__ = (sa.CheckConstraint("length(sha256) = 64", name="sha256_length"),)


class DocumentCounter(Base):
    """文书编号 allocator: the last number used per unit, year and document type."""

    __tablename__ = "document_counter"

    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    doc_type: Mapped[str] = mapped_column(sa.String(30), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)

    __table_args__ = (sa.CheckConstraint("last >= 0", name="last_nonnegative"),)
