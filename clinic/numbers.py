"""Whole numbers in request data: ASCII digits only, and never longer than the number can mean.

``str.isdigit()`` accepts "²", which ``int()`` refuses; ``int()`` accepts Arabic-Indic and other decimal
digits ("١٢٣" is 123), which nothing here expects; and a string of thousands of digits makes ``int()``
raise (Python's limit on digits converted, ``sys.get_int_max_str_digits``). Request data goes through
here before ``int()``.
"""

from __future__ import annotations

MAX_DIGITS = 9  # any count, index, id or length a request carries here


def is_ascii_digits(text: str, *, max_digits: int = MAX_DIGITS) -> bool:
    """Whether `text` is 1 to `max_digits` ASCII digits 0-9 and nothing else."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdecimal()


def whole_number(text: str | None, *, max_digits: int = MAX_DIGITS, signed: bool = False) -> int | None:
    """The whole number `text` writes in ASCII digits (spaces around it allowed; a leading minus where
    `signed`), else None."""
    text = (text or "").strip()
    sign = 1
    if signed and text.startswith("-"):
        sign, text = -1, text[1:]
    return sign * int(text) if is_ascii_digits(text, max_digits=max_digits) else None


def has_other_digits(text: str) -> bool:
    """Whether `text` holds a digit other than 0-9 ("²", "١"): such a number is refused, not misread."""
    return any(char.isdigit() and not char.isascii() for char in text)
