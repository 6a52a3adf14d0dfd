from django.urls import path

from online.views import booking, manage, offer, staff

app_name = "online"

urlpatterns = [
    # The public site.
    path("book/<slug:slug>/", booking.landing, name="landing"),
    path("book/<slug:slug>/check/<str:token>/", booking.check, name="check"),
    path("book/<slug:slug>/done/<str:token>/", booking.done, name="done"),
    path("book/<slug:slug>/manage/<str:token>/", manage.manage, name="manage"),
    path("book/<slug:slug>/manage/<str:token>/move/", manage.move, name="move"),
    path("book/<slug:slug>/offer/<str:token>/", offer.offer, name="offer"),
    path("book/<slug:slug>/<uuid:slot_type>/", booking.times, name="times"),
    path("book/<slug:slug>/<uuid:slot_type>/<uuid:slot>/", booking.details, name="details"),
    # The staff side.
    path("online/settings/", staff.settings_page, name="settings"),
    path("online/settings/practitioners/<uuid:practitioner>/", staff.practitioner_set, name="practitioner"),
    path("online/requests/", staff.request_list, name="requests"),
    path("online/requests/<uuid:booking>/accept/", staff.request_accept, name="accept"),
    path("online/requests/<uuid:booking>/decline/", staff.request_decline, name="decline"),
]
