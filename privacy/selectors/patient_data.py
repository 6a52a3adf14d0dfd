"""Reads of a patient's data: every row that holds it (found by walking the app registry, so a new model is never
forgotten), the export's contents, and whether the record may be erased yet."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from clinic.models import AuditEvent, Clinic, Membership
from online.models import BookingMode, OnlineBooking, OnlineStatus
from patients.models import Patient
from scheduling.models import Appointment, WaitlistEntry

EXPORT_FORMAT = "clinic-scheduler/patient-export/1"

# Models that point at a patient (directly or through a row that does) but carry nothing of the patient's own:
# left out of the export on purpose, each with its reason. Everything else the walk finds is exported.
NOT_EXPORTED: dict[str, str] = {}


class PatientTable(NamedTuple):
    """A model whose rows can hold a patient's data, and its keys to the patient or to such rows."""

    model: type[models.Model]
    fields: tuple[models.Field, ...]

    @property
    def label(self) -> str:
        return self.model._meta.label_lower


def _keys(model: type[models.Model]) -> Iterator[models.Field]:
    for field in model._meta.get_fields():
        if (field.many_to_one or field.one_to_one) and field.concrete and field.related_model is not None:
            yield field  # type: ignore[misc]


def patient_tables() -> list[PatientTable]:
    """Every model (but Patient itself) with a foreign key or one-to-one to Patient, or to a model that has one,
    and so on: read from the app registry, so a model added tomorrow is in the export (and the erasure's check)."""
    reached: set[type[models.Model]] = {Patient}
    while True:
        more = {
            model
            for model in apps.get_models()
            if model not in reached and any(field.related_model in reached for field in _keys(model))
        }
        if not more:
            break
        reached |= more
    return sorted(
        (
            PatientTable(model, tuple(f for f in _keys(model) if f.related_model in reached))
            for model in reached
            if model is not Patient
        ),
        key=lambda table: table.label,
    )


def patient_rows(patient: Patient) -> dict[str, QuerySet[Any]]:
    """The rows of each such model that hold this patient's data (pointing at the patient, or at a row that does),
    by model label: ids carried from table to table until nothing more is found (one query per model and round)."""
    tables = patient_tables()
    ids: dict[type[models.Model], set[Any]] = {Patient: {patient.pk}}
    changed = True
    while changed:
        changed = False
        for table in tables:
            condition = Q()
            for field in table.fields:
                targets = ids.get(field.related_model)  # type: ignore[arg-type]
                if targets:
                    condition |= Q(**{f"{field.attname}__in": sorted(targets)})
            if not condition:
                continue
            found = set(_scoped(table.model, patient.clinic_id).filter(condition).values_list("pk", flat=True))
            if not found <= ids.get(table.model, set()):
                ids.setdefault(table.model, set()).update(found)
                changed = True
    return {
        table.label: _scoped(table.model, patient.clinic_id)
        .filter(pk__in=sorted(ids.get(table.model, ())))
        .order_by("pk")
        for table in tables
    }


def _scoped(model: type[models.Model], clinic_id: int) -> QuerySet[Any]:
    """A model's rows of the clinic (tenant models), through its base manager (no default filtering)."""
    rows = model._base_manager.all()
    if any(f.name == "clinic" for f in model._meta.concrete_fields):
        rows = rows.filter(clinic_id=clinic_id)
    return rows


# Export --------------------------------------------------------------------------------------------------------


def _user_label(user: Any) -> str:
    return (user.get_full_name() or user.email or user.get_username()) if user is not None else ""


def _related(field: models.Field) -> type[models.Model] | None:
    related = field.related_model
    return None if related is None or isinstance(related, str) else related


def _has_public_id(model: type[models.Model]) -> bool:
    return any(f.name == "public_id" for f in model._meta.concrete_fields)


