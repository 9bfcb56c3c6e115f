from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kommo_hub", "0005_api_key"),
    ]

    operations = [
        # The keys made before scopes existed are n8n's: they keep the scheduling API.
        migrations.AddField(
            model_name="apikey",
            name="scope",
            field=models.CharField(
                choices=[
                    ("reporting", "reporting (read-only)"),
                    ("scheduling", "scheduling (n8n)"),
                ],
                default="scheduling",
                max_length=16,
                verbose_name="scope",
            ),
        ),
        # New keys are read-only unless someone chooses otherwise.
        migrations.AlterField(
            model_name="apikey",
            name="scope",
            field=models.CharField(
                choices=[
                    ("reporting", "reporting (read-only)"),
                    ("scheduling", "scheduling (n8n)"),
                ],
                default="reporting",
                help_text=(
                    "Reporting: read-only access to the reporting API. Scheduling: the "
                    "scheduling API (n8n)."
                ),
                max_length=16,
                verbose_name="scope",
            ),
        ),
    ]
