"""Sign-in pages: the password step, the second step, setting up two-factor, recovery codes, the account's
security and sessions pages, the idle timer's endpoint, and the admins' "Sign-in and security" and two-factor
reset. The rules are in clinic/signin.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import segno
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.contrib import messages
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login

from clinic import selectors, services, signin
from clinic.access import ClinicRequest, admin_required, public, scoped_get_or_404
from clinic.forms import SignInForm, SignInSettingsForm, TwoFactorCodeForm


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return resolve_url("home")


class SignInView(LoginView):
    """The password step (axes counts failures). When a second step is due nobody is signed in yet."""

    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]
        user = form.get_user()
        next_url = self.get_success_url()
        if signin.second_step_due(user):
            signin.pending_start(self.request, user=user, next_url=next_url)
            return redirect("two-factor")
        signin.sign_in_complete(self.request, user=user, backend=user.backend, method="password")  # type: ignore[attr-defined]
        return HttpResponseRedirect(next_url)


def _with_next(name: str, next_url: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


def _step_user(request: HttpRequest) -> tuple[signin.Pending | None, Any]:
    """Who the second step is for: the pending user (after the password), or a signed-in user it is owed by."""
    pending = signin.pending_of(request)
    if pending is not None:
        return pending, pending.user
    if request.user.is_authenticated:
        return None, request.user
    return None, None


def _sign_in_again(request: HttpRequest) -> HttpResponse:
    messages.info(request, "Sign in with your email and password first.")
    return redirect("login")


@public
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponseBase:
    """The second step: a code from the authenticator app, or a recovery code."""
    pending, user = _step_user(request)
    if user is None:
        return _sign_in_again(request)
    next_url = pending.next_url if pending else _safe_next(request, request.GET.get("next"))
    if pending is None and signin.is_verified(request):
        return redirect(next_url)
    if signin.authenticator_of(user) is None:
        return redirect(_with_next("two-factor-setup", next_url))
    form = TwoFactorCodeForm(request.POST or None)
    if request.method == "POST":
        credentials = {"username": user.get_username()}
        if AxesProxyHandler.is_locked(request, credentials):
            _end_half_sign_in(request, pending)
            return get_lockout_response(request, None, credentials)
        if form.is_valid():
            device, method = signin.code_check(user, form.cleaned_data["code"])
            if device is not None:
                signin.second_step_passed(request, pending=pending, device=device, method=method)
                if method == "recovery code":
                    left = signin.recovery_codes_left(user)
                    messages.warning(
                        request,
                        f"You used a recovery code; {left} left. Make new ones from Account security if few remain.",
                    )
                return redirect(next_url)
            signin.second_step_failed(request, user=user, what=method)
            if getattr(request, "axes_locked_out", False):
                _end_half_sign_in(request, pending)  # axes' middleware answers with the lockout page
            form.add_error(
                "code",
                "That code is not right. Type the 6 digits your authenticator app shows now, or a recovery code.",
            )
    return render(request, "registration/two_factor.html", {"form": form, "pending": pending}, status=200)


def _end_half_sign_in(request: HttpRequest, pending: signin.Pending | None) -> None:
    if pending is not None:
        signin.pending_end(request)
    elif request.user.is_authenticated:
        signin.sign_out(request, reason="locked out at the second step")


def _qr_svg(device: Any) -> str:
    svg = segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff", border=4)
    return mark_safe(svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1))  # noqa: S308  # segno's own markup


@public
@require_http_methods(["GET", "POST"])
def two_factor_setup(request: HttpRequest) -> HttpResponseBase:
    """Set up an authenticator app: at sign-in when a clinic requires it, or from Account security."""
    pending, user = _step_user(request)
    if user is None:
        return _sign_in_again(request)
    next_url = pending.next_url if pending else _safe_next(request, request.GET.get("next"))
    has_one = signin.authenticator_of(user) is not None
    if has_one and (pending is not None or not signin.is_verified(request)):
        # Replacing an authenticator takes a code from the current one first.
        return redirect("two-factor")
    device = signin.authenticator_unconfirmed(user)
    form = TwoFactorCodeForm(request.POST or None, label="Code from the app")
    if request.method == "POST" and form.is_valid():
        codes = signin.authenticator_confirm(request, user=user, device=device, code=form.cleaned_data["code"])
        if codes is None:
            form.add_error("code", "That code is not right: type the 6 digits the app shows now for this account.")
        else:
            if pending is not None:
                signin.second_step_passed(request, pending=pending, device=device, method="authenticator app (set up)")
            else:
                otp_login(request, device)
            request.session[signin.RECOVERY_CODES_SHOWN] = codes
            return redirect(_with_next("recovery-codes", next_url))
    context = {
        "form": form,
        "pending": pending,
        "replacing": has_one,
        "qr": _qr_svg(device),
        "key": signin.key_text(device),
    }
    return render(request, "registration/two_factor_setup.html", context)


@require_GET
def recovery_codes(request: ClinicRequest) -> HttpResponse:
    """New recovery codes, shown once."""
    codes = request.session.pop(signin.RECOVERY_CODES_SHOWN, None)
    next_url = _safe_next(request, request.GET.get("next"))
    return render(request, "registration/recovery_codes.html", {"codes": codes, "next_url": next_url})


@require_http_methods(["GET", "POST"])
def account_security(request: ClinicRequest) -> HttpResponse:
    """Two-factor for this account (set up, new recovery codes) and a link to the sessions."""
    has_authenticator = signin.authenticator_of(request.user) is not None
    if request.method == "POST" and request.POST.get("action") == "new-codes":
        if not has_authenticator or not signin.is_verified(request):
            messages.error(request, "Sign in with your authenticator app first to make new recovery codes.")
            return redirect("account-security")
        request.session[signin.RECOVERY_CODES_SHOWN] = signin.recovery_codes_renew(request.user)
        return redirect("recovery-codes")
    context = {
        "has_authenticator": has_authenticator,
        "codes_left": signin.recovery_codes_left(request.user) if has_authenticator else 0,
        "required_by": [m.clinic for m in request.memberships if m.clinic.requires_two_factor],
    }
    return render(request, "clinic/account_security.html", context)


@require_GET
def sessions_list(request: ClinicRequest) -> HttpResponse:
    context = {"sessions": list(signin.sessions_of(request.user)), "this_session": signin.this_session_id(request)}
    return render(request, "clinic/sessions.html", context)


@require_http_methods(["GET", "POST"])
def session_end(request: ClinicRequest, user_session: UUID) -> HttpResponse:
    """Sign out one of your sessions (GET asks first)."""
    session = signin.sessions_of(request.user).filter(public_id=user_session).first()
    if session is None:
        raise Http404("No such session.")
    this = str(user_session) == signin.this_session_id(request)
    if request.method == "GET":
        return render(request, "clinic/session_end.html", {"session": session, "this": this})
    signin.session_end(request, public_id=user_session)
    if this:
        messages.success(request, "You are signed out.")
        return redirect("login")
    messages.success(request, "That session is signed out.")
    return redirect("sessions")


@require_http_methods(["GET", "POST"])
def sign_out_everywhere(request: ClinicRequest) -> HttpResponse:
    if request.method == "POST":
        ended = signin.sign_out_everywhere(request)
        messages.success(request, f"Signed out everywhere ({ended} session{'s' if ended != 1 else ''}).")
        return redirect("login")
    count = signin.sessions_of(request.user).count()
    return render(request, "clinic/sign_out_everywhere.html", {"count": count})


@public
@require_http_methods(["GET", "POST"])
def session_status(request: HttpRequest) -> JsonResponse:
    """The idle timer's question (GET: how long is left, not activity) and "Stay signed in" (POST)."""
    if not request.user.is_authenticated or not signin.is_tracked(request):
        return JsonResponse({"signed_in": False, "remaining": 0}, status=401)
    if request.method == "POST":
        signin.activity(request, force=True)
    memberships = getattr(request, "memberships", [])  # loaded by ClinicMiddleware
    remaining = signin.idle_remaining(request, memberships) or 0
    return JsonResponse({"signed_in": True, "remaining": max(0, int(remaining))})


