"""The rota: allocations of session templates, and the dated sessions and slots they create."""

from __future__ import annotations

from typing import Self

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from clinic.models import (
    Clinic,
    Department,
    Location,
    Membership,
    Practitioner,
    PractitionerRole,
    TenantModel,
    TenantQuerySet,
    TimeZoneField,
)
from patients.models import Coverage, Patient
from scheduling.recurrence import RecurrenceRule
from sessions_setup import palette
from sessions_setup.models import SessionTemplate, SessionType, SlotType

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Allocation(TenantModel):
    """A template allocated to a practitioner (or the clinic as a whole) at a location, on one
    date or repeating every N weeks on chosen weekdays between two dates."""

    template = models.ForeignKey(SessionTemplate, on_delete=models.PROTECT, related_name="allocations")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    start_time = models.TimeField()
    first_date = models.DateField()
    last_date = models.DateField()
    weekdays = models.CharField(max_length=13, blank=True, help_text="ISO weekday numbers 1-7, comma separated.")
    every_weeks = models.PositiveSmallIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(last_date__gte=F("first_date")), name="allocation_dates_in_order"),
            models.CheckConstraint(condition=Q(every_weeks__gte=1), name="allocation_every_weeks_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.template_id} from {self.first_date}"

    @property
    def weekday_numbers(self) -> list[int]:
        return [int(n) for n in self.weekdays.split(",") if n]

    @property
    def weekday_labels(self) -> str:
        return ", ".join(WEEKDAY_NAMES[n - 1][:3] for n in self.weekday_numbers)


class OutReason(models.TextChoices):
    """Why sessions were taken out of the book (a clinician off sick, on leave, on training...)."""

    SICKNESS = "sickness", "Sickness"
    LEAVE = "leave", "Leave"
    TRAINING = "training", "Training"
    OTHER = "other", "Other"


class SessionOut(models.TextChoices):
    """A session taken out: suspended (no new bookings, existing ones stay) or cancelled (its bookings displaced)."""

    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"


class Session(TenantModel):
    """A dated session, with what it looked like when allocated: a template edit reaches it only when applied to
    the rota (scheduling.services.changes), and it can be edited on its own."""

    # Ad-hoc sessions (Create New Slot) have neither: they hold one slot made outside the rota.
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, null=True, blank=True, related_name="sessions")
    template = models.ForeignKey(SessionTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    date = models.DateField(help_text="The local date at the location.")
    time_zone = TimeZoneField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    name = models.CharField(max_length=20)
    description = models.CharField(max_length=30, blank=True)
    colour = models.CharField(max_length=16, choices=palette.CHOICES)
    session_type = models.CharField(max_length=16, choices=SessionType.choices)
    open_session = models.BooleanField(default=False)
    travel_clinic = models.BooleanField(default=False)
    closed_session = models.BooleanField(default=False)
    # The closed session refuses new patients once its allocation's first session has started (else a warning).
    closed_enforced = models.BooleanField(default=False, db_default=False)
    # GP Connect (seed 000): the template's flag and the practitioner role a third party is told it is booking.
    gp_connect_bookable = models.BooleanField("GP Connect bookable", default=False, db_default=False)
    practitioner_role = models.CharField(
        max_length=20, choices=PractitionerRole.choices, blank=True, default="", db_default=""
    )
    # Taken out of the book (Take sessions out): its slots are not bookable meanwhile.
    out_state = models.CharField(max_length=10, choices=SessionOut.choices, blank=True, default="", db_default="")
    out_reason = models.CharField(max_length=10, choices=OutReason.choices, blank=True, default="", db_default="")

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["clinic", "date"], name="session_clinic_date_idx"),
            models.Index(fields=["practitioner", "starts_at"], name="session_practitioner_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="session_ends_after_start"),
            models.CheckConstraint(
                condition=Q(out_state="", out_reason="") | (~Q(out_state="") & ~Q(out_reason="")),
                name="session_out_with_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.date}"


class Slot(TenantModel):
    """One interval of a session. Blank slots (no slot type) are never bookable.

    booked_count is kept by the booking services: the places taken, by live appointments and by holds (held_count
    of them); the database refuses more than capacity.

    A retired slot was removed from its session by a change (or holds the places a change took away): never
    bookable, kept for the appointments it holds until they are moved, and for its history.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="slots")
    position = models.PositiveSmallIntegerField()
    slot_type = models.ForeignKey(SlotType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    bookable = models.BooleanField()
    capacity = models.PositiveSmallIntegerField()
    booked_count = models.PositiveSmallIntegerField(default=0)
    held_count = models.PositiveSmallIntegerField(default=0)
    retired = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["starts_at", "position"]
        indexes = [models.Index(fields=["clinic", "starts_at"], name="slot_clinic_start_idx")]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="slot_position_unique_in_session"),
            models.CheckConstraint(condition=Q(booked_count__lte=F("capacity")), name="slot_never_over_capacity"),
            models.CheckConstraint(condition=Q(held_count__lte=F("booked_count")), name="slot_holds_within_taken"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="slot_ends_after_start"),
            models.CheckConstraint(condition=Q(retired=False) | Q(bookable=False), name="slot_retired_not_bookable"),
        ]

    def __str__(self) -> str:
        return f"slot {self.position} of {self.session_id}"

    @property
    def free(self) -> int:
        return self.capacity - self.booked_count if self.bookable else 0


class Series(TenantModel):
    """A recurring booking of one patient with one practitioner and appointment type.

    The rule is kept on the wall clock of `time_zone` (the session's location); each occurrence is
    an appointment of the series, or a draft when no session had a place at that time.
    """

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="series")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="series")
    slot_type = models.ForeignKey(SlotType, on_delete=models.PROTECT, related_name="+", verbose_name="appointment type")
    # The rule (see scheduling.recurrence.RecurrenceRule).
    frequency = models.CharField(max_length=10)
    interval = models.PositiveSmallIntegerField(default=1)
    weekdays = models.CharField(max_length=13, blank=True, help_text="ISO weekday numbers 1-7, comma separated.")
    month_day = models.PositiveSmallIntegerField(null=True, blank=True)
    nth = models.SmallIntegerField(null=True, blank=True, help_text="1-4, or -1 for the last.")
    nth_weekday = models.PositiveSmallIntegerField(null=True, blank=True)
    count = models.PositiveSmallIntegerField(null=True, blank=True)
    until = models.DateField(null=True, blank=True)
    start_date = models.DateField()
    start_time = models.TimeField()
    time_zone = TimeZoneField()
    # What every occurrence is booked with.
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resources = models.ManyToManyField(Practitioner, blank=True, related_name="+")
    coverage = models.ForeignKey(Coverage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    secondary_coverage = models.ForeignKey(Coverage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    self_pay = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"series {self.public_id}"

    @property
    def rule(self) -> RecurrenceRule:
        return RecurrenceRule(
            frequency=self.frequency,
            start=self.start_date,
            time=self.start_time,
            interval=self.interval,
            weekdays=tuple(int(n) for n in self.weekdays.split(",") if n),
            month_day=self.month_day,
            nth_weekday=(self.nth, self.nth_weekday) if self.nth is not None and self.nth_weekday else None,
            count=self.count,
            until=self.until,
        )


class DraftOccurrenceQuerySet(TenantQuerySet):
    def open(self) -> Self:
        """Drafts still waiting for a slot: neither placed nor cancelled."""
        return self.filter(appointment__isnull=True, cancelled_at__isnull=True)


class DraftOccurrence(TenantModel):
    """An occurrence of a series that had no session with a place: kept to be placed later.

    Placing it books an appointment (kept in `appointment`); cancelling it sets `cancelled_at`.
    """

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="drafts")
    starts_at = models.DateTimeField(help_text="When the rule wanted it.")
    appointment = models.OneToOneField(
        "Appointment", on_delete=models.SET_NULL, null=True, blank=True, related_name="from_draft"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DraftOccurrenceQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["series", "starts_at"], name="draft_series_start_idx")]

    def __str__(self) -> str:
        return f"draft {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.appointment_id is None and self.cancelled_at is None


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    ARRIVED = "arrived", "Arrived"
    IN_CONSULTATION = "in_consultation", "In consultation"
    COMPLETED = "completed", "Completed"
    DID_NOT_ATTEND = "did_not_attend", "Did not attend"
    CANCELLED = "cancelled", "Cancelled"


class CancelCategory(models.TextChoices):
    """Why an appointment was cancelled, in words the patient may read (the free-text reason stays inside)."""

    PATIENT = "patient", "At the patient's request"
    CLINICIAN = "clinician", "The clinician is unavailable"
    CLINIC = "clinic", "The clinic is closed"
    OTHER = "other", "Other"
    RESCHEDULED = "rescheduled", "Moved to another time"

    @classmethod
    def chosen_by_reception(cls) -> list[tuple[str, str]]:
        """The categories reception chooses from (a reschedule sets its own)."""
        return [(value, label) for value, label in cls.choices if value != cls.RESCHEDULED]

    @classmethod
    def session_cancelled(cls) -> frozenset[str]:
        """Categories where the clinic called the session off: the patient is asked to rebook."""
        return frozenset({cls.CLINICIAN, cls.CLINIC})


class AppointmentSource(models.TextChoices):
    """Where an appointment came from (shown as a badge on the staff side when it was not reception)."""

    RECEPTION = "reception", "Reception"
    ONLINE = "online", "Booked online"
    FHIR = "fhir", "Booked through the FHIR API"
    WAITLIST = "waitlist", "From the waitlist"


class AppointmentQuerySet(TenantQuerySet):
    def live(self) -> Self:
        """Appointments that hold their place: every status but cancelled."""
        return self.exclude(status=AppointmentStatus.CANCELLED)


class Appointment(TenantModel):
    """A patient's booking of a slot. Always timed: a client appointment is never all-day."""

    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="appointments"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    slot_type = models.ForeignKey(
        SlotType, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="appointment type"
    )
    status = models.CharField(max_length=20, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resources = models.ManyToManyField(
        Practitioner, blank=True, related_name="+", help_text="Further practitioners taking part."
    )
    coverage = models.ForeignKey(
        Coverage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="primary plan"
    )
    secondary_coverage = models.ForeignKey(
        Coverage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="secondary plan"
    )
    self_pay = models.BooleanField("self pay", default=False)
    notes_completed = models.BooleanField(default=False)
    # A single-place slot's appointment: one practitioner cannot hold two that overlap (a PostgreSQL
    # exclusion constraint, added in migration 0004, backs the booking service's lock).
    exclusive = models.BooleanField(default=False)
    rescheduled_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rescheduled_to"
    )
    series = models.ForeignKey(Series, on_delete=models.PROTECT, null=True, blank=True, related_name="appointments")
    source = models.CharField(max_length=10, choices=AppointmentSource.choices, default=AppointmentSource.RECEPTION)
    cancel_reason = models.CharField(max_length=200, blank=True)
    cancel_category = models.CharField(max_length=12, choices=CancelCategory.choices, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AppointmentQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["practitioner", "starts_at"], name="appointment_practitioner_idx"),
            models.Index(fields=["clinic", "starts_at"], name="appointment_clinic_start_idx"),
            # Reminders: booked appointments starting within a moment of now + an offset, across clinics.
            models.Index(fields=["starts_at"], condition=Q(status="booked"), name="appointment_booked_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="appointment_ends_after_start"),
            models.UniqueConstraint(
                fields=["slot", "patient"],
                condition=~Q(status="cancelled"),
                name="appointment_one_live_per_patient_and_slot",
                violation_error_message="This patient is already booked in this slot.",
            ),
        ]

    def __str__(self) -> str:
        return f"appointment {self.public_id}"


class HoldKind(models.TextChoices):
    ONLINE_REQUEST = "online_request", "Online request"
    WAITLIST_OFFER = "waitlist_offer", "Waitlist offer"


class HoldOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class HoldQuerySet(TenantQuerySet):
    def live(self) -> Self:
        return self.filter(ended_at__isnull=True)


class Hold(TenantModel):
    """A place taken against a slot's capacity for a while (an online request, a waitlist offer), until it is
    accepted (it becomes an appointment), declined, withdrawn or expires. The one hold mechanism: every caller
    takes and ends holds through scheduling's services, which keep the slot's booked_count and held_count."""

    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="holds")
    kind = models.CharField(max_length=20, choices=HoldKind.choices)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=HoldOutcome.choices, blank=True)
    appointment = models.OneToOneField(
        "Appointment", on_delete=models.SET_NULL, null=True, blank=True, related_name="hold"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HoldQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(ended_at__isnull=True), name="hold_live_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True, outcome="") | Q(ended_at__isnull=False) & ~Q(outcome=""),
                name="hold_outcome_when_ended",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.public_id}"


class ChangeKind(models.TextChoices):
    SESSION_EDIT = "session_edit", "Session edited"
    TEMPLATE_APPLY = "template_apply", "Template change applied to the rota"
    SUSPEND = "suspend", "Sessions suspended"
    CANCEL = "cancel", "Sessions cancelled"
    RESUME = "resume", "Sessions resumed"


class RotaChange(TenantModel):
    """One change to sessions already on the rota, as a whole: who made it, what it touched, and the appointments it
    displaced (its Displacement rows, the worklist)."""

    kind = models.CharField(max_length=20, choices=ChangeKind.choices)
    summary = models.CharField(max_length=200)
    reason = models.CharField(max_length=10, choices=OutReason.choices, blank=True)
    note = models.CharField(max_length=200, blank=True)
    sessions = models.PositiveIntegerField(default=0)
    displaced_count = models.PositiveIntegerField(default=0)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.summary


class DisplacedWhy(models.TextChoices):
    """Why an appointment's place no longer exists."""

    REMOVED = "removed", "Slot removed"
    RETYPED = "retyped", "Slot type changed"
    CLEARED = "cleared", "Slot made blank"
    SHORTENED = "shortened", "Slot shortened"
    CAPACITY = "capacity", "Fewer places"
    CANCELLED = "cancelled", "Session cancelled"


class DisplacedState(models.TextChoices):
    OPEN = "open", "To rebook"
    TO_CONTACT = "to_contact", "To contact by phone"
    REBOOKED = "rebooked", "Rebooked"
    CANCELLED = "cancelled", "Cancelled, patient told"
    GONE = "gone", "Moved or cancelled elsewhere"


class DisplacementQuerySet(TenantQuerySet):
    def waiting(self) -> Self:
        """Still on the worklist: to rebook, or to contact."""
        return self.filter(state__in=(DisplacedState.OPEN, DisplacedState.TO_CONTACT))


class Displacement(TenantModel):
    """An appointment whose place a change took away: a row of the displaced patients' worklist until it is rebooked,
    cancelled (the patient told), or dealt with elsewhere; who did what is kept."""

    change = models.ForeignKey(RotaChange, on_delete=models.CASCADE, related_name="displaced")
    appointment = models.ForeignKey("Appointment", on_delete=models.PROTECT, related_name="displacements")
    why = models.CharField(max_length=10, choices=DisplacedWhy.choices)
    state = models.CharField(max_length=12, choices=DisplacedState.choices, default=DisplacedState.OPEN)
    new_appointment = models.ForeignKey(
        "Appointment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DisplacementQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["clinic", "state"], name="displacement_clinic_state_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment"],
                condition=Q(state__in=("open", "to_contact")),
                name="displacement_one_waiting_per_appointment",
            ),
        ]

    def __str__(self) -> str:
        return f"displaced {self.appointment_id}"


