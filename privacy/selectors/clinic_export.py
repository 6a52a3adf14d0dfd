"""Reads of the clinic export: what a clinic's data is (every model, walked through the app registry), and the
admins' page.

Every model the project knows is decided here, so a new one cannot be forgotten: rows with `clinic` = the clinic;
rows of models without a clinic column that belong to it through a foreign key (its members' user accounts, its
FHIR consumers' OAuth clients, the many-to-many rows of its own rows); or left out, each with its reason (secrets,
and the framework's tables that are no clinic's). A model none of these names makes the plan refuse to run
(`UnplannedModel`), and a test walks the registry the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q, QuerySet
from oauth2_provider.models import get_application_model

from clinic.models import Clinic, Membership, Practitioner
from fhir_api.models import Consumer
from privacy.models import ClinicExport

if TYPE_CHECKING:
    from django.db.models import Model

# Whole models left out, by label: secrets, or the framework's own tables that belong to no clinic.
SECRET = "a secret (kept only hashed or sealed; never exported)"
EXCLUDED_MODELS: dict[str, str] = {
    "oauth2_provider.AccessToken": "OAuth access tokens: " + SECRET,
    "oauth2_provider.RefreshToken": "OAuth refresh tokens: " + SECRET,
    "oauth2_provider.Grant": "OAuth authorisation codes: " + SECRET,
    "oauth2_provider.IDToken": "OpenID Connect tokens: " + SECRET,
    "oauth2_provider.DeviceGrant": "OAuth device codes: " + SECRET,
    "sessions.Session": "sign-in sessions: " + SECRET,
    "clinic.UserSession": "sign-in sessions (a user's own, across clinics; keyed by a hash of the secret key): "
    + SECRET,
    # Second factors (issue 24's two-factor sign-in): the keys and recovery codes are secrets.
    "otp_totp.TOTPDevice": "authenticator app (TOTP) keys: " + SECRET,
    "otp_static.StaticDevice": "recovery code devices: " + SECRET,
    "otp_static.StaticToken": "recovery codes: " + SECRET,
    "otp_email.EmailDevice": "emailed second-factor codes: " + SECRET,
    "two_factor.PhoneDevice": "second-factor phone devices: " + SECRET,
    "auth.Permission": "Django's permission names, the same for every clinic",
    "auth.Group": "Django's groups, unused and the same for every clinic",
    "auth.Group_permissions": "Django's groups, unused and the same for every clinic",
    "auth.User_groups": "Django's groups, unused and the same for every clinic",
    "auth.User_user_permissions": "Django's per-user permissions, unused (members' permissions are exported)",
    "contenttypes.ContentType": "Django's model names, the same for every clinic",
}
# Whole apps left out: the sign-in lockout's records (kept by user name and address, for every clinic) and the
# background jobs' schedule.
EXCLUDED_APPS: dict[str, str] = {
    "axes": "the sign-in lockout's records of attempts, kept by user name and address for every clinic",
    "django_celery_beat": "the schedule of background jobs, the same for every clinic",
}
# Columns left out of models that are exported.
EXCLUDED_COLUMNS: dict[str, dict[str, str]] = {
    "auth.User": {"password": "the password hash: " + SECRET},
    "calendar_sync.FeedSubscription": {
        "token_salt": "the feed URL's token salt: " + SECRET,
        "token_hash": "the feed URL's token hash: " + SECRET,
    },
    "calendar_sync.GoogleConnection": {
        "access_token": "the Google OAuth access token: " + SECRET,
        "refresh_token": "the Google OAuth refresh token: " + SECRET,
    },
    "calendar_sync.GoogleChannel": {"token_hash": "the push channel's token hash: " + SECRET},
    "online.EmailCheck": {
        "token": "the emailed check's link token: " + SECRET,
        "code_hash": "the emailed code's hash: " + SECRET,
    },
    "oauth2_provider.Application": {"client_secret": "the FHIR consumer's client secret (hashed): " + SECRET},
    "privacy.ClinicExport": {"link_nonce": "an export's download link: " + SECRET},
}


def _clinic_itself(clinic: Clinic) -> QuerySet[Any]:
    return Clinic.objects.filter(pk=clinic.pk)


def _users_of(clinic: Clinic) -> QuerySet[Any]:
    """The accounts of its members and of its practitioners (a practitioner may have no membership)."""
    user_model = get_user_model()
    return user_model._default_manager.filter(
        Q(pk__in=clinic_members(clinic)) | Q(pk__in=clinic_practitioner_users(clinic))
    )


def clinic_members(clinic: Clinic) -> QuerySet[Any]:
    return Membership.objects.for_clinic(clinic).values("user_id")


def clinic_practitioner_users(clinic: Clinic) -> QuerySet[Any]:
    return Practitioner.objects.for_clinic(clinic).filter(user__isnull=False).values("user_id")


def _applications_of(clinic: Clinic) -> QuerySet[Any]:
    """The OAuth clients of its FHIR API consumers."""
    return get_application_model()._default_manager.filter(
        pk__in=Consumer.objects.for_clinic(clinic).values("application_id")
    )


# Models without a clinic column whose rows belong to a clinic through a foreign key.
THROUGH_CHAIN: dict[str, Callable[[Clinic], QuerySet[Any]]] = {
    "clinic.Clinic": _clinic_itself,
    "auth.User": _users_of,
    "oauth2_provider.Application": _applications_of,
}


class ExportPart(NamedTuple):
    """One model's share of the export: its rows of the clinic, the columns written and those left out."""

    label: str
    table: str
    columns: list[str]
    excluded_columns: dict[str, str]
    rows: Callable[[Clinic], QuerySet[Any]]
    belongs: str  # how its rows belong to the clinic

    @property
    def file_stem(self) -> str:
        return self.label.lower()


