"""The public ends of notifications: one-click unsubscribe and Twilio's webhooks (no sign-in; signed)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from clinic.access import public
from notifications import services

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@public
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """RFC 8058: a mail app's one-click POST ("List-Unsubscribe=One-Click") unsubscribes at once; a person who
    follows the link sees a page with one button (GET never changes anything: link scanners fetch links)."""
    if request.method == "POST":
        patient = services.unsubscribe_patient(token)
        if patient is None:
            return render(request, "notifications/unsubscribe.html", {"bad": True}, status=404)
        return render(request, "notifications/unsubscribe.html", {"done": True})
    from django.core import signing

    from notifications.sending import UNSUBSCRIBE_SALT

    try:
        signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return render(request, "notifications/unsubscribe.html", {"bad": True}, status=404)
    return render(request, "notifications/unsubscribe.html", {"token": token})


def _from_twilio(request: HttpRequest) -> bool:
    """Twilio signs each webhook (X-Twilio-Signature: HMAC-SHA1 of the URL it called and the sorted form
    parameters, keyed by the auth token: https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
    from twilio.request_validator import RequestValidator

    if not settings.TWILIO_AUTH_TOKEN:
        return False
    url = settings.SITE_URL.rstrip("/") + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(
        url, request.POST.dict(), request.headers.get("X-Twilio-Signature", "")
    )


@public
@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """A text's delivery report; the URL names our message (?m=, signed by Twilio with the rest of the URL)."""
    if not _from_twilio(request):
        return HttpResponse("Signature does not match.", status=403)
    services.sms_status(
        sid=request.POST.get("MessageSid", ""),
        status=request.POST.get("MessageStatus", ""),
        error_code=request.POST.get("ErrorCode", ""),
        message=request.GET.get("m", ""),
    )
    return HttpResponse(status=204)


@public
@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """A patient's reply by SMS: STOP and START are honoured; the answer is empty TwiML (Twilio sends its own
    confirmation of an opt-out)."""
    if not _from_twilio(request):
        return HttpResponse("Signature does not match.", status=403)
    services.sms_reply(
        from_number=request.POST.get("From", ""),
        body=request.POST.get("Body", ""),
        opt_out_type=request.POST.get("OptOutType", ""),
    )
    return HttpResponse(TWIML_EMPTY, content_type="text/xml")
