"""Bookings stripped to what any booking must do, to measure what is left of the floor for the rules.

Each posts a patient into a single slot and answers as the booking form does (a redirect with a success message, or
the form's alert when the slot is taken), behind the product's whole middleware (session, user, clinic):
- ``write``: one statement, PostgreSQL's data-modifying CTE: lock the slot, insert the appointment, count the place,
  insert the audit row and the confirmation's message. No other read, no rule.
- ``raw``: the four reads the rules cannot do without (the slot locked with its session, the patient, the
  practitioner's overlapping appointments, the clinic's notification settings), as hand-written SQL, then ``write``.
- ``orm``: the same four reads through the ORM (``for_clinic``, as every read of the product), then ``write``.
- ``statements``: the round trips of the booking form's Python path (BookingForm and appointment_book: what the
  form does on SQLite, and on PostgreSQL for whatever scheduling_quick_book leaves to it) in its order (the slot and
  patient shown, then in one transaction: the slot and practitioner locked, the overlap check, the appointment, its
  count, the busy events, the audit row, the feed check, the notification settings, the appointment re-read for its
  messages, the email and the text), each written by hand; the rules' Python left out.
- ``procedure``: those statements inside one PL/pgSQL function (made in the benchmarks' database by the case), one
  round trip.

None of them applies the product's rules (blocked or archived patients, closed groups, holds, duplicates, the
messages' channels and refusals) or writes the calendar-sync rows: it refuses only a slot already full or a
practitioner already booked at that time, and never overbooks. Only ``statements`` and ``procedure`` make the reads
for the busy events, the feeds and the confirmation that the product makes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from uuid import UUID

from django.contrib import messages
from django.db import connection, transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from clinic.access import ClinicRequest
from notifications.models import NotificationSettings
from patients.models import Patient
from scheduling.models import Appointment, Slot

APPOINTMENT_COLUMNS = (
    "public_id, status, starts_at, ends_at, created_at, updated_at, clinic_id, created_by_id, patient_id, "
    "practitioner_id, slot_id, slot_type_id, cancel_reason, exclusive, notes_completed, self_pay, cancel_category, "
    "source"
)
MESSAGE_COLUMNS = (
    "public_id, appointment_ids, ref, kind, channel, offset_hours, version, category, due_at, status, attempts, "
    "recipient, subject, body, provider_id, detail, created_at, appointment_id, clinic_id, patient_id"
)
# The whole booking in one statement; no row comes back when the slot is full (or not this clinic's).
WRITE = f"""
WITH s AS (
  SELECT sl.id, sl.starts_at, sl.ends_at, sl.slot_type_id, sl.capacity, se.practitioner_id
  FROM scheduling_slot sl JOIN scheduling_session se ON se.id = sl.session_id
  WHERE sl.clinic_id = %(clinic)s AND sl.public_id = %(slot)s AND sl.bookable AND NOT sl.retired
    AND sl.booked_count < sl.capacity
  FOR NO KEY UPDATE OF sl
), p AS (
  SELECT id FROM patients_patient WHERE clinic_id = %(clinic)s AND public_id = %(patient)s
), a AS (
  INSERT INTO scheduling_appointment ({APPOINTMENT_COLUMNS})
  SELECT gen_random_uuid(), 'booked', s.starts_at, s.ends_at, now(), now(), %(clinic)s, %(actor)s, p.id,
         s.practitioner_id, s.id, s.slot_type_id, '', s.capacity = 1, false, true, '', 'reception'
  FROM s, p
  RETURNING id, public_id, patient_id, starts_at, slot_id
), counted AS (
  UPDATE scheduling_slot SET booked_count = booked_count + 1 WHERE id IN (SELECT slot_id FROM a)
), audited AS (
  INSERT INTO clinic_auditevent (action, object_type, object_id, detail, created_at, actor_id, clinic_id)
  SELECT 'appointment.booked', 'scheduling.appointment', a.public_id::text,
         jsonb_build_object('slot', %(slot)s::text, 'patient', %(patient)s::text, 'source', 'reception'), now(),
         %(actor)s, %(clinic)s
  FROM a
), told AS (
  INSERT INTO notifications_message ({MESSAGE_COLUMNS})
  SELECT gen_random_uuid(), jsonb_build_array(a.id), '', 'confirmation', 'email', 0, a.starts_at, '', now(),
         'waiting', 0, '', '', '', '', '', now(), a.id, %(clinic)s, a.patient_id
  FROM a
)
SELECT starts_at FROM a
"""
SLOT_LOCKED = """
SELECT sl.starts_at, sl.ends_at, se.practitioner_id FROM scheduling_slot sl
JOIN scheduling_session se ON se.id = sl.session_id
WHERE sl.clinic_id = %s AND sl.public_id = %s FOR NO KEY UPDATE OF sl
"""
PATIENT = "SELECT id, is_blocked, is_archived, email FROM patients_patient WHERE clinic_id = %s AND public_id = %s"
OVERLAP = """
SELECT 1 FROM scheduling_appointment WHERE clinic_id = %s AND status <> 'cancelled' AND practitioner_id = %s
AND starts_at < %s AND ends_at > %s LIMIT 1
"""
SETTINGS = "SELECT confirmations_on FROM notifications_notificationsettings WHERE clinic_id = %s LIMIT 1"
TAKEN = '<p class="message error" role="alert">This slot is full.</p>'


def raw_reads(clinic_id: int, slot: UUID, patient: UUID) -> bool:
    """The four reads by hand: whether the booking may go on (the slot and patient exist, no overlap)."""
    with connection.cursor() as cursor:
        cursor.execute(SLOT_LOCKED, [clinic_id, slot])
        found = cursor.fetchone()
        cursor.execute(PATIENT, [clinic_id, patient])
        if found is None or cursor.fetchone() is None:
            return False
        starts_at, ends_at, practitioner_id = found
        cursor.execute(OVERLAP, [clinic_id, practitioner_id, ends_at, starts_at])
        clash = cursor.fetchone() is not None
        cursor.execute(SETTINGS, [clinic_id])
        cursor.fetchone()
    return not clash


def orm_reads(clinic_id: int, slot: UUID, patient: UUID) -> bool:
    """The same four reads through the ORM, as the product's services write them."""
    locked = (
        Slot.objects.for_clinic(clinic_id)
        .select_for_update(no_key=True, of=("self",))
        .select_related("session")
        .filter(public_id=slot)
        .first()
    )
    if locked is None or not Patient.objects.for_clinic(clinic_id).filter(public_id=patient).exists():
        return False
    clash = (
        Appointment.objects.for_clinic(clinic_id)
        .live()
        .filter(
            practitioner_id=locked.session.practitioner_id, starts_at__lt=locked.ends_at, ends_at__gt=locked.starts_at
        )
        .exists()
    )
    NotificationSettings.objects.for_clinic(clinic_id).first()
    return not clash


