from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clinic.access import ClinicRequest, permission_required
from clinic.models import NamedPermission


@permission_required(NamedPermission.MANAGE_SESSIONS)
@require_GET
def setup_index(request: ClinicRequest) -> HttpResponse:
    return render(request, "sessions_setup/index.html")
