from django.urls import path

from sessions_setup import views

app_name = "sessions_setup"
urlpatterns = [path("", views.setup_index, name="index")]
