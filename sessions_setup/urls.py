from django.urls import path

from sessions_setup import views

app_name = "sessions_setup"
urlpatterns = [
    path("", views.setup_index, name="index"),
    path("slot-types/", views.slot_type_list, name="slot-types"),
    path("slot-types/add/", views.slot_type_edit, name="slot-type-add"),
    path("slot-types/<uuid:slot_type>/", views.slot_type_edit, name="slot-type-edit"),
    path("sessions/", views.template_list, name="templates"),
    path("sessions/add/", views.template_edit, name="template-add"),
    path("sessions/<uuid:template>/", views.template_edit, name="template-edit"),
]
