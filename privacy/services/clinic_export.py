"""Writes of the clinic export: ask for one (a queued row, audited, the worker nudged after commit), run it (the
zip of CSV and JSON per model with its manifest, written in chunks), hand out its file once, and beat's sweep.

The zip is written by `clinic_export_write`, which the worker and `manage.py clinic_export` share. Rows are read
in pages of PRIVACY_EXPORT_CHUNK (keyset paging by primary key, no server-side cursor: the same behind PgBouncer)
and each model's two files are written to disk as they come, so memory stays bounded whatever the clinic's size.
Secrets are never read (their columns are not selected).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import hashlib
import importlib.metadata
import json
import logging
import os
import secrets
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import QuerySet
from django.utils import timezone

from clinic.models import Clinic
from clinic.nudges import nudge
from clinic.services import audit_record
from privacy import tasks
from privacy.models import ClinicExport, ExportState
from privacy.selectors.clinic_export import ExportPart, export_plan

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LINK_SALT = "privacy.clinic_export.download"
PROGRESS_EVERY_ROWS = 10_000


class ExportRefusedError(Exception):
    """An export that cannot be asked for now (one is already under way)."""


# --- Writing the zip -----------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON holds it: times in ISO 8601 (UTC as stored), ids and decimals as text, bytes in base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


def _cell(value: Any) -> str:
    """A value in a CSV cell: empty for NULL, true/false, JSON for structured values."""
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False, sort_keys=True)
    return str(plain)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _migration_state() -> dict[str, str]:
    """Each app's latest applied migration: what the data's shape is."""
    applied = MigrationRecorder(connections[DEFAULT_DB_ALIAS]).applied_migrations()
    latest: dict[str, str] = {}
    for app_label, name in applied:
        if name > latest.get(app_label, ""):
            latest[app_label] = name
    return dict(sorted(latest.items()))


def _app_version() -> str:
    try:
        return importlib.metadata.version("clinic-scheduler")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Progress:
    """What the writer has done so far; `report` is told after every model and every PROGRESS_EVERY_ROWS rows."""

    models_total: int = 0
    models_done: int = 0
    rows: int = 0


def _in_pages(rows: QuerySet[Any], columns: list[str], size: int) -> Iterator[tuple[Any, ...]]:
    """The rows' `columns` in primary-key order, read `size` at a time, each page its own query after the last key
    seen (keyset paging). Memory stays bounded without a server-side cursor: behind PgBouncer in transaction
    pooling (DATABASE_POOLER) Django has none, and `.iterator()` would fetch a whole table at once."""
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        found = list(page.order_by("pk").values_list(*columns, "pk")[:size])
        for row in found:
            yield row[:-1]
        if len(found) < size:
            return
        last = found[-1][-1]


def _write_part(
    part: ExportPart, clinic: Clinic, folder: Path, progress: Progress, report: Callable[[Progress, str], None]
) -> dict[str, Any]:
    """One model's CSV and JSON files, written together in one pass over its rows (in chunks)."""
    csv_path, json_path = folder / f"{part.file_stem}.csv", folder / f"{part.file_stem}.json"
    count = 0
    with csv_path.open("w", newline="", encoding="utf-8") as csv_file, json_path.open("w", encoding="utf-8") as js:
        writer = csv.writer(csv_file)
        writer.writerow(part.columns)
        js.write("[")
        for row in _in_pages(part.rows(clinic), part.columns, settings.PRIVACY_EXPORT_CHUNK):
            writer.writerow([_cell(value) for value in row])
            record = {column: _plain(value) for column, value in zip(part.columns, row, strict=True)}
            js.write(("\n" if count == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
            count += 1
            if count % PROGRESS_EVERY_ROWS == 0:
                progress.rows += PROGRESS_EVERY_ROWS
                report(progress, part.label)
        js.write("\n]\n" if count else "]\n")
    progress.rows += count % PROGRESS_EVERY_ROWS
    return {
        "model": part.label,
        "table": part.table,
        "belongs_to_clinic": part.belongs,
        "rows": count,
        "columns": part.columns,
        "excluded_columns": [{"column": name, "reason": why} for name, why in part.excluded_columns.items()],
        "files": {
            "csv": {"name": csv_path.name, "bytes": csv_path.stat().st_size, "sha256": _sha256(csv_path)},
            "json": {"name": json_path.name, "bytes": json_path.stat().st_size, "sha256": _sha256(json_path)},
        },
    }


def clinic_export_write(
    *, clinic: Clinic, target: Path, report: Callable[[Progress, str], None] | None = None
) -> dict[str, Any]:
    """Write the clinic's whole data to the zip at `target` (a CSV and a JSON file per model, and manifest.json)
    and return the manifest. Each model's files are written to a scratch folder beside the target, added to the
    zip and deleted, so the disk holds at most one model's files besides the zip."""
    plan = export_plan()
    progress = Progress(models_total=len(plan.parts))
    tell = report or (lambda _progress, _label: None)
    entries: list[dict[str, Any]] = []
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="clinic-export-", dir=target.parent) as scratch,
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
    ):
        folder = Path(scratch)
        for part in plan.parts:
            entry = _write_part(part, clinic, folder, progress, tell)
            for kind in ("csv", "json"):
                path = folder / entry["files"][kind]["name"]
                archive.write(path, arcname=path.name)
                path.unlink()
            entries.append(entry)
            progress.models_done += 1
            tell(progress, part.label)
        manifest = {
            "format": "clinic-scheduler clinic export 1",
            "clinic": {"name": clinic.name, "slug": clinic.slug, "public_id": str(clinic.public_id), "id": clinic.pk},
            "generated_at": timezone.now().isoformat(),
            "app_version": _app_version(),
            "database": connections[DEFAULT_DB_ALIAS].vendor,
            "migrations": _migration_state(),
            "files": (
                "Per model: <app>.<model>.csv (UTF-8, a header row; empty cell = NULL; JSON for structured values) "
                "and <app>.<model>.json (an array of objects). Times are UTC (ISO 8601). Each model is read on its "
                "own, so rows changed during the export may differ between models: for a point-in-time copy of a "
                "deployment use pg_dump (README: Backup and restore)."
            ),
            "rows_total": progress.rows,
            "models": entries,
            "excluded_models": [
                {"model": item.label, "table": item.table, "reason": item.reason} for item in plan.excluded
            ],
            "excluded_columns": [
                {"model": part.label, "column": name, "reason": why}
                for part in plan.parts
                for name, why in part.excluded_columns.items()
            ],
        }
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


