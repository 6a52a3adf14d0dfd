"""The clinic export (issue 24 item 5): a zip of CSV and JSON per model with a manifest, made by a Celery job,
downloadable once; `manage.py clinic_export` for operators."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, Membership, Practitioner, Role
from fhir_api.models import Consumer
from privacy.models import ClinicExport, ExportState
from privacy.selectors.clinic_export import EXCLUDED_COLUMNS, UnplannedModelError, export_plan
from privacy.services import clinic_export as services
from tests.celery_worker import celery_worker, eventually, produce, worker_database_url
from tests.conftest import logged_in_client, tasks_in_process
from tests.factories import ClinicFactory, MembershipFactory
from tests.privacy.clinic_data import ClinicData, clinic_with_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path: Path) -> Path:
    settings.PRIVACY_EXPORT_DIR = tmp_path / "exports"
    return settings.PRIVACY_EXPORT_DIR


def read_zip(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(files["manifest.json"]), files


def expected_rows(label: str, clinic) -> set[int]:
    """The primary keys of a model's rows that belong to the clinic, found independently of the export's plan."""
    model = apps.get_model(label)
    manager = model._default_manager
    if label == "clinic.Clinic":
        return {clinic.pk}
    if label == "auth.User":
        members = Membership.objects.for_clinic(clinic).values("user_id")
        practitioners = Practitioner.objects.for_clinic(clinic).values("user_id")
        return set(
            get_user_model().objects.filter(Q(pk__in=members) | Q(pk__in=practitioners)).values_list("pk", flat=True)
        )
    if label == "oauth2_provider.Application":
        return set(Consumer.objects.for_clinic(clinic).values_list("application_id", flat=True))
    if any(field.name == "clinic" for field in model._meta.concrete_fields):
        return set(manager.filter(clinic=clinic).values_list("pk", flat=True))
    # Django's many-to-many tables: rows whose owner (the side with a clinic) is the clinic's.
    owner = next(f for f in model._meta.concrete_fields if f.is_relation and hasattr(f.related_model, "clinic"))
    return set(manager.filter(**{f"{owner.name}__clinic": clinic}).values_list("pk", flat=True))


def exported_ids(files: dict[str, bytes], entry: dict[str, Any]) -> tuple[set[int], set[int]]:
    """The primary keys in a model's JSON file and in its CSV file."""
    pk = entry["columns"][0]
    from_json = {row[pk] for row in json.loads(files[entry["files"]["json"]["name"]])}
    rows = list(csv.DictReader(io.StringIO(files[entry["files"]["csv"]["name"]].decode())))
    return from_json, {int(row[pk]) for row in rows}


@pytest.fixture
def two_clinics():
    return clinic_with_data(ClinicFactory(name="North"), "North"), clinic_with_data(
        ClinicFactory(name="South"), "South"
    )


def test_every_model_of_the_project_is_decided_once():
    plan = export_plan()
    exported = [part.label for part in plan.parts]
    left_out = [item.label for item in plan.excluded]
    every = [model._meta.label for model in apps.get_models(include_auto_created=True)]
    assert sorted(exported + left_out) == sorted(every)
    assert all(item.reason for item in plan.excluded)
    # The tenant's own rows and those reached through a foreign key are exported; secrets are not.
    assert {"clinic.Clinic", "auth.User", "patients.Patient", "scheduling.Appointment_resources"} <= set(exported)
    assert {"oauth2_provider.AccessToken", "sessions.Session", "axes.AccessAttempt"} <= set(left_out)


def test_a_model_nobody_decided_stops_the_export(monkeypatch):
    from privacy.selectors import clinic_export as selectors

    # Take a decision away: the Application model (no clinic column) is then unknown.
    monkeypatch.delitem(selectors.THROUGH_CHAIN, "oauth2_provider.Application")
    with pytest.raises(UnplannedModelError, match="oauth2_provider.Application"):
        export_plan()


def test_the_manifest_counts_equal_the_database_and_no_other_clinics_row_is_in_any_file(two_clinics, tmp_path):
    north, south = two_clinics
    manifest, files = read_zip(_write(north, tmp_path))
    assert manifest["clinic"]["slug"] == north.clinic.slug
    by_model = {entry["model"]: entry for entry in manifest["models"]}
    assert set(by_model) == {part.label for part in export_plan().parts}
    nonempty = 0
    for label, entry in by_model.items():
        mine, theirs = expected_rows(label, north.clinic), expected_rows(label, south.clinic)
        from_json, from_csv = exported_ids(files, entry)
        assert entry["rows"] == len(mine), label
        assert from_json == from_csv == mine, label
        assert not from_json & (theirs - mine), label  # (users of both clinics would be in both; none here)
        nonempty += bool(mine)
    # The data reached most tables: the counts above compared real rows.
    assert nonempty >= 25, nonempty
    assert manifest["rows_total"] == sum(entry["rows"] for entry in manifest["models"])
    everything = b"".join(files.values()).decode()
    for word in north.words:
        assert word in everything, word
    for word in south.words:
        assert word not in everything, word