def _public_ids_read(rows: list[models.Model], seen: dict[Any, str]) -> None:
    """The public ids of every row these rows point at (rows are named by them, as in URLs): one query per
    foreign key, whatever the number of rows."""
    if not rows:
        return
    for field in rows[0]._meta.concrete_fields:
        related = _related(field) if field.is_relation else None
        if related is None or not _has_public_id(related):
            continue
        wanted = {getattr(row, field.attname) for row in rows} - {None}
        wanted = {pk for pk in wanted if (related, pk) not in seen}
        if wanted:
            found = related._base_manager.filter(pk__in=sorted(wanted)).values_list("pk", "public_id")
            seen.update({(related, pk): str(public_id) for pk, public_id in found})


def _value(row: models.Model, field: models.Field, users: dict[int, str], seen: dict[Any, str]) -> Any:
    if field.is_relation:
        target_id = getattr(row, field.attname)
        related = _related(field)
        if target_id is None or related is None:
            return target_id
        if related._meta.label == settings.AUTH_USER_MODEL:
            return users.get(target_id, f"user {target_id}")
        return seen.get((related, target_id), target_id)
    value = getattr(row, field.attname)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None  # binary (none holds patient data today)
    return value


def _serialise(rows: list[models.Model], users: dict[int, str], seen: dict[Any, str]) -> list[dict[str, Any]]:
    _public_ids_read(rows, seen)
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for field in row._meta.concrete_fields:
            if field.name == "clinic" or field.name == "id":
                continue
            item[field.name] = _value(row, field, users, seen)
        out.append(item)
    return out


def _users_named(clinic: Clinic) -> dict[int, str]:
    members = Membership.objects.for_clinic(clinic).select_related("user")
    return {m.user_id: _user_label(m.user) for m in members}


@dataclass(frozen=True)
class Column:
    name: str
    label: str


@dataclass
class Table:
    label: str  # app_label.model_name
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]


@dataclass
class AppointmentStory:
    public_id: str
    starts_at: dt.datetime
    practitioner: str
    location: str
    kind: str
    status: str
    source: str
    cancelled: str
    rescheduled_from: str
    rescheduled_to: str
    series: str
    history: list[dict[str, Any]]


@dataclass
class PatientExport:
    """Everything the export holds, for the JSON and the readable page."""

    clinic: Clinic
    patient: Patient
    exported_at: dt.datetime
    zone: ZoneInfo
    record: dict[str, Any]
    tables: list[Table]
    appointments: list[AppointmentStory]
    audit: list[dict[str, Any]]
    viewed: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "exported_at": self.exported_at.isoformat(),
            "clinic": {"name": self.clinic.name, "public_id": str(self.clinic.public_id)},
            "patient": self.record,
            "appointments": [
                {**story.__dict__, "starts_at": story.starts_at.isoformat()} for story in self.appointments
            ],
            "tables": {table.label: table.rows for table in self.tables},
            "audit": self.audit,
            "record_viewed_while_blocked": self.viewed,
        }


def _audit_rows(clinic: Clinic, patient: Patient, ids: set[str], users: dict[int, str]) -> list[dict[str, Any]]:
    """Every audit event about the patient or one of their rows (by public id), or naming the patient in its
    detail, oldest first."""
    events = (
        AuditEvent.objects.for_clinic(clinic)
        .filter(Q(object_id__in=sorted(ids)) | Q(detail__patient=str(patient.public_id)))
        .order_by("created_at", "id")
    )
    return [
        {
            "at": event.created_at.isoformat(),
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "by": users.get(event.actor_id, f"user {event.actor_id}") if event.actor_id else "",
            "detail": event.detail,
        }
        for event in events
    ]


