"""One view serves a page and its fragment: htmx asks for the fragment, everything else for the page.

A popup's step (booking, cancelling, an event...) may also run on a page of its own: opened from a patient's
appointments, a bookmark, or without JavaScript. Its pages wrap the fragment in ``#tip-body``, the element
the popup's links and forms target, so every step works the same in both; when a step is done, `popup_done`
closes the popup on the page that has one, and goes to `then` everywhere else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event


def page_or_fragment(request: HttpRequest, template: str, fragment: str) -> str:
    """The page's template, or its ``#fragment`` (a django-template-partials partial) when htmx asks."""
    return f"{template}#{fragment}" if getattr(request, "htmx", False) else template


def in_popup(request: HttpRequest, popup_page: str) -> bool:
    """Whether this htmx request comes from the popup of `popup_page` (a path). htmx names the page it runs
    on (HX-Current-URL); a request without it is taken to come from the popup."""
    htmx = getattr(request, "htmx", None)
    if not htmx:
        return False
    return htmx.current_url is None or urlsplit(htmx.current_url).path == popup_page


def popup_next(request: HttpRequest, url: str, *, popup_page: str) -> HttpResponse:
    """On to the next step at `url`: in the popup, where there is one (htmx follows the redirect and swaps
    the step in); elsewhere the browser goes there, so its address and title are the step's."""
    if getattr(request, "htmx", None) and not in_popup(request, popup_page):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def popup_done(request: HttpRequest, message: str, *, then: str, popup_page: str, focus: str = "") -> HttpResponse:
    """After a step that changed something. On `popup_page` (a path) under htmx: 204 and the page's
    "calendar:changed" event with the message, `then` and `focus` (the popup closes, the page refreshes
    itself and shows the changed item). Elsewhere: the message is kept for the next page and the browser
    goes to `then`, with `focus` as its fragment (a client redirect under htmx)."""
    if in_popup(request, popup_page):
        detail = {"message": message, "then": then, "focus": focus}
        return trigger_client_event(HttpResponse(status=204), "calendar:changed", detail)
    messages.success(request, message)
    return popup_next(request, f"{then}#{focus}" if focus else then, popup_page=popup_page)
