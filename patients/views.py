from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clinic.access import ClinicRequest


@require_GET
def patient_list(request: ClinicRequest) -> HttpResponse:
    return render(request, "patients/list.html")
