"""Name search keys compare byte-wise on PostgreSQL too, whatever the database's locale.

Prefix search is a range [prefix, prefix + U+10FFFF) on an index. That is a prefix match
only under a byte-order ("C") collation, which SQLite's BINARY default already is; on a
PostgreSQL database created with a locale collation the key columns get COLLATE "C".
"""

from django.db import migrations

COLUMNS = ("last_name_key", "first_name_key")


def to_c_collation(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(
            f'ALTER TABLE patients_patient ALTER COLUMN {column} TYPE varchar(80) COLLATE "C"'
        )


def to_default_collation(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"ALTER TABLE patients_patient ALTER COLUMN {column} TYPE varchar(80) COLLATE \"default\"")


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [migrations.RunPython(to_c_collation, to_default_collation)]
