"""Deadlines that reach a year without an official holiday schedule (DOMAIN-RULES D-1): counted by
the provisional rule and marked so, recounted once the schedule is loaded, refused with the switch
off. The year is 2031 so that neither today's date nor the installed chinese-calendar matters."""
from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.calendar import UnknownYear
from server.modules.cases import operations as cases
from server.modules.cases.workflow import GuardFailed
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines import tasks as deadline_tasks
from server.modules.deadlines.cli import deadlines_cli
from server.modules.deadlines.models import Deadline
from server.modules.reviews import operations as reviews
from server.web import console_supervise
from tests import factories
from tests.cases.conftest import D, World, investigated
from tests.helpers import audit_entries, staff_headers
from tests.web.conftest import HTML, sign_in

# The official 2031 schedule as a bureau would load it (an invented one: the real one is years away).
# Labour Day 05-01 … 05-05 off, Sunday 04-27 and Saturday 05-10 make-up working days.
SCHEDULE_2031 = {"2031": {"holidays": ["2031-01-01", "2031-05-01", "2031-05-02", "2031-05-05", "2031-06-30"],
                          "workdays": ["2031-04-27", "2031-05-10"]}}


@pytest.fixture()
def world_2031(world: World) -> World:
    """The case world with certificates valid through 2031."""
    for user in (world.head, world.a, world.b):
        factories.CertificateFactory(user=user, valid_from=D(2029, 1, 1), valid_until=D(2032, 12, 31))
        factories.db.session.refresh(user)
    return world


@pytest.fixture()
def holidays_file(tmp_path: Any) -> str:
    path = tmp_path / "holidays-2031.json"
    path.write_text(json.dumps(SCHEDULE_2031), encoding="utf-8")
    return str(path)


def clock(session: Any, case: Any, code: str) -> Deadline:
    return session.scalars(sa.select(Deadline).where(Deadline.case_id == case.id, Deadline.type_code == code)
                           .order_by(Deadline.id.desc())).first()


def reviewed_case(session: Any, w: World) -> tuple[Any, Any]:
    """A case filed on 1 Apr 2031 and submitted for legal review on Monday 28 Apr 2031."""
    case = investigated(session, w, filed_on=D(2031, 4, 1))
    cases.serve_notice(session, case, by=w.a, on=D(2031, 4, 22), fine=100_000)
    cases.waive_statement(session, case, by=w.a, on=D(2031, 4, 23), note="放弃", hearing_too=True)
    return case, reviews.submit(session, case, by=w.a, on=D(2031, 4, 28))


def recompute(app: Any) -> dict[str, Any]:
    task = app.extensions["celery"].tasks[deadline_tasks.recompute_provisional.name]  # this app's Celery
    return task.delay().get()


def test_a_review_clock_into_an_unscheduled_year_is_provisional_then_recounted(app, client, db_session, world_2031,
                                                                              holidays_file, monkeypatch):
    w = world_2031
    case, review = reviewed_case(db_session, w)
    older = investigated(db_session, w)  # filed 3 Aug 2026: its clocks are on the official calendar
    db_session.commit()

    # 5 working days from Mon 28 Apr: 29, 30 Apr, (1–2 May 劳动节, weekend), 5, 6, 7 May
    row = clock(db_session, case, "legal_review")
    assert (row.due_on, row.provisional, row.provisional_years) == (D(2031, 5, 7), True, [2031])
    assert review.due_on == D(2031, 5, 7)
    decision = clock(db_session, case, "decision")  # 90 days from 1 Apr: Mon 30 Jun, a guessed working day
    assert (decision.due_on, decision.provisional) == (D(2031, 6, 30), True)
    official = clock(db_session, older, "decision")
    assert (official.due_on, official.provisional, official.provisional_years) == (D(2026, 11, 2), False, None)

    # shown as provisional: API, legal-review queue, case page, and counted by the overdue scan
    listed = client.get(f"/api/v1/cases/{case.id}/deadlines", headers=staff_headers(w.a)).json
    review_item = next(d for d in listed if d["type"] == "legal_review")
    assert review_item["provisional"] is True and review_item["provisional_years"] == [2031]
    assert next(d for d in listed if d["type"] == "statement")["provisional"] is True
    queued = next(r for r in reviews.queue(db_session, D(2031, 4, 29)) if r["review_id"] == review.id)
    assert queued["provisional"] is True and queued["provisional_years"] == [2031]
    summary = app.extensions["celery"].tasks[deadline_tasks.scan.name].delay().get()
    assert summary["provisional"] == 2  # the review and decision clocks (the statement period was waived)
    sign_in(client, w.head.username, factories.PASSWORD)
    page = client.get(f"/console/cases/{case.id}", headers=HTML).get_data(as_text=True)
    assert page.count('class="tag warn provisional"') >= 3 and "2031" in page
    monkeypatch.setattr(console_supervise, "local_today", lambda: D(2031, 5, 1))  # the board shows what is near
    board = client.get("/console/deadlines?days=14", headers=HTML).get_data(as_text=True)
    assert "2031-05-07" in board and board.count('class="tag warn provisional"') == 1

    # nothing to recount while 2031 is still unknown
    official_version = official.version  # (the scan has stamped it overdue: it is due in 2026)
    assert recompute(app)["recomputed"] == 0

    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", holidays_file)
    result = recompute(app)
    db_session.expire_all()
    row = clock(db_session, case, "legal_review")
    # official: 29, 30 Apr, (1–5 May off), 6, 7, 8 May
    assert (row.due_on, row.provisional, row.provisional_years) == (D(2031, 5, 8), False, None)
    assert db_session.get(type(review), review.id).due_on == D(2031, 5, 8)  # the review follows its clock
    decision = clock(db_session, case, "decision")  # 30 Jun is a holiday in the loaded schedule: rolled over
    assert (decision.due_on, decision.provisional) == (D(2031, 7, 1), False)
    assert {c["deadline"] for c in result["changes"]} >= {row.id, decision.id}

    entries = audit_entries("task:deadline:recomputed", deadline=row.id)
    assert len(entries) == 1
    payload = entries[0]["payload"]
    assert payload["before"] == {"due_on": "2031-05-07", "due_at": None, "provisional": True,
                                 "provisional_years": [2031]}
    assert payload["after"] == {"due_on": "2031-05-08", "due_at": None, "provisional": False,
                                "provisional_years": []}
    assert payload["reason"].endswith("official holiday schedule loaded")
    assert entries[0]["actor"] == {"kind": "system", "id": "deadlines.recompute_provisional"}

    # the clock on the official calendar was never touched, and a second run changes nothing
    official = clock(db_session, older, "decision")
    assert official.version == official_version and official.due_on == D(2026, 11, 2)
    assert audit_entries("task:deadline:recomputed", deadline=official.id) == []
    assert recompute(app)["recomputed"] == 0
    assert "deadlines-daily-recompute" in app.config["BEAT_SCHEDULE"]


