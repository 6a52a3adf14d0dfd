from django.apps import AppConfig


class OnlineConfig(AppConfig):
    name = "online"
    verbose_name = "Online booking"

    def ready(self) -> None:
        from notifications.signals import booking_link, manage_link, offer_link
        from online import receivers
        from scheduling.signals import appointment_sections, hold_ended

        hold_ended.connect(receivers.on_hold_ended, dispatch_uid="online.hold_ended")
        manage_link.connect(receivers.manage_link_for, dispatch_uid="online.manage_link")
        offer_link.connect(receivers.offer_link_for, dispatch_uid="online.offer_link")
        booking_link.connect(receivers.booking_link_for, dispatch_uid="online.booking_link")
        appointment_sections.connect(receivers.appointment_section, dispatch_uid="online.appointment_section")
