"""Sign-in fit for patient data: the second factor, idle sign-out, a user's sessions, and their audit.

The rules:

- Two steps. The password step (clinic.signin_views.SignInView, with axes' lockout) signs nobody in when a second
  step is due: it keeps the user as *pending* in the session, and only a correct code from their authenticator
  app (a django-otp TOTP device) or one of their recovery codes (a static device, each code once) completes the
  sign-in. So between the steps no page is reachable: the session is not signed in.
- A second step is due when the user has a confirmed device, or when any clinic they are an active member of
  requires two-factor sign-in (a member of several clinics meets the strictest). Required but not set up: they
  set it up at that sign-in (scan or type the key, confirm a code, see the recovery codes) before any page.
  A clinic that starts requiring it reaches members already signed in too: the middleware sends a signed-in but
  unverified member of such a clinic to the second step before any other page.
- A wrong code is a failed sign-in for axes (`user_login_failed` with the username): the same count and lockout
  as wrong passwords, and a success resets it only once the whole sign-in is done.
- Idle sign-out: the strictest (shortest) `idle_logoff_minutes` of the user's active clinics, counted on the
  server from the last request that was activity (a background request, marked `X-Background: 1`, is not).
  Only sessions that went through the sign-in carry the record (tests' `force_login` sessions do not).
- Sessions are rows of clinic.UserSession (the session engine in clinic.user_sessions): listed, and ended one by
  one or all at once.
- Audit: every event is recorded in each clinic the user is an active member of (each clinic's admins see their
  members' sign-ins). Failures for an unknown email belong to no clinic: axes' own AccessAttempt and
  AccessFailureLog rows hold them.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.signals import user_logged_out, user_login_failed
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic import user_sessions
from clinic.models import Clinic, Membership, UserSession
from clinic.proxy import client_ip
from clinic.selectors import memberships_of_user
from clinic.services import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PENDING = "signin_pending"  # {"user": id, "backend": path, "next": url, "at": epoch}: the password step passed
PENDING_SECONDS = 600  # the second step must follow within ten minutes of the password
RECOVERY_CODES_SHOWN = "signin_recovery_codes"  # new codes, shown once on the next page, then dropped
RECOVERY_CODE_COUNT = 10
DEFAULT_IDLE_MINUTES = 30
WARNING_SECONDS = 60  # the browser warns this long before the deadline
SEEN_WRITE_SECONDS = 10  # activity is written to the session at most this often
BACKGROUND_HEADER = "X-Background"  # a request the page made on its own (a poll): not activity


# --- Who needs what -------------------------------------------------------------------


def active_memberships(user: User) -> list[Membership]:
    """The user's active memberships, with their clinics (one query)."""
    return list(memberships_of_user(user=user))


def clinics_require_two_factor(memberships: Iterable[Membership]) -> bool:
    """A member of several clinics meets the strictest: any clinic that requires it."""
    return any(m.clinic.requires_two_factor for m in memberships)


def idle_limit_seconds(memberships: Iterable[Membership]) -> int:
    """The strictest (shortest) idle time of the user's clinics; the default without any."""
    minutes = [m.clinic.idle_logoff_minutes for m in memberships]
    return 60 * (min(minutes) if minutes else DEFAULT_IDLE_MINUTES)


def authenticator_of(user: User) -> TOTPDevice | None:
    """The user's confirmed authenticator app, if they set one up."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def second_step_due(user: User) -> bool:
    """Whether signing in takes a code: the user has an authenticator, or one of their clinics requires it."""
    return clinics_require_two_factor(active_memberships(user)) or authenticator_of(user) is not None


def with_two_factor(memberships: QuerySet[Membership]) -> QuerySet[Membership]:
    """Members annotated with `has_two_factor` (a confirmed authenticator), in the same query."""
    confirmed = TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)
    return memberships.annotate(has_two_factor=Exists(confirmed))


def is_verified(request: HttpRequest) -> bool:
    """Whether this session passed a second step (django-otp's OTPMiddleware knows the device)."""
    check = getattr(request.user, "is_verified", None)
    return bool(check and check())


def second_step_owed(request: HttpRequest) -> bool:
    """A signed-in user who must still pass the second step before any page (a clinic of theirs requires it)."""
    if not request.user.is_authenticated:
        return False
    memberships = getattr(request, "memberships", None) or []
    return clinics_require_two_factor(memberships) and not is_verified(request)


# --- The pending sign-in (between the steps) ------------------------------------------


@dataclass(frozen=True)
class Pending:
    user: User
    backend: str
    next_url: str


def pending_start(request: HttpRequest, *, user: User, next_url: str) -> None:
    """The password was right and a second step is due: remember who, without signing in."""
    request.session.cycle_key()
    request.session[PENDING] = {
        "user": user.pk,
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[-1]),
        "next": next_url,
        "at": time.time(),
    }


