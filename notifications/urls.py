from django.urls import path

from notifications.views import pages, public

app_name = "notifications"
urlpatterns = [
    path("", pages.message_list, name="list"),
    path("settings/", pages.settings_page, name="settings"),
    path("<uuid:message>/", pages.message_detail, name="detail"),
    path("<uuid:message>/send-again/", pages.message_resend, name="resend"),
    path("patients/<uuid:patient>/", pages.patient_preferences, name="patient-preferences"),
    path("unsubscribe/<str:token>/", public.unsubscribe, name="unsubscribe"),
    path("twilio/status/", public.twilio_status, name="twilio-status"),
    path("twilio/inbound/", public.twilio_inbound, name="twilio-inbound"),
]
