from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        from scheduling.services import waitlist
        from scheduling.signals import hold_ended

        # An offer's hold that ends without a booking puts its entry back to waiting (in the hold's transaction).
        hold_ended.connect(waitlist.on_hold_ended, dispatch_uid="scheduling.waitlist_hold_ended")
