"""The benchmark cases. Add one with ``register(Case(name, setup, run, floor))`` or, for a page, ``page_case``.

Imported by the harness only after it has pointed DATABASE_URL at the benchmarks' own database, and set up
only after migrate and seed_demo: setups may rely on the demo clinics (logins like admin@riverside.example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from benchmarks.harness import Case

CASES: dict[str, Case[Any]] = {}

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # axes is the first backend
DEMO_ADMIN = "admin@riverside.example"


def register(case: Case[Any]) -> Case[Any]:
    if case.name in CASES:
        raise ValueError(f"benchmark case {case.name!r} is registered twice")
    CASES[case.name] = case
    return case


# --- Pages through the test Client ----------------------------------------------------


@dataclass(frozen=True)
class PageState:
    client: Client
    url: str
    floor_url: str


def logged_in_client(username: str) -> Client:
    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user, backend=MODEL_BACKEND)
    return client


def get_ok(client: Client, url: str) -> bytes:
    """GET ``url``; anything but a 200 is an error, never a measurement."""
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} returned {response.status_code}, expected 200")
    return response.content


def page_case(name: str, url_name: str, *, username: str = DEMO_ADMIN, floor_url_name: str = "healthz") -> Case[Any]:
    """GET a page as a logged-in demo user; the floor is the simplest page (``healthz``) with the same client."""

    def setup() -> PageState:
        return PageState(logged_in_client(username), reverse(url_name), reverse(floor_url_name))

    return register(
        Case(
            name=name,
            setup=setup,
            run=lambda state: get_ok(state.client, state.url),
            floor=lambda state: get_ok(state.client, state.floor_url),
        )
    )


page_case("home_page", "home")
