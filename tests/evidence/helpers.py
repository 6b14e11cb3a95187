"""Shared helpers for the evidence tests: a team, a device with its private key, signed manifests."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.core.access import Role
from server.core.canonical import canonical_json
from server.extensions import db
from server.modules.auth.operations import staff_token
from server.modules.devices.models import Device
from server.modules.devices.operations import issue_tokens
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, OutsidePlanReason
from tests import factories
from tests import clock


@dataclass
class Team:
    supervisor: Any
    lead: Any
    member: Any
    outsider: Any
    inspection: Any
    device: Any
    key: Ed25519PrivateKey
    target: Any


def make_device(user: Any) -> tuple[Device, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = Device(user_id=user.id, public_key=raw, label="测试平板", app_version="1.0.0")
    db.session.add(device)
    db.session.flush()
    return device, key


def make_team() -> Team:
    unit = factories.UnitFactory()
    supervisor = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    lead, member, outsider = (factories.inspector(unit=unit) for _ in range(3))
    target = factories.TargetFactory(lat=33.87, lon=109.94)
    today = clock.today()
    inspection = inspections.create(db.session, target_id=target.id, lead_id=lead.id, member_ids=[member.id],
                                    window_start=today, window_end=today + dt.timedelta(days=7),
                                    kind=InspectionKind.ROUTINE, created_by=supervisor,
                                    outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
    device, key = make_device(lead)
    return Team(supervisor, lead, member, outsider, inspection, device, key, target)


def manifest(team: Team, data: bytes, *, kind: str = "photo", media_type: str = "image/jpeg",
             key: Ed25519PrivateKey | None = None, sign: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "media_type": media_type, "kind": kind,
        "captured_at": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(),
        "lat": 33.87, "lon": 109.94, "accuracy_m": 8.0, "second_inspector_id": team.member.id,
        "app_version": "1.0.0", "acquisition_method": "app_camera", "step": "on_site",
        "inspection_id": team.inspection.id,
    }
    body.update(extra)
    if sign:
        body["signature"] = base64.b64encode((key or team.key).sign(canonical_json(body))).decode()
    return body


def device_auth(device: Device) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_tokens(db.session, device)['access_token']}"}


def staff_auth(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(user)['access_token']}"}
