from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clinic.access import ClinicRequest
from clinic.selectors import practitioners_list


@require_GET
def calendar(request: ClinicRequest) -> HttpResponse:
    practitioners = practitioners_list(clinic=request.clinic).filter(is_active=True)
    return render(request, "scheduling/calendar.html", {"practitioners": practitioners})