# --- statements: the booking form's own round trips, by hand ---------------------------------------------------
SLOT_SHOWN = """
SELECT sl.id, sl.starts_at, sl.ends_at, sl.capacity, sl.booked_count, sl.bookable, sl.slot_type_id, se.id,
       se.practitioner_id, se.time_zone, se.out_state, pr.name, lo.name, st.name
FROM scheduling_slot sl JOIN scheduling_session se ON se.id = sl.session_id
LEFT JOIN clinic_practitioner pr ON pr.id = se.practitioner_id JOIN clinic_location lo ON lo.id = se.location_id
LEFT JOIN sessions_setup_slottype st ON st.id = sl.slot_type_id
WHERE sl.clinic_id = %s AND sl.public_id = %s
"""
PATIENT_SHOWN = """
SELECT id, public_id, first_name, last_name, is_blocked, is_archived, email, mobile_phone FROM patients_patient
WHERE clinic_id = %s AND public_id = %s
"""
SLOT_LOCK = """
SELECT sl.booked_count, sl.held_count, sl.capacity, sl.bookable, se.out_state FROM scheduling_slot sl
JOIN scheduling_session se ON se.id = sl.session_id WHERE sl.clinic_id = %s AND sl.id = %s FOR NO KEY UPDATE OF sl
"""
PRACTITIONER_LOCK = "SELECT id FROM clinic_practitioner WHERE clinic_id = %s AND id = %s FOR NO KEY UPDATE"
OVERLAP_SINGLE = """
SELECT 1 FROM scheduling_appointment a JOIN scheduling_slot sl ON sl.id = a.slot_id
WHERE a.clinic_id = %s AND a.status <> 'cancelled' AND a.practitioner_id = %s AND sl.capacity = 1
AND a.starts_at < %s AND a.ends_at > %s AND a.slot_id <> %s LIMIT 1
"""
APPOINTMENT_INSERT = f"""
INSERT INTO scheduling_appointment ({APPOINTMENT_COLUMNS})
VALUES (gen_random_uuid(), 'booked', %s, %s, now(), now(), %s, %s, %s, %s, %s, %s, '', true, false, true, '',
        'reception')
RETURNING id, public_id
"""
COUNT_PLACE = "UPDATE scheduling_slot SET booked_count = booked_count + 1 WHERE clinic_id = %s AND id = %s"
BUSY = """
SELECT public_id FROM scheduling_otherevent WHERE clinic_id = %s AND practitioner_id = %s AND busy
AND ((NOT all_day AND starts_at < %s AND ends_at > %s) OR (all_day AND first_date <= %s AND last_date >= %s))
ORDER BY all_day, starts_at, title
"""
AUDIT_INSERT = """
INSERT INTO clinic_auditevent (action, object_type, object_id, detail, created_at, actor_id, clinic_id)
VALUES ('appointment.booked', 'scheduling.appointment', %s, %s::jsonb, now(), %s, %s)
"""
FEEDS = "SELECT id, clinic_id FROM calendar_sync_feedsubscription WHERE enabled AND practitioner_id = %s"
SETTINGS_ROW = """
SELECT confirmations_on, reminders_on, changes_on, offers_on, email_on, sms_on
FROM notifications_notificationsettings WHERE clinic_id = %s LIMIT 1
"""
TOLD = """
SELECT a.id, a.patient_id, a.starts_at, p.email, p.mobile_phone, cp.email_ok, cp.sms_ok FROM scheduling_appointment a
JOIN patients_patient p ON p.id = a.patient_id LEFT JOIN notifications_contactpreference cp ON cp.patient_id = p.id
WHERE a.clinic_id = %s AND a.id = %s
"""
MESSAGES_INSERT = f"""
INSERT INTO notifications_message ({MESSAGE_COLUMNS}) VALUES
(gen_random_uuid(), %(ids)s::jsonb, '', 'confirmation', 'email', 0, %(at)s, '', now(), 'waiting', 0, '', '', '', '', '',
 now(), %(appointment)s, %(clinic)s, %(patient)s),
(gen_random_uuid(), %(ids)s::jsonb, '', 'confirmation', 'sms', 0, %(at)s, '', now(), 'waiting', 0, '', '', '', '', '',
 now(), %(appointment)s, %(clinic)s, %(patient)s)
"""


