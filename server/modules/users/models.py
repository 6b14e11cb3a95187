from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.access import Role
from server.core.db import Base, TimestampMixin


class AgencyKind(str, enum.Enum):
    ECOLOGY_BUREAU = "ecology_bureau"  # 生态环境局
    PUBLIC_SECURITY = "public_security"  # 公安机关
    PROCURATORATE = "procuratorate"  # 检察院
    OTHER_DEPARTMENT = "other_department"  # 联合执法的其他部门


class UnitKind(str, enum.Enum):
    DETACHMENT = "detachment"  # 执法支队 (city)
    BRIGADE = "brigade"  # 执法大队 (county)
    OFFICE = "office"  # 科室 / 派出机构 / 公安分局 / 检察院部门


class CertificateStatus(str, enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Region(Base):
    """商洛市 and its seven county-level regions (GB/T 2260 codes)."""

    __tablename__ = "region"

    code: Mapped[str] = mapped_column(sa.String(6), primary_key=True, comment="GB/T 2260 code")
    name_zh: Mapped[str] = mapped_column(sa.String(40))
    name_en: Mapped[str] = mapped_column(sa.String(60))
    parent_code: Mapped[str | None] = mapped_column(sa.ForeignKey("region.code"), comment="city for a county")

    __table_args__ = (sa.CheckConstraint("length(code) = 6", name="code_six_digits"),)


class Agency(TimestampMixin, Base):
    """A government body: the bureau, a police bureau, a procuratorate, another department."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[AgencyKind] = mapped_column(sa.Enum(AgencyKind, native_enum=False, length=32))
    name_zh: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name_en: Mapped[str] = mapped_column(sa.String(160))
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("region.code"))

    units: Mapped[list[Unit]] = relationship(back_populates="agency")


class Unit(TimestampMixin, Base):
    """An enforcement unit (city detachment, county brigade) or an office of another agency."""

    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agency.id"), index=True)
    kind: Mapped[UnitKind] = mapped_column(sa.Enum(UnitKind, native_enum=False, length=32))
    name_zh: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name_en: Mapped[str] = mapped_column(sa.String(160))
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("region.code"), index=True)
    code: Mapped[str | None] = mapped_column(
        sa.String(16), comment="official short code printed in its document numbers (文号代字), e.g. 商州")

    agency: Mapped[Agency] = relationship(back_populates="units")

    __table_args__ = (sa.Index("ix_unit_code", "code", unique=True),)


class User(TimestampMixin, Base):
    """A staff account. Anonymous public users have no row."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True, comment="login name")
    display_name: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[Role] = mapped_column(sa.Enum(Role, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True)
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("region.code"), comment="region the user works in")
    password_hash: Mapped[str | None] = mapped_column(sa.String(200), comment="argon2id; null = cannot log in")
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0, comment="consecutive failed passwords")
    locked_until: Mapped[dt.datetime | None] = mapped_column(comment="login refused until then")
    token_generation: Mapped[int] = mapped_column(default=1, comment="bump to invalidate every staff token")
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    must_change_password: Mapped[bool] = mapped_column(
        default=False, server_default=sa.false(),
        comment="the password was issued by someone else (one-time): sign-in asks for a new one first")

    unit: Mapped[Unit] = relationship()
    certificates: Mapped[list[Certificate]] = relationship(back_populates="user", order_by="Certificate.valid_from")
    legal_qualifications: Mapped[list[LegalQualification]] = relationship(back_populates="user")

    __table_args__ = (
        sa.CheckConstraint("failed_logins >= 0", name="failed_logins_nonnegative"),
        # one account per name whatever its case: "Inspector01" may not sit beside "inspector01"
        sa.Index("uq_user_account_username_lower", sa.func.lower(sa.literal_column("username")), unique=True),
    )


class Certificate(TimestampMixin, Base):
    """行政执法证: the certificate that lets a person act as an inspector (持证上岗)."""

    __tablename__ = "certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    number: Mapped[str] = mapped_column(sa.String(40), unique=True, comment="certificate number shown to parties")
    issuer: Mapped[str] = mapped_column(sa.String(100), comment="issuing authority")
    scope: Mapped[str] = mapped_column(sa.String(200), comment="enforcement field the certificate covers")
    valid_from: Mapped[dt.date]
    valid_until: Mapped[dt.date]
    status: Mapped[CertificateStatus] = mapped_column(
        sa.Enum(CertificateStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=CertificateStatus.ACTIVE,
    )
    status_reason: Mapped[str | None] = mapped_column(sa.String(400))

    user: Mapped[User] = relationship(back_populates="certificates")

    __table_args__ = (sa.CheckConstraint("valid_from <= valid_until", name="validity_window_ordered"),)

    def is_valid_on(self, day: dt.date) -> bool:
        return self.status is CertificateStatus.ACTIVE and self.valid_from <= day <= self.valid_until


class LegalQualification(TimestampMixin, Base):
    """A legal reviewer's qualification record (法律职业资格 or equivalent)."""

    __tablename__ = "legal_qualification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(60), comment="e.g. 法律职业资格证书")
    number: Mapped[str] = mapped_column(sa.String(60), unique=True)
    obtained_on: Mapped[dt.date]

    user: Mapped[User] = relationship(back_populates="legal_qualifications")

