"""Who may call the FHIR API: a bearer token of a consumer's OAuth2 client (django-oauth-toolkit), with the scope
the interaction needs, inside the consumer's rate limit. The consumer fixes the clinic: every read and write of a
call is scoped to it, so another clinic's ids are simply not found (404).

Every call a consumer makes is audited with what it asked, the answer's status, and the requesting practitioner and
organisation it names (the `X-Requesting-Practitioner` and `X-Requesting-Organization` headers, GP Connect's
requesting_practitioner and requesting_organization claims: required when booking, amending or cancelling)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.oauth2_backends import get_oauthlib_core

from clinic.access import public
from clinic.limits import over_limit
from clinic.models import Clinic
from clinic.services import audit_record
from fhir_api.http import FhirError, fhir_error_response, negotiate
from fhir_api.models import Consumer

RATE_WINDOW_SECONDS = 60
HEADER_PRACTITIONER = "X-Requesting-Practitioner"
HEADER_ORGANISATION = "X-Requesting-Organization"


@dataclass
class Caller:
    """The consumer calling, its clinic, and who it says the call is for."""

    consumer: Consumer
    scopes: frozenset[str]
    practitioner: str = ""
    organisation: str = ""
    audit: dict[str, Any] = field(default_factory=dict)  # what the view adds to the call's audit row

    @property
    def clinic(self) -> Clinic:
        return self.consumer.clinic


def _bearer(request: HttpRequest) -> Caller:
    valid, oauth = get_oauthlib_core().verify_request(request, scopes=[])
    token = getattr(oauth, "access_token", None)
    if not valid or token is None or token.application_id is None:
        raise FhirError(401, "Send a valid bearer token (OAuth2 client credentials, from /fhir/oauth/token).")
    consumer = Consumer.objects.select_related("clinic").filter(application_id=token.application_id).first()
    if consumer is None or consumer.revoked_at is not None:
        raise FhirError(401, "This client's access was revoked.")
    granted = frozenset(token.scope.split()) & frozenset(consumer.scope_list)
    return Caller(
        consumer=consumer,
        scopes=granted,
        practitioner=request.headers.get(HEADER_PRACTITIONER, "").strip()[:120],
        organisation=request.headers.get(HEADER_ORGANISATION, "").strip()[:120],
    )


def fhir_endpoint(
    *scopes: str, interaction: str, names_requester: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A FHIR interaction: the caller must hold one of `scopes`; the view gets the Caller. Errors become
    OperationOutcomes; every call that got as far as a consumer is audited (`fhir.<interaction>`, where "{kind}"
    stands for the resource type a shared view serves)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @public
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            caller: Caller | None = None
            try:
                negotiate(request)
                caller = _bearer(request)
                if over_limit(
                    "fhir-client",
                    str(caller.consumer.pk),
                    limit=caller.consumer.rate_limit,
                    window_seconds=RATE_WINDOW_SECONDS,
                ):
                    raise FhirError(
                        429,
                        f"Too many calls: this client may make {caller.consumer.rate_limit} a minute.",
                        headers={"Retry-After": str(RATE_WINDOW_SECONDS)},
                    )
                if not caller.scopes & set(scopes):
                    raise FhirError(403, f"This client's token lacks the scope this needs ({' or '.join(scopes)}).")
                if names_requester and not (caller.practitioner and caller.organisation):
                    raise FhirError(
                        400,
                        f"Name the requesting practitioner and organisation ({HEADER_PRACTITIONER} and "
                        f"{HEADER_ORGANISATION} headers).",
                    )
                response = view(request, caller, *args, **kwargs)
            except FhirError as error:
                response = fhir_error_response(error)
            if caller is not None:
                audit_record(
                    clinic=caller.clinic,
                    actor=None,
                    action=f"fhir.{interaction.format(kind=str(kwargs.get('kind', '')).lower())}",
                    target=caller.consumer,
                    detail={
                        "consumer": caller.consumer.name,
                        "status": response.status_code,
                        "requesting_practitioner": caller.practitioner,
                        "requesting_organisation": caller.organisation,
                        **caller.audit,
                    },
                )
            return response

        return wrapper  # type: ignore[return-value]  # public() keeps the view it marks

    return decorate
