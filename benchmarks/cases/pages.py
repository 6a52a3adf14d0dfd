"""Pages through the test Client: the signed-in home page on demo data."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils.html import escape

from benchmarks.cases.common import DEMO_ADMIN, PageState, get_ok, page_case
from benchmarks.harness import checked
from clinic.models import Membership

HOME_CARD = "Practitioners with a calendar"  # the first of the overview's cards


def home_page_check(state: PageState) -> None:
    """The home page of the demo admin's clinic: its name as the heading, and the overview's cards."""
    user = get_user_model().objects.get(username=DEMO_ADMIN)
    names = Membership.objects.filter(user=user).values_list("clinic__name", flat=True)
    page = get_ok(state.client, state.url).decode()
    if not any(f"<h1>{escape(name)}</h1>" in page for name in names) or HOME_CARD not in page:
        raise RuntimeError(f"home_page: the page does not show the heading of {list(names)} and {HOME_CARD!r}")
    checked()


page_case("home_page", "home", check=home_page_check)
