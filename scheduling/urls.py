from django.urls import path

from scheduling.views import booking, calendar, changes, rota, series

app_name = "scheduling"
urlpatterns = [
    path("", calendar.calendar, name="calendar"),
    path("filters/", calendar.calendar_filters, name="calendar-filters"),
    path("slots/<uuid:slot>/", calendar.slot_detail, name="slot"),
    path("slots/<uuid:slot>/book/", booking.book, name="book"),
    path("slots/<uuid:slot>/series/", series.series_new, name="series-new"),
    path("drafts/<uuid:draft>/", series.draft_detail, name="draft"),
    path("slots/new/", booking.slot_new, name="slot-new"),
    path("next-available/", booking.next_available, name="next-available"),
    path("reports/appointments/", booking.appointments_report, name="appointments-report"),
    path("appointments/<uuid:appointment>/", booking.appointment_detail, name="appointment"),
    path("appointments/<uuid:appointment>/cancel/", booking.appointment_cancel, name="appointment-cancel"),
    path("appointments/<uuid:appointment>/reschedule/", booking.appointment_reschedule, name="appointment-reschedule"),
    path("patients/<uuid:patient>/appointments/", booking.patient_appointments, name="patient-appointments"),
    path("events/new/", calendar.event_new, name="event-new"),
    path("events/<uuid:event>/", calendar.event_edit, name="event-edit"),
    path("events/<uuid:event>/delete/", calendar.event_delete, name="event-delete"),
    path("office-hours/", calendar.office_hours, name="office-hours"),
    path("office-hours/default/", calendar.office_hours_edit, name="office-hours-default"),
    path("office-hours/<uuid:practitioner>/", calendar.office_hours_edit, name="office-hours-edit"),
    path("availability/", calendar.availability, name="availability"),
    path("availability/<uuid:practitioner>/", calendar.availability_edit, name="availability-edit"),
    path(
        "availability/overrides/<uuid:override>/delete/",
        calendar.availability_override_delete,
        name="availability-override-delete",
    ),
    path("sessions/", rota.day_sessions, name="day-sessions"),
    path("rota/", rota.rota, name="rota"),
    path("rota/allocate/", rota.allocate, name="allocate"),
    path("rota/<uuid:allocation>/remove/", rota.allocation_remove, name="allocation-remove"),
    path("rota/take-out/", changes.take_out, name="take-out"),
    path("rota/templates/<uuid:template>/apply/", changes.template_apply, name="template-apply"),
    path("sessions/<uuid:session>/edit/", changes.session_edit, name="session-edit"),
    path("sessions/<uuid:session>/resume/", changes.session_resume, name="session-resume"),
    path("displaced/", changes.displaced, name="displaced"),
]
