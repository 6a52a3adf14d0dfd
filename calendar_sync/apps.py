from django.apps import AppConfig


class CalendarSyncConfig(AppConfig):
    name = "calendar_sync"
    verbose_name = "Calendar sync"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from calendar_sync import receivers
        from clinic.signals import clinic_settings_changed
        from patients.models import Patient
        from scheduling.signals import calendar_changed, google_synced_query

        calendar_changed.connect(receivers.on_calendar_changed, dispatch_uid="calendar_sync.feeds")
        google_synced_query.connect(receivers.google_synced, dispatch_uid="calendar_sync.google_synced")
        post_save.connect(receivers.on_patient_saved, sender=Patient, dispatch_uid="calendar_sync.patient_names")
        clinic_settings_changed.connect(
            receivers.on_clinic_settings_changed, dispatch_uid="calendar_sync.internal_ids_setting"
        )
