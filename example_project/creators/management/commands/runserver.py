"""``runserver`` that also says which cache the site runs on."""

from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver

from example_project.cacheinfo import banner


class Command(StaticRunserver):
    def on_bind(self, server_port: int) -> None:
        # Called once in the process that serves (the autoreloader's child).
        super().on_bind(server_port)
        self.stdout.write(f"\n{banner()}\n")
