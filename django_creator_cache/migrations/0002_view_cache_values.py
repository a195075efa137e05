"""The ``view_cache_values`` permission: the key browser shows values only with it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = (("django_creator_cache", "0001_initial"),)

    operations = (
        migrations.AlterModelOptions(
            name="cachealias",
            options={
                "verbose_name": "cache alias",
                "verbose_name_plural": "cache statistics",
                "permissions": (
                    (
                        "manage_cache",
                        "Can view cache statistics and invalidate or clear cache entries",
                    ),
                    ("view_cache_values", "Can see the values stored in the cache (key browser)"),
                ),
                "managed": False,
                "default_permissions": (),
            },
        ),
    )
