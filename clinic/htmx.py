"""One view serves a page and its fragment: htmx asks for the fragment, everything else for the page."""

from __future__ import annotations

from django.http import HttpRequest


def page_or_fragment(request: HttpRequest, template: str, fragment: str) -> str:
    """The page's template, or its ``#fragment`` (a django-template-partials partial) when htmx asks."""
    return f"{template}#{fragment}" if getattr(request, "htmx", False) else template
