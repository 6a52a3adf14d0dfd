"""The key of one item of a practitioner's calendar, as feeds and Google sync record it: "a<pk>" for an
appointment, "e<pk>" for an other event (scheduling's calendar_changed signal sends the same text)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

Kind = Literal["a", "e"]
APPOINTMENT: Kind = "a"
EVENT: Kind = "e"
EVERYTHING = ""  # the text a pending change has when it stands for the whole calendar, not one item


class ItemKey(NamedTuple):
    kind: Kind
    pk: int

    @classmethod
    def appointment(cls, pk: int) -> ItemKey:
        return cls(APPOINTMENT, pk)

    @classmethod
    def event(cls, pk: int) -> ItemKey:
        return cls(EVENT, pk)

    @classmethod
    def parse(cls, text: str) -> ItemKey:
        """The key a text names; ValueError for anything else (the empty "everything" included)."""
        kind, digits = text[:1], text[1:]
        if kind == APPOINTMENT:
            return cls(APPOINTMENT, int(digits))
        if kind == EVENT:
            return cls(EVENT, int(digits))
        raise ValueError(f"not an item key: {text!r}")

    @property
    def is_appointment(self) -> bool:
        return self.kind == APPOINTMENT

    @property
    def text(self) -> str:
        """As stored (FeedChange, FeedEvent, GooglePending, GoogleEvent)."""
        return f"{self.kind}{self.pk}"

    def __str__(self) -> str:
        return self.text


def split(keys: Iterable[ItemKey]) -> tuple[list[int], list[int]]:
    """The primary keys of the appointments, then of the other events, among these keys."""
    appointments: list[int] = []
    events: list[int] = []
    for key in keys:
        (appointments if key.is_appointment else events).append(key.pk)
    return appointments, events
