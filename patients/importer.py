"""Checking a CSV of patients before anything is written (the dry run)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from patients.forms import PatientForm
from patients.identifiers import digits
from patients.models import Patient
from patients.selectors import national_id_holders
from patients.services import NATIONAL_ID_UNUSABLE, national_id_refusal

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership

# The patient form's fields, less what an import never sets (privacy flags, free-text notes).
COLUMNS = [name for name in PatientForm.Meta.fields if name not in {"notes", "is_blocked", "blocked_reason"}]
REQUIRED_COLUMNS = {"last_name", "first_name", "date_of_birth"}
MAX_ROWS = 20_000


@dataclass
class ImportCheck:
    valid: list[Patient] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    problem: str = ""  # a problem with the whole file

    @property
    def can_import(self) -> bool:
        return not self.problem and bool(self.valid)


def check_csv(*, clinic: Clinic, actor: User | None, membership: Membership | None, text: str) -> ImportCheck:
    """Validate every row as the patient form would; report bad rows and duplicates by line.

    A row with the national identifier of a patient this member may not see (a blocked one) is a row with an
    error that names nobody, as on the patient form, and the attempt is audited (patients.services).
    """
    result = ImportCheck()
    reader = csv.DictReader(io.StringIO(text))
    headers = {h.strip() for h in (reader.fieldnames or []) if h}
    missing = REQUIRED_COLUMNS - headers
    if missing:
        result.problem = f"The header row lacks the column(s): {', '.join(sorted(missing))}."
        return result
    unknown = headers - set(COLUMNS)
    if unknown:
        result.problem = f"Unknown column(s): {', '.join(sorted(unknown))}. Known: {', '.join(COLUMNS)}."
        return result
    rows = list(reader)
    if len(rows) > MAX_ROWS:
        result.problem = f"At most {MAX_ROWS:,} rows per file; this one has {len(rows):,}."
        return result
    cleaned = [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in rows]
    in_file = {digits(data.get("national_id", "")) for data in cleaned}
    holders = national_id_holders(clinic=clinic, national_ids=in_file - {""})
    seen: dict[str, int] = {}
    for index, data in enumerate(cleaned):
        line = index + 2  # the header is line 1
        data.setdefault("sex", "unknown")
        data["sex"] = (data["sex"] or "unknown").lower()
        data["national_id_kind"] = (data.get("national_id_kind") or "").lower()
        number = digits(data.get("national_id", ""))
        if number and number in holders:
            refusal = national_id_refusal(
                clinic=clinic, actor=actor, membership=membership, holder=holders[number], via="import", line=line
            )
            if refusal == NATIONAL_ID_UNUSABLE:
                result.errors.append((line, f"{PatientForm.base_fields['national_id'].label}: {refusal}"))
            else:
                result.duplicates.append((line, refusal))
            continue
        if number and number in seen:
            result.duplicates.append((line, f"same national identifier as line {seen[number]}"))
            continue
        form = PatientForm(data, clinic=clinic, can_block=False)
        if not form.is_valid():
            reasons = "; ".join(
                f"{form.fields[name].label if name in form.fields else 'row'}: {' '.join(str(e) for e in errors)}"
                for name, errors in form.errors.items()
            )
            result.errors.append((line, reasons))
            continue
        if number:
            seen[number] = line
        result.valid.append(form.instance)
    return result
