"""manage.py clinic_export <slug> [--output path.zip]: the admins' Export clinic data, for operators, at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from clinic.models import Clinic
from clinic.services import audit_record
from privacy.services.clinic_export import Progress, clinic_export_write


class Command(BaseCommand):
    help = "Export one clinic's whole data to a zip (a CSV and a JSON file per model, and manifest.json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the clinic's slug (as in its online booking address)")
        parser.add_argument("--output", "-o", help="the zip to write (default: <slug>-export-<date>.zip here)")

    def handle(self, *args: Any, **options: Any) -> None:
        clinic = Clinic.objects.filter(slug=options["slug"]).first()
        if clinic is None:
            raise CommandError(f"No clinic has the slug {options['slug']!r}.")
        target = Path(options["output"] or f"{clinic.slug}-export-{timezone.now():%Y-%m-%d}.zip")
        if target.exists():
            raise CommandError(f"{target} exists already: choose another --output.")

        def report(progress: Progress, label: str) -> None:
            self.stdout.write(
                f"{progress.models_done}/{progress.models_total} models, {progress.rows} rows ({label})", ending="\n"
            )

        manifest = clinic_export_write(clinic=clinic, target=target, report=report)
        audit_record(
            clinic=clinic,
            actor=None,
            action="clinic_export.written",
            detail={"by": "manage.py clinic_export", "rows": manifest["rows_total"], "models": len(manifest["models"])},
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {target}: {len(manifest['models'])} models, {manifest['rows_total']} rows "
                f"({len(manifest['excluded_models'])} models and {len(manifest['excluded_columns'])} columns left out: "
                "see manifest.json)."
            )
        )
