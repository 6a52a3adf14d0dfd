"""factory_boy factories; every tenant object gets its clinic through a SubFactory."""

from __future__ import annotations

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
