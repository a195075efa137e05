"""The unmanaged ``CacheAlias`` model: creates no table, only its permission."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = ()

    operations = (
        migrations.CreateModel(
            name="CacheAlias",
            fields=[
                ("alias", models.CharField(max_length=100, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "cache alias",
                "verbose_name_plural": "cache statistics",
                "permissions": (
                    (
                        "manage_cache",
                        "Can view cache statistics and invalidate or clear cache entries",
                    ),
                ),
                "managed": False,
                "default_permissions": (),
            },
        ),
    )
