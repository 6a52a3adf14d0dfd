from django.urls import path

from calendar_sync import google_views, views

app_name = "calendar_sync"
urlpatterns = [
    path("", views.sync_index, name="index"),
    path("feeds/<str:token>.ics", views.feed, name="feed"),
    path("google/connect/", google_views.google_connect, name="google-connect"),
    path("google/callback/", google_views.google_callback, name="google-callback"),
    path("google/default/", google_views.google_default, name="google-default"),
    path("google/calendars/", google_views.google_calendar, name="google-calendar"),
    path("google/sync-now/", google_views.google_sync_now, name="google-sync-now"),
    path("google/disconnect/", google_views.google_disconnect, name="google-disconnect"),
    path("google/notifications/", google_views.google_webhook, name="google-webhook"),
]
