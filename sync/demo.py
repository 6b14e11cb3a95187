"""A field team for exercises, benchmarks and tests: created through the server's own models and
operations (inspections.create checks the team rules), committed by the caller."""
from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from server.core.access import Role
from server.core.calendar import local_today
from server.modules.devices import operations as devices
from server.modules.devices.models import Device
from server.modules.directory import uscc
from server.modules.directory.models import RiskClass, Target
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, OutsidePlanReason
from server.modules.users.models import Agency, AgencyKind, Certificate, Unit, UnitKind, User


@dataclass
class FieldDevice:
    device_id: str
    user_id: int
    private_key: bytes  # raw Ed25519 seed
    access_token: str


@dataclass
class FieldTeam:
    unit_id: int
    supervisor_id: int
    inspection_ids: list[str]
    devices: list[FieldDevice]


def make_team(session: Session, *, inspectors: int = 2, inspections_count: int = 1, tag: str = "") -> FieldTeam:
    """``inspectors`` certified inspectors (one device each), all on every one of the inspections."""
    tag = tag or uuid.uuid4().hex[:8]
    today = local_today()
    agency = Agency(kind=AgencyKind.ECOLOGY_BUREAU, name_zh=f"演练机关{tag}", name_en=f"Drill agency {tag}",
                    region_code="611000")
    unit = Unit(agency=agency, kind=UnitKind.BRIGADE, name_zh=f"演练大队{tag}", name_en=f"Drill brigade {tag}",
                region_code="611002")
    session.add_all([agency, unit])
    session.flush()
    supervisor = User(username=f"sup-{tag}", display_name=f"队长{tag}", role=Role.SUPERVISOR, unit_id=unit.id,
                      region_code="611002")
    session.add(supervisor)
    people = []
    for i in range(max(2, inspectors)):
        user = User(username=f"insp-{tag}-{i}", display_name=f"执法员{tag}-{i}", role=Role.INSPECTOR,
                    unit_id=unit.id, region_code="611002")
        session.add(user)
        session.flush()
        session.add(Certificate(user_id=user.id, number=f"D{tag}{i:04d}", issuer="陕西省人民政府", scope="生态环境保护",
                                valid_from=today - dt.timedelta(days=365), valid_until=today + dt.timedelta(days=365)))
        people.append(user)
    session.flush()
    for user in people:
        session.refresh(user)
    ids = []
    for n in range(inspections_count):
        target = Target(uscc=uscc.complete(f"91611002MA{int(tag[:6], 16) % 10**5:05d}{n:02d}"),
                        name=f"演练企业{tag}-{n}", region_code="611002", address="商洛市商州区演练路1号",
                        lat=33.87, lon=109.94, risk_class=RiskClass.GENERAL)
        session.add(target)
        session.flush()
        inspection = inspections.create(session, target_id=target.id, lead_id=people[0].id,
                                        member_ids=[u.id for u in people[1:]],
                                        window_start=today - dt.timedelta(days=3), window_end=today + dt.timedelta(days=7),
                                        kind=InspectionKind.ROUTINE, created_by=supervisor,
                                        outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
        ids.append(inspection.id)
    out = []
    for user in people[:inspectors]:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        device = devices.register(session, user=user, public_key_b64=base64.b64encode(public).decode(),
                                  label=f"平板-{user.username}")
        token = str(devices.issue_tokens(session, device)["access_token"])
        out.append(FieldDevice(device.id, user.id, key.private_bytes_raw(), token))
    return FieldTeam(unit.id, supervisor.id, ids, out)


def device_row(session: Session, device_id: str) -> Device:
    return devices.get_device(session, device_id)
