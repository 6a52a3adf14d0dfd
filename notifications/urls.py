from django.urls import path

from notifications.views import public

app_name = "notifications"
urlpatterns = [
    path("unsubscribe/<str:token>/", public.unsubscribe, name="unsubscribe"),
    path("twilio/status/", public.twilio_status, name="twilio-status"),
    path("twilio/inbound/", public.twilio_inbound, name="twilio-inbound"),
]
