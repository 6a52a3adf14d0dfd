"""What notifications asks its observers while wording a message.

Asked with `appointment` (an Appointment about to be told of): a receiver returns the absolute URL where the
patient may view, cancel or move it themselves (the online booking site's signed link), or None. Online booking
answers when its clinic has it on; without an answer the message says to contact the clinic.

Asked with `clinic_id` (`booking_link`): the absolute URL where the clinic's patients book online, or None; a
message asking a patient to rebook (their session was cancelled) carries it.

Asked with `offer` (`offer_link`: a scheduling WaitlistOffer): the absolute URL where the patient takes or lets go
of an offered place (online answers, for every clinic: the page needs no online booking).
"""

from __future__ import annotations

from django.dispatch import Signal

manage_link = Signal()
booking_link = Signal()
offer_link = Signal()


def manage_url(appointment: object) -> str:
    for _receiver, answer in manage_link.send(sender=None, appointment=appointment):
        if answer:
            return str(answer)
    return ""


def booking_url(clinic_id: int) -> str:
    for _receiver, answer in booking_link.send(sender=None, clinic_id=clinic_id):
        if answer:
            return str(answer)
    return ""


def offer_url(offer: object) -> str:
    for _receiver, answer in offer_link.send(sender=None, offer=offer):
        if answer:
            return str(answer)
    return ""
