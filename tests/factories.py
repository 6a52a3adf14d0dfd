"""factory_boy factories; every tenant object gets its clinic through a SubFactory."""

from __future__ import annotations

import datetime as dt
import itertools

import factory
from django.contrib.auth import get_user_model

from clinic.models import Clinic, Department, Location, Membership, Practitioner, PractitionerRole, Role

TEST_PASSWORD = "correct-horse-battery-9"


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    name = factory.Sequence(lambda n: f"Clinic {n}")
    slug = factory.Sequence(lambda n: f"clinic-{n}")
    time_zone = "Europe/London"
    bills_insurance = True  # the tests of insurance need it; a clinic that does not bill says so


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    clinic = factory.SubFactory(ClinicFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.RECEPTION


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Surgery {n}")
    kind = Location.Kind.BRANCH
    time_zone = factory.SelfAttribute("clinic.time_zone")


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Department {n}")


class PractitionerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practitioner

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Dr Practitioner {n}")
    role = PractitionerRole.GP
    default_location = factory.SubFactory(LocationFactory, clinic=factory.SelfAttribute("..clinic"))


class SlotTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "sessions_setup.SlotType"

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Slot type {n}")
    colour = "blue"
    default_length_minutes = 10
    order = factory.Sequence(lambda n: n)


class SessionTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "sessions_setup.SessionTemplate"

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Session {n}")
    position = factory.Sequence(lambda n: n)


def template_with_slots(clinic, slot_types, *, name="Dr Smith AM", **fields):
    """A session template whose slots take `slot_types` in order (None for a blank slot)."""
    from sessions_setup.models import TemplateSlot

    template = SessionTemplateFactory(clinic=clinic, name=name, **fields)
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic,
            template=template,
            position=i,
            slot_type=st,
            length_minutes=st.default_length_minutes if st else 10,
        )
        for i, st in enumerate(slot_types)
    )
    return template


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "patients.Patient"

    clinic = factory.SubFactory(ClinicFactory)
    first_name = "Ann"
    last_name = factory.Sequence(lambda n: f"Patient{n}")
    date_of_birth = factory.LazyFunction(lambda: __import__("datetime").date(1980, 3, 12))
    internal_id = factory.Sequence(lambda n: f"P{900000 + n:06d}")


SESSION_NUMBERS = itertools.count(1)


def allocate_session(clinic, *, practitioner=None, location=None, day, start=None, slot_types=None, **template_fields):
    """One dated session (through the rota service) of a template with the given slots; returns the Session."""
    from scheduling.services.rota import AllocationRequest, allocation_create

    slot_types = slot_types if slot_types is not None else [SlotTypeFactory(clinic=clinic)] * 3
    name = template_fields.pop("name", f"Session {next(SESSION_NUMBERS)}")
    template = template_with_slots(clinic, slot_types, name=name, **template_fields)
    location = location or (practitioner.default_location if practitioner else None) or LocationFactory(clinic=clinic)
    request = AllocationRequest(template, practitioner, location, start or dt.time(9), day, day, (), 1)
    allocation = allocation_create(clinic=clinic, actor=None, request=request)
    return allocation.sessions.get()


def book(slot, patient, *, status="booked"):
    """Put a patient in a slot the way the booking service will: an Appointment and one place taken.

    (Reception booking arrives with the booking issue; the calendar tests only need the rows.)
    """
    from django.db.models import F

    from scheduling.models import Appointment, Slot

    appointment = Appointment.objects.create(
        clinic=slot.clinic,
        slot=slot,
        practitioner=slot.session.practitioner,
        patient=patient,
        slot_type=slot.slot_type,
        status=status,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
    )
    if status != "cancelled":
        Slot.objects.filter(pk=slot.pk).update(booked_count=F("booked_count") + 1)
        slot.refresh_from_db()
    return appointment


class OtherEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "scheduling.OtherEvent"

    clinic = factory.SubFactory(ClinicFactory)
    practitioner = factory.SubFactory(PractitionerFactory, clinic=factory.SelfAttribute("..clinic"))
    title = factory.Sequence(lambda n: f"Event {n}")
    all_day = False
    starts_at = dt.datetime(2027, 6, 7, 12, tzinfo=dt.UTC)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(hours=1))
    busy = True


def draft_of_new_series(clinic, *, patient=None, practitioner=None, slot_type=None, starts_at=None):
    """A weekly series with one draft occurrence (no appointment booked), as series_book would leave it."""
    import datetime as dt

    from scheduling.models import DraftOccurrence, Series

    starts_at = starts_at or dt.datetime(2027, 6, 7, 17, tzinfo=dt.UTC)
    series = Series.objects.create(
        clinic=clinic,
        patient=patient or PatientFactory(clinic=clinic),
        practitioner=practitioner or PractitionerFactory(clinic=clinic),
        slot_type=slot_type or SlotTypeFactory(clinic=clinic, capacity=6),
        frequency="weekly",
        weekdays="1",
        count=1,
        start_date=starts_at.date(),
        start_time=starts_at.time(),
        time_zone=clinic.time_zone,
        self_pay=True,
    )
    return DraftOccurrence.objects.create(clinic=clinic, series=series, starts_at=starts_at)


def allocate_rota(clinic, practitioner, slot_type, first, last, weekdays=(1, 3, 5), start=None):
    """Sessions of one `slot_type` slot for a practitioner on the weekdays between two dates (or, with no
    weekdays, on the first date only), through the rota service; returns the Allocation."""
    import datetime as dt

    from scheduling.services.rota import AllocationRequest, allocation_create

    template = template_with_slots(clinic, [slot_type], name=f"Rota {next(SESSION_NUMBERS)}")
    location = practitioner.default_location
    request = AllocationRequest(template, practitioner, location, start or dt.time(18), first, last, tuple(weekdays), 1)
    return allocation_create(clinic=clinic, actor=None, request=request)


def blocked_national_id_holder(clinic):
    """A blocked patient holding the NHS number 9434765919: the duplicate the patient form and the import must
    refuse without naming to a member who may not see blocked patients."""
    return PatientFactory(
        clinic=clinic,
        first_name="Hester",
        last_name="Hidden",
        national_id_kind="nhs",
        national_id="9434765919",
        is_blocked=True,
        blocked_reason="A member of staff",
    )
