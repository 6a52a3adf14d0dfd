from django.db import migrations


def settings_for_every_clinic(apps, schema_editor):
    Clinic = apps.get_model("clinic", "Clinic")
    NotificationSettings = apps.get_model("notifications", "NotificationSettings")
    have = set(NotificationSettings.objects.values_list("clinic_id", flat=True))
    NotificationSettings.objects.bulk_create(
        NotificationSettings(clinic_id=pk) for pk in Clinic.objects.values_list("pk", flat=True) if pk not in have
    )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_messages"), ("clinic", "0003_clinic_bills_insurance")]

    operations = [migrations.RunPython(settings_for_every_clinic, migrations.RunPython.noop)]
