"""Rows written without model instances, the fastest plain way (a year's rota, a feed's events).

The ORM's bulk_create spends most of its time building instances and SQL; these helpers take plain
tuples of values already in the form the ORM would store.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection


class DbValues:
    """Python values as the ORM stores them, for rows inserted without model instances.

    On backends without time zone support (SQLite) datetimes are naive UTC text and dates
    ISO text; without a native uuid type, UUIDs are 32 hex digits.
    """

    def __init__(self) -> None:
        self.naive_text = not connection.features.supports_timezones
        self.native_uuid = connection.features.has_native_uuid_field

    def datetime(self, value: dt.datetime) -> Any:
        return str(value.astimezone(dt.UTC).replace(tzinfo=None)) if self.naive_text else value

    def date(self, value: dt.date) -> Any:
        return connection.ops.adapt_datefield_value(value)

    def new_uuid(self) -> Any:
        value = uuid.uuid4()
        return value if self.native_uuid else value.hex

    def random_uuids(self, count: int) -> list[Any]:
        """`count` random 128-bit ids, as uuid4 would give, without building a UUID object each where not needed."""
        raw = os.urandom(16 * count).hex()
        ids = [raw[i : i + 32] for i in range(0, 32 * count, 32)]
        return [uuid.UUID(i) for i in ids] if self.native_uuid else ids


def bulk_insert(table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert plain rows the fastest plain way: COPY on PostgreSQL, executemany elsewhere."""
    names = ", ".join(columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)
