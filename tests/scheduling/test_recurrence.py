"""Series rules: rrule's expansion on the clinic's wall clock, DST, month ends, and matching occurrences to slots."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.forms import RecurrenceForm
from scheduling.recurrence import MAX_OCCURRENCES, Frequency, RecurrenceError, RecurrenceRule
from scheduling.selectors.series import series_preview
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session, book

LONDON = ZoneInfo("Europe/London")


def test_a_weekly_evening_group_stays_at_18_00_local_across_both_dst_changes():
    rule = RecurrenceRule(Frequency.WEEKLY, start=dt.date(2027, 3, 17), time=dt.time(18), weekdays=(3,), count=34)
    occurrences = rule.occurrences(LONDON)
    assert {o.astimezone(LONDON).time() for o in occurrences} == {dt.time(18)}
    assert {o.astimezone(LONDON).isoweekday() for o in occurrences} == {3}
    # 18:00 GMT is 18:00 UTC; 18:00 BST is 17:00 UTC: the UTC hour follows the clocks.
    assert occurrences[0].hour == 18 and occurrences[2].hour == 17 and occurrences[-1].hour == 18


def test_monday_wednesday_friday_for_six_sessions():
    rule = RecurrenceRule(Frequency.WEEKLY, start=dt.date(2027, 6, 7), time=dt.time(10), weekdays=(1, 3, 5), count=6)
    assert [o.date().isoformat() for o in rule.local_occurrences()] == [
        "2027-06-07",
        "2027-06-09",
        "2027-06-11",
        "2027-06-14",
        "2027-06-16",
        "2027-06-18",
    ]


def test_the_31st_follows_rrule_and_the_skipped_months_are_named():
    rule = RecurrenceRule(Frequency.MONTHLY, start=dt.date(2027, 1, 31), time=dt.time(9), month_day=31, count=4)
    assert [o.date().isoformat() for o in rule.local_occurrences()] == [
        "2027-01-31",
        "2027-03-31",
        "2027-05-31",
        "2027-07-31",
    ]
    assert rule.skipped_months() == [dt.date(2027, 2, 1), dt.date(2027, 4, 1), dt.date(2027, 6, 1)]
    assert (
        RecurrenceRule(
            Frequency.MONTHLY, start=dt.date(2027, 1, 1), time=dt.time(9), month_day=15, count=3
        ).skipped_months()
        == []
    )


def test_the_nth_and_last_weekday_of_the_month():
    second_tuesday = RecurrenceRule(
        Frequency.MONTHLY, start=dt.date(2027, 1, 1), time=dt.time(9), nth_weekday=(2, 2), count=3
    )
    assert [o.date().isoformat() for o in second_tuesday.local_occurrences()] == [
        "2027-01-12",
        "2027-02-09",
        "2027-03-09",
    ]
    last_friday = RecurrenceRule(
        Frequency.MONTHLY, start=dt.date(2027, 1, 1), time=dt.time(9), nth_weekday=(-1, 5), until=dt.date(2027, 3, 31)
    )
    assert [o.date().isoformat() for o in last_friday.local_occurrences()] == [
        "2027-01-29",
        "2027-02-26",
        "2027-03-26",
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (RecurrenceRule("yearly", start=dt.date(2027, 1, 1), time=dt.time(9), count=2), "Daily, Weekly or Monthly"),
        (RecurrenceRule(Frequency.DAILY, start=dt.date(2027, 1, 1), time=dt.time(9)), "one of the two"),
        (
            RecurrenceRule(
                Frequency.DAILY, start=dt.date(2027, 1, 1), time=dt.time(9), count=2, until=dt.date(2027, 2, 1)
            ),
            "one of the two",
        ),
        (RecurrenceRule(Frequency.DAILY, start=dt.date(2027, 1, 1), time=dt.time(9), count=0), "1 to 366"),
        (RecurrenceRule(Frequency.DAILY, start=dt.date(2027, 1, 1), time=dt.time(9), interval=0, count=2), "1 to 99"),
        (
            RecurrenceRule(Frequency.DAILY, start=dt.date(2027, 1, 1), time=dt.time(9), until=dt.date(2029, 1, 1)),
            "more than 366 sessions",
        ),
        (RecurrenceRule(Frequency.MONTHLY, start=dt.date(2027, 1, 1), time=dt.time(9), count=2), "day of the month"),
        (
            RecurrenceRule(Frequency.MONTHLY, start=dt.date(2027, 1, 1), time=dt.time(9), nth_weekday=(5, 1), count=2),
            "first to fourth",
        ),
        (
            RecurrenceRule(Frequency.WEEKLY, start=dt.date(2027, 1, 1), time=dt.time(9), weekdays=(8,), count=2),
            "1 (Monday) to 7",
        ),
    ],
)
def test_rules_that_cannot_be_expanded_say_why(rule, message):
    with pytest.raises(RecurrenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rule.occurrences(LONDON)


rules = st.builds(
    RecurrenceRule,
    frequency=st.sampled_from(Frequency.values),
    start=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2030, 12, 31)),
    time=st.sampled_from([dt.time(0, 30), dt.time(1, 30), dt.time(9), dt.time(18), dt.time(23, 45)]),
    interval=st.integers(1, 4),
    weekdays=st.sets(st.integers(1, 7), max_size=7).map(lambda s: tuple(sorted(s))),
    month_day=st.integers(1, 31),
    count=st.integers(1, 60),
)


@settings(max_examples=150, deadline=None)
@given(rule=rules, zone=st.sampled_from(["Europe/London", "America/New_York", "Australia/Sydney"]))
def test_the_occurrences_are_rrules_expansion_on_the_local_clock(rule, zone):
    local = ZoneInfo(zone)
    occurrences = rule.occurrences(local)
    by = {}
    if rule.frequency == Frequency.WEEKLY:
        by["byweekday"] = [
            (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)[d - 1]
            for d in (rule.weekdays or (rule.start.isoweekday(),))
        ]
    if rule.frequency == Frequency.MONTHLY:
        by["bymonthday"] = rule.month_day
    frequency = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY, "monthly": rrule.MONTHLY}[rule.frequency]
    expected = list(
        rrule.rrule(
            frequency,
            dtstart=dt.datetime.combine(rule.start, rule.time),
            interval=rule.interval,
            count=rule.count,
            **by,
        )
    )
    assert [o.astimezone(local).replace(tzinfo=None) for o in occurrences] == [
        e.replace(tzinfo=local).astimezone(dt.UTC).astimezone(local).replace(tzinfo=None) for e in expected
    ]
    assert len(occurrences) == rule.count
    assert all(o.tzinfo == dt.UTC for o in occurrences)


@pytest.mark.django_db
def test_the_preview_matches_each_occurrence_to_a_free_slot_in_one_query(clinic_a, django_assert_num_queries):
    practitioner = PractitionerFactory(clinic=clinic_a)
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=2)
    other = SlotTypeFactory(clinic=clinic_a, name="Other")
    monday = dt.date(2027, 6, 7)
    for offset in (0, 2, 7):  # Mon, Wed and the next Mon; not the Fridays
        allocate_session(
            clinic_a,
            practitioner=practitioner,
            day=monday + dt.timedelta(days=offset),
            start=dt.time(18),
            slot_types=[group],
        )
    allocate_session(
        clinic_a, practitioner=practitioner, day=monday + dt.timedelta(days=4), start=dt.time(18), slot_types=[other]
    )
    full = allocate_session(
        clinic_a, practitioner=practitioner, day=monday + dt.timedelta(days=9), start=dt.time(18), slot_types=[group]
    ).slots.get()
    for _ in range(2):
        book(full, PatientFactory(clinic=clinic_a))
    rule = RecurrenceRule(Frequency.WEEKLY, start=monday, time=dt.time(18), weekdays=(1, 3, 5), count=6)
    occurrences = rule.occurrences(ZoneInfo(clinic_a.time_zone))
    with django_assert_num_queries(1):
        preview = series_preview(clinic=clinic_a, practitioner=practitioner, slot_type=group, occurrences=occurrences)
    assert [(m.starts_at.date().isoformat(), m.bookable, m.full) for m in preview] == [
        ("2027-06-07", True, False),
        ("2027-06-09", True, False),
        ("2027-06-11", False, False),  # a session of another type: no match
        ("2027-06-14", True, False),
        ("2027-06-16", False, True),  # full
        ("2027-06-18", False, False),  # nothing at all
    ]
    longer = RecurrenceRule(Frequency.WEEKLY, start=monday, time=dt.time(18), weekdays=(1, 3, 5), count=MAX_OCCURRENCES)
    with django_assert_num_queries(1):
        series_preview(
            clinic=clinic_a, practitioner=practitioner, slot_type=group, occurrences=longer.occurrences(LONDON)
        )


RRULE_DAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)


@settings(max_examples=150, deadline=None)
@given(
    frequency=st.sampled_from(Frequency.values),
    start=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2030, 12, 31)),
    interval=st.integers(1, 4),
    weekdays=st.sets(st.integers(1, 7), min_size=1, max_size=7),
    by_weekday=st.booleans(),
    month_day=st.integers(1, 31),
    nth=st.sampled_from([1, 2, 3, 4, -1]),
    nth_weekday=st.integers(1, 7),
    count=st.integers(1, 60),
)
def test_the_recurrence_settings_preview_rrules_expansion(
    frequency, start, interval, weekdays, by_weekday, month_day, nth, nth_weekday, count
):
    """What Recurrence Settings submit becomes exactly the occurrences dateutil's rrule gives for them."""
    data = {
        "r-frequency": frequency,
        "r-interval": str(interval),
        "r-weekdays": [str(d) for d in weekdays],
        "r-monthly_by": "weekday" if by_weekday else "day",
        "r-month_day": str(month_day),
        "r-nth": str(nth),
        "r-nth_weekday": str(nth_weekday),
        "r-ends": "count",
        "r-count": str(count),
    }
    form = RecurrenceForm(data, start=start, time=dt.time(18), prefix="r")
    assert form.is_valid(), form.errors
    assert form.rule is not None
    by: dict = {}
    if frequency == Frequency.WEEKLY:
        by["byweekday"] = [RRULE_DAYS[d - 1] for d in weekdays]
    elif frequency == Frequency.MONTHLY and by_weekday:
        by["byweekday"] = RRULE_DAYS[nth_weekday - 1](nth)
    elif frequency == Frequency.MONTHLY:
        by["bymonthday"] = month_day
    freq = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY, "monthly": rrule.MONTHLY}[frequency]
    expected = list(
        rrule.rrule(freq, dtstart=dt.datetime.combine(start, dt.time(18)), interval=interval, count=count, **by)
    )
    zone = ZoneInfo("Europe/London")
    assert [o.astimezone(zone).replace(tzinfo=None) for o in form.rule.occurrences(zone)] == expected
