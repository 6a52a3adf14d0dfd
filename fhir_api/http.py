"""The FHIR API's HTTP: JSON only (application/fhir+json; `_format` and `Accept` honoured), errors as
OperationOutcomes, versions as ETags, and the search parameters GP Connect defines for free slots."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.http import HttpRequest, HttpResponse

from fhir_api.resources import FHIR_JSON, operation_outcome

JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "json"}
ANY_TYPES = {"*/*", "application/*"}


class FhirError(Exception):
    """An answer other than success: its status, what went wrong (diagnostics) and GP Connect's spine code."""

    def __init__(self, status: int, diagnostics: str, code: str = "", headers: dict[str, str] | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code
        self.headers = headers or {}


def pruned(value: Any) -> Any:
    """FHIR JSON has no empty strings, lists or objects: leave them out (and None). One pass: a search's Bundle
    holds tens of thousands of values."""
    if isinstance(value, dict):
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict | list):
                item = pruned(item)
                if not item:
                    continue
            elif item is None or item == "":
                continue
            kept[key] = item
        return kept
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            if isinstance(item, dict | list):
                item = pruned(item)
                if not item:
                    continue
            elif item is None or item == "":
                continue
            items.append(item)
        return items
    return value


def fhir_response(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None, *, prune: bool = True
) -> HttpResponse:
    """The resource as FHIR JSON. `prune=False` for one built without empty elements already (the slot search's
    Bundle: thousands of entries)."""
    response = HttpResponse(
        # orjson: a 14-day search's Bundle is over a megabyte, which the standard library takes milliseconds to write.
        orjson.dumps(pruned(data) if prune else data),
        status=status,
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def fhir_error_response(error: FhirError) -> HttpResponse:
    return fhir_response(operation_outcome(error.status, error.diagnostics, error.code), error.status, error.headers)


def _media_types(header: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]


def negotiate(request: HttpRequest) -> None:
    """Refuse (406) a caller that wants anything but FHIR JSON: `_format` first, then Accept."""
    wanted = request.GET.get("_format", "").strip().lower()
    if wanted:
        if wanted not in JSON_TYPES:
            raise FhirError(406, f"Only JSON is served (_format=json or application/fhir+json), not {wanted[:40]}.")
        return
    accept = _media_types(request.headers.get("Accept", ""))
    if accept and not any(media in JSON_TYPES or media in ANY_TYPES for media in accept):
        raise FhirError(406, "Only application/fhir+json is served: ask for it in Accept.")


def body_of(request: HttpRequest, resource_type: str) -> dict[str, Any]:
    """The request's resource, which must be FHIR JSON of this type."""
    media = _media_types(request.headers.get("Content-Type", ""))
    if not media or media[0] not in JSON_TYPES:
        raise FhirError(415, "Send the resource as application/fhir+json.")
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise FhirError(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        raise FhirError(422, f"Send one {resource_type} resource.", "INVALID_RESOURCE")
    return data


def etag(version: str) -> str:
    return f'W/"{version}"'


def if_match_version(request: HttpRequest) -> str | None:
    """The version If-Match names (W/"v" or "v"), or None when it is absent."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        return None
    found = re.fullmatch(r'(?:W/)?"([^"]*)"', header)
    return found.group(1) if found else header


# Search parameters --------------------------------------------------------------------------------------------

_DATE = re.compile(r"^(ge|le|gt|lt|eq)?(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$")


def moment_param(raw: str, name: str, zone: ZoneInfo, *, prefix: str, end_of_day: bool) -> dt.datetime:
    found = _DATE.match(raw.strip())
    if found is None:
        raise FhirError(
            422,
            f"{name} must be a date or a date and time with its offset, after the {prefix} prefix "
            f"({name}={prefix}2026-12-07 or {name}={prefix}2026-12-07T09:00:00+00:00).",
            "INVALID_PARAMETER",
        )
    given, day, time_part = found.groups()
    if given != prefix:
        raise FhirError(422, f"{name} must use the {prefix} prefix ({name}={prefix}…).", "INVALID_PARAMETER")
    try:
        if time_part:
            return dt.datetime.fromisoformat(day + time_part.replace("Z", "+00:00"))
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise FhirError(422, f"{name} is not a real date or time.", "INVALID_PARAMETER") from None
    if end_of_day:  # a date as the end means the whole of that day, on the practice's clock
        return dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return dt.datetime.combine(date, dt.time(), tzinfo=zone)


def slot_window(request: HttpRequest, zone: ZoneInfo, max_days: int) -> tuple[dt.datetime, dt.datetime]:
    """The start=ge… and end=le… of a free-slot search: each given once, with its prefix; a date alone is a day
    on the practice's clock; the range forward and no longer than `max_days` (GP Connect: 14), else 422."""
    values = {}
    for name, prefix in (("start", "ge"), ("end", "le")):
        given = request.GET.getlist(name)
        if len(given) != 1:
            raise FhirError(
                422,
                f"Give {name} once, with the {prefix} prefix ({name}={prefix}2026-12-07).",
                "INVALID_PARAMETER",
            )
        values[name] = moment_param(given[0], name, zone, prefix=prefix, end_of_day=name == "end")
    first, last = values["start"], values["end"]
    if last <= first:
        raise FhirError(422, "end must come after start.", "INVALID_PARAMETER")
    if last - first > dt.timedelta(days=max_days):
        raise FhirError(422, f"A search may span at most {max_days} days.", "INVALID_PARAMETER")
    status = request.GET.getlist("status")
    if status != ["free"]:
        raise FhirError(422, "Search with status=free (only free slots are searched).", "INVALID_PARAMETER")
    return first, last
