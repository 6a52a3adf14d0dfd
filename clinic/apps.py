from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinic (tenant core)"

    def ready(self) -> None:
        from clinic import embedded_beat, signin  # noqa: F401  (signin: the audit of failures and sign-outs)

        if embedded_beat.wanted():
            embedded_beat.start()
