from django.urls import URLPattern, URLResolver, path

from privacy.views import breakglass, clinic_export, patient_data

app_name = "privacy"

urlpatterns: list[URLPattern | URLResolver] = [
    path("break-glass/patient/<uuid:patient>/", breakglass.break_glass, name="break-glass"),
    path("break-glass/reviews/", breakglass.reviews, name="reviews"),
    path("break-glass/reviews/<uuid:use>/", breakglass.review, name="review"),
    path("export/", clinic_export.export_page, name="clinic-export"),
    path("export/<uuid:export>/download/<str:token>/", clinic_export.export_download, name="clinic-export-download"),
    path("patients/<uuid:patient>/export/", patient_data.patient_export_page, name="patient-export"),
    path("patients/<uuid:patient>/erase/", patient_data.patient_erase_page, name="patient-erase"),
    path("settings/retention/", patient_data.retention_settings, name="retention"),
]
