from django.apps import AppConfig


class CreatorsConfig(AppConfig):
    name = "example_project.creators"
    label = "creators"
    verbose_name = "Creators"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals

        signals.connect()
