"""The deadline clock: calendar kinds, holidays and make-up days, roll-over, pauses, extensions."""
import datetime as dt

import pytest

from server.core.calendar import Calendar
from server.modules.deadlines import clock
from server.modules.deadlines.clock import CalendarKind, Extension, Pause

CAL = Calendar()
D = dt.date
T = clock.types()


def test_every_type_carries_its_calendar_and_rollover_as_data():
    for dtype in T.values():
        assert isinstance(dtype.calendar, CalendarKind) and isinstance(dtype.holiday_rollover, bool)
        assert dtype.source and dtype.tag in {"V", "S", "R"}
    # 行政处罚法 第85条: the "三日/五日/七日" periods are working days; 90 and 15 days are natural days
    assert {c: T[c].calendar for c in ("service", "hearing_request", "withdrawal", "publication_penalty")} == {
        c: CalendarKind.WORKING_DAY for c in ("service", "hearing_request", "withdrawal", "publication_penalty")}
    assert T["decision"].calendar is T["payment"].calendar is CalendarKind.NATURAL_DAY
    assert T["transfer_handover"].calendar is CalendarKind.HOURS


@pytest.mark.parametrize("code, start, due", [
    # decision on Thu 24 Sep 2026: Mid-Autumn (25 Sep) and the National Day week are skipped,
    # Sat 10 Oct is a make-up working day (调休) and counts
    ("service", D(2026, 9, 24), D(2026, 10, 12)),
    # 15 natural days end on 5 Oct, a holiday: rolled over to the next working day
    ("payment", D(2026, 9, 20), D(2026, 10, 8)),
    # 90 days from 5 Jan end on Sun 5 Apr (清明): rolled over to Tue 7 Apr
    ("decision", D(2026, 1, 5), D(2026, 4, 7)),
    # 5 working days from 30 Apr: Labour Day holidays skipped, Sat 9 May is a make-up day
    ("hearing_request", D(2026, 4, 30), D(2026, 5, 11)),
    ("publication_penalty", D(2026, 6, 1), D(2026, 6, 10)),
    # 3 working days from Wed 17 Jun: Dragon Boat Festival (Fri 19 Jun) skipped
    ("withdrawal", D(2026, 6, 17), D(2026, 6, 23)),
])
def test_due_dates_on_the_official_calendar(code, start, due):
    assert clock.compute(T[code], start, CAL).due == due


def test_rollover_is_recorded_and_can_be_off():
    state = clock.compute(T["payment"], D(2026, 9, 20), CAL)
    assert state.detail == {"rolled_over_from": "2026-10-05"}
    no_rollover = clock.DeadlineType("x", "x", 15, CalendarKind.NATURAL_DAY, False, "test", "R")
    assert clock.compute(no_rollover, D(2026, 9, 20), CAL).due == D(2026, 10, 5)


def test_data_calendar_with_make_up_day():
    # a year given as data (HOLIDAYS_FILE): 1-3 Jan off, Sunday 6 Jan a make-up working day
    cal = Calendar({D(2030, 1, 1): False, D(2030, 1, 2): False, D(2030, 1, 3): False, D(2030, 1, 6): True})
    assert clock.compute(T["withdrawal"], D(2030, 1, 1), cal).due == D(2030, 1, 7)


@pytest.mark.parametrize("code, start, due, assumed", [
    ("legal_review", D(2026, 9, 28), D(2026, 10, 10), ()),           # official 2026 schedule
    ("legal_review", D(2031, 4, 28), D(2031, 5, 7), (2031,)),        # 1–2 May fixed holidays, no 调休 guessed
    # from a year given as data into one not given: 31 Dec 2030 off (data), 1 Jan 2031 off (fixed)
    ("service", D(2030, 12, 27), D(2031, 1, 9), (2031,)),
    ("decision", D(2031, 4, 1), D(2031, 6, 30), (2031,)),            # natural days: the roll-over looked at 30 Jun
    ("payment", D(2031, 9, 16), D(2031, 10, 6), (2031,)),            # 1 Oct: rolled over 1–3 Oct and the weekend
    ("transfer_handover", dt.datetime(2031, 5, 1, 9, tzinfo=dt.UTC), dt.datetime(2031, 5, 2, 9, tzinfo=dt.UTC), ()),
])
def test_a_clock_names_the_years_it_assumed(code, start, due, assumed):
    calendar = Calendar({D(2030, 12, 31): False}, provisional=True)
    state = clock.compute(T[code], start, calendar)
    assert (state.due, state.assumed_years) == (due, assumed)
    assert calendar.assumed == set()  # each computation notes on its own copy


