"""Re-draws from the console (DOMAIN-RULES §A rule 7): a manager asks for one on the draw page with a
reason code and a reason; another manager of the drawing unit sees it on the draw page and in the
draws index and approves it; the console then shows the new draw (attempt 2) and links old and new.
The requester, another unit's manager and a bad form are refused with the code and change nothing."""
from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.extensions import db
from server.modules.draws.models import Draw, DrawStatus, RedrawRequest
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionKind, InspectionStatus
from tests import factories
from tests.helpers import audit_entries
from tests.web.conftest import HTML, csrf_of, sign_in
from tests import clock

TODAY = clock.today()
_TAGS = itertools.count(1)
REASON = {"reason_code": "data_error", "reason": "名录库中两家企业重复登记，抽取池有误"}


@pytest.fixture()
def world(web_app: Any) -> dict[str, Any]:
    """A new unit's draw with one drawn inspection; two managers of the unit and one of another unit
    (on the demo database, committed for real: pages run in their own app context)."""
    tag = next(_TAGS)
    with web_app.app_context():
        unit = factories.UnitFactory()
        head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit, username=f"head{tag}")
        second = factories.UserFactory(role=Role.SUPERVISOR, unit=unit, username=f"second{tag}")
        stranger = factories.UserFactory(role=Role.SUPERVISOR, unit=factories.UnitFactory(), username=f"stranger{tag}")
        draw = factories.DrawFactory(unit_id=unit.id, created_by=head.id, title="商州区第四季度双随机抽查")
        a, b = factories.inspector(unit=unit), factories.inspector(unit=unit)
        drawn = inspections.create(db.session, target_id=factories.TargetFactory().id, lead_id=a.id,
                                   member_ids=[b.id], window_start=TODAY, window_end=TODAY + dt.timedelta(days=10),
                                   kind=InspectionKind.RANDOM, created_by=head, secret=True, draw_id=draw.id)
        db.session.commit()
        made = {"head": head.username, "second": second.username, "stranger": stranger.username, "draw": draw.id,
                "drawn": drawn.id}
        db.session.remove()
    return made


def _client(app: Any, username: str) -> Any:
    client = app.test_client()
    assert sign_in(client, username, factories.PASSWORD).status_code == 302
    return client


def _post(client: Any, path: str, data: dict[str, str] | None = None) -> Any:
    token = csrf_of(client.get("/console/draws", headers=HTML).get_data(as_text=True))
    return client.post(path, headers=HTML, data={"csrf_token": token, **(data or {})})


def _read(app: Any, read: Any) -> Any:
    with app.app_context():
        try:
            return read()
        finally:
            db.session.remove()


def _requests(app: Any, draw_id: str) -> list[tuple[int, Any, str | None]]:
    return _read(app, lambda: [(r.id, r.approved_at, r.new_draw_id) for r in db.session.scalars(
        sa.select(RedrawRequest).where(RedrawRequest.draw_id == draw_id))])


def _draw(app: Any, draw_id: str) -> tuple[DrawStatus, int, str | None]:
    return _read(app, lambda: (lambda d: (d.status, d.attempt, d.redraw_of))(db.session.get(Draw, draw_id)))


def _inspection(app: Any, inspection_id: str) -> tuple[InspectionStatus, str | None]:
    return _read(app, lambda: (lambda i: (i.status, i.cancelled_reason))(db.session.get(Inspection, inspection_id)))


def _unchanged(app: Any, world: dict[str, Any]) -> None:
    """The draw still in its ceremony, its inspection assigned, no new draw, no request approved."""
    assert _draw(app, world["draw"])[0] is DrawStatus.COMMITTING
    assert _inspection(app, world["drawn"]) == (InspectionStatus.ASSIGNED, None)
    assert _read(app, lambda: db.session.scalar(sa.select(sa.func.count(Draw.id)).where(
        Draw.redraw_of == world["draw"]))) == 0
    assert all(approved_at is None for _, approved_at, _ in _requests(app, world["draw"]))