class ExcludedModel(NamedTuple):
    label: str
    table: str
    reason: str


class ExportPlan(NamedTuple):
    parts: list[ExportPart]
    excluded: list[ExcludedModel]


class UnplannedModelError(LookupError):
    """A model the plan does not decide: add it to the clinic export (selectors/clinic_export.py)."""


def _clinic_field(model: type[Model]) -> models.ForeignKey[Any, Any] | None:
    for field in model._meta.concrete_fields:
        if field.name == "clinic" and isinstance(field, models.ForeignKey) and field.related_model is Clinic:
            return field
    return None


def _tenant_side(model: type[Model]) -> models.ForeignKey[Any, Any] | None:
    """For a many-to-many table made by Django: its foreign key to a model of a clinic, if it has one."""
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey) and field.related_model is not None:
            related = field.related_model
            if not isinstance(related, str) and _clinic_field(related) is not None:
                return field
    return None


def _by_clinic_column(model: type[Model]) -> Callable[[Clinic], QuerySet[Any]]:
    return lambda clinic: model._default_manager.filter(clinic=clinic)


def _by_tenant_side(model: type[Model], side: str) -> Callable[[Clinic], QuerySet[Any]]:
    return lambda clinic: model._default_manager.filter(**{f"{side}__clinic": clinic})


def export_plan() -> ExportPlan:
    """Every model of the project, decided: exported (with how its rows belong to a clinic) or left out (why).
    Raises UnplannedModelError for a model none of the rules names."""
    parts: list[ExportPart] = []
    excluded: list[ExcludedModel] = []
    unplanned: list[str] = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        label = meta.label
        reason = EXCLUDED_MODELS.get(label) or EXCLUDED_APPS.get(meta.app_label)
        if reason:
            excluded.append(ExcludedModel(label, meta.db_table, reason))
            continue
        if _clinic_field(model) is not None:
            rows, belongs = _by_clinic_column(model), "clinic column"
        elif label in THROUGH_CHAIN:
            rows, belongs = THROUGH_CHAIN[label], "through a foreign key"
        elif meta.auto_created and (side := _tenant_side(model)) is not None:
            rows, belongs = _by_tenant_side(model, side.name), f"through {side.name}"
        else:
            unplanned.append(label)
            continue
        secret = EXCLUDED_COLUMNS.get(label, {})
        columns = [field.attname for field in meta.concrete_fields if field.name not in secret]
        parts.append(ExportPart(label, meta.db_table, columns, dict(secret), rows, belongs))
    if unplanned:
        raise UnplannedModelError(
            "The clinic export does not know these models: " + ", ".join(unplanned) + ". Decide each in "
            "privacy/selectors/clinic_export.py (exported by clinic, through a foreign key, or left out and why)."
        )
    return ExportPlan(parts, excluded)


# --- The admins' page ----------------------------------------------------------------------------------------------

RECENT = 10


def exports_recent(*, clinic: Clinic) -> list[ClinicExport]:
    """The clinic's latest exports, newest first (who asked and who downloaded, in the same query)."""
    return list(
        ClinicExport.objects.for_clinic(clinic)
        .select_related("requested_by", "downloaded_by")
        .order_by("-created_at", "-id")[:RECENT]
    )
