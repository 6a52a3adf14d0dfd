"""The fixed colour palette shared by slot types and session headers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Colour:
    key: str
    label: str
    hex: str
    ink: str  # the text colour on this background: at least 4.5:1 (WCAG AA), tested


PALETTE: tuple[Colour, ...] = (
    Colour("black", "Black", "#1d2430", "#ffffff"),
    Colour("navy", "Navy", "#1f3a93", "#ffffff"),
    Colour("blue", "Blue", "#1f6fd1", "#ffffff"),
    Colour("sky", "Sky", "#7cc4f4", "#10243a"),
    Colour("teal", "Teal", "#0e8183", "#ffffff"),
    Colour("green", "Green", "#2e8540", "#ffffff"),
    Colour("lime", "Lime", "#a8d65c", "#1d2a0b"),
    Colour("olive", "Olive", "#717627", "#ffffff"),
    Colour("yellow", "Yellow", "#f5d547", "#2b2400"),
    Colour("amber", "Amber", "#f0a202", "#2b1a00"),
    Colour("orange", "Orange", "#e8702a", "#2b1400"),
    Colour("red", "Red", "#c62828", "#ffffff"),
    Colour("rose", "Rose", "#e5738f", "#2b0a12"),
    Colour("pink", "Pink", "#f4b6c8", "#2b0a12"),
    Colour("purple", "Purple", "#6a3d9a", "#ffffff"),
    Colour("lavender", "Lavender", "#c3b1e1", "#1e1030"),
    Colour("brown", "Brown", "#7b4b2a", "#ffffff"),
    Colour("sand", "Sand", "#e3cfa5", "#2a2010"),
    Colour("grey", "Grey", "#6e7682", "#ffffff"),
    Colour("silver", "Silver", "#d5dae1", "#1d2430"),
)
BY_KEY = {colour.key: colour for colour in PALETTE}
CHOICES = [(colour.key, colour.label) for colour in PALETTE]


def colour(key: str) -> Colour:
    """The palette entry for `key` (grey if the key is unknown, e.g. from old data)."""
    return BY_KEY.get(key, BY_KEY["grey"])
