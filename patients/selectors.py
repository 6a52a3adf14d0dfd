"""Reads of patients. Every read goes through patients_visible: scoped to the clinic, and
without "Privacy: Access Blocked Patients" blocked patients are not there at all."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Prefetch, Q, QuerySet

from patients import identifiers
from patients.models import Coverage, Patient, format_internal_id, may_see_blocked

if TYPE_CHECKING:
    from clinic.models import Clinic, Membership

SEARCH_LIMIT = 25
INTERNAL_ID = re.compile(r"^P?0*([0-9]{1,9})$", re.IGNORECASE)
MAX_QUERY = 100  # longer entries match nobody (and are not parsed)
# Name keys are compared as a range [prefix, prefix + HIGH): an index range scan on every backend.
HIGH = "\U0010ffff"


def patients_visible(
    *, clinic: Clinic, membership: Membership | None, archived: bool = False, blocked_too: bool = False
) -> QuerySet[Patient]:
    """blocked_too: blocked patients stay in whoever asks, for patients.access to decide on one patient it was
    asked for by id (the permission, or a break-glass grant); never for a list or a search."""
    qs = Patient.objects.for_clinic(clinic)
    qs = qs if blocked_too else qs.visible_to(membership)
    return qs if archived else qs.filter(is_archived=False)


def patient_detail(*, clinic: Clinic, membership: Membership | None, blocked_too: bool = False) -> QuerySet[Patient]:
    """Patients (archived too) with their coverage (where the clinic bills insurance), for the record and
    the quickview."""
    patients = patients_visible(clinic=clinic, membership=membership, archived=True, blocked_too=blocked_too)
    if not clinic.bills_insurance:
        return patients
    return patients.prefetch_related(
        Prefetch("coverages", queryset=Coverage.objects.for_clinic(clinic).order_by("priority", "payer"))
    )


@dataclass(frozen=True)
class SearchTerms:
    """What a search box entry can mean; every part is optional."""

    last_prefix: str = ""
    first_prefix: str = ""
    internal_id: str = ""
    national_id: str = ""
    phone_key: str = ""
    date_of_birth: object = None

    @property
    def identifier_lookups(self) -> list[Q]:
        """One exact lookup per identifier the entry could be."""
        lookups = []
        if self.internal_id:
            lookups.append(Q(internal_id=self.internal_id))
        if self.national_id:
            lookups.append(Q(national_id=self.national_id))
        if self.phone_key:
            lookups += [Q(mobile_key=self.phone_key), Q(home_key=self.phone_key)]
        if self.date_of_birth:
            lookups.append(Q(date_of_birth=self.date_of_birth))
        return lookups


def parse_search(query: str, *, us_dates: bool = False) -> SearchTerms:
    """Work out which values the entry could be: a name, "last, first", an ID, a phone, a date."""
    text = " ".join((query or "").split())
    if not text or len(text) > MAX_QUERY:
        return SearchTerms()
    date_of_birth = identifiers.parse_date_of_birth(text, us_order=us_dates)
    if date_of_birth:
        return SearchTerms(date_of_birth=date_of_birth)
    number = identifiers.digits(text)
    only_number_chars = re.fullmatch(r"[0-9\s()+.\-]+", text) is not None
    if only_number_chars and number:
        internal = INTERNAL_ID.match(number)
        return SearchTerms(
            internal_id=format_internal_id(int(internal.group(1))) if internal else "",
            national_id=number if len(number) in (9, 10) else "",
            phone_key=identifiers.phone_key(number),
        )
    internal = INTERNAL_ID.match(text.replace(" ", ""))
    if internal and text[:1].upper() == "P":
        return SearchTerms(internal_id=format_internal_id(int(internal.group(1))))
    if "," in text:
        last, _, first = text.partition(",")
        return SearchTerms(last_prefix=identifiers.name_key(last), first_prefix=identifiers.name_key(first))
    return SearchTerms(last_prefix=identifiers.name_key(text))


def patient_search(
    *, clinic: Clinic, membership: Membership | None, query: str, limit: int = SEARCH_LIMIT
) -> list[Patient]:
    """One query. An entry is either identifiers (exact matches) or a name (prefix matches).

    Identifier lookups are a UNION of one indexed lookup per column, not an OR: without
    table statistics SQLite would otherwise read the clinic's every row for an OR.
    """
    # Clinics in the Americas write dates month first (03/12/1980 is 12 March there).
    terms = parse_search(query, us_dates=clinic.time_zone.startswith("America/"))
    visible = patients_visible(clinic=clinic, membership=membership)
    if terms.identifier_lookups:
        plain = Patient.objects.for_clinic(clinic).order_by()
        first, *rest = (plain.filter(lookup).values("id") for lookup in terms.identifier_lookups)
        # Exact matches are few: sorted here, since an ORDER BY would tempt SQLite into walking
        # the name index over the whole clinic instead of looking up each matching row.
        found = list(visible.filter(pk__in=first.union(*rest) if rest else first).order_by()[:limit])
        return sorted(found, key=lambda p: (p.last_name_key, p.first_name_key, p.pk))
    if terms.last_prefix:
        name = Q(last_name_key__gte=terms.last_prefix, last_name_key__lt=terms.last_prefix + HIGH)
        if terms.first_prefix:
            name &= Q(first_name_key__gte=terms.first_prefix, first_name_key__lt=terms.first_prefix + HIGH)
        return list(visible.filter(name).order_by("last_name_key", "first_name_key", "id")[:limit])
    return []


def restricted_match(*, clinic: Clinic, membership: Membership | None, query: str) -> Patient | None:
    """The blocked patient (not archived) a search names exactly by an identifier, internal ID or national
    identifier, for a member who may not see blocked patients; None otherwise (one query, or none).

    Names, dates of birth and phone numbers never match here: they are shared and guessable, so a blocked patient
    cannot be found by trying them. Only someone who holds the patient's own number learns that a restricted record
    has it, and what they can do then is break glass (with a reason, audited, reviewed).
    """
    if may_see_blocked(membership):
        return None
    terms = parse_search(query, us_dates=clinic.time_zone.startswith("America/"))
    exact = [Q(internal_id=v) for v in [terms.internal_id] if v] + [Q(national_id=v) for v in [terms.national_id] if v]
    if not exact:
        return None
    lookup = exact[0] | exact[1] if len(exact) == 2 else exact[0]
    found = list(Patient.objects.for_clinic(clinic).filter(lookup, is_blocked=True, is_archived=False)[:2])
    return found[0] if len(found) == 1 else None


def national_id_holders(
    *, clinic: Clinic, national_ids: Collection[str], exclude_pk: int | None = None
) -> dict[str, Patient]:
    """The patients of the clinic who hold these national identifiers, by identifier (one query).

    Every patient counts here, archived and blocked ones too: an identifier is unique in a clinic, so this
    read is not filtered by what the member may see. Callers word a refusal for the member (see
    patients.services.national_id_refusal) and never show a hidden holder.
    """
    if not national_ids:
        return {}
    holders = Patient.objects.for_clinic(clinic).filter(national_id__in=sorted(set(national_ids)))
    if exclude_pk is not None:
        holders = holders.exclude(pk=exclude_pk)
    return {patient.national_id: patient for patient in holders if patient.national_id}


def patients_count(*, clinic: Clinic, membership: Membership | None) -> int:
    return patients_visible(clinic=clinic, membership=membership).count()


def patient_matching_online(*, clinic: Clinic, date_of_birth: dt.date, first_name: str, email: str) -> Patient | None:
    """The patient an online booking is for: exactly one live patient of the clinic with this date of birth, this
    first name (normalised, or as their preferred name) and this email (verified by a code before this is asked).
    None when nobody or more than one matches: never guess between people. The mobile is not verified, so it never
    matches."""
    key = identifiers.name_key(first_name)
    address = email.strip()
    if not key or not address:
        return None
    candidates = [
        patient
        for patient in Patient.objects.for_clinic(clinic).filter(
            date_of_birth=date_of_birth, is_archived=False, email__iexact=address
        )[:5]
        if key in (patient.first_name_key, identifiers.name_key(patient.preferred_name))
    ]
    return candidates[0] if len(candidates) == 1 else None