# --- The admins' pages -----------------------------------------------------------------


@admin_required
@require_http_methods(["GET", "POST"])
def signin_settings(request: ClinicRequest) -> HttpResponse:
    form = SignInSettingsForm(request.POST or None, instance=request.clinic)
    if request.method == "POST" and form.is_valid():
        services.clinic_settings_update(clinic=request.clinic, actor=request.user, form=form)
        messages.success(request, "Sign-in settings saved.")
        return redirect("clinic:signin-settings")
    return render(request, "clinic/signin_settings.html", {"form": form})


@admin_required
@require_http_methods(["GET", "POST"])
def member_two_factor_reset(request: ClinicRequest, member: UUID) -> HttpResponse:
    members = signin.with_two_factor(selectors.members_list(clinic=request.clinic))
    membership = scoped_get_or_404(members, request.clinic, public_id=member)
    if request.method == "POST":
        signin.two_factor_reset(clinic=request.clinic, actor=request.user, membership=membership)
        messages.success(
            request,
            f"Two-factor reset for {membership.user.email}: they set it up again at their next sign-in"
            + (" (this clinic requires it)." if request.clinic.requires_two_factor else " if a clinic requires it."),
        )
        return redirect("clinic:members")
    return render(request, "clinic/member_two_factor_reset.html", {"membership": membership})