def statements_book(actor: int, clinic_id: int, slot: UUID, patient: UUID) -> dt.datetime | None:
    """The booking form's statements in its order, written by hand, with no rule but "full" and "overlap": the
    booking's start, or None when refused."""
    with connection.cursor() as cursor:
        cursor.execute(SLOT_SHOWN, [clinic_id, slot])
        shown = cursor.fetchone()
        cursor.execute(PATIENT_SHOWN, [clinic_id, patient])
        person = cursor.fetchone()
        if shown is None or person is None:
            return None
        slot_pk, starts_at, ends_at, _capacity, _booked, _bookable, slot_type_id, _session, practitioner_id = shown[:9]
        with transaction.atomic():
            cursor.execute(SLOT_LOCK, [clinic_id, slot_pk])
            booked_count, _held, capacity, bookable, _out = cursor.fetchone()
            if not bookable or booked_count >= capacity:
                return None
            cursor.execute(PRACTITIONER_LOCK, [clinic_id, practitioner_id])
            cursor.execute(OVERLAP_SINGLE, [clinic_id, practitioner_id, ends_at, starts_at, slot_pk])
            if cursor.fetchone() is not None:
                return None
            cursor.execute(
                APPOINTMENT_INSERT,
                [starts_at, ends_at, clinic_id, actor, person[0], practitioner_id, slot_pk, slot_type_id],
            )
            appointment_pk, appointment_id = cursor.fetchone()
            cursor.execute(COUNT_PLACE, [clinic_id, slot_pk])
            day = starts_at.date()
            cursor.execute(BUSY, [clinic_id, practitioner_id, ends_at, starts_at, day, day])
            busy = [str(row[0]) for row in cursor.fetchall()]
            detail = {"slot": str(slot), "patient": str(patient), "source": "reception", "busy_events": busy}
            cursor.execute(AUDIT_INSERT, [str(appointment_id), json.dumps(detail), actor, clinic_id])
            cursor.execute(FEEDS, [practitioner_id])
            cursor.fetchall()
            cursor.execute(SETTINGS_ROW, [clinic_id])
            cursor.fetchone()
            cursor.execute(TOLD, [clinic_id, appointment_pk])
            told = cursor.fetchone()
            cursor.execute(
                MESSAGES_INSERT,
                {
                    "ids": json.dumps([appointment_pk]),
                    "at": told[2],
                    "appointment": appointment_pk,
                    "clinic": clinic_id,
                    "patient": told[1],
                },
            )
    return starts_at


