"""Fixtures for sync tests: a supervisor, a team of two inspectors with one device each, an inspection."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.core.access import Role
from server.modules.auth.operations import staff_token
from server.modules.devices.models import Device
from server.modules.devices.operations import issue_tokens
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, OutsidePlanReason
from tests import factories
from tests import clock


@dataclass
class Phone:
    """A device with its private key and a bearer header, and a per-device op sequence."""

    device: Device
    key: Ed25519PrivateKey
    headers: dict[str, str]
    seq: int = 0

    def op(self, entity: str, action: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self.seq += 1
        return {"op_id": str(uuid.uuid4()), "seq": self.seq, "entity": entity, "action": action, "data": data,
                "device_time": dt.datetime.now(dt.UTC).isoformat(), **extra}


def make_phone(session: Any, user: Any) -> Phone:
    key = Ed25519PrivateKey.generate()
    device = factories.DeviceFactory(user=user, public_key=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    token = issue_tokens(session, device)["access_token"]
    return Phone(device, key, {"Authorization": f"Bearer {token}"})


@dataclass
class Field:
    supervisor: Any
    a: Any
    b: Any
    outsider: Any
    inspection: Any
    phone_a: Phone
    phone_b: Phone
    phone_out: Phone

    @property
    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {staff_token(self.supervisor)['access_token']}"}


@pytest.fixture()
def field(db_session: Any) -> Field:
    unit = factories.UnitFactory()
    supervisor = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a, b, outsider = (factories.inspector(unit=unit) for _ in range(3))
    target = factories.TargetFactory()
    today = clock.today()
    inspection = inspections.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id],
                                    window_start=today - dt.timedelta(days=1), window_end=today + dt.timedelta(days=7),
                                    kind=InspectionKind.ROUTINE, created_by=supervisor,
                                    outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
    phones = make_phone(db_session, a), make_phone(db_session, b), make_phone(db_session, outsider)
    db_session.commit()  # as the staff API would: the assignment reaches the change log
    return Field(supervisor, a, b, outsider, inspection, *phones)