def pending_of(request: HttpRequest) -> Pending | None:
    """The user between the steps, if the password step passed in this session lately."""
    record = request.session.get(PENDING)
    if not isinstance(record, dict) or time.time() - float(record.get("at", 0)) > PENDING_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=int(record.get("user") or 0), is_active=True).first()
    if user is None:
        return None
    return Pending(user=user, backend=str(record.get("backend")), next_url=str(record.get("next") or ""))


def pending_end(request: HttpRequest) -> None:
    request.session.pop(PENDING, None)


# --- Completing a sign-in, and the session's record -----------------------------------


def user_agent_summary(request: HttpRequest) -> str:
    """ "Firefox on Windows": enough to recognise a browser on the sessions page."""
    agent = request.headers.get("User-Agent", "")
    browser = next(
        (
            name
            for key, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Chromium/", "Chromium"),
                ("Safari/", "Safari"),
            )
            if key in agent
        ),
        "A browser",
    )
    system = next(
        (
            name
            for key, name in (
                ("iPad", "iPad"),
                ("iPhone", "iPhone"),
                ("Android", "Android"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("CrOS", "ChromeOS"),
                ("Linux", "Linux"),
            )
            if key in agent
        ),
        "",
    )
    return f"{browser} on {system}" if system else browser


def session_start(request: HttpRequest) -> None:
    """Give a signed-in session its record: its id on the sessions page, when, the browser, the address."""
    now = time.time()
    session = request.session
    session[user_sessions.SESSION_ID] = str(uuid.uuid4())
    session[user_sessions.SIGNED_IN_AT] = now
    session[user_sessions.LAST_SEEN] = now
    session[user_sessions.USER_AGENT] = user_agent_summary(request)
    session[user_sessions.IP_ADDRESS] = client_ip(request)


def is_tracked(request: HttpRequest) -> bool:
    return user_sessions.LAST_SEEN in request.session


def idle_remaining(request: HttpRequest, memberships: Iterable[Membership]) -> float | None:
    """Seconds until idle sign-out (negative: past it); None for a session without the record."""
    seen = request.session.get(user_sessions.LAST_SEEN)
    if not isinstance(seen, int | float):
        return None
    return seen + idle_limit_seconds(memberships) - time.time()


def activity(request: HttpRequest, *, force: bool = False) -> None:
    """The user did something: the idle time starts again (written at most every few seconds)."""
    seen = request.session.get(user_sessions.LAST_SEEN)
    now = time.time()
    if force or not isinstance(seen, int | float) or now - seen >= SEEN_WRITE_SECONDS:
        request.session[user_sessions.LAST_SEEN] = now


def is_background(request: HttpRequest) -> bool:
    return request.headers.get(BACKGROUND_HEADER) == "1"


def _audit_each_clinic(
    memberships: Iterable[Membership], *, actor: User | None, action: str, detail: dict[str, Any]
) -> None:
    for membership in memberships:
        audit_record(clinic=membership.clinic, actor=actor, action=action, target=None, detail=detail)


def _where(request: HttpRequest) -> dict[str, Any]:
    return {"ip": client_ip(request), "browser": user_agent_summary(request)}


def sign_in_complete(request: HttpRequest, *, user: User, backend: str, method: str) -> None:
    """Sign the user in (after the password, and the second step when one was due), start the session's
    record and audit it. `method`: "password", "authenticator app" or "recovery code"."""
    with transaction.atomic():
        login(request, user, backend=backend)
        pending_end(request)
        session_start(request)
        _audit_each_clinic(
            active_memberships(user),
            actor=user,
            action="signin.succeeded",
            detail={"method": method, **_where(request)},
        )


def second_step_failed(request: HttpRequest, *, user: User, what: str) -> None:
    """A wrong code: counted by axes as a failed sign-in (its lockout covers both steps), and audited."""
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.get_username(), "second_factor": what},
        request=request,
    )


