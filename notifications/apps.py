from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from clinic.models import Clinic
        from notifications import receivers
        from notifications.views import pages
        from patients.signals import patient_sections
        from scheduling.signals import appointment_sections, patient_news, quiet_hours_query, waitlist_offered

        patient_news.connect(receivers.on_patient_news, dispatch_uid="notifications.patient_news")
        waitlist_offered.connect(receivers.on_waitlist_offered, dispatch_uid="notifications.waitlist_offered")
        quiet_hours_query.connect(receivers.quiet_hours_for, dispatch_uid="notifications.quiet_hours")
        post_save.connect(receivers.on_clinic_saved, sender=Clinic, dispatch_uid="notifications.clinic_settings")
        # The sections notifications adds to scheduling's appointment page and patients' patient page.
        appointment_sections.connect(pages.appointment_section, dispatch_uid="notifications.appointment_section")
        patient_sections.connect(pages.patient_section, dispatch_uid="notifications.patient_section")
