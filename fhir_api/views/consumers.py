"""The admins' page of FHIR API consumers: add one (its client id and secret shown once), change what it may do,
rotate its secret, revoke it; with each one's recent calls."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages as flash
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, admin_required, scoped_get_or_404
from fhir_api.forms import ConsumerForm
from fhir_api.models import Consumer
from fhir_api.selectors.consumers import consumer_list_rows, recent_calls
from fhir_api.services import consumers as services
from fhir_api.services.consumers import Credentials


def _credentials_page(request: ClinicRequest, credentials: Credentials, *, new: bool) -> HttpResponse:
    context = {
        "consumer": credentials.consumer,
        "credentials": credentials,
        "new": new,
        "token_url": request.build_absolute_uri(reverse("fhir_api:token")),
        "base_url": request.build_absolute_uri("/fhir"),
    }
    return render(request, "fhir_api/credentials.html", context)


@admin_required
@require_GET
def consumer_list(request: ClinicRequest) -> HttpResponse:
    context = {
        "rows": consumer_list_rows(request.clinic),
        "base_url": request.build_absolute_uri("/fhir"),
        "token_url": request.build_absolute_uri(reverse("fhir_api:token")),
    }
    return render(request, "fhir_api/consumers.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def consumer_add(request: ClinicRequest) -> HttpResponse:
    form = ConsumerForm(request.POST or None, clinic=request.clinic)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        credentials = services.consumer_create(
            clinic=request.clinic,
            actor=request.user,
            name=data["name"],
            organisation_type=data["organisation_type"],
            ods_code=data["ods_code"],
            scopes=data["scopes"],
            slot_types=list(data["slot_types"]),
            rate_limit=data["rate_limit"],
        )
        return _credentials_page(request, credentials, new=True)
    return render(
        request, "fhir_api/consumer_form.html", {"form": form, "consumer": None}, status=400 if form.errors else 200
    )


@admin_required
@require_http_methods(["GET", "POST"])
def consumer_edit(request: ClinicRequest, consumer: UUID) -> HttpResponse:
    found = scoped_get_or_404(Consumer, request.clinic, public_id=consumer)
    initial = {
        "name": found.name,
        "organisation_type": found.organisation_type,
        "ods_code": found.ods_code,
        "scopes": found.scope_list,
        "slot_types": list(found.slot_types.all()),
        "rate_limit": found.rate_limit,
    }
    form = ConsumerForm(request.POST or None, initial=initial, clinic=request.clinic, consumer=found)
    if request.method == "POST" and found.revoked_at is None and form.is_valid():
        data = form.cleaned_data
        services.consumer_update(
            clinic=request.clinic,
            actor=request.user,
            consumer=found,
            name=data["name"],
            organisation_type=data["organisation_type"],
            ods_code=data["ods_code"],
            scopes=data["scopes"],
            slot_types=list(data["slot_types"]),
            rate_limit=data["rate_limit"],
        )
        flash.success(request, f"Saved {data['name']}.")
        return redirect("fhir_api:consumers")
    context = {"form": form, "consumer": found, "calls": recent_calls(request.clinic, found)}
    return render(request, "fhir_api/consumer_form.html", context, status=400 if form.errors else 200)


@admin_required
@require_http_methods(["GET", "POST"])
def consumer_rotate(request: ClinicRequest, consumer: UUID) -> HttpResponse:
    found = scoped_get_or_404(Consumer, request.clinic, public_id=consumer)
    if found.revoked_at is not None:
        flash.error(request, f"{found.name} is revoked: add a new consumer instead.")
        return redirect("fhir_api:consumers")
    if request.method == "POST":
        return _credentials_page(
            request, services.consumer_rotate(clinic=request.clinic, actor=request.user, consumer=found), new=False
        )
    return render(request, "fhir_api/confirm.html", {"consumer": found, "action": "rotate"})


@admin_required
@require_http_methods(["GET", "POST"])
def consumer_revoke(request: ClinicRequest, consumer: UUID) -> HttpResponse:
    found = scoped_get_or_404(Consumer, request.clinic, public_id=consumer)
    if request.method == "POST":
        services.consumer_revoke(clinic=request.clinic, actor=request.user, consumer=found)
        flash.success(request, f"Revoked {found.name}: its tokens no longer work.")
        return redirect("fhir_api:consumers")
    return render(request, "fhir_api/confirm.html", {"consumer": found, "action": "revoke"})