# --- The job -------------------------------------------------------------------------------------------------------


def export_dir() -> Path:
    return Path(settings.PRIVACY_EXPORT_DIR)


def clinic_export_request(*, clinic: Clinic, actor: User) -> ClinicExport:
    """Ask for an export of the whole clinic: a queued row and its audit event in one transaction; the worker is
    nudged after commit (beat's sweep runs it if the nudge is lost). One at a time per clinic."""
    with transaction.atomic():
        # Lock the clinic's row: two admins asking at once make one export.
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        if ClinicExport.objects.for_clinic(clinic).filter(state__in=(ExportState.QUEUED, ExportState.RUNNING)).exists():
            raise ExportRefusedError("An export of this clinic is already under way: wait for it to finish.")
        export = ClinicExport.objects.create(clinic=clinic, requested_by=actor)
        audit_record(clinic=clinic, actor=actor, action="clinic_export.requested", target=export)
        nudge(tasks.clinic_export_run, export.pk)
    return export


def clinic_export_run(export_id: int) -> str:
    """Run a queued export (claimed with a conditional UPDATE, so a nudge and the sweep never both run it): write
    the zip under PRIVACY_EXPORT_DIR with progress on the row, then mark it done with its download link's nonce,
    or failed. Returns the state it ended in ("" when there was nothing to claim)."""
    now = timezone.now()
    claimed = ClinicExport.objects.filter(pk=export_id, state=ExportState.QUEUED).update(
        state=ExportState.RUNNING, started_at=now, progress_at=now
    )
    if not claimed:
        return ""
    export = ClinicExport.objects.select_related("clinic").get(pk=export_id)
    clinic = export.clinic
    name = f"{clinic.slug}-{export.public_id}.zip"
    final = export_dir() / name
    partial = final.with_suffix(".zip.part")

    def report(progress: Progress, _label: str) -> None:
        ClinicExport.objects.for_clinic(clinic).filter(pk=export.pk).update(
            models_total=progress.models_total,
            models_done=progress.models_done,
            rows_written=progress.rows,
            progress_at=timezone.now(),
        )

    try:
        manifest = clinic_export_write(clinic=clinic, target=partial, report=report)
        os.replace(partial, final)
    except Exception as error:  # noqa: BLE001 - any failure ends the job as failed, with its kind (no data) shown
        partial.unlink(missing_ok=True)
        log.warning("clinic export %s failed (%s)", export.public_id, type(error).__name__)
        ClinicExport.objects.for_clinic(clinic).filter(pk=export.pk).update(
            state=ExportState.FAILED, finished_at=timezone.now(), error=f"The export stopped ({type(error).__name__})."
        )
        return ExportState.FAILED
    finished = timezone.now()
    ClinicExport.objects.for_clinic(clinic).filter(pk=export.pk).update(
        state=ExportState.DONE,
        models_done=len(manifest["models"]),
        models_total=len(manifest["models"]),
        rows_written=manifest["rows_total"],
        file_name=name,
        file_size=final.stat().st_size,
        link_nonce=secrets.token_urlsafe(32),
        finished_at=finished,
        progress_at=finished,
        expires_at=finished + dt.timedelta(hours=settings.PRIVACY_EXPORT_LINK_HOURS),
    )
    return ExportState.DONE


