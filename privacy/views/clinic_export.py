"""The admins' Export clinic data page: ask for an export, watch its progress (htmx polls the list's partial while
one runs), and download the zip once by its signed link."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages as flash
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, admin_required, scoped_get_or_404
from clinic.htmx import page_or_fragment
from privacy.models import ClinicExport
from privacy.selectors.clinic_export import exports_recent
from privacy.services import clinic_export as services

REFUSALS = {
    "used": "This download link has been used: each export can be downloaded once. Start a new export if you "
    "need another copy.",
    "expired": "This download link has expired and its file was deleted. Start a new export.",
    "not ready": "This export is not ready to download.",
}


@admin_required
@require_http_methods(["GET", "POST"])
def export_page(request: ClinicRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            services.clinic_export_request(clinic=request.clinic, actor=request.user)
        except services.ExportRefusedError as refusal:
            flash.error(request, str(refusal))
        else:
            flash.success(request, "Export started. This page shows its progress; the download link appears here.")
        return redirect("privacy:clinic-export")
    exports = exports_recent(clinic=request.clinic)
    context = {
        "rows": [
            (export, services.download_token(export) if services.downloadable(export) else "") for export in exports
        ],
        "running": any(export.in_progress for export in exports),
        "link_hours": f"{settings.PRIVACY_EXPORT_LINK_HOURS:g}",
    }
    return render(request, page_or_fragment(request, "privacy/clinic_export.html", "exports"), context)


@admin_required
@require_GET
def export_download(request: ClinicRequest, export: UUID, token: str) -> HttpResponse | FileResponse:
    found = scoped_get_or_404(ClinicExport, request.clinic, public_id=export)
    if not services.token_matches(found, token):
        raise Http404("No such download link.")
    try:
        handle = services.clinic_export_take(clinic=request.clinic, actor=request.user, export=found)
    except services.DownloadRefusedError as refusal:
        reason = str(refusal)
        context = {"reason": reason, "message": REFUSALS[reason], "export": found}
        return render(request, "privacy/clinic_export_refused.html", context, status=410)
    filename = f"{request.clinic.slug}-export-{found.created_at:%Y-%m-%d}.zip"
    return FileResponse(handle, as_attachment=True, filename=filename, content_type="application/zip")
