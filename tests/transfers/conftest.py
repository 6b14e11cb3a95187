"""A suspected-crime case with evidence, the police and procuratorate offices, and their officers."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.core.access import Principal, Role
from server.core.storage import get_store
from server.modules.cases import operations as cases
from server.modules.cases.models import CaseEvidence
from server.modules.evidence import operations as evidence
from server.modules.evidence.models import Blob
from server.modules.transfers import operations as ops
from server.modules.transfers.models import TransferKind
from server.modules.users.models import AgencyKind, UnitKind
from tests import factories
from tests.cases.conftest import D, World, investigated, world  # noqa: F401  (fixture re-exported)
from tests.evidence.helpers import make_team, manifest
from tests.evidence.media import photo_with_exif

UTC = dt.timezone.utc


def principal(user: Any) -> Principal:
    return Principal(kind="user", role=user.role.value, user_id=user.id, unit_id=user.unit_id,
                     region_code=user.region_code, username=user.username)


def store_evidence(db_session: Any, team: Any, data: bytes, *, media_type: str = "image/jpeg", kind: str = "photo"):
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(data)
        tmp.flush()
        get_store().put_file(digest, Path(tmp.name))
    if db_session.get(Blob, digest) is None:
        db_session.add(Blob(sha256=digest, size=len(data), media_type=media_type))
        db_session.flush()
    return evidence.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                             manifest=manifest(team, data, kind=kind, media_type=media_type))


@dataclass
class Scene:
    w: World
    case: Any
    police_unit: Any
    other_police_unit: Any
    procuratorate_unit: Any
    police: Any
    other_police: Any
    prosecutor: Any
    items: list[Any]

    def create(self, db_session: Any, kind: TransferKind = TransferKind.CRIMINAL, on: dt.date = D(2026, 8, 20)):
        return ops.create(db_session, self.case, by=self.w.head, kind=kind, police_unit_id=self.police_unit.id,
                          procuratorate_unit_id=self.procuratorate_unit.id, suspected_offence="污染环境罪",
                          legal_basis="刑法 第338条; 法释〔2023〕7号 第1条第(二)项",
                          reason="非法处置危险废物4.5吨，涉嫌污染环境罪", on=on, handler_contact="张三 0914-1234567")

    def step(self, db_session: Any, transfer: Any, action: str, user: Any, *, at: dt.datetime | None = None,
             **data: Any):
        return ops.step(db_session, transfer, action, by=user, principal=principal(user), at=at, data=data)

    def add_required(self, db_session: Any, transfer: Any, user: Any | None = None, at: dt.datetime | None = None):
        for code, title in (("inspection_records", "现场检查笔录、询问笔录"), ("items_list", "涉案物品清单")):
            self.step(db_session, transfer, "add_material", user or self.w.a, at=at, code=code, title=title,
                      filename=f"{code}.pdf", content_base64=base64.b64encode(f"%PDF-1.4 {code}".encode()).decode())


@pytest.fixture()
def scene(db_session: Any, world: World) -> Scene:  # noqa: F811
    w = world
    police_agency = factories.AgencyFactory(kind=AgencyKind.PUBLIC_SECURITY)
    other_police_agency = factories.AgencyFactory(kind=AgencyKind.PUBLIC_SECURITY)
    procuratorate = factories.AgencyFactory(kind=AgencyKind.PROCURATORATE)
    police_unit = factories.UnitFactory(agency=police_agency, kind=UnitKind.OFFICE)
    other_unit = factories.UnitFactory(agency=other_police_agency, kind=UnitKind.OFFICE)
    proc_unit = factories.UnitFactory(agency=procuratorate, kind=UnitKind.OFFICE)
    police = factories.UserFactory(role=Role.POLICE, unit=police_unit)
    other_police = factories.UserFactory(role=Role.POLICE, unit=other_unit)
    prosecutor = factories.UserFactory(role=Role.PROSECUTOR, unit=proc_unit)
    case = investigated(db_session, w)
    cases.crime_check(db_session, case, by=w.a, facts={"hazardous_waste_t": 4.5})
    cases.record_act(db_session, case, by=w.a, kind="seizure", act_date=D(2026, 8, 5), inspector_ids=[w.a.id, w.b.id],
                     summary="查封危险废物贮存库，扣押危险废物4.5吨", approved_by_id=w.head.id,
                     document_number="商环查封〔2026〕1号")
    team = make_team()
    items = []
    for n, (lat, lon) in enumerate(((33.87, 109.94), (33.871, 109.941), (33.872, 109.942))):
        item = store_evidence(db_session, team, photo_with_exif(f"2026:08:0{n + 4} 10:00:00", lat, lon))
        db_session.add(CaseEvidence(case_id=case.id, evidence_id=item.id, linked_by=w.a.id,
                                    purpose=f"证明危险废物倾倒现场（第{n + 1}处）"))
        items.append(item)
    db_session.flush()
    return Scene(w, case, police_unit, other_unit, proc_unit, police, other_police, prosecutor, items)