# --- The download, once ----------------------------------------------------------------------------------------------


def download_token(export: ClinicExport) -> str:
    """The download link's token: the export's random nonce, signed with SECRET_KEY (unguessable, and useless for
    another export)."""
    return signing.Signer(salt=LINK_SALT).sign(f"{export.public_id}:{export.link_nonce}")


def downloadable(export: ClinicExport) -> bool:
    """Whether its link gives the file now: done, not downloaded, its file still there, not expired."""
    return (
        export.state == ExportState.DONE
        and export.downloaded_at is None
        and bool(export.file_name)
        and export.expires_at is not None
        and export.expires_at > timezone.now()
    )


def token_matches(export: ClinicExport, token: str) -> bool:
    try:
        value = signing.Signer(salt=LINK_SALT).unsign(token)
    except signing.BadSignature:
        return False
    return bool(export.link_nonce) and secrets.compare_digest(value, f"{export.public_id}:{export.link_nonce}")


class DownloadRefusedError(Exception):
    """The link cannot give the file (used, expired, not ready); the message says which."""


def clinic_export_take(*, clinic: Clinic, actor: User, export: ClinicExport) -> IO[bytes]:
    """Hand out the export's zip once: claim it (a conditional UPDATE: two clicks give one file), audit it, and
    return the open file, whose name is already deleted from disk (the open handle reads it to the end)."""
    now = timezone.now()
    if export.downloaded_at is not None:
        raise DownloadRefusedError("used")
    if export.state != ExportState.DONE or not export.file_name:
        raise DownloadRefusedError("expired" if export.state == ExportState.DONE else "not ready")
    if export.expires_at is None or export.expires_at <= now:
        raise DownloadRefusedError("expired")
    path = export_dir() / export.file_name
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DownloadRefusedError("expired") from None
    with transaction.atomic():
        taken = (
            ClinicExport.objects.for_clinic(clinic)
            .filter(pk=export.pk, downloaded_at__isnull=True, state=ExportState.DONE)
            .update(downloaded_at=now, downloaded_by=actor, file_name="")
        )
        if not taken:
            handle.close()
            raise DownloadRefusedError("used")
        audit_record(
            clinic=clinic,
            actor=actor,
            action="clinic_export.downloaded",
            target=export,
            detail={"bytes": export.file_size, "rows": export.rows_written},
        )
    path.unlink(missing_ok=True)
    return handle


# --- Beat's sweep ---------------------------------------------------------------------------------------------------


def clinic_export_sweep() -> int:
    """Every minute: run queued exports whose nudge was lost (asked for over a minute ago), fail running ones whose
    worker stopped (no progress for PRIVACY_EXPORT_STALE_MINUTES), and delete the files of links that expired.
    Returns how many rows it acted on."""
    now = timezone.now()
    acted = 0
    # Every clinic's: beat has no clinic; each row is then handled by its own id.
    lost = list(
        ClinicExport.objects.filter(state=ExportState.QUEUED, created_at__lt=now - dt.timedelta(minutes=1))
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    for export_id in lost:
        nudge(tasks.clinic_export_run, export_id)
    acted += len(lost)
    stale = now - dt.timedelta(minutes=settings.PRIVACY_EXPORT_STALE_MINUTES)
    acted += ClinicExport.objects.filter(state=ExportState.RUNNING, progress_at__lt=stale).update(
        state=ExportState.FAILED, finished_at=now, error="The export stopped (its worker went away)."
    )
    for export_id, file_name in (
        ClinicExport.objects.filter(expires_at__lte=now).exclude(file_name="").values_list("pk", "file_name")
    ):
        (export_dir() / file_name).unlink(missing_ok=True)
        ClinicExport.objects.filter(pk=export_id).update(file_name="")
        acted += 1
    return acted
