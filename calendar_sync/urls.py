from django.urls import path

from calendar_sync import views

app_name = "calendar_sync"
urlpatterns = [
    path("", views.sync_index, name="index"),
    path("feeds/<str:token>.ics", views.feed, name="feed"),
]
