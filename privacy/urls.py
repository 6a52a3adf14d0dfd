from django.urls import URLPattern, URLResolver, path

from privacy.views import patient_data

app_name = "privacy"

urlpatterns: list[URLPattern | URLResolver] = [
    path("patients/<uuid:patient>/export/", patient_data.patient_export_page, name="patient-export"),
    path("patients/<uuid:patient>/erase/", patient_data.patient_erase_page, name="patient-erase"),
    path("settings/retention/", patient_data.retention_settings, name="retention"),
]
