from django.urls import path

from patients import views

app_name = "patients"
urlpatterns = [
    path("", views.patient_list, name="list"),
    path("add/", views.patient_edit, name="add"),
    path("import/", views.patient_import, name="import"),
    path("<uuid:patient>/", views.patient_detail, name="detail"),
    path("<uuid:patient>/edit/", views.patient_edit, name="edit"),
    path("<uuid:patient>/quickview/", views.patient_quickview, name="quickview"),
    path("<uuid:patient>/archive/", views.patient_archive, name="archive"),
    path("<uuid:patient>/merge/", views.patient_merge, name="merge"),
    path("<uuid:patient>/coverage/add/", views.coverage_edit, name="coverage-add"),
    path("<uuid:patient>/coverage/<uuid:coverage>/", views.coverage_edit, name="coverage-edit"),
]
