"""Demo transfer: the investigating demo case gets a crime-check hit, three signed photos (small
JPEGs with EXIF) and is handed over to the city police with a typed receipt, through the real
operations, so its evidence package verifies like any other."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import uuid

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from server.core.access import Principal
from server.core.canonical import canonical_json
from server.core.db import utcnow
from server.core.storage import put_bytes
from server.modules.cases import operations as cases
from server.modules.cases.models import Case, CaseEvidence, CaseState
from server.modules.devices.models import Device
from server.modules.evidence import operations as evidence
from server.modules.evidence.models import Blob
from server.modules.transfers import documents
from server.modules.transfers import operations as ops
from server.modules.transfers.models import Transfer, TransferKind
from server.modules.users.models import Unit, User

SITES = ((33.8712, 109.9405, "危险废物暂存间外露天堆放的废桶"), (33.8716, 109.9411, "厂区雨水沟内的渗漏痕迹"),
         (33.8720, 109.9398, "围墙外渗坑及取样点"))


def _photo(when: dt.datetime, lat: float, lon: float, shade: int) -> bytes:
    from PIL import Image

    def dms(value: float) -> tuple[float, float, float]:
        d = int(value)
        m = int((value - d) * 60)
        return float(d), float(m), round(((value - d) * 60 - m) * 60, 4)

    exif = Image.Exif()
    exif[0x0110] = "QinlingCam"
    exif[0x8769] = {36867: when.strftime("%Y:%m:%d %H:%M:%S")}
    exif[0x8825] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (shade, 90, 60)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def _store(session: Session, data: bytes) -> str:
    digest = put_bytes(data)
    if session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
        session.flush()
    return digest


def _principal(user: User) -> Principal:
    return Principal(kind="user", role=user.role.value, user_id=user.id, unit_id=user.unit_id,
                     region_code=user.region_code, username=user.username)


def load(session: Session) -> Transfer | None:
    users = {u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(
        ["supervisor", "inspector01", "inspector09", "police"])))}
    case = session.scalar(sa.select(Case).where(Case.state == CaseState.INVESTIGATING).order_by(Case.created_at).limit(1))
    police_unit = session.scalar(sa.select(Unit).where(Unit.name_zh == "商洛市公安局食品药品环境犯罪侦查支队"))
    procuratorate = session.scalar(sa.select(Unit).where(Unit.name_zh == "商洛市人民检察院第八检察部"))
    if case is None or police_unit is None or procuratorate is None or len(users) < 4:
        return None
    head, a, b, police = (users[n] for n in ("supervisor", "inspector01", "inspector09", "police"))
    cases.crime_check(session, case, by=a, facts={"hazardous_waste_t": 4.5, "evasive_discharge": True})
    key = Ed25519PrivateKey.generate()  # the demo tablet's key; only its public half is kept
    device = Device(user_id=a.id, public_key=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                    label="演示执法终端", app_version="1.0.0", registered_by=head.id)
    session.add(device)
    session.flush()
    now = utcnow()
    for n, (lat, lon, what) in enumerate(SITES):
        taken = now - dt.timedelta(days=3, hours=n)
        data = _photo(taken + dt.timedelta(hours=8), lat, lon, 120 + 40 * n)
        _store(session, data)
        manifest = {"id": str(uuid.uuid4()), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                    "media_type": "image/jpeg", "kind": "photo", "case_id": case.id,
                    "captured_at": taken.isoformat(), "lat": lat, "lon": lon, "accuracy_m": 6.0,
                    "second_inspector_id": b.id, "app_version": "1.0.0", "acquisition_method": "app_camera",
                    "step": "on_site"}
        manifest["signature"] = base64.b64encode(key.sign(canonical_json(manifest))).decode()
        item = evidence.announce(session, device=device, user=a, inspection_id=None, manifest=manifest)
        session.add(CaseEvidence(case_id=case.id, evidence_id=item.id, linked_by=a.id, purpose=f"证明{what}"))
    session.flush()
    transfer = ops.create(session, case, by=head, kind=TransferKind.CRIMINAL, police_unit_id=police_unit.id,
                          procuratorate_unit_id=procuratorate.id, suspected_offence="污染环境罪",
                          legal_basis="刑法 第338条; 法释〔2023〕7号 第1条第(二)、(五)项",
                          reason="通过渗坑非法排放、处置危险废物约4.5吨，涉嫌污染环境罪", on=now.date(),
                          handler_contact=f"{a.display_name} 0914-2312345")
    for action, user, data in (("form_team", a, {"member_ids": [a.id, b.id]}), ("submit_report", a, {}),
                               ("approve", head, {})):
        ops.step(session, transfer, action, by=user, principal=_principal(user), at=now, data=data)
    for code, title in (("inspection_records", "现场检查笔录、调查询问笔录、现场勘验图、采样记录单"),
                        ("items_list", "涉案物品清单")):
        pdf = documents.render(title, [f"案件：{case.title}", "（演示材料 / demo material）"], now.date().isoformat())
        ops.add_material(session, transfer, code=code, title=title, filename=f"{code}.pdf",
                         media_type="application/pdf", content=pdf, by=a)
    ops.step(session, transfer, "hand_over", by=a, principal=_principal(a), at=now + dt.timedelta(hours=2))
    ops.step(session, transfer, "sign_receipt", by=police, principal=_principal(police), at=now + dt.timedelta(hours=3),
             data={"method": "typed", "typed_confirmation": f"已签收 {police.display_name}"})
    return transfer
