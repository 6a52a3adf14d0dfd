"""Every view of ours says what it takes: the request type and typed URL ids, never ``Any``.

A URL id reaches the view as a UUID (the ``uuid`` converter); the view's access helper turns it into the
object or a 404. A converter that loaded the model would bypass the clinic scoping, so none does.
"""

from __future__ import annotations

import inspect

from tests.url_walk import all_routes

OUR_APPS = ("clinic.", "sessions_setup.", "scheduling.", "patients.", "calendar_sync.", "notifications.")
REQUEST_TYPES = {"ClinicRequest", "HttpRequest"}


def our_views():
    for route in all_routes():
        view = inspect.unwrap(route.callback)  # through @wraps decorators (permissions, methods, csrf)
        if getattr(view, "__module__", "").startswith(OUR_APPS):
            yield route, view


def test_there_are_views_to_check():
    assert len(list(our_views())) > 40


def test_no_view_signature_uses_any_and_each_names_its_request_type():
    problems = []
    for route, view in our_views():
        parameters = list(inspect.signature(view).parameters.values())
        for parameter in parameters:
            annotation = str(parameter.annotation)
            if parameter.annotation is inspect.Parameter.empty or "Any" in annotation.replace("|", " ").split():
                problems.append(f"{route.name}: {parameter.name}: {annotation}")
        if not parameters or str(parameters[0].annotation) not in REQUEST_TYPES:
            problems.append(f"{route.name}: the request is not typed ClinicRequest or HttpRequest")
    assert problems == []


def test_every_uuid_in_a_url_reaches_its_view_as_a_uuid():
    problems = []
    for route, view in our_views():
        parameters = inspect.signature(view).parameters
        for name, converter in route.converters.items():
            if converter != "UUIDConverter":
                continue
            annotation = str(parameters[name].annotation) if name in parameters else "(not a parameter)"
            if annotation not in ("UUID", "UUID | None"):
                problems.append(f"{route.name}: {name}: {annotation}")
    assert problems == []