def test_pauses_stop_natural_and_working_clocks():
    pause = Pause(D(2026, 2, 1), D(2026, 2, 11), clock.PauseReason.APPRAISAL)
    assert clock.compute(T["decision"], D(2026, 1, 5), CAL, pauses=[pause]).due == D(2026, 4, 15)
    # a working-day clock paused over 3 and 4 June (two working days) moves by two working days
    base = clock.compute(T["publication_penalty"], D(2026, 6, 1), CAL).due
    paused = clock.compute(T["publication_penalty"], D(2026, 6, 1), CAL,
                           pauses=[Pause(D(2026, 6, 2), D(2026, 6, 4))]).due
    assert (base, paused) == (D(2026, 6, 10), D(2026, 6, 12))


def test_open_pause_has_no_due_date_but_remaining_units():
    state = clock.compute(T["decision"], D(2026, 1, 5), CAL,
                          pauses=[Pause(D(2026, 1, 15), None, clock.PauseReason.CRIMINAL_TRANSFER)])
    assert state.paused and state.due is None and state.remaining == 80


def test_reasoned_extension():
    state = clock.compute(T["decision"], D(2026, 1, 5), CAL, extensions=[Extension(30, "负责人批准延期")])
    assert state.due == D(2026, 5, 6) and state.extensions == 30


def test_hours_clock_counts_literal_hours_and_pauses():
    start = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    assert clock.compute(T["transfer_handover"], start, CAL).due == dt.datetime(2026, 10, 2, 9, tzinfo=dt.UTC)
    pause = Pause(dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC), dt.datetime(2026, 10, 1, 15, tzinfo=dt.UTC))
    assert clock.compute(T["transfer_handover"], start, CAL, pauses=[pause]).due == dt.datetime(
        2026, 10, 2, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("start, months, due", [
    (D(2026, 1, 31), 1, D(2026, 2, 28)),  # no 31 February: the month's last day (民法典 第202条)
    (D(2028, 1, 31), 1, D(2028, 2, 29)),  # leap year
    (D(2026, 3, 31), 1, D(2026, 4, 30)),
    (D(2026, 11, 15), 2, D(2027, 1, 15)),  # across the year
    (D(2026, 2, 28), 1, D(2026, 3, 28)),  # the same day, not the month end
])
def test_a_period_in_months_ends_on_the_same_day_of_the_month(start, months, due):
    assert clock.add_months(start, months) == due


def test_month_clock_is_not_thirty_days_and_rolls_over_holidays():
    month = T["transfer_supplementary_investigation"]
    # from Mon 2 Feb 2026 one month ends on Mon 2 Mar: 28 days, not 30
    assert clock.compute(month, D(2026, 2, 2), CAL).due == D(2026, 3, 2)
    # from 1 Sep 2026 it ends on 1 Oct, National Day: the next working day, Thu 8 Oct (第38条)
    state = clock.compute(month, D(2026, 9, 1), CAL)
    assert state.due == D(2026, 10, 8) and state.detail == {"rolled_over_from": "2026-10-01"}
    # a working-day clock over the same holiday counts differently again
    assert clock.compute(T["transfer_reconsideration_request"], D(2026, 9, 30), CAL).due == D(2026, 10, 10)


def test_month_clock_pauses_and_extensions():
    month = T["transfer_supplementary_investigation"]
    # paused 5-13 May (9 days): the month from 20 Apr ends on 20 May, then 9 days later, Fri 29 May
    paused = clock.compute(month, D(2026, 4, 20), CAL, pauses=[Pause(D(2026, 5, 4), D(2026, 5, 13))])
    assert paused.due == D(2026, 5, 29)
    open_pause = clock.compute(month, D(2026, 4, 20), CAL, pauses=[Pause(D(2026, 5, 4), None)])
    assert open_pause.paused and open_pause.due is None and open_pause.remaining == 16  # days left on 4 May
    assert clock.compute(month, D(2026, 4, 20), CAL, extensions=[Extension(1, "test")]).due == D(2026, 6, 22)


def test_hearing_notice_at_least_seven_working_days_ahead():
    latest = clock.latest_before(T["hearing_notice"], D(2026, 10, 12), CAL)
    assert clock.compute(T["hearing_notice"], latest, CAL).due <= D(2026, 10, 12)
    assert clock.compute(T["hearing_notice"], latest + dt.timedelta(days=1), CAL).due > D(2026, 10, 12)


def test_late_payment_surcharge_is_capped_at_the_fine():
    assert clock.late_payment_surcharge(100_000, D(2026, 3, 1), D(2026, 3, 1)) == 0
    assert clock.late_payment_surcharge(100_000, D(2026, 3, 1), D(2026, 3, 11)) == 30_000
    assert clock.late_payment_surcharge(100_000, D(2026, 3, 1), D(2026, 5, 1)) == 100_000


def test_daily_fine_days_worked_example():
    # DOMAIN-RULES §2 example 3: order served 1 March, re-check 21 March → 20 days
    assert clock.daily_fine_days(D(2026, 3, 1), D(2026, 3, 21)) == 20


def test_unknown_type_is_refused():
    with pytest.raises(clock.UnknownDeadlineType):
        clock.deadline_type("nope")