def test_a_manager_asks_and_another_manager_of_the_unit_approves(web_app, world):
    draw_id = world["draw"]
    head = _client(web_app, world["head"])
    page = head.get(f"/console/draws/{draw_id}", headers=HTML).get_data(as_text=True)
    assert 'id="redraw-new"' in page and f'action="/console/draws/{draw_id}/redraw-requests"' in page
    assert "名录库或人员库数据错误" in page  # the reason codes, in Chinese

    asked = _post(head, f"/console/draws/{draw_id}/redraw-requests", REASON)
    assert asked.status_code == 302 and asked.headers["Location"] == f"/console/draws/{draw_id}"
    [(request_id, approved_at, _)] = _requests(web_app, draw_id)
    assert approved_at is None
    assert _read(web_app, lambda: audit_entries("draws:draw:redraw_requested", draw=draw_id))
    page = head.get(f"/console/draws/{draw_id}", headers=HTML).get_data(as_text=True)
    assert 'id="redraw-pending"' in page and REASON["reason"] in page and "待本单位另一名负责人批准" in page
    assert f"/console/redraw-requests/{request_id}/approve" not in page  # no button for the requester
    assert 'id="redraw-new"' not in page

    # the second manager sees it in the index and on the draw page, and approves it
    second = _client(web_app, world["second"])
    index = second.get("/console/draws", headers=HTML).get_data(as_text=True)
    pending = re.search(r'<table id="pending-redraws">(.*?)</table>', index, re.S)
    assert pending and f'data-request="{request_id}"' in pending.group(1) and REASON["reason"] in pending.group(1)
    assert f"/console/redraw-requests/{request_id}/approve" in pending.group(1)
    assert f"/console/redraw-requests/{request_id}/approve" in second.get(
        f"/console/draws/{draw_id}", headers=HTML).get_data(as_text=True)
    approved = _post(second, f"/console/redraw-requests/{request_id}/approve")
    assert approved.status_code == 302, approved.get_data(as_text=True)[:2000]
    [(_, approved_at, new_id)] = _requests(web_app, draw_id)
    assert approved_at is not None and approved.headers["Location"] == f"/console/draws/{new_id}"
    assert _draw(web_app, new_id) == (DrawStatus.COMMITTING, 2, draw_id)
    assert _draw(web_app, draw_id)[0] is DrawStatus.SUPERSEDED
    status, reason = _inspection(web_app, world["drawn"])
    assert status is InspectionStatus.CANCELLED and f"#{request_id}" in reason

    # old and new link to each other; the new one starts its own ceremony
    shown = second.get(f"/console/draws/{new_id}", headers=HTML).get_data(as_text=True)
    assert "第 2 次抽取" in shown and f'id="redraw-of" href="/console/draws/{draw_id}"' in shown
    assert REASON["reason"] in shown and 'id="commit-form"' in shown
    old = second.get(f"/console/draws/{draw_id}", headers=HTML).get_data(as_text=True)
    assert f'id="superseded-by" href="/console/draws/{new_id}"' in old and "已被重新抽取取代" in old
    assert 'id="redraw-new"' not in old and 'id="btn-freeze"' not in old
    assert 'id="pending-redraws"' not in second.get("/console/draws", headers=HTML).get_data(as_text=True)
    second.set_cookie("lang", "en")
    assert "attempt 2" in second.get(f"/console/draws/{new_id}", headers=HTML).get_data(as_text=True)


def test_the_requester_and_another_units_manager_cannot_approve(web_app, world):
    draw_id = world["draw"]
    head = _client(web_app, world["head"])
    assert _post(head, f"/console/draws/{draw_id}/redraw-requests", REASON).status_code == 302
    [(request_id, _, _)] = _requests(web_app, draw_id)

    own = _post(head, f"/console/redraw-requests/{request_id}/approve")
    text = own.get_data(as_text=True)
    assert own.status_code == 403 and "draw.second_approver_required" in text and "重新抽取须由另一名负责人批准" in text
    assert 'id="redraw-pending"' in text  # shown on the draw page, the request still pending
    _unchanged(web_app, world)

    stranger = _client(web_app, world["stranger"])
    assert f'data-request="{request_id}"' not in stranger.get("/console/draws", headers=HTML).get_data(as_text=True)
    other = _post(stranger, f"/console/redraw-requests/{request_id}/approve")
    text = other.get_data(as_text=True)
    assert other.status_code == 403 and "draw.redraw_other_unit" in text and "本单位的另一名负责人" in text
    assert REASON["reason"] not in text  # refused on the draws index, not on the other unit's draw page
    _unchanged(web_app, world)
    stranger.set_cookie("lang", "en")
    english = _post(stranger, f"/console/redraw-requests/{request_id}/approve").get_data(as_text=True)
    assert "approved by another manager of the unit that runs the draw" in english
    # nor may another unit ask for a re-draw of this draw
    refused = _post(stranger, f"/console/draws/{draw_id}/redraw-requests", REASON)
    assert refused.status_code == 403 and len(_requests(web_app, draw_id)) == 1

    missing = _post(stranger, "/console/redraw-requests/999999/approve")
    assert missing.status_code == 404 and "draw.redraw_not_found" in missing.get_data(as_text=True)
    _unchanged(web_app, world)


def test_a_bad_or_second_request_is_refused_and_writes_nothing(web_app, world):
    draw_id = world["draw"]
    head = _client(web_app, world["head"])
    bad = _post(head, f"/console/draws/{draw_id}/redraw-requests", {"reason_code": "whim", "reason": "x"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "request.validation_failed" in text
    assert "<code>reason_code</code>" in text and "须为所列选项之一" in text
    assert "<code>reason</code>" in text and "长度不符合要求" in text
    assert re.search(r'<details class="card" id="redraw-new" open', text) and ">x</textarea>" in text
    assert _requests(web_app, draw_id) == []

    assert _post(head, f"/console/draws/{draw_id}/redraw-requests", REASON).status_code == 302
    again = _post(head, f"/console/draws/{draw_id}/redraw-requests", {**REASON, "reason": "再次申请重新抽取"})
    assert again.status_code == 409 and "draw.redraw_pending" in again.get_data(as_text=True)
    assert len(_requests(web_app, draw_id)) == 1
    _unchanged(web_app, world)


def test_a_published_draw_cannot_be_redrawn(web_app, world):
    draw_id = world["draw"]
    with web_app.app_context():
        db.session.get(Draw, draw_id).status = DrawStatus.PUBLISHED
        db.session.commit()
        db.session.remove()
    head = _client(web_app, world["head"])
    assert 'id="redraw-new"' not in head.get(f"/console/draws/{draw_id}", headers=HTML).get_data(as_text=True)
    refused = _post(head, f"/console/draws/{draw_id}/redraw-requests", REASON)
    assert refused.status_code == 409 and "draw.invalid_state" in refused.get_data(as_text=True)
    assert _requests(web_app, draw_id) == []
