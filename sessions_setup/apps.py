from django.apps import AppConfig


class SessionsSetupConfig(AppConfig):
    name = "sessions_setup"
    verbose_name = "Session setup"
