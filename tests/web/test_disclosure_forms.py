"""一公开 from the console (DOMAIN-RULES §A rule 8): the supervisor home's board of results awaiting
disclosure carries a publish form per completed random inspection; a published row leaves the board.
"谁检查、谁录入、谁公开": a supervisor sees and publishes only their own unit's results, an admin any.
Refusals show the code and both messages and publish nothing."""
from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.db import utcnow
from server.extensions import db
from server.modules.disclosure.models import ResultDisclosure
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, InspectionStatus
from tests import factories
from tests.helpers import audit_entries
from tests.web.conftest import HTML, PASSWORD, csrf_of, sign_in
from tests import clock

TODAY = clock.today()
_TAGS = itertools.count(1)
FOUND = {"findings": "危险废物贮存场所标识不规范，已当场责令整改", "outcome": "rectification_ordered"}


def _completed(head: Any, unit: Any, name: str, days_ago: int) -> Any:
    """A random inspection of ``unit``, drawn and completed ``days_ago`` days ago."""
    a, b = factories.inspector(unit=unit), factories.inspector(unit=unit)
    inspection = inspections.create(
        db.session, target_id=factories.TargetFactory(name=name).id, lead_id=a.id, member_ids=[b.id],
        window_start=TODAY, window_end=TODAY, kind=InspectionKind.RANDOM, created_by=head, secret=True,
        draw_id=factories.DrawFactory(unit_id=unit.id, created_by=head.id).id)
    inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow() - dt.timedelta(days=days_ago)
    return inspection


@pytest.fixture()
def world(web_app: Any) -> dict[str, Any]:
    """Two completed inspections of a new unit (one overdue), one of another unit (demo database)."""
    tag = next(_TAGS)
    with web_app.app_context():
        unit, other = factories.UnitFactory(), factories.UnitFactory()
        head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit, username=f"head{tag}")
        stranger = factories.UserFactory(role=Role.SUPERVISOR, unit=other, username=f"stranger{tag}")
        overdue = _completed(head, unit, f"商南逾期公开冶炼{tag}有限公司", days_ago=45)
        recent = _completed(head, unit, f"商州新近检查化工{tag}有限公司", days_ago=1)
        theirs = _completed(stranger, other, f"山阳他单位钒矿{tag}有限公司", days_ago=2)
        db.session.commit()
        made = {"head": head.username, "stranger": stranger.username, "overdue": overdue.id, "recent": recent.id,
                "theirs": theirs.id, "names": {i.id: i.target.name for i in (overdue, recent, theirs)},
                "head_id": head.id}
        db.session.remove()
    return made


def _client(app: Any, username: str, password: str = factories.PASSWORD) -> Any:
    client = app.test_client()
    assert sign_in(client, username, password).status_code == 302
    return client


def _board(client: Any) -> tuple[str, list[str]]:
    html = client.get("/console/supervisor", headers=HTML).get_data(as_text=True)
    return html, _rows(html)


def _rows(html: str) -> list[str]:
    table = re.search(r'<table id="disclosure-due">(.*?)</table>', html, re.S)
    assert table, "no disclosure board"
    return re.findall(r'<tr data-inspection="([^"]+)">', table.group(1))


def _publish(client: Any, inspection_id: str, **form: str) -> Any:
    token = csrf_of(client.get("/console/supervisor", headers=HTML).get_data(as_text=True))
    return client.post("/console/disclosure/results", headers=HTML,
                       data={"csrf_token": token, "inspection_id": inspection_id, **FOUND, **form})


def _published(app: Any, inspection_id: str) -> list[tuple[int, bool, str, str]]:
    with app.app_context():
        rows = [(r.published_by, r.on_time, r.findings, r.outcome.value) for r in db.session.scalars(
            sa.select(ResultDisclosure).where(ResultDisclosure.inspection_id == inspection_id))]
        db.session.remove()
    return rows


def test_a_supervisor_publishes_from_the_board_and_the_row_leaves_it(web_app, world):
    head = _client(web_app, world["head"])
    html, rows = _board(head)
    assert rows == [world["overdue"], world["recent"]]  # oldest first; another unit's not at all
    assert world["names"][world["theirs"]] not in html
    overdue_row = re.search(rf'<tr data-inspection="{world["overdue"]}">(.*?)</tr>', html, re.S).group(1)
    assert "逾期" in overdue_row and 'name="findings"' in overdue_row and "发现问题，已责令整改" in overdue_row

    done = _publish(head, world["recent"])
    assert done.status_code == 302 and done.headers["Location"] == "/console/supervisor"
    assert _published(web_app, world["recent"]) == [(world["head_id"], True, FOUND["findings"], FOUND["outcome"])]
    html, rows = _board(head)
    assert rows == [world["overdue"]] and f"结果已公开: {world['names'][world['recent']]} ✓" in html
    with web_app.app_context():
        assert audit_entries("disclosure:result:published", inspection=world["recent"])
        db.session.remove()
    public = head.get("/api/v1/public/results").get_json()
    assert world["names"][world["recent"]] in [r["target_name"] for r in public]

    late = _publish(head, world["overdue"], findings="未发现环境违法行为", outcome="no_problem")
    assert late.status_code == 302
    assert _published(web_app, world["overdue"])[0][1] is False  # published after its 20 working days
    html, rows = _board(head)
    assert rows == [] and "逾期公开" in html

    again = _publish(head, world["recent"], findings="第二次公开")
    assert again.status_code == 409 and "disclosure.already_published" in again.get_data(as_text=True)
    assert len(_published(web_app, world["recent"])) == 1


def test_a_bad_form_or_another_units_result_is_refused_and_nothing_is_published(web_app, world):
    head = _client(web_app, world["head"])
    bad = _publish(head, world["recent"], findings="x", outcome="maybe")
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "request.validation_failed" in text
    assert "<code>findings</code>" in text and "长度不符合要求" in text
    assert "<code>outcome</code>" in text and "须为所列选项之一" in text
    kept = re.search(rf'<tr data-inspection="{world["recent"]}">(.*?)</tr>', text, re.S).group(1)
    assert "<details open>" in kept and ">x</textarea>" in kept  # the row's form stays open with its text
    assert _rows(text) == [world["overdue"], world["recent"]]

    other = _publish(head, world["theirs"])
    text = other.get_data(as_text=True)
    assert other.status_code == 403 and "disclosure.other_unit" in text and "谁检查、谁公开" in text
    assert world["names"][world["theirs"]] not in text
    head.set_cookie("lang", "en")
    english = _publish(head, world["theirs"]).get_data(as_text=True)
    assert "only the unit that ran the inspection publishes its result" in english
    for inspection_id in (world["recent"], world["theirs"]):
        assert _published(web_app, inspection_id) == []
    assert _rows(english) == [world["overdue"], world["recent"]]


def test_an_admin_sees_every_units_results_and_publishes_any(web_app, world):
    admin = _client(web_app, "admin", PASSWORD)  # the demo's admin
    rows = _board(admin)[1]
    assert {world["overdue"], world["recent"], world["theirs"]} <= set(rows)
    assert _publish(admin, world["theirs"]).status_code == 302
    assert _published(web_app, world["theirs"])[0][1:] == (True, FOUND["findings"], FOUND["outcome"])
    assert world["theirs"] not in _board(admin)[1]
    stranger = _client(web_app, world["stranger"])
    assert _board(stranger)[1] == []