class WaitlistKind(models.TextChoices):
    SLOT = "slot", "A slot"
    SERIES = "series", "A group series"
    PREFERENCE = "preference", "A practitioner or type, on preferred days and times"


class SeriesScope(models.TextChoices):
    ANY = "any", "Any occurrence"
    FROM_DATE = "from_date", "Occurrences from a date"


class WaitlistState(models.TextChoices):
    WAITING = "waiting", "Waiting"
    OFFERED = "offered", "Offered a place"
    BOOKED = "booked", "Booked"
    REMOVED = "removed", "Taken off the list"


class WaitlistEntryQuerySet(TenantQuerySet):
    def open(self) -> Self:
        """Still on the list: waiting, or with an offer out."""
        return self.filter(state__in=(WaitlistState.WAITING, WaitlistState.OFFERED))


class WaitlistEntry(TenantModel):
    """A patient waiting for a place: in one slot, in a group series (any occurrence, or from a date), or with a
    practitioner and/or slot type on preferred weekdays and times. Entries are offered freed places in `position`
    order (then the order they were added)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="waitlist_entries")
    kind = models.CharField(max_length=12, choices=WaitlistKind.choices)
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, null=True, blank=True, related_name="waitlist_entries")
    allocation = models.ForeignKey(
        Allocation, on_delete=models.CASCADE, null=True, blank=True, related_name="waitlist_entries"
    )
    scope = models.CharField(max_length=10, choices=SeriesScope.choices, blank=True)
    from_date = models.DateField(null=True, blank=True)
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, null=True, blank=True, related_name="waitlist_entries"
    )
    slot_type = models.ForeignKey(SlotType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    weekdays = models.CharField(max_length=13, blank=True, help_text="ISO weekday numbers 1-7, comma separated.")
    time_from = models.TimeField(null=True, blank=True)
    time_until = models.TimeField(null=True, blank=True)
    position = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=WaitlistState.choices, default=WaitlistState.WAITING)
    note = models.CharField(max_length=200, blank=True)
    appointment = models.ForeignKey("Appointment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = WaitlistEntryQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        verbose_name_plural = "waitlist entries"
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["clinic", "state", "position"], name="waitlist_clinic_state_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="slot", slot__isnull=False, allocation__isnull=True)
                    | Q(kind="series", slot__isnull=True, allocation__isnull=False, slot_type__isnull=False)
                    & (Q(scope="any", from_date__isnull=True) | Q(scope="from_date", from_date__isnull=False))
                    | Q(kind="preference", slot__isnull=True, allocation__isnull=True)
                ),
                name="waitlist_entry_shape",
            ),
            models.CheckConstraint(
                condition=Q(time_from__isnull=True) | Q(time_until__isnull=True) | Q(time_until__gt=F("time_from")),
                name="waitlist_entry_times_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"waitlist {self.public_id}"

    @property
    def weekday_numbers(self) -> list[int]:
        return [int(n) for n in self.weekdays.split(",") if n]


class WaitlistOffer(TenantModel):
    """A freed place offered to a waitlist entry: a hold on the slot (counted against capacity) until the patient
    takes it (a booking with the source "waitlist"), lets it go, or it runs out. Offered by hand when
    `offered_by` is set, else automatically."""

    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="+")
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="offer")
    offered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "slot"], name="waitlist_offer_once_per_entry_and_slot"),
        ]

    def __str__(self) -> str:
        return f"offer {self.public_id}"


class FreedPlace(TenantModel):
    """A place that came free in a slot (a cancellation, a move, a hold ended, a change that raised capacity):
    follow-up work written in the transaction that freed it, for the offer run (nudged after commit, or beat's
    sweep). `due_at` waits out quiet hours."""

    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["due_at"], name="freedplace_due_idx")]

    def __str__(self) -> str:
        return f"freed {self.slot_id}"


class PendingNews(models.Model):
    """News of a booking that its observers (calendar sync, notifications) have not heard yet: follow-up work
    written in the booking's own transaction by a booking made in one database call (scheduling.services.quick),
    told by a worker after commit (the nudge, or beat's sweep). `appointments` and `practitioners` are primary keys;
    `news` is a PatientNews."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    news = models.CharField(max_length=10)
    appointments = models.JSONField(default=list)
    practitioners = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "pending news"

    def __str__(self) -> str:
        return f"{self.news} {self.appointments}"


class WaitlistSettings(TenantModel):
    """A clinic's rules for offering freed places (one row per clinic; the defaults when it has none)."""

    offers_on = models.BooleanField(
        "offer freed places automatically",
        default=True,
        help_text="Off: freed places wait for reception to offer or book them from the list.",
    )
    hold_minutes = models.PositiveSmallIntegerField(
        "an offer holds its place for (minutes)",
        default=120,
        validators=[MinValueValidator(5), MaxValueValidator(10080)],
    )
    shortest_hold_minutes = models.PositiveSmallIntegerField(
        "shortest hold near the start (minutes)",
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(1440)],
        help_text="Near the start an offer is shortened to end the lead time before it, but never below this: "
        "a place starting sooner than this plus the lead time is not offered.",
    )
    lead_minutes = models.PositiveSmallIntegerField(
        "lead time before the start (minutes)",
        default=60,
        validators=[MaxValueValidator(10080)],
        help_text="An offer ends at least this long before the appointment, so the patient can get there.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "waitlist settings"
        constraints = [models.UniqueConstraint(fields=["clinic"], name="waitlistsettings_one_per_clinic")]

    def __str__(self) -> str:
        return f"waitlist settings of {self.clinic_id}"


class OtherEvent(TenantModel):
    """A non-client event on a practitioner's calendar: timed (UTC instants) or all-day (dates).

    Busy events take time away from online-booking availability; free ones take nothing.
    """

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="other_events")
    title = models.CharField(max_length=120)
    all_day = models.BooleanField("all day", default=False)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    first_date = models.DateField(null=True, blank=True)
    last_date = models.DateField(null=True, blank=True)
    busy = models.BooleanField("show as busy", default=True)
    notes = models.TextField(blank=True)
    # An event pulled from Google (two-way sync): the calendar it came from, and Google's ids. Such an event
    # stays tied to that calendar, is edited only in Google, and is never pushed to any calendar.
    google_calendar_id = models.CharField(max_length=1024, blank=True)
    google_event_id = models.CharField(max_length=1024, blank=True)
    google_recurring_id = models.CharField(max_length=1024, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["first_date", "starts_at", "id"]
        indexes = [
            models.Index(fields=["practitioner", "starts_at"], name="otherevent_timed_idx"),
            models.Index(fields=["practitioner", "first_date"], name="otherevent_allday_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["practitioner", "google_calendar_id", "google_event_id"],
                condition=~Q(google_event_id=""),
                name="otherevent_one_per_google_event",
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        all_day=True,
                        first_date__isnull=False,
                        last_date__gte=F("first_date"),
                        starts_at__isnull=True,
                        ends_at__isnull=True,
                    )
                    | Q(
                        all_day=False,
                        ends_at__gt=F("starts_at"),
                        first_date__isnull=True,
                        last_date__isnull=True,
                    )
                ),
                name="otherevent_timed_or_all_day",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def from_google(self) -> bool:
        """Pulled from a Google calendar: shown here, edited there."""
        return bool(self.google_event_id)


class OfficeHours(TenantModel):
    """When a practitioner is in (or, with no practitioner, the practice-wide default).

    Internal only: it greys the calendar and is separate from online-booking availability.
    `weekly` maps ISO weekday numbers to lists of ["HH:MM", "HH:MM"] ranges on the wall clock of `time_zone`.
    """

    practitioner = models.OneToOneField(
        Practitioner, on_delete=models.CASCADE, null=True, blank=True, related_name="office_hours"
    )
    time_zone = TimeZoneField()
    weekly = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "office hours"
        constraints = [
            models.UniqueConstraint(
                fields=["clinic"], condition=Q(practitioner__isnull=True), name="officehours_one_default_per_clinic"
            ),
        ]

    def __str__(self) -> str:
        return f"office hours of {self.practitioner_id or 'the practice'}"


class Availability(TenantModel):
    """A practitioner's weekly online-booking windows, on the wall clock of `time_zone`."""

    practitioner = models.OneToOneField(Practitioner, on_delete=models.CASCADE, related_name="availability")
    time_zone = TimeZoneField()
    weekly = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "availability"

    def __str__(self) -> str:
        return f"availability of {self.practitioner_id}"


class AvailabilityOverride(TenantModel):
    """A date whose online-booking hours replace the weekly windows; no hours means unavailable."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="availability_overrides")
    date = models.DateField()
    hours = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["practitioner", "date"], name="availabilityoverride_one_per_date"),
        ]

    def __str__(self) -> str:
        return f"override {self.date}"


class CalendarPreference(TenantModel):
    """A member's calendar filters, remembered between visits (practitioner and location public ids)."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="calendar_preference")
    practitioners = models.JSONField(default=list, blank=True)
    locations = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"calendar preference of {self.membership_id}"