def test_a_clock_across_two_missing_years_stays_provisional_for_the_one_still_missing(app, db_session, world_2031,
                                                                                   holidays_file, monkeypatch):
    w = world_2031
    case = investigated(db_session, w, filed_on=D(2031, 4, 1))
    row = deadlines.start(db_session, case_id=case.id, type_code="legal_review", on=D(2031, 12, 29),
                                unit_id=case.unit_id)
    # 30, 31 Dec, (1 Jan 元旦), 2, 5, 6 Jan 2032
    assert (row.due_on, row.provisional_years) == (D(2032, 1, 6), [2031, 2032])
    db_session.commit()
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", holidays_file)
    result = app.test_cli_runner().invoke(deadlines_cli, ["recompute"])  # `enforce deadlines recompute`
    assert result.exit_code == 0, result.output
    assert f"#{row.id} {case.id} legal_review: 2032-01-06 -> 2032-01-06  (still provisional: [2032])" in result.output
    db_session.expire_all()
    row = db_session.get(Deadline, row.id)
    assert (row.due_on, row.provisional, row.provisional_years) == (D(2032, 1, 6), True, [2032])
    assert audit_entries("task:deadline:recomputed", deadline=row.id)[0]["actor"]["id"] == "cli:deadlines.recompute"


def test_with_the_switch_off_an_unscheduled_year_is_refused(app, db_session, world_2031, monkeypatch):
    monkeypatch.setitem(app.config, "CALENDAR_PROVISIONAL", False)
    with pytest.raises(UnknownYear) as caught:
        investigated(db_session, world_2031, filed_on=D(2031, 4, 1))
    assert caught.value.code == "calendar.unknown_year" and caught.value.context == {"year": 2031}


def test_a_hearing_date_is_never_checked_by_the_provisional_rule(app, db_session, world_2031, holidays_file,
                                                                monkeypatch):
    """The hearing date is served on the party: a guess is not acceptable, even with the switch on."""
    w = world_2031
    case = investigated(db_session, w, filed_on=D(2031, 4, 1))
    cases.serve_notice(db_session, case, by=w.a, on=D(2031, 4, 8))
    cases.request_hearing(db_session, case, by=w.a, on=D(2031, 4, 9))
    with pytest.raises(UnknownYear):
        cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2031, 4, 10), hearing_date=D(2031, 4, 28),
                               presider_id=w.reviewer.id)
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", holidays_file)
    with pytest.raises(GuardFailed) as caught:  # now counted on the official schedule: too short a notice
        cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2031, 4, 10), hearing_date=D(2031, 4, 15),
                               presider_id=w.reviewer.id)
    assert caught.value.context["guard"] == "hearing_notice_7_days"
    cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2031, 4, 10), hearing_date=D(2031, 4, 28),
                           presider_id=w.reviewer.id)
    assert case.hearing_date == D(2031, 4, 28)


def test_the_supervisor_home_says_which_schedule_is_missing(app, client, db_session, tmp_path, monkeypatch):
    from server.web import console_home

    head = factories.UserFactory(role=Role.SUPERVISOR, unit=factories.UnitFactory())
    path = tmp_path / "holidays-2030.json"
    path.write_text(json.dumps({"2030": {"holidays": ["2030-01-01"]}}), encoding="utf-8")
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", str(path))
    monkeypatch.setattr(console_home, "local_today", lambda: D(2030, 12, 1))
    sign_in(client, head.username, factories.PASSWORD)
    page = client.get("/console/supervisor", headers=HTML)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="calendar-warning-2031"' in html and "ENFORCE_HOLIDAYS_FILE" in html
    assert "enforce deadlines recompute" in html
    monkeypatch.setattr(console_home, "local_today", lambda: D(2030, 6, 1))
    assert "calendar-warning" not in client.get("/console/supervisor", headers=HTML).get_data(as_text=True)
