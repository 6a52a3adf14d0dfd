from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Break-glass access, a patient's data export and erasure, and the clinic export.

    privacy may read (and erase across) every domain app; nothing imports it. It learns of what happens elsewhere
    through the other apps' signals, connected here.
    """

    name = "privacy"
    verbose_name = "Privacy"

    def ready(self) -> None:
        from patients import signals as patient_signals
        from privacy import receivers
        from privacy.views import patient_data

        # Break-glass: does a grant let this member in to this blocked patient; what a search offers for one.
        patient_signals.blocked_access_query.connect(receivers.blocked_access, dispatch_uid="privacy.blocked_access")
        patient_signals.restricted_match.connect(receivers.restricted_match, dispatch_uid="privacy.restricted_match")

        # The patient page's "Patient data" section: export and erasure (patients imports nothing of privacy).
        patient_signals.patient_sections.connect(
            patient_data.patient_section, dispatch_uid="privacy.patient_data_section"
        )