# --- procedure: the same statements inside one PL/pgSQL call -----------------------------------------------------
# Made by the case's set-up in the benchmarks' database only (PROCEDURE_CREATE), never by a migration.
PROCEDURE_CREATE = f"""
CREATE OR REPLACE FUNCTION bench_bound_book(p_clinic bigint, p_slot uuid, p_patient uuid, p_actor integer)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
  s record; pa record; locked record; told record;
  v_appointment bigint; v_appointment_id uuid; v_busy jsonb; v_day date;
BEGIN
  SELECT sl.id, sl.starts_at, sl.ends_at, sl.slot_type_id, se.practitioner_id, pr.name AS practitioner,
         lo.name AS location, st.name AS slot_type
    INTO s
    FROM scheduling_slot sl JOIN scheduling_session se ON se.id = sl.session_id
    LEFT JOIN clinic_practitioner pr ON pr.id = se.practitioner_id JOIN clinic_location lo ON lo.id = se.location_id
    LEFT JOIN sessions_setup_slottype st ON st.id = sl.slot_type_id
   WHERE sl.clinic_id = p_clinic AND sl.public_id = p_slot;
  SELECT id, is_blocked, is_archived, email, mobile_phone INTO pa
    FROM patients_patient WHERE clinic_id = p_clinic AND public_id = p_patient;
  IF s.id IS NULL OR pa.id IS NULL THEN RETURN NULL; END IF;
  SELECT sl.booked_count, sl.capacity, sl.bookable, se.out_state INTO locked
    FROM scheduling_slot sl JOIN scheduling_session se ON se.id = sl.session_id
   WHERE sl.clinic_id = p_clinic AND sl.id = s.id FOR NO KEY UPDATE OF sl;
  IF NOT locked.bookable OR locked.booked_count >= locked.capacity THEN RETURN NULL; END IF;
  PERFORM 1 FROM clinic_practitioner WHERE clinic_id = p_clinic AND id = s.practitioner_id FOR NO KEY UPDATE;
  PERFORM 1 FROM scheduling_appointment a JOIN scheduling_slot sl ON sl.id = a.slot_id
   WHERE a.clinic_id = p_clinic AND a.status <> 'cancelled' AND a.practitioner_id = s.practitioner_id
     AND sl.capacity = 1 AND a.starts_at < s.ends_at AND a.ends_at > s.starts_at AND a.slot_id <> s.id LIMIT 1;
  IF FOUND THEN RETURN NULL; END IF;
  INSERT INTO scheduling_appointment ({APPOINTMENT_COLUMNS})
  VALUES (gen_random_uuid(), 'booked', s.starts_at, s.ends_at, now(), now(), p_clinic, p_actor, pa.id,
          s.practitioner_id, s.id, s.slot_type_id, '', true, false, true, '', 'reception')
  RETURNING id, public_id INTO v_appointment, v_appointment_id;
  UPDATE scheduling_slot SET booked_count = booked_count + 1 WHERE clinic_id = p_clinic AND id = s.id;
  v_day := s.starts_at::date;
  SELECT coalesce(jsonb_agg(public_id::text ORDER BY all_day, starts_at, title), '[]'::jsonb) INTO v_busy
    FROM scheduling_otherevent WHERE clinic_id = p_clinic AND practitioner_id = s.practitioner_id AND busy
     AND ((NOT all_day AND starts_at < s.ends_at AND ends_at > s.starts_at)
          OR (all_day AND first_date <= v_day AND last_date >= v_day));
  INSERT INTO clinic_auditevent (action, object_type, object_id, detail, created_at, actor_id, clinic_id)
  VALUES ('appointment.booked', 'scheduling.appointment', v_appointment_id::text,
          jsonb_build_object('slot', p_slot::text, 'patient', p_patient::text, 'source', 'reception',
                             'busy_events', v_busy), now(), p_actor, p_clinic);
  PERFORM id FROM calendar_sync_feedsubscription WHERE enabled AND practitioner_id = s.practitioner_id;
  PERFORM confirmations_on, email_on, sms_on FROM notifications_notificationsettings WHERE clinic_id = p_clinic;
  SELECT a.patient_id, a.starts_at, p.email, p.mobile_phone, cp.email_ok, cp.sms_ok INTO told
    FROM scheduling_appointment a JOIN patients_patient p ON p.id = a.patient_id
    LEFT JOIN notifications_contactpreference cp ON cp.patient_id = p.id
   WHERE a.clinic_id = p_clinic AND a.id = v_appointment;
  INSERT INTO notifications_message ({MESSAGE_COLUMNS})
  SELECT gen_random_uuid(), jsonb_build_array(v_appointment), '', 'confirmation', channel, 0, told.starts_at, '',
         now(), 'waiting', 0, '', '', '', '', '', now(), v_appointment, p_clinic, told.patient_id
    FROM unnest(ARRAY['email', 'sms']) AS channel;
  RETURN s.starts_at;
END $$
"""


