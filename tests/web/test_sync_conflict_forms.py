"""The console's conflict queue (issue 15 item 20): the supervisor sees the record's current value and
every candidate with its author and time, and a choice made against a version the record has left
is refused with sync.conflict_stale and changes nothing."""
from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest

from server.core.access import Role
from server.extensions import db
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, OutsidePlanReason
from server.modules.sync import operations as sync
from server.modules.sync.models import InspectionRecord, SyncConflict
from tests import factories
from tests.sync.conftest import make_phone
from tests.web.conftest import HTML, csrf_of, sign_in

_TAGS = itertools.count(1)


@pytest.fixture()
def world(web_app: Any) -> dict[str, Any]:
    tag = next(_TAGS)
    with web_app.app_context():
        unit = factories.UnitFactory()
        head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit, username=f"conflicthead{tag}")
        a = factories.inspector(unit=unit, display_name=f"甲检查员{tag}")
        b = factories.inspector(unit=unit, display_name=f"乙检查员{tag}")
        today = dt.date.today()
        inspection = inspections.create(db.session, target_id=factories.TargetFactory().id, lead_id=a.id,
                                        member_ids=[b.id], window_start=today - dt.timedelta(days=1),
                                        window_end=today + dt.timedelta(days=7), kind=InspectionKind.ROUTINE,
                                        created_by=head, outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
        phones = make_phone(db.session, a), make_phone(db.session, b)
        db.session.commit()
        made = {"head": head.username, "inspection": inspection.id, "phones": phones,
                "device_ids": [p.device.id for p in phones],
                "a": a.display_name, "b": b.display_name}
        db.session.remove()
    return made


def _edit(app: Any, phone: Any, inspection_id: str, base: int, value: str) -> dict[str, Any]:
    op = phone.op("inspection_record", "edit", {"inspection_id": inspection_id, "template": "on_site_record",
                                                "base_version": base, "fields": {"findings": value}})
    response = app.test_client().post("/mobile/v1/sync/push", json={"ops": [op]}, headers=phone.headers)
    assert response.status_code == 200, response.json
    return response.json["results"][0]


def _state(app: Any, inspection_id: str) -> tuple[str, str]:
    with app.app_context():
        try:
            record = db.session.get(InspectionRecord, sync.record_id(inspection_id, "on_site_record"))
            conflict = db.session.query(SyncConflict).filter_by(record_id=record.id).one()
            return record.fields["findings"], conflict.status.value
        finally:
            db.session.remove()


def test_the_console_shows_the_current_value_and_refuses_a_stale_choice(web_app, world):
    iid, (phone_a, phone_b) = world["inspection"], world["phones"]
    assert _edit(web_app, phone_a, iid, 0, "废水经暗管直排")["status"] == "applied"
    conflict = _edit(web_app, phone_b, iid, 0, "废水未经处理外排")
    assert conflict["status"] == "conflict"
    conflict_id = conflict["conflicts"][0]["conflict_id"]
    assert _edit(web_app, phone_a, iid, 1, "废水经暗管直排，已取样")["status"] == "applied"

    client = web_app.test_client()
    assert sign_in(client, world["head"], factories.PASSWORD).status_code == 302
    page = client.get("/console/sync", headers=HTML).get_data(as_text=True)
    form = page[page.index(f'id="conflict-{conflict_id}"'):]
    form = form[:form.index("</form>")]
    assert "废水经暗管直排，已取样" in form and 'value="current"' in form
    assert world["a"] in form and world["b"] in form
    assert re.search(r'name="record_version" value="2"', form)

    # another edit arrives while the supervisor reads: the choice made against version 2 is refused
    assert _edit(web_app, phone_a, iid, 2, "废水经暗管直排，已取样并拍照")["status"] == "applied"
    stale = client.post(f"/console/sync/conflicts/{conflict_id}", headers=HTML, data={
        "csrf_token": csrf_of(page), "choice": "1", "reason": "以乙的记录为准", "record_version": "2"})
    assert stale.status_code == 409 and "sync.conflict_stale" in stale.get_data(as_text=True)
    assert _state(web_app, iid) == ("废水经暗管直排，已取样并拍照", "open")

    page = client.get("/console/sync", headers=HTML).get_data(as_text=True)
    assert re.search(r'name="record_version" value="3"', page)
    kept = client.post(f"/console/sync/conflicts/{conflict_id}", headers=HTML, data={
        "csrf_token": csrf_of(page), "choice": "current", "reason": "当前记录已包含双方内容", "record_version": "3"})
    assert kept.status_code == 302
    assert _state(web_app, iid) == ("废水经暗管直排，已取样并拍照", "resolved")


def test_the_console_re_enrols_a_device_and_shows_its_one_time_token(web_app, world):
    device_id = world["device_ids"][0]
    client = web_app.test_client()
    assert sign_in(client, world["head"], factories.PASSWORD).status_code == 302
    page = client.get("/console/sync", headers=HTML).get_data(as_text=True)
    assert f"/console/devices/{device_id}/reenrol" in page
    done = client.post(f"/console/devices/{device_id}/reenrol", headers=HTML,
                       data={"csrf_token": csrf_of(page), "reason": "超过离线宽限期，重新登记"})
    assert done.status_code == 200
    token = re.search(r'class="mono enrolment-token">([^<]+)<', done.get_data(as_text=True)).group(1)
    refreshed = web_app.test_client().post("/mobile/v1/auth/refresh", json={"refresh_token": token})
    assert refreshed.status_code == 200 and refreshed.json["device_id"] == device_id
    # a device of another unit is not this supervisor's to re-enrol
    with web_app.app_context():
        stranger = make_phone(db.session, factories.inspector(unit=factories.UnitFactory()))
        db.session.commit()
        stranger_id = stranger.device.id
        db.session.remove()
    refused = client.post(f"/console/devices/{stranger_id}/reenrol", headers=HTML,
                          data={"csrf_token": csrf_of(page), "reason": "越权"})
    assert refused.status_code == 404 and "device.not_found" in refused.get_data(as_text=True)
