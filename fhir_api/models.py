"""The FHIR API's rows: the consumers (third-party systems a clinic lets book through the API, each an OAuth2
client of its own) and which consumer booked which appointment, with what it said about it."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from clinic.models import TenantModel, TenantQuerySet
from scheduling.models import Appointment
from sessions_setup.models import SlotType


class Scope(models.TextChoices):
    """What a consumer may do (OAuth2 scopes)."""

    SLOT_READ = "slot.read", "Search free slots (slot.read)"
    APPOINTMENT_READ = "appointment.read", "Read appointments and find patients (appointment.read)"
    APPOINTMENT_WRITE = "appointment.write", "Book, amend and cancel appointments (appointment.write)"


class OrganisationType(models.TextChoices):
    """GP Connect's booking organisation types (GPConnect-OrganisationType-1), and ours for the rest."""

    URGENT_CARE = "urgent-care", "Urgent care (e.g. NHS 111)"
    GP_PRACTICE = "gp-practice", "GP practice"
    PATIENT_APP = "patient-app", "Patient app"
    OTHER = "other", "Other"


class ConsumerQuerySet(TenantQuerySet):
    def live(self) -> ConsumerQuerySet:
        return self.filter(revoked_at__isnull=True)


class Consumer(TenantModel):
    """A third-party system authorised to call the FHIR API for one clinic: its OAuth2 client (client credentials),
    its scopes, and the slot types it may see and book."""

    name = models.CharField(max_length=80, help_text="Shown to reception on the appointments it books.")
    organisation_type = models.CharField(
        max_length=20, choices=OrganisationType.choices, default=OrganisationType.URGENT_CARE
    )
    ods_code = models.CharField(
        "ODS code", max_length=10, blank=True, help_text="The consumer organisation's ODS code, when it has one."
    )
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.PROTECT, related_name="consumer"
    )
    scopes = models.CharField(max_length=100, help_text="Space-separated OAuth2 scopes.")
    slot_types = models.ManyToManyField(SlotType, related_name="+", blank=True, verbose_name="slot types it may see")
    rate_limit = models.PositiveIntegerField(
        "Calls per minute", default=120, help_text="More calls than this in a minute are answered 429."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ConsumerQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "name"],
                name="consumer_name_unique_in_clinic",
                violation_error_message="A consumer with this name already exists in this clinic.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    def may(self, scope: str) -> bool:
        return scope in self.scope_list


class FhirBooking(TenantModel):
    """An appointment booked through the FHIR API: which consumer booked it, for which organisation and
    practitioner, and the description and comment it gave (GP Connect's Appointment.description and .comment).
    Amended only by its consumer; `version` counts those changes (with the appointment's own, the ETag)."""

    appointment = models.OneToOneField(Appointment, on_delete=models.CASCADE, related_name="fhir_booking")
    consumer = models.ForeignKey(Consumer, on_delete=models.PROTECT, related_name="bookings")
    description = models.CharField(max_length=500)
    comment = models.TextField(max_length=1000, blank=True)
    booking_organisation = models.CharField(max_length=120, blank=True)
    booking_organisation_ods = models.CharField(max_length=10, blank=True)
    requesting_practitioner = models.CharField(max_length=120, blank=True)
    cancelled_by_consumer = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"FHIR booking of {self.appointment_id}"
