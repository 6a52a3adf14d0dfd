"""Seed two demo clinics so tenancy is visible. Safe to run again: it converges, never duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clinic.models import Clinic, Department, Location, Membership, Practitioner, PractitionerRole, Role

DEMO_PASSWORD = "demo-clinic-2026"
ALL_PERMISSIONS = {
    "perm_manage_appointments": True,
    "perm_access_blocked_patients": True,
    "perm_manage_sessions": True,
    "perm_privacy_officer": True,
}


@dataclass
class DemoClinic:
    slug: str
    name: str
    time_zone: str
    internal_ids: bool
    bills_insurance: bool
    locations: list[dict[str, Any]]
    departments: list[str]
    practitioners: list[dict[str, Any]]
    logins: list[dict[str, Any]] = field(default_factory=list)


DEMO = [
    DemoClinic(
        slug="riverside",
        name="Riverside Medical Practice",
        time_zone="Europe/London",
        internal_ids=True,
        bills_insurance=False,
        locations=[
            {"name": "Riverside Surgery", "kind": "main", "address": "1 Quay Street\nBristol", "postcode": "BS1 4DJ"},
            {"name": "Hillside Branch", "kind": "branch", "address": "22 Hill Road\nBristol", "postcode": "BS8 1TH"},
        ],
        departments=["General Practice", "Nursing", "Vaccinations"],
        practitioners=[
            {
                "name": "Dr Sarah Smith",
                "role": PractitionerRole.GP,
                "location": "Riverside Surgery",
                "login": "clinician",
            },
            {"name": "Dr Omar Patel", "role": PractitionerRole.GP, "location": "Riverside Surgery"},
            {"name": "Nurse Jane Okafor", "role": PractitionerRole.NURSE, "location": "Hillside Branch"},
            {"name": "Tom Reid (HCA)", "role": PractitionerRole.HCA, "location": "Hillside Branch"},
        ],
        logins=[
            {"key": "admin", "first": "Alice", "last": "Admin", "role": Role.ADMIN, "perms": ALL_PERMISSIONS},
            {
                "key": "reception",
                "first": "Rita",
                "last": "Reception",
                "role": Role.RECEPTION,
                "perms": {"perm_manage_appointments": True},
                "department": "General Practice",
            },
            {"key": "clinician", "first": "Sarah", "last": "Smith", "role": Role.CLINICIAN, "perms": {}},
        ],
    ),
    DemoClinic(
        slug="lakeview",
        name="Lakeview Behavioral Health",
        time_zone="America/Chicago",
        internal_ids=False,
        bills_insurance=True,
        locations=[
            {
                "name": "Lakeview Center",
                "kind": "main",
                "address": "400 W Lake St\nChicago, IL",
                "postcode": "60606",
                "time_zone": "America/Chicago",
            },
            {
                "name": "Brooklyn Office",
                "kind": "branch",
                "address": "55 Court St\nBrooklyn, NY",
                "postcode": "11201",
                "time_zone": "America/New_York",
            },
        ],
        departments=["Behavioral Health", "Group Therapy"],
        practitioners=[
            {
                "name": "Dr Maria Lopez",
                "role": PractitionerRole.THERAPIST,
                "location": "Lakeview Center",
                "login": "clinician",
            },
            {"name": "James Chen, LCSW", "role": PractitionerRole.THERAPIST, "location": "Brooklyn Office"},
            {"name": "Dr Aisha Bello", "role": PractitionerRole.GP, "location": "Lakeview Center"},
        ],
        logins=[
            {"key": "admin", "first": "Ben", "last": "Admin", "role": Role.ADMIN, "perms": ALL_PERMISSIONS},
            {
                "key": "reception",
                "first": "Rosa",
                "last": "Front-Desk",
                "role": Role.RECEPTION,
                "perms": {"perm_manage_appointments": True},
                "department": "Behavioral Health",
            },
            {"key": "clinician", "first": "Maria", "last": "Lopez", "role": Role.CLINICIAN, "perms": {}},
        ],
    ),
]

# One user in both clinics, to show the clinic switcher.
LOCUM = {"email": "locum@example.com", "first": "Lee", "last": "Locum", "role": Role.RECEPTION}


class Command(BaseCommand):
    help = "Create or refresh the demo clinics, their people and one login per role."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="Do not print the demo logins.")

    def handle(self, *args: Any, quiet: bool = False, **options: Any) -> None:
        with transaction.atomic():
            logins = [login for demo in DEMO for login in self._seed_clinic(demo)]
            clinics = [Clinic.objects.get(slug=demo.slug) for demo in DEMO]
            locum = self._user(LOCUM["email"], LOCUM["first"], LOCUM["last"])
            for clinic in clinics:
                Membership.objects.for_clinic(clinic).update_or_create(
                    clinic=clinic, user=locum, defaults={"role": LOCUM["role"]}
                )
            logins.append(("both clinics", LOCUM["email"], "Scheduler / reception"))
            # Each domain app may add its own demo data (slot types, sessions, rota...) through
            # a `demo.seed_clinic(clinic)` function; the tenant core imports none of them.
            for app in apps.get_app_configs():
                try:
                    module = import_module(f"{app.name}.demo")
                except ModuleNotFoundError as error:
                    if error.name != f"{app.name}.demo":
                        raise
                    continue
                for clinic in clinics:
                    module.seed_clinic(clinic)
        if quiet:
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready. Sign in at http://127.0.0.1:8000/ with:"))
        for clinic_name, email, role in logins:
            self.stdout.write(f"  {email:<32} {role:<24} {clinic_name}")
        self.stdout.write(f"  password for every demo login: {DEMO_PASSWORD}")
        self.stdout.write(
            "  (the demo clinics do not require two-factor sign-in: an admin turns it on at Clinic → Sign-in and "
            "security, and each member then sets up an authenticator app at their next sign-in)"
        )

    def _seed_clinic(self, demo: DemoClinic) -> list[tuple[str, str, str]]:
        clinic, _ = Clinic.objects.update_or_create(
            slug=demo.slug,
            defaults={
                "name": demo.name,
                "time_zone": demo.time_zone,
                "internal_ids_enabled": demo.internal_ids,
                "bills_insurance": demo.bills_insurance,
            },
        )
        locations = {}
        for spec in demo.locations:
            location, _ = Location.objects.for_clinic(clinic).update_or_create(
                clinic=clinic,
                name=spec["name"],
                defaults={
                    "kind": spec["kind"],
                    "address": spec["address"],
                    "postcode": spec["postcode"],
                    "time_zone": spec.get("time_zone", demo.time_zone),
                },
            )
            locations[location.name] = location
        departments = {
            name: Department.objects.for_clinic(clinic).get_or_create(clinic=clinic, name=name)[0]
            for name in demo.departments
        }

        logins = []
        users = {}
        for spec in demo.logins:
            email = f"{spec['key']}@{demo.slug}.example"
            user = self._user(email, spec["first"], spec["last"])
            Membership.objects.for_clinic(clinic).update_or_create(
                clinic=clinic,
                user=user,
                defaults={
                    "role": spec["role"],
                    "is_active": True,
                    "department": departments.get(spec.get("department", "")),
                    **spec["perms"],
                },
            )
            users[spec["key"]] = user
            logins.append((demo.name, email, Role(spec["role"]).label))

        for spec in demo.practitioners:
            Practitioner.objects.for_clinic(clinic).update_or_create(
                clinic=clinic,
                name=spec["name"],
                defaults={
                    "role": spec["role"],
                    "default_location": locations[spec["location"]],
                    "user": users.get(spec.get("login", "")),
                },
            )
        return logins

    def _user(self, email: str, first: str, last: str) -> Any:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=email, defaults={"email": email, "first_name": first, "last_name": last}
        )
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save()
        return user
