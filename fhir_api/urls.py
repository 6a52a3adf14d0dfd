"""The FHIR API at /fhir/ (and its token endpoint), and the admins' consumer pages."""

from __future__ import annotations

from django.urls import path
from oauth2_provider.views import TokenView

from clinic.access import public
from fhir_api.views import api, consumers

app_name = "fhir_api"

ID = "<str:public_id>"

api_patterns = [
    path("fhir/oauth/token", public(TokenView.as_view()), name="token"),
    path("fhir/metadata", api.metadata, name="metadata"),
    path("fhir/Slot", api.slot_search, name="slot-search"),
    path(f"fhir/Slot/{ID}", api.slot_read, name="slot"),
    path(f"fhir/Schedule/{ID}", api.directory_read, {"kind": "Schedule"}, name="schedule"),
    path(f"fhir/Practitioner/{ID}", api.directory_read, {"kind": "Practitioner"}, name="practitioner"),
    path(f"fhir/PractitionerRole/{ID}", api.directory_read, {"kind": "PractitionerRole"}, name="practitioner-role"),
    path(f"fhir/Location/{ID}", api.directory_read, {"kind": "Location"}, name="location"),
    path(f"fhir/Organization/{ID}", api.organization_read, name="organization"),
    path("fhir/Patient", api.patient_search, name="patient-search"),
    path(f"fhir/Patient/{ID}", api.patient_read, name="patient"),
    path(f"fhir/Patient/{ID}/Appointment", api.patient_appointments, name="patient-appointments"),
    path("fhir/Appointment", api.appointments, name="appointments"),
    path(f"fhir/Appointment/{ID}", api.appointment, name="appointment"),
    path("fhir/<path:rest>", api.unknown, name="unknown"),
]

consumer_patterns = [
    path("clinic/fhir/", consumers.consumer_list, name="consumers"),
    path("clinic/fhir/add/", consumers.consumer_add, name="consumer-add"),
    path("clinic/fhir/<uuid:consumer>/", consumers.consumer_edit, name="consumer-edit"),
    path("clinic/fhir/<uuid:consumer>/rotate/", consumers.consumer_rotate, name="consumer-rotate"),
    path("clinic/fhir/<uuid:consumer>/revoke/", consumers.consumer_revoke, name="consumer-revoke"),
]

urlpatterns = api_patterns + consumer_patterns
