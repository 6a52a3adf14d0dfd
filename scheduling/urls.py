from django.urls import path

from scheduling import views

app_name = "scheduling"
urlpatterns = [
    path("", views.calendar, name="calendar"),
    path("sessions/", views.day_sessions, name="day-sessions"),
    path("rota/", views.rota, name="rota"),
    path("rota/allocate/", views.allocate, name="allocate"),
    path("rota/<uuid:allocation>/remove/", views.allocation_remove, name="allocation-remove"),
]
