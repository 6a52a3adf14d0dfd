from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinic (tenant core)"

    def ready(self) -> None:
        from clinic import embedded_beat

        if embedded_beat.wanted():
            embedded_beat.start()
