"""factory_boy factories for the models; they flush into the test's rolled-back transaction."""
from __future__ import annotations

import base64
import datetime as dt

import factory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from factory.alchemy import SQLAlchemyModelFactory

from server.core.access import Role
from server.extensions import db
from server.modules.devices.models import Device
from server.modules.directory import uscc
from server.modules.directory.models import RiskClass, Target
from server.modules.draws.models import AnnualPlan, Draw, Level, PlanStatus
from server.modules.users.models import Agency, AgencyKind, Certificate, Unit, UnitKind, User
from server.modules.users.operations import hash_password
from tests import clock

PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password(PASSWORD)


class Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class AgencyFactory(Base):
    class Meta:
        model = Agency

    kind = AgencyKind.ECOLOGY_BUREAU
    name_zh = factory.Sequence(lambda n: f"测试机关{n}")
    name_en = factory.Sequence(lambda n: f"Test agency {n}")
    region_code = "611000"


class UnitFactory(Base):
    class Meta:
        model = Unit

    agency = factory.SubFactory(AgencyFactory)
    kind = UnitKind.BRIGADE
    name_zh = factory.Sequence(lambda n: f"测试执法大队{n}")
    name_en = factory.Sequence(lambda n: f"Test brigade {n}")
    code = factory.Sequence(lambda n: f"测{n}")
    region_code = "611002"


class UserFactory(Base):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Sequence(lambda n: f"测试人员{n}")
    role = Role.INSPECTOR
    unit = factory.SubFactory(UnitFactory)
    region_code = factory.SelfAttribute("unit.region_code")
    password_hash = _PASSWORD_HASH


class CertificateFactory(Base):
    class Meta:
        model = Certificate

    user = factory.SubFactory(UserFactory)
    number = factory.Sequence(lambda n: f"61100019{n:06d}")
    issuer = "陕西省人民政府"
    scope = "生态环境保护"
    valid_from = factory.LazyFunction(lambda: clock.today() - dt.timedelta(days=365))
    valid_until = factory.LazyFunction(lambda: clock.today() + dt.timedelta(days=365))


def inspector(**kwargs: object) -> User:
    """An inspector holding a certificate valid today."""
    user = UserFactory(role=Role.INSPECTOR, **kwargs)
    CertificateFactory(user=user)
    db.session.refresh(user)
    return user


def device_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()


class DeviceFactory(Base):
    class Meta:
        model = Device

    user = factory.SubFactory(UserFactory)
    public_key = factory.LazyFunction(
        lambda: base64.b64decode(device_key()[1]))
    label = factory.Sequence(lambda n: f"平板{n}")


class TargetFactory(Base):
    class Meta:
        model = Target

    uscc = factory.Sequence(lambda n: uscc.complete(f"91611002MA{n:07d}"))
    name = factory.Sequence(lambda n: f"商洛测试企业{n}有限公司")
    region_code = "611002"
    address = "商洛市商州区测试路1号"
    lat = 33.87
    lon = 109.94
    risk_class = RiskClass.GENERAL


class DrawFactory(Base):
    """A draw record (not run) for inspections of kind random, which only a draw may create."""

    class Meta:
        model = Draw

    title = factory.Sequence(lambda n: f"测试双随机抽取{n}")
    unit_id = factory.LazyFunction(lambda: UnitFactory().id)
    created_by = factory.LazyFunction(lambda: UserFactory(role=Role.SUPERVISOR).id)
    level = Level.COUNTY
    region_codes = factory.LazyFunction(lambda: ["611002"])
    period_label = "2026Q4"
    window_start = factory.LazyFunction(clock.today)
    window_end = factory.LazyFunction(lambda: clock.today() + dt.timedelta(days=30))


class AnnualPlanFactory(Base):
    """An approved annual plan (rule 51) of a unit for this year, drafted and approved by two people."""

    class Meta:
        model = AnnualPlan

    year = factory.LazyFunction(lambda: clock.today().year)
    unit_id = factory.LazyFunction(lambda: UnitFactory().id)
    title = factory.Sequence(lambda n: f"测试年度现场检查计划{n}")
    planned = factory.LazyFunction(lambda: {"key": 10, "general": 40, "special": 5})
    cap_per_enterprise = 2
    status = PlanStatus.APPROVED
    created_by = factory.LazyFunction(lambda: UserFactory(role=Role.SUPERVISOR).id)
    approved_by = factory.LazyFunction(lambda: UserFactory(role=Role.SUPERVISOR).id)
    approved_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))
