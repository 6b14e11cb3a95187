"""The working-day calendar (行政处罚法 第85条; 衔接办法 第38条), table-driven on the real 2026 schedule.

2026 schedule as chinese-calendar 1.11 has it (checked with ``get_holiday_detail`` below):
Spring Festival off 02-15 … 02-23, make-up working Saturdays 02-14 and 02-28;
Mid-Autumn off 09-25 … 09-27; National Day off 10-01 … 10-07, make-up working days
Sunday 09-20 and Saturday 10-10.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import chinese_calendar
import pytest

from server.core import calendar as calendar_module
from server.core.calendar import (Calendar, DayKind, UnknownYear, load_extra, provisional_rule,
                                  schedule_warnings)
from tests import factories
from tests.helpers import assert_contract, staff_headers

D = dt.date
CAL = Calendar()


@pytest.mark.parametrize("day, holiday, name", [
    (D(2026, 2, 14), False, "Spring Festival"),  # Saturday, make-up working day
    (D(2026, 2, 15), True, "Spring Festival"),
    (D(2026, 2, 23), True, "Spring Festival"),
    (D(2026, 2, 24), False, None),
    (D(2026, 2, 28), False, "Spring Festival"),  # Saturday, make-up working day
    (D(2026, 9, 20), False, "National Day"),  # Sunday, make-up working day
    (D(2026, 9, 25), True, "Mid-autumn Festival"),
    (D(2026, 10, 1), True, "National Day"),
    (D(2026, 10, 7), True, "National Day"),
    (D(2026, 10, 10), False, "National Day"),  # Saturday, make-up working day
    (D(2026, 10, 11), True, None),  # an ordinary Sunday
])
def test_the_2026_schedule_we_rely_on(day, holiday, name):
    assert chinese_calendar.get_holiday_detail(day) == (holiday, name)
    assert CAL.is_working_day(day) is not holiday


@pytest.mark.parametrize("start, n, due", [
    # National Day 2026
    (D(2026, 9, 30), 1, D(2026, 10, 8)),   # the whole holiday is skipped
    (D(2026, 9, 30), 3, D(2026, 10, 10)),  # Saturday 10-10 is a make-up working day
    (D(2026, 9, 30), 4, D(2026, 10, 12)),  # Sunday 10-11 is not
    (D(2026, 9, 18), 1, D(2026, 9, 20)),   # Friday + 1 → make-up Sunday 09-20
    (D(2026, 9, 24), 2, D(2026, 9, 29)),   # Mid-Autumn 09-25…27 skipped
    (D(2026, 9, 28), 7, D(2026, 10, 13)),  # 09-29, 09-30, 10-08, 10-09, 10-10, 10-12, 10-13
    # Spring Festival 2026
    (D(2026, 2, 13), 1, D(2026, 2, 14)),   # make-up Saturday counts
    (D(2026, 2, 13), 2, D(2026, 2, 24)),   # 02-15…02-23 off
    (D(2026, 2, 23), 5, D(2026, 2, 28)),   # 24, 25, 26, 27, make-up Saturday 28
    (D(2026, 2, 27), 1, D(2026, 2, 28)),
    (D(2026, 2, 28), 1, D(2026, 3, 2)),
    # the first day is not counted, even when it is a working day
    (D(2026, 3, 2), 1, D(2026, 3, 3)),
    (D(2026, 3, 2), 0, D(2026, 3, 2)),
])
def test_working_days(start, n, due):
    assert CAL.add_working_days(start, n) == due
    assert CAL.add(start, n, DayKind.WORKING) == due
    assert CAL.working_days_between(start, due) == n


@pytest.mark.parametrize("start, n, due, due_without_rollover", [
    (D(2026, 9, 24), 7, D(2026, 10, 8), D(2026, 10, 1)),  # ends in National Day → next working day
    (D(2026, 9, 13), 7, D(2026, 9, 20), D(2026, 9, 20)),  # ends on make-up Sunday 09-20: no move
    (D(2026, 2, 8), 7, D(2026, 2, 24), D(2026, 2, 15)),    # ends in Spring Festival
    (D(2026, 2, 7), 7, D(2026, 2, 14), D(2026, 2, 14)),    # ends on the make-up Saturday: no move
    (D(2026, 3, 2), 15, D(2026, 3, 17), D(2026, 3, 17)),   # an ordinary Tuesday
    (D(2026, 3, 6), 15, D(2026, 3, 23), D(2026, 3, 21)),   # ends on a Saturday → Monday
    (D(2026, 1, 1), 0, D(2026, 1, 4), D(2026, 1, 1)),      # New Year, make-up Sunday 01-04
])
def test_natural_days_roll_over_a_holiday(start, n, due, due_without_rollover):
    assert CAL.add_natural_days(start, n) == due
    assert CAL.add(start, n, DayKind.NATURAL) == due
    assert CAL.add_natural_days(start, n, rollover=False) == due_without_rollover


def test_negative_periods_are_refused():
    with pytest.raises(ValueError):
        CAL.add_working_days(D(2026, 3, 2), -1)
    with pytest.raises(ValueError):
        CAL.add_natural_days(D(2026, 3, 2), -1)


# 2031: a year no chinese-calendar release will know for years, so these tests do not depend on
# today's date or on the installed release.
@pytest.mark.parametrize("call", [
    lambda: CAL.is_working_day(D(2031, 3, 3)),
    lambda: CAL.add_working_days(D(2031, 12, 29), 5),
    lambda: CAL.add_natural_days(D(2031, 12, 20), 5),
])
def test_an_unknown_year_is_refused_when_the_provisional_rule_is_off(call):
    with pytest.raises(UnknownYear) as caught:
        call()
    assert caught.value.code == "calendar.unknown_year"
    assert caught.value.context == {"year": 2031}


PROVISIONAL = Calendar(provisional=True)


@pytest.mark.parametrize("day, working", [
    (D(2031, 1, 1), False),   # 元旦, a Wednesday
    (D(2031, 1, 2), True),
    (D(2031, 1, 23), True),   # Chinese New Year's Eve 2031: a lunar holiday the rule cannot place
    (D(2031, 5, 1), False),   # 劳动节, Thursday and Friday
    (D(2031, 5, 2), False),
    (D(2031, 5, 5), True),    # no guessed 调休 around it
    (D(2031, 10, 1), False),  # 国庆节, Wednesday to Friday
    (D(2031, 10, 3), False),
    (D(2031, 10, 4), False),  # an ordinary Saturday
    (D(2031, 10, 6), True),
    (D(2031, 10, 12), False),  # an ordinary Sunday, never a guessed make-up working day
])
def test_the_provisional_rule_is_weekdays_less_the_fixed_date_holidays(day, working):
    calendar = PROVISIONAL.fresh()
    assert calendar.is_working_day(day) is working
    assert calendar.assumed == {2031}


def test_the_provisional_rule_is_data_with_its_source():
    data = json.loads((Path(calendar_module.__file__).with_name("provisional_calendar.json")).read_text("utf-8"))
    assert "全国年节及纪念日放假办法" in data["source"] and "春节" in data["note"]
    assert provisional_rule().fixed_holidays == {(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)}


def test_a_provisional_calendar_notes_the_years_it_assumed_and_only_those():
    calendar = PROVISIONAL.fresh()
    assert calendar.add_working_days(D(2026, 9, 30), 3) == D(2026, 10, 10)  # official: nothing assumed
    assert calendar.assumed == set()
    assert calendar.add_working_days(D(2031, 4, 28), 5) == D(2031, 5, 7)  # 05-01, 05-02 and the weekend skipped
    assert calendar.add_natural_days(D(2031, 12, 27), 5) == D(2032, 1, 2)  # 01-01 is a Thursday: the day after
    assert calendar.assumed == {2031, 2032}
    assert not calendar.knows(2031) and calendar.knows(2026)


def test_a_period_inside_the_known_years_near_the_edge_still_works():
    assert CAL.add_working_days(D(2026, 12, 28), 3) == D(2026, 12, 31)


@pytest.fixture()
def holidays_2027(tmp_path):
    path = tmp_path / "holidays-2027.json"
    path.write_text(json.dumps({"2027": {
        "holidays": ["2027-01-01", "2027-02-05", "2027-02-08", "2027-02-09", "2027-02-10", "2027-02-11"],
        "workdays": ["2027-02-06"],
    }}), encoding="utf-8")
    return path


@pytest.mark.parametrize("start, n, due", [
    (D(2026, 12, 31), 1, D(2027, 1, 4)),   # 01-01 holiday, then the weekend
    (D(2027, 2, 4), 1, D(2027, 2, 6)),     # 02-05 off, Saturday 02-06 a make-up working day
    (D(2027, 2, 6), 1, D(2027, 2, 12)),    # 02-08…02-11 off
    (D(2027, 3, 1), 5, D(2027, 3, 8)),     # an ordinary week: weekends off
])
def test_holidays_file_supplies_a_missing_year(holidays_2027, start, n, due):
    calendar = Calendar(load_extra(str(holidays_2027)))
    assert calendar.add_working_days(start, n) == due
    # 2026 still comes from chinese-calendar
    assert calendar.add_working_days(D(2026, 9, 30), 3) == D(2026, 10, 10)


def test_deadline_endpoint(app, client, db_session, monkeypatch):
    headers = staff_headers(factories.inspector())
    response = client.get("/api/v1/calendar/deadline?start=2026-09-30&days=3", headers=headers)
    assert response.status_code == 200
    assert response.json == {"start": "2026-09-30", "days": 3, "kind": "working", "due": "2026-10-10",
                             "provisional": False, "provisional_years": []}
    response = client.get("/api/v1/calendar/deadline?start=2026-09-24&days=7&kind=natural", headers=headers)
    assert response.json["due"] == "2026-10-08"
    # a year without an official schedule: counted by the provisional rule, and said so
    response = client.get("/api/v1/calendar/deadline?start=2031-04-28&days=5", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json | {"due": "2031-05-07", "provisional": True, "provisional_years": [2031]} == response.json
    monkeypatch.setitem(app.config, "CALENDAR_PROVISIONAL", False)
    body = assert_contract(client.get("/api/v1/calendar/deadline?start=2031-03-03&days=3", headers=headers),
                           422, "calendar.unknown_year")
    assert body["context"] == {"year": 2031}


def test_deadline_endpoint_uses_the_configured_holidays_file(app, client, db_session, holidays_2027, monkeypatch):
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", str(holidays_2027))
    headers = staff_headers(factories.inspector())
    response = client.get("/api/v1/calendar/deadline?start=2027-02-04&days=2", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["due"] == "2027-02-12"


@pytest.mark.parametrize("today, loaded, years", [
    (D(2030, 11, 1), ["2030"], []),              # 61 days before 2031: not yet
    (D(2030, 11, 2), ["2030"], [2031]),          # 60 days before
    (D(2030, 12, 31), ["2030", "2031"], []),     # next year loaded in time
    (D(2031, 3, 1), ["2030"], [2031]),           # the current year itself is missing
    (D(2031, 12, 1), [], [2031, 2032]),
])
def test_schedule_warnings_name_the_missing_years(tmp_path, today, loaded, years):
    path = tmp_path / "holidays.json"
    path.write_text(json.dumps({year: {"holidays": [f"{year}-01-01"]} for year in loaded}), encoding="utf-8")
    calendar = Calendar(load_extra(str(path)) if loaded else {}, provisional=True)
    warnings = schedule_warnings(calendar, today)
    assert [w["year"] for w in warnings] == years
    for warning in warnings:
        assert warning["code"] == "calendar.schedule_missing" and "ENFORCE_HOLIDAYS_FILE" in warning["message_en"]
        assert str(warning["year"]) in warning["message_zh"] and "暂按" in warning["message_zh"]


def test_healthz_warns_of_a_missing_schedule_and_stays_healthy(app, client, db_session, tmp_path, monkeypatch):
    from server.core import health

    path = tmp_path / "holidays-2030.json"
    path.write_text(json.dumps({"2030": {"holidays": ["2030-01-01"]}}), encoding="utf-8")
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", str(path))
    monkeypatch.setattr(health, "local_today", lambda: D(2030, 12, 1))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["status"] == "ok"
    assert [(w["code"], w["year"], w["provisional"]) for w in response.json["warnings"]] == [
        ("calendar.schedule_missing", 2031, True)]
    both = tmp_path / "holidays-2030-2031.json"
    both.write_text(json.dumps({"2030": {"holidays": ["2030-01-01"]}, "2031": {"holidays": ["2031-01-01"]}}),
                    encoding="utf-8")
    monkeypatch.setitem(app.config, "HOLIDAYS_FILE", str(both))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["warnings"] == []
