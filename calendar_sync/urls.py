from django.urls import path

from calendar_sync.views import feed, google, sync

app_name = "calendar_sync"
urlpatterns = [
    path("", sync.sync_index, name="index"),
    path("feeds/<str:token>.ics", feed.feed, name="feed"),
    path("google/connect/", google.google_connect, name="google-connect"),
    path("google/callback/", google.google_callback, name="google-callback"),
    path("google/default/", google.google_default, name="google-default"),
    path("google/calendars/", google.google_calendar, name="google-calendar"),
    path("google/sync-now/", google.google_sync_now, name="google-sync-now"),
    path("google/focus-time/", google.google_focus_time, name="google-focus-time"),
    path("google/disconnect/", google.google_disconnect, name="google-disconnect"),
    path("google/notifications/", google.google_webhook, name="google-webhook"),
]