def test_no_secret_is_in_the_zip_and_the_manifest_says_what_was_left_out(two_clinics, tmp_path):
    north, _ = two_clinics
    manifest, files = read_zip(_write(north, tmp_path))
    everything = b"".join(files.values()).decode()
    assert len(north.secrets) >= 14
    for secret in north.secrets:
        assert secret and secret not in everything, "a secret is in the export"
    left_out = {(item["model"], item["column"]) for item in manifest["excluded_columns"]}
    assert {(model, column) for model, columns in EXCLUDED_COLUMNS.items() for column in columns} == left_out
    excluded_models = {item["model"]: item["reason"] for item in manifest["excluded_models"]}
    assert "secret" in excluded_models["oauth2_provider.AccessToken"]
    for entry in manifest["models"]:
        assert not {"password", "token_hash", "client_secret", "refresh_token"} & set(entry["columns"]), entry["model"]


def test_each_file_is_as_the_manifest_describes_it(two_clinics, tmp_path):
    north, _ = two_clinics
    manifest, files = read_zip(_write(north, tmp_path))
    named = {"manifest.json"}
    for entry in manifest["models"]:
        for kind in ("csv", "json"):
            described = entry["files"][kind]
            content = files[described["name"]]
            named.add(described["name"])
            assert hashlib.sha256(content).hexdigest() == described["sha256"]
            assert len(content) == described["bytes"]
        header = next(csv.reader(io.StringIO(files[entry["files"]["csv"]["name"]].decode())))
        assert header == entry["columns"]
    assert named == set(files)
    leaves = dict(MigrationLoader(connection, ignore_no_migrations=True).graph.leaf_nodes())
    assert manifest["migrations"]["privacy"] == leaves["privacy"]
    assert manifest["migrations"]["scheduling"] == leaves["scheduling"]
    assert manifest["app_version"] and manifest["generated_at"]


def _write(data: ClinicData, tmp_path: Path) -> Path:
    target = tmp_path / f"{data.tag}.zip"
    services.clinic_export_write(clinic=data.clinic, target=target)
    return target


# --- The job and the page ------------------------------------------------------------------------------------------


def export_url() -> str:
    return reverse("privacy:clinic-export")


def start(client) -> ClinicExport:
    """Ask for an export as an admin does; the nudged task runs in this process once the request commits."""
    from django.test import TestCase

    with tasks_in_process(), TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(export_url())
    assert response.status_code == 302
    return ClinicExport.objects.latest("created_at")


def download_link(client) -> str:
    page = client.get(export_url()).content.decode()
    marker = "/download/"
    at = page.index(marker)
    start_at = page.rindex('href="', 0, at) + len('href="')
    return page[start_at : page.index('"', at)]


def test_an_admin_exports_in_process_sees_it_done_and_downloads_it_once(clinic_a, admin_a, admin_client_a, export_dir):
    clinic_with_data(clinic_a, "Alpha")
    export = start(admin_client_a)
    export.refresh_from_db()
    assert export.state == ExportState.DONE and export.requested_by == admin_a.user
    assert export.models_done == export.models_total == len(export_plan().parts)
    assert export.rows_written > 20
    stored = export_dir / export.file_name
    assert stored.exists() and stored.is_relative_to(export_dir)
    page = admin_client_a.get(export_url()).content.decode()
    assert "Download zip (once)" in page and "hx-trigger" not in page  # done: no more polling

    url = download_link(admin_client_a)
    response = admin_client_a.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["rows_total"] == export.rows_written
    assert not stored.exists()  # the file is gone once handed out

    again = admin_client_a.get(url)
    assert again.status_code == 410 and "has been used" in again.content.decode()
    page = admin_client_a.get(export_url()).content.decode()
    assert "the link has been used" in page and "Download zip (once)" not in page
    actions = list(
        AuditEvent.objects.for_clinic(clinic_a).filter(object_id=str(export.public_id)).values_list("action", flat=True)
    )
    assert sorted(actions) == ["clinic_export.downloaded", "clinic_export.requested"]


