"""Break-glass: the page where a member gives their reason to open a blocked patient, and the privacy officers'
Break-glass review (the list, one use, closing its review)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, permission_required, scoped_get_or_404
from clinic.models import NamedPermission
from patients.models import Patient, may_see_blocked
from privacy.forms import BreakGlassForm, ReviewForm
from privacy.models import BREAK_GLASS_MINUTES, BreakGlass
from privacy.selectors import breakglass as selectors
from privacy.services import breakglass as services

officers_only = permission_required(NamedPermission.PRIVACY_OFFICER)


def next_url(request: ClinicRequest, patient: Patient) -> str:
    """Where to go once glass is broken: the address the member came for (on this site only), else the record."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted.startswith("/") and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        return wanted
    return reverse("patients:detail", args=[patient.public_id])


@require_http_methods(["GET", "POST"])
def break_glass(request: ClinicRequest, patient: UUID) -> HttpResponse:
    """Break glass for one patient: a reason, its category and a confirmation; then the record (or Book
    Appointment) for BREAK_GLASS_MINUTES. The page never names the patient: the member may not see them yet."""
    obj = scoped_get_or_404(Patient, request.clinic, public_id=patient)
    go_to = next_url(request, obj)
    if not obj.is_blocked or may_see_blocked(request.membership):
        return render(request, "privacy/breakglass_not_needed.html", {"go_to": go_to})
    grant = selectors.live_grant(membership=request.membership, patient=obj, now=timezone.now())
    if grant is not None:
        return redirect(go_to)
    form = BreakGlassForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            use = services.break_glass(
                clinic=request.clinic,
                actor=request.user,
                membership=request.membership,
                patient=obj,
                category=form.cleaned_data["category"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as refusal:
            form.add_error(None, refusal)
        else:
            until = use.expires_at.astimezone(request.viewer_zone)
            messages.warning(
                request,
                f"Break-glass access granted to this record until {until:%H:%M}. Everything you open or book is "
                "recorded, and the privacy officers have been told.",
            )
            return redirect(go_to)
    context = {"form": form, "go_to": go_to, "minutes": BREAK_GLASS_MINUTES, "patient": obj}
    return render(request, "privacy/breakglass_form.html", context, status=422 if request.method == "POST" else 200)


@officers_only
@require_GET
def reviews(request: ClinicRequest) -> HttpResponse:
    """Break-glass review: the open uses (oldest first) or the closed ones."""
    state = "closed" if request.GET.get("state") == "closed" else "open"
    rows = selectors.reviews(clinic=request.clinic, state=state)
    context = {"rows": rows, "state": state, "limit": selectors.LIST_LIMIT}
    return render(request, "privacy/breakglass_reviews.html", context)


@officers_only
@require_http_methods(["GET", "POST"])
def review(request: ClinicRequest, use: UUID) -> HttpResponse:
    """One use: who, which patient, when, why, what they did under it, the alerts; and closing its review."""
    obj = scoped_get_or_404(
        BreakGlass.objects.for_clinic(request.clinic).select_related("membership__user", "patient", "reviewed_by"),
        request.clinic,
        public_id=use,
    )
    own = obj.membership_id == request.membership.pk  # another officer reviews it
    form = ReviewForm(request.POST or None) if obj.is_open and not own else None
    if request.method == "POST" and form is not None and form.is_valid():
        try:
            services.review_close(
                clinic=request.clinic,
                actor=request.user,
                membership=request.membership,
                use=obj,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
            )
        except ValidationError as refusal:
            form.add_error(None, refusal)
        else:
            messages.success(request, "Review closed.")
            return redirect("privacy:reviews")
    context = {"detail": selectors.review_detail(clinic=request.clinic, use=obj), "form": form, "own": own}
    status = 422 if request.method == "POST" and form is not None else 200
    return render(request, "privacy/breakglass_review.html", context, status=status)
