"""Normalising what staff type: names for search, national identifiers, phones, dates of birth."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

NON_DIGITS = re.compile(r"[^0-9]+")  # ASCII digits only: "²" and "١" are not digits of a number here
PHONE_KEY_DIGITS = 10


def name_key(value: str) -> str:
    """Case- and accent-insensitive form of a name, for prefix search ("Zoë" -> "zoe")."""
    decomposed = unicodedata.normalize("NFKD", value or "")
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def digits(value: str) -> str:
    return NON_DIGITS.sub("", value or "")


def nhs_number_is_valid(number: str) -> bool:
    """The NHS number's modulus-11 check digit."""
    if len(number) != 10 or not (number.isascii() and number.isdecimal()):
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(number[9])


def ssn_is_valid(number: str) -> bool:
    """A US SSN's structure: 9 digits, no 000/666/9xx area, no 00 group, no 0000 serial."""
    if len(number) != 9 or not (number.isascii() and number.isdecimal()):
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def mask_national_id(number: str) -> str:
    """Only the last four digits, for lists."""
    return f"•••• {number[-4:]}" if number else ""


def phone_normalise(value: str) -> str:
    """A phone number as digits, with a leading + kept for international numbers."""
    value = (value or "").strip()
    return ("+" if value.startswith("+") else "") + digits(value)


def phone_key(value: str) -> str:
    """The last ten digits: the same for "07700 900123", "+44 7700 900123" and "(212) 555-0100"."""
    number = digits(value)
    return number[-PHONE_KEY_DIGITS:] if len(number) >= 7 else ""


DOB_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %b %Y", "%d %B %Y", "%d%m%Y")


def parse_date_of_birth(value: str, *, us_order: bool = False) -> dt.date | None:
    """A date typed in a common format; day-first unless the clinic writes dates month-first."""
    text = " ".join((value or "").strip().split())
    formats: tuple[str, ...] = DOB_FORMATS
    if us_order:
        formats = ("%m/%d/%Y", "%m-%d-%Y", *[f for f in DOB_FORMATS if not f.startswith("%d/")])
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None
