from django.urls import path

from scheduling import booking_views, calendar_views, series_views, views

app_name = "scheduling"
urlpatterns = [
    path("", calendar_views.calendar, name="calendar"),
    path("filters/", calendar_views.calendar_filters, name="calendar-filters"),
    path("slots/<uuid:slot>/", calendar_views.slot_detail, name="slot"),
    path("slots/<uuid:slot>/book/", booking_views.book, name="book"),
    path("slots/<uuid:slot>/series/", series_views.series_new, name="series-new"),
    path("drafts/<uuid:draft>/", series_views.draft_detail, name="draft"),
    path("slots/new/", booking_views.slot_new, name="slot-new"),
    path("next-available/", booking_views.next_available, name="next-available"),
    path("reports/appointments/", booking_views.appointments_report, name="appointments-report"),
    path("appointments/<uuid:appointment>/", booking_views.appointment_detail, name="appointment"),
    path("appointments/<uuid:appointment>/cancel/", booking_views.appointment_cancel, name="appointment-cancel"),
    path(
        "appointments/<uuid:appointment>/reschedule/",
        booking_views.appointment_reschedule,
        name="appointment-reschedule",
    ),
    path("patients/<uuid:patient>/appointments/", booking_views.patient_appointments, name="patient-appointments"),
    path("events/new/", calendar_views.event_new, name="event-new"),
    path("events/<uuid:event>/", calendar_views.event_edit, name="event-edit"),
    path("events/<uuid:event>/delete/", calendar_views.event_delete, name="event-delete"),
    path("office-hours/", calendar_views.office_hours, name="office-hours"),
    path("office-hours/default/", calendar_views.office_hours_edit, name="office-hours-default"),
    path("office-hours/<uuid:practitioner>/", calendar_views.office_hours_edit, name="office-hours-edit"),
    path("availability/", calendar_views.availability, name="availability"),
    path("availability/<uuid:practitioner>/", calendar_views.availability_edit, name="availability-edit"),
    path(
        "availability/overrides/<uuid:override>/delete/",
        calendar_views.availability_override_delete,
        name="availability-override-delete",
    ),
    path("sessions/", views.day_sessions, name="day-sessions"),
    path("rota/", views.rota, name="rota"),
    path("rota/allocate/", views.allocate, name="allocate"),
    path("rota/<uuid:allocation>/remove/", views.allocation_remove, name="allocation-remove"),
]
