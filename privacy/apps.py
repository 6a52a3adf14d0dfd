from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Break-glass access, a patient's data export and erasure, and the clinic export.

    privacy may read (and erase across) every domain app; nothing imports it. It learns of what happens elsewhere
    through the other apps' signals, connected here.
    """

    name = "privacy"
    verbose_name = "Privacy"

    def ready(self) -> None:
        from patients.signals import patient_sections
        from privacy.views import patient_data

        # The patient page's "Patient data" section: export and erasure (patients imports nothing of privacy).
        patient_sections.connect(patient_data.patient_section, dispatch_uid="privacy.patient_data_section")