def procedure_book(actor: int, clinic_id: int, slot: UUID, patient: UUID) -> dt.datetime | None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT bench_bound_book(%s, %s, %s, %s)", [clinic_id, slot, patient, actor])
        (starts_at,) = cursor.fetchone()
    return starts_at


def written(
    actor: int, clinic_id: int, slot: UUID, patient: UUID, reads: Callable[[int, UUID, UUID], bool] | None = None
) -> dt.datetime | None:
    """``reads`` (if any) then the one statement, in one transaction: the booking's start, or None when refused."""
    with transaction.atomic():
        if reads is not None and not reads(clinic_id, slot, patient):
            return None
        with connection.cursor() as cursor:
            cursor.execute(WRITE, {"clinic": clinic_id, "slot": slot, "patient": patient, "actor": actor})
            row = cursor.fetchone()
    return None if row is None else row[0]


# The variants, from the most work to the least: each books and answers the booking's start (None: refused).
BOOKINGS: dict[str, Callable[[int, int, UUID, UUID], dt.datetime | None]] = {
    "statements": statements_book,
    "orm": functools.partial(written, reads=orm_reads),
    "raw": functools.partial(written, reads=raw_reads),
    "procedure": procedure_book,
    "write": written,
}


@require_POST
def bound_book(request: ClinicRequest, variant: str, slot: UUID) -> HttpResponse:
    if variant not in BOOKINGS or request.membership is None:
        raise Http404("No such bound.")
    try:
        patient = UUID(request.POST.get("patient", ""))
    except ValueError:
        return HttpResponse("Choose a patient.", status=400)
    starts_at = BOOKINGS[variant](request.user.pk, request.clinic.pk, slot, patient)
    if starts_at is None:
        return HttpResponse(TAKEN)
    messages.success(request, f"Booked on {starts_at:%a %-d %b %Y, %H:%M}.")
    return redirect("scheduling:calendar")
