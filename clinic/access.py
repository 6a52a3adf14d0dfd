"""Access helpers: the request type, view decorators and scoped fetches.

Every view is members-only unless decorated with @public. Objects are fetched with the
clinic inside the query, so another clinic's object is a 404 and never a 403.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails

    from clinic.models import Clinic, Membership, NamedPermission


class ClinicRequest(HttpRequest):
    """A request from a member of a clinic (set by ClinicMiddleware)."""

    clinic: Clinic
    membership: Membership
    memberships: list[Membership]
    user: User
    htmx: HtmxDetails
    viewer_zone: ZoneInfo
    viewer_zone_detected: bool


def viewer_today(request: ClinicRequest) -> dt.date:
    """Today on the viewer's clock, the calendar's "today" (at 19:30 in New York it is not yet London's
    tomorrow)."""
    return timezone.now().astimezone(request.viewer_zone).date()


M = TypeVar("M", bound=Model)
View = Callable[..., HttpResponseBase]


def public(view: View) -> View:
    """Mark a view as reachable without a clinic membership (login, health, feeds)."""
    view.clinic_public = True  # type: ignore[attr-defined]
    return view


def scoped_get_or_404(model_or_qs: type[M] | QuerySet[M], clinic: Clinic, **lookup: Any) -> M:
    """Fetch one tenant object of `clinic`, or 404 if it does not exist there."""
    qs = model_or_qs if isinstance(model_or_qs, QuerySet) else model_or_qs._default_manager.all()
    try:
        return get_object_or_404(qs.filter(clinic=clinic), **lookup)
    except (ValidationError, ValueError):
        # An id from a form or query string that is not even a UUID: as absent as any other.
        raise Http404("No such object.") from None


def admin_required(view: View) -> View:
    """Only the clinic's admins; others get 403 (they already know the page exists)."""

    @wraps(view)
    def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.membership.is_admin:
            raise PermissionDenied("Only clinic admins can open this page.")
        return view(request, *args, **kwargs)

    return wrapper


def permission_required(permission: NamedPermission) -> Callable[[View], View]:
    """Only members granted the named permission."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.membership.has_permission(permission):
                raise PermissionDenied(f"You need the “{permission.label}” permission.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