def test_progress_is_shown_and_polled_while_the_export_runs(clinic_a, admin_a, admin_client_a):
    ClinicExport.objects.create(
        clinic=clinic_a, requested_by=admin_a.user, state=ExportState.RUNNING, models_total=56, models_done=12,
        rows_written=3400,
    )  # fmt: skip
    page = admin_client_a.get(export_url()).content.decode()
    assert "Running: 12 of 56 kinds of record, 3400 rows" in page
    assert 'hx-trigger="every 2s"' in page and "<progress" in page
    assert "disabled" in page  # no second export while one runs
    fragment = admin_client_a.get(export_url(), headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="exports"') and "<html" not in fragment
    refused = admin_client_a.post(export_url(), follow=True)
    assert "already under way" in refused.content.decode()
    assert ClinicExport.objects.for_clinic(clinic_a).count() == 1


def test_an_expired_link_is_refused_and_beat_deletes_its_file(clinic_a, admin_client_a, export_dir):
    export = start(admin_client_a)
    export.refresh_from_db()
    url = download_link(admin_client_a)
    ClinicExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = admin_client_a.get(url)
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert (export_dir / export.file_name).exists()
    services.clinic_export_sweep()
    assert not (export_dir / export.file_name).exists()
    assert admin_client_a.get(url).status_code == 410
    assert "The link expired" in admin_client_a.get(export_url()).content.decode()


def test_a_link_with_a_wrong_token_is_a_404(clinic_a, admin_client_a):
    start(admin_client_a)
    url = download_link(admin_client_a)
    export_id = url.split("/")[3]
    token = url.split("/")[5]
    assert (
        admin_client_a.get(reverse("privacy:clinic-export-download", args=[export_id, token + "x"])).status_code == 404
    )
    assert admin_client_a.get(reverse("privacy:clinic-export-download", args=[export_id, "made-up"])).status_code == 404
    assert admin_client_a.get(url).status_code == 200  # the real one still works (once)


def test_another_clinics_export_is_a_404_even_with_its_link(clinic_a, admin_client_a, outsider_client):
    start(admin_client_a)
    url = download_link(admin_client_a)
    assert outsider_client.get(url).status_code == 404
    assert "clinic-a" not in outsider_client.get(export_url()).content.decode()
    assert admin_client_a.get(url).status_code == 200


def test_members_who_are_not_admins_are_refused(clinic_a, admin_client_a, reception_client_a):
    start(admin_client_a)
    url = download_link(admin_client_a)
    assert reception_client_a.get(export_url()).status_code == 403
    assert reception_client_a.post(export_url()).status_code == 403
    assert reception_client_a.get(url).status_code == 403
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    assert clinician.get(export_url()).status_code == 403
    assert admin_client_a.get(url).status_code == 200  # the refusals did not use the link


def test_the_page_reads_a_bounded_number_of_queries(clinic_a, admin_a, admin_client_a, django_assert_num_queries):
    def add(count):
        for n in range(count):
            other = MembershipFactory(clinic=clinic_a, role=Role.ADMIN).user
            ClinicExport.objects.create(
                clinic=clinic_a, requested_by=other, state=ExportState.DONE, file_name=f"x{n}.zip", link_nonce=f"n{n}",
                downloaded_at=timezone.now(), downloaded_by=admin_a.user, finished_at=timezone.now(),
            )  # fmt: skip

    add(1)
    admin_client_a.get(export_url())  # the session's first save is not the page's
    with django_assert_num_queries(4) as small:
        assert admin_client_a.get(export_url()).status_code == 200
    add(12)
    with django_assert_num_queries(len(small.captured_queries)):
        assert admin_client_a.get(export_url()).status_code == 200


def test_the_page_says_when_there_is_no_export_yet(admin_client_a):
    page = admin_client_a.get(export_url()).content.decode()
    assert "No export has been made yet" in page
    assert 'href="/privacy/export/"' in admin_client_a.get(reverse("clinic:settings")).content.decode()


# --- Beat's sweep ---------------------------------------------------------------------------------------------------


def test_the_sweep_runs_a_queued_export_whose_nudge_was_lost_and_fails_a_stopped_one(clinic_a, admin_a, export_dir):
    old = timezone.now() - dt.timedelta(minutes=5)
    lost = ClinicExport.objects.create(clinic=clinic_a, requested_by=admin_a.user)
    fresh = ClinicExport.objects.create(clinic=clinic_a, requested_by=admin_a.user)
    stopped = ClinicExport.objects.create(clinic=clinic_a, requested_by=admin_a.user, state=ExportState.RUNNING)
    ClinicExport.objects.filter(pk=lost.pk).update(created_at=old)
    ClinicExport.objects.filter(pk=stopped.pk).update(progress_at=old - dt.timedelta(hours=1))
    from django.test import TestCase

    with tasks_in_process(), TestCase.captureOnCommitCallbacks(execute=True):
        services.clinic_export_sweep()
    states = dict(ClinicExport.objects.values_list("pk", "state"))
    assert states == {lost.pk: ExportState.DONE, fresh.pk: ExportState.QUEUED, stopped.pk: ExportState.FAILED}
    lost.refresh_from_db()
    assert (export_dir / lost.file_name).exists()
    assert services.clinic_export_run(lost.pk) == ""  # claimed once: a second run (nudge and sweep) does nothing


def test_a_failed_export_says_so_and_leaves_no_file(clinic_a, admin_a, admin_client_a, export_dir, monkeypatch):
    from privacy.selectors import clinic_export as selectors

    monkeypatch.delitem(selectors.THROUGH_CHAIN, "auth.User")  # an undecided model: the plan refuses
    export = start(admin_client_a)
    export.refresh_from_db()
    assert export.state == ExportState.FAILED and "UnplannedModelError" in export.error
    assert not export_dir.exists() or not any(export_dir.iterdir())
    assert "Failed" in admin_client_a.get(export_url()).content.decode()


# --- manage.py clinic_export ----------------------------------------------------------------------------------------


def test_the_command_writes_the_same_export_and_prints_progress(two_clinics, tmp_path):
    north, south = two_clinics
    target = tmp_path / "north.zip"
    out = io.StringIO()
    call_command("clinic_export", north.clinic.slug, "--output", str(target), stdout=out)
    printed = out.getvalue()
    total = len(export_plan().parts)
    assert f"1/{total} models" in printed and f"{total}/{total} models" in printed and "Wrote" in printed
    manifest, files = read_zip(target)
    by_model = {entry["model"]: entry["rows"] for entry in manifest["models"]}
    assert by_model["patients.Patient"] == 3 and by_model["clinic.Clinic"] == 1
    assert "South" not in b"".join(files.values()).decode()
    assert AuditEvent.objects.for_clinic(north.clinic).filter(action="clinic_export.written").count() == 1
    with pytest.raises(CommandError, match="exists already"):
        call_command("clinic_export", north.clinic.slug, "--output", str(target), stdout=io.StringIO())
    with pytest.raises(CommandError, match="No clinic"):
        call_command("clinic_export", "no-such-clinic", "--output", str(tmp_path / "x.zip"), stdout=io.StringIO())


# --- A real worker -------------------------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_on_redis_writes_the_export_the_request_queued(clinic_a, admin_a, export_dir):
    clinic_with_data(clinic_a, "Worker")
    with celery_worker(worker_database_url(), PRIVACY_EXPORT_DIR=str(export_dir)) as (queue, env, _):
        # The request's service in a web-like process with the broker (its nudge goes to this worker's queue).
        produce(
            env,
            "from clinic.celery import app\n"
            f"app.conf.task_default_queue = {queue!r}\n"
            "from clinic.models import Clinic\n"
            "from django.contrib.auth import get_user_model\n"
            "from privacy.services.clinic_export import clinic_export_request\n"
            f"clinic = Clinic.objects.get(pk={clinic_a.pk})\n"
            f"user = get_user_model().objects.get(pk={admin_a.user.pk})\n"
            "print(clinic_export_request(clinic=clinic, actor=user).pk)\n",
        )
        export = eventually(
            lambda: ClinicExport.objects.filter(clinic=clinic_a, state=ExportState.DONE).first(),
            "finish the export",
            90,
        )
    assert export.models_done == len(export_plan().parts)
    client = logged_in_client(admin_a)
    response = client.get(download_link(client))
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    patients = next(entry for entry in manifest["models"] if entry["model"] == "patients.Patient")
    assert patients["rows"] == 3 and manifest["database"] == (
        "postgresql" if "postgres" in worker_database_url() else "sqlite"
    )


def test_without_server_side_cursors_rows_are_read_in_pages_of_the_chunk_size(clinic_a, settings, tmp_path):
    """Behind PgBouncer (DATABASE_POOLER=pgbouncer) Django has no server-side cursors, and `.iterator()` would fetch a
    whole table in one result: the export reads each model in keyset pages instead, so memory stays bounded."""
    from django.test.utils import CaptureQueriesContext

    from patients.models import Patient
    from tests.factories import PatientFactory

    PatientFactory.create_batch(5, clinic=clinic_a)
    settings.PRIVACY_EXPORT_CHUNK = 2
    table = Patient._meta.db_table
    disabled = connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS", False)
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    try:
        with CaptureQueriesContext(connection) as queries:
            manifest = services.clinic_export_write(clinic=clinic_a, target=tmp_path / "paged.zip")
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = disabled
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    reads = [sql for sql in selects if f'FROM "{table}"' in sql]
    assert len(reads) == 3  # 2 + 2 + 1 rows: the short page is the last
    assert all("LIMIT 2" in sql for sql in reads)
    (entry,) = [m for m in manifest["models"] if m["table"] == table]
    assert entry["rows"] == 5
    _, files = read_zip(tmp_path / "paged.zip")
    from_json, from_csv = exported_ids(files, entry)
    assert from_json == from_csv == set(Patient.objects.filter(clinic=clinic_a).values_list("pk", flat=True))