@receiver(user_login_failed)
def _audit_failed_sign_in(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """A failed password or code of a known user goes into their clinics' audit (unknown emails: axes' rows)."""
    username = credentials.get("username")
    if not username:
        return
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        return
    step = "second factor" if credentials.get("second_factor") else "password"
    detail: dict[str, Any] = {"step": step, **(_where(request) if request is not None else {})}
    if credentials.get("second_factor"):
        detail["kind"] = credentials["second_factor"]
    _audit_each_clinic(active_memberships(user), actor=user, action="signin.failed", detail=detail)


@receiver(user_logged_out)
def _audit_sign_out(sender: Any, request: HttpRequest | None, user: User | None, **_: Any) -> None:
    """Sign-outs of sessions that went through the sign-in (the reason: the user, idle, everywhere)."""
    if request is None or user is None or not is_tracked(request):
        return
    reason = getattr(request, "signout_reason", "signed out")
    _audit_each_clinic(
        active_memberships(user), actor=user, action="signin.signed_out", detail={"reason": reason, **_where(request)}
    )


def sign_out(request: HttpRequest, *, reason: str) -> None:
    """End this session (audited with the reason)."""
    request.signout_reason = reason  # type: ignore[attr-defined]
    logout(request)


# --- Two-factor devices ---------------------------------------------------------------


def authenticator_unconfirmed(user: User) -> TOTPDevice:
    """The authenticator being set up: the same key until it is confirmed (a reload shows the same code)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def key_text(device: TOTPDevice) -> str:
    """The key as people type it into an app: base32 in groups of four."""
    text = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def recovery_codes_make(user: User) -> list[str]:
    """Ten new recovery codes (the old ones stop working), each usable once."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name="Recovery codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def recovery_codes_renew(user: User) -> list[str]:
    """New recovery codes from Account security (the old ones stop working), audited."""
    with transaction.atomic():
        codes = recovery_codes_make(user)
        _audit_each_clinic(active_memberships(user), actor=user, action="two_factor.recovery_codes_renewed", detail={})
    return codes


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def authenticator_confirm(request: HttpRequest, *, user: User, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the authenticator being set up with a code from it; its recovery codes (None: a wrong code)."""
    with transaction.atomic():
        if not device.verify_token(code):
            return None
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = recovery_codes_make(user)
        _audit_each_clinic(active_memberships(user), actor=user, action="two_factor.enrolled", detail={})
    return codes


def code_check(user: User, code: str) -> tuple[TOTPDevice | StaticDevice | None, str]:
    """The device that accepts `code` (six digits: the authenticator; else a recovery code, used up), and how."""
    code = "".join(code.split()).lower()
    with transaction.atomic():
        if code.isdigit() and len(code) == 6:
            totp = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).order_by("id").first()
            return (totp if totp is not None and totp.verify_token(code) else None), "authenticator app"
        static = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        return (static if static is not None and static.verify_token(code) else None), "recovery code"


def second_step_passed(request: HttpRequest, *, pending: Pending | None, device: Any, method: str) -> None:
    """The code was right: complete the sign-in (or verify a signed-in session) and mark the session verified."""
    if pending is not None:
        sign_in_complete(request, user=pending.user, backend=pending.backend, method=method)
    else:
        _audit_each_clinic(
            active_memberships(request.user),  # type: ignore[arg-type]
            actor=request.user,  # type: ignore[arg-type]
            action="signin.second_factor",
            detail={"method": method, **_where(request)},
        )
    otp_login(request, device)


def two_factor_reset(*, clinic: Clinic, actor: User, membership: Membership) -> int:
    """An admin removes a member's authenticator and recovery codes (lost phone): they set it up again at their
    next sign-in if a clinic requires it. Their verified sessions fall back to unverified. Audited."""
    with transaction.atomic():
        removed, _ = TOTPDevice.objects.filter(user=membership.user).delete()
        StaticDevice.objects.filter(user=membership.user).delete()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="two_factor.reset",
            target=membership,
            detail={"user_id": membership.user_id, "had_authenticator": bool(removed)},
        )
    return removed


# --- A user's sessions ----------------------------------------------------------------


def sessions_of(user: User) -> QuerySet[UserSession]:
    """The user's signed-in sessions that have not expired, most recent activity first."""
    return UserSession.objects.filter(user=user, expire_date__gt=timezone.now(), public_id__isnull=False).order_by(
        "-last_seen_at"
    )


def this_session_id(request: HttpRequest) -> str:
    return str(request.session.get(user_sessions.SESSION_ID, ""))


def session_end(request: HttpRequest, *, public_id: uuid.UUID) -> bool:
    """End one of the user's sessions (this one: signed out here). False if there is no such session of theirs."""
    user = cast("User", request.user)
    if str(public_id) == this_session_id(request):
        sign_out(request, reason="ended from the sessions page")
        return True
    with transaction.atomic():
        ended, _ = UserSession.objects.filter(user=user, public_id=public_id).delete()
        if ended:
            _audit_each_clinic(
                active_memberships(user),
                actor=user,
                action="signin.session_ended",
                detail={"session": str(public_id)},
            )
    return bool(ended)


def sign_out_everywhere(request: HttpRequest) -> int:
    """End every session of the user, this one included (audited once, with the count)."""
    user = cast("User", request.user)
    with transaction.atomic():
        this = user_sessions.key_hash(request.session.session_key or "")
        ended, _ = UserSession.objects.filter(user=user).exclude(session_key=this).delete()
        sign_out(request, reason=f"signed out everywhere ({ended} other sessions ended)")
    return ended + 1
