from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "fhir_api"
    verbose_name = "FHIR API"

    def ready(self) -> None:
        from fhir_api import receivers
        from scheduling.signals import appointment_sections, source_names_query

        appointment_sections.connect(receivers.appointment_section, dispatch_uid="fhir_api.appointment_section")
        source_names_query.connect(receivers.source_names, dispatch_uid="fhir_api.source_names")
