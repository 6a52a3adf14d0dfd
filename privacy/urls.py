from django.urls import URLPattern, URLResolver, path

from privacy.views import clinic_export

app_name = "privacy"

urlpatterns: list[URLPattern | URLResolver] = [
    path("export/", clinic_export.export_page, name="clinic-export"),
    path("export/<uuid:export>/download/<str:token>/", clinic_export.export_download, name="clinic-export-download"),
]