def patient_export_contents(*, clinic: Clinic, patient: Patient, now: dt.datetime | None = None) -> PatientExport:
    """Everything about one patient: the record, every row of every model that holds their data, each appointment
    with its history, and the audit of their record (who opened it while blocked)."""
    now = now or timezone.now()
    users = _users_named(clinic)
    seen: dict[Any, str] = {}
    record = _serialise([patient], users, seen)[0]
    tables: list[Table] = []
    ids = {str(patient.public_id)}
    for label, queryset in patient_rows(patient).items():
        if label in NOT_EXPORTED:
            continue
        model = queryset.model
        rows = list(queryset)
        ids |= {str(row.public_id) for row in rows if hasattr(row, "public_id")}
        columns = [
            Column(f.name, str(f.verbose_name)) for f in model._meta.concrete_fields if f.name not in ("clinic", "id")
        ]
        title = str(model._meta.verbose_name_plural).capitalize()
        tables.append(Table(label, title, columns, _serialise(rows, users, seen)))
    audit = _audit_rows(clinic, patient, ids, users)
    by_object: dict[str, list[dict[str, Any]]] = {}
    for event in audit:
        by_object.setdefault(event["object_id"], []).append(event)
    appointments = [
        _story(appointment, by_object)
        for appointment in Appointment.objects.for_clinic(clinic)
        .filter(patient=patient)
        .select_related(
            "practitioner", "slot_type", "slot__session__location", "series", "rescheduled_from", "rescheduled_to"
        )
        .order_by("starts_at", "id")
    ]
    viewed = [event for event in audit if event["action"] == "patient.blocked_viewed"]
    return PatientExport(
        clinic=clinic,
        patient=patient,
        exported_at=now,
        zone=ZoneInfo(clinic.time_zone),
        record=record,
        tables=tables,
        appointments=appointments,
        audit=audit,
        viewed=viewed,
    )


def _story(appointment: Appointment, by_object: dict[str, list[dict[str, Any]]]) -> AppointmentStory:
    moved_to = getattr(appointment, "rescheduled_to", None)
    cancelled = ""
    if appointment.cancelled_at is not None:
        cancelled = f"{appointment.cancelled_at.isoformat()} ({appointment.get_cancel_category_display()})"
    return AppointmentStory(
        public_id=str(appointment.public_id),
        starts_at=appointment.starts_at,
        practitioner=appointment.practitioner.name if appointment.practitioner else "",
        location=appointment.slot.session.location.name,
        kind=appointment.slot_type.name if appointment.slot_type else "",
        status=appointment.get_status_display(),
        source=appointment.get_source_display(),
        cancelled=cancelled,
        rescheduled_from=str(appointment.rescheduled_from.public_id) if appointment.rescheduled_from else "",
        rescheduled_to=str(moved_to.public_id) if moved_to is not None else "",
        series=str(appointment.series.public_id) if appointment.series else "",
        history=by_object.get(str(appointment.public_id), []),
    )


# Erasure -------------------------------------------------------------------------------------------------------


class ErasureRefusal(NamedTuple):
    reason: str


def erasure_refusal(*, clinic: Clinic, patient: Patient, now: dt.datetime | None = None) -> ErasureRefusal | None:
    """Why this patient cannot be erased now (None: they can): already erased; an appointment within the clinic's
    retention period (or ahead), with the date erasure becomes possible; a place they are still waiting for."""
    now = now or timezone.now()
    if patient.erased_at is not None:
        return ErasureRefusal("This record is already erased.")
    years = clinic.retention_years
    last = last_appointment_start(clinic=clinic, patient=patient)
    if last is not None and last + relativedelta(years=years) > now:
        zone = ZoneInfo(clinic.time_zone)
        possible = (last + relativedelta(years=years)).astimezone(zone)
        return ErasureRefusal(
            f"This patient's last appointment is on {last.astimezone(zone):%-d %B %Y}, and this clinic keeps "
            f"appointment records for {years} year{'s' if years != 1 else ''}: the record can be erased from "
            f"{possible:%-d %B %Y}."
        )
    if WaitlistEntry.objects.for_clinic(clinic).filter(patient=patient).open().exists():
        return ErasureRefusal("This patient is on the waiting list: take them off it first.")
    pending = OnlineBooking.objects.for_clinic(clinic).filter(
        patient=patient, mode=BookingMode.REQUEST, status=OnlineStatus.PENDING
    )
    if pending.exists():
        return ErasureRefusal("This patient has an online request waiting: accept or decline it first.")
    return None


def last_appointment_start(*, clinic: Clinic, patient: Patient) -> dt.datetime | None:
    """When the patient's latest appointment (cancelled ones too: they are records) starts."""
    return (
        Appointment.objects.for_clinic(clinic)
        .filter(patient=patient)
        .order_by("-starts_at")
        .values_list("starts_at", flat=True)
        .first()
    )
