from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from clinic.models import Clinic
        from notifications import receivers
        from scheduling.signals import patient_news

        patient_news.connect(receivers.on_patient_news, dispatch_uid="notifications.patient_news")
        post_save.connect(receivers.on_clinic_saved, sender=Clinic, dispatch_uid="notifications.clinic_settings")
