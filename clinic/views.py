"""Home, clinic switching, health, and the clinic admin pages (our own UI, not Django admin)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import PasswordResetForm
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic import selectors, services, signin
from clinic.access import ClinicRequest, admin_required, public, scoped_get_or_404
from clinic.forms import (
    ClinicSettingsForm,
    DepartmentForm,
    LocationForm,
    MemberAddForm,
    MemberEditForm,
    PractitionerForm,
    TenantForm,
)
from clinic.htmx import page_or_fragment
from clinic.middleware import ACTIVE_CLINIC_SESSION_KEY, VIEWER_ZONE_COOKIE
from clinic.models import Department, Location, Practitioner, validate_time_zone
from clinic.numbers import whole_number


@require_GET
def home(request: ClinicRequest) -> HttpResponse:
    overview = selectors.clinic_overview(clinic=request.clinic)
    return render(request, "clinic/home.html", {"overview": overview})


@public
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@require_POST
def clinic_switch(request: ClinicRequest) -> HttpResponse:
    try:
        clinic_id = uuid.UUID(request.POST.get("clinic", ""))
    except ValueError:
        raise Http404("No such clinic.") from None
    # The middleware has already loaded the user's memberships: no second query.
    membership = next((m for m in request.memberships if m.clinic.public_id == clinic_id), None)
    if membership is None:
        raise Http404("No such clinic.")
    request.session[ACTIVE_CLINIC_SESSION_KEY] = membership.clinic_id
    messages.success(request, f"Now working in {membership.clinic.name}.")
    return redirect("home")


@require_POST
def viewer_time_zone(request: ClinicRequest) -> HttpResponse:
    """The browser reports its time zone; pages then show times in it (kept in a cookie)."""
    name = request.POST.get("time_zone", "")
    try:
        validate_time_zone(name)
    except ValidationError as error:
        return HttpResponse(error.messages[0], status=400, content_type="text/plain")
    changed = request.COOKIES.get(VIEWER_ZONE_COOKIE) != name
    response = HttpResponse(status=204)
    response.set_cookie(
        VIEWER_ZONE_COOKIE,
        name,
        max_age=365 * 24 * 3600,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    response["X-Zone-Changed"] = "1" if changed else "0"
    return response


@admin_required
@require_http_methods(["GET", "POST"])
def clinic_settings(request: ClinicRequest) -> HttpResponse:
    form = ClinicSettingsForm(request.POST or None, instance=request.clinic)
    if request.method == "POST" and form.is_valid():
        services.clinic_settings_update(clinic=request.clinic, actor=request.user, form=form)
        messages.success(request, "Clinic settings saved.")
        return redirect("clinic:settings")
    return render(request, "clinic/settings.html", {"form": form})


# --- Locations, departments and practitioners share one list/edit pair ---------------


@dataclass(frozen=True)
class TenantAdminPage:
    """How one kind of tenant object is listed and edited on the clinic admin pages."""

    key: str
    model: type[Model]
    form_class: type[TenantForm]
    singular: str
    plural: str
    list_template: str

    def queryset(self, request: ClinicRequest) -> QuerySet[Any]:
        select = {
            "locations": selectors.locations_list,
            "departments": selectors.departments_list,
            "practitioners": selectors.practitioners_list,
        }[self.key]
        return select(clinic=request.clinic)


PAGES = {
    page.key: page
    for page in (
        TenantAdminPage("locations", Location, LocationForm, "location", "locations", "clinic/locations.html"),
        TenantAdminPage(
            "departments", Department, DepartmentForm, "department", "departments", "clinic/departments.html"
        ),
        TenantAdminPage(
            "practitioners",
            Practitioner,
            PractitionerForm,
            "practitioner",
            "practitioners",
            "clinic/practitioners.html",
        ),
    )
}


@admin_required
@require_GET
def tenant_list(request: ClinicRequest, page: str) -> HttpResponse:
    spec = PAGES[page]
    return render(request, spec.list_template, {"page": spec, "objects": spec.queryset(request)})


@admin_required
@require_http_methods(["GET", "POST"])
def tenant_edit(request: ClinicRequest, page: str, public_id: UUID | None = None) -> HttpResponse:
    spec = PAGES[page]
    instance = scoped_get_or_404(spec.model, request.clinic, public_id=public_id) if public_id else None
    form = spec.form_class(request.POST or None, instance=instance, clinic=request.clinic)
    if request.method == "POST" and form.is_valid():
        obj = services.tenant_object_save(clinic=request.clinic, actor=request.user, form=form)
        messages.success(request, f"{spec.singular.capitalize()} “{obj}” saved.")
        return redirect(f"clinic:{spec.key}")
    return render(request, "clinic/tenant_form.html", {"page": spec, "form": form, "object": instance})


# --- Members -------------------------------------------------------------------------


@admin_required
@require_GET
def member_list(request: ClinicRequest) -> HttpResponse:
    members = signin.with_two_factor(selectors.members_list(clinic=request.clinic))
    return render(request, "clinic/members.html", {"members": members})


@admin_required
@require_http_methods(["GET", "POST"])
def member_add(request: ClinicRequest) -> HttpResponse:
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership, new_user = services.member_add(
                clinic=request.clinic,
                actor=request.user,
                email=form.cleaned_data["email"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                role=form.cleaned_data["role"],
                permissions=form.permissions,
            )
        except ValidationError as error:
            form.add_error("email", error)
        else:
            if new_user:
                _send_set_password_email(request, membership.user.email)
                messages.success(request, f"{membership.user.email} added; we emailed a link to choose a password.")
            else:
                messages.success(request, f"{membership.user.email} added; they can switch to this clinic now.")
            return redirect("clinic:members")
    return render(request, "clinic/member_form.html", {"form": form})


def _send_set_password_email(request: ClinicRequest, email: str) -> None:
    reset = PasswordResetForm({"email": email})
    if reset.is_valid():
        reset.save(
            request=request,
            use_https=request.is_secure(),
            subject_template_name="registration/welcome_subject.txt",
            email_template_name="registration/welcome_email.txt",
            extra_email_context={"clinic_name": request.clinic.name},
        )


@admin_required
@require_http_methods(["GET", "POST"])
def member_edit(request: ClinicRequest, member: UUID) -> HttpResponse:
    membership = scoped_get_or_404(selectors.members_list(clinic=request.clinic), request.clinic, public_id=member)
    form = MemberEditForm.for_membership(membership, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.member_update(
                clinic=request.clinic,
                actor=request.user,
                membership=membership,
                role=form.cleaned_data["role"],
                permissions=form.permissions,
                is_active=form.cleaned_data["is_active"],
                department=form.cleaned_data["department"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Saved {membership.user.email}.")
            return redirect("clinic:members")
    return render(request, "clinic/member_form.html", {"form": form, "membership": membership})


@admin_required
@require_http_methods(["GET", "POST"])
def member_remove(request: ClinicRequest, member: UUID) -> HttpResponse:
    membership = scoped_get_or_404(selectors.members_list(clinic=request.clinic), request.clinic, public_id=member)
    error = None
    if request.method == "POST":
        try:
            services.member_remove(clinic=request.clinic, actor=request.user, membership=membership)
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            messages.success(request, f"{membership.user.email} no longer has access to {request.clinic.name}.")
            return redirect("clinic:members")
    return render(request, "clinic/member_remove.html", {"membership": membership, "error": error})


@admin_required
@require_GET
def audit_log(request: ClinicRequest) -> HttpResponse:
    paginator = Paginator(selectors.audit_events_list(clinic=request.clinic), 50)
    page = paginator.get_page(whole_number(request.GET.get("page")))  # anything else: the first page
    # One view, two shapes: the whole page, or just the table when htmx pages through it.
    template = page_or_fragment(request, "clinic/audit.html", "audit-table")
    return render(request, template, {"page_obj": page})
