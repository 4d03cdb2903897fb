"""Load the demo data set once and print the credentials it generated (only that once)."""

from django.core.management.base import BaseCommand

from config_registry.demo import demo_seed, demo_seeded


class Command(BaseCommand):
    help = "Create demo layers, secrets, chat users and a service token, the first time only."

    def handle(self, *args, **options):
        if demo_seeded():
            self.stdout.write("Demo data already present; its credentials were printed when it was created.")
            return
        credentials = demo_seed()
        users = ", ".join(f"{name} / {password}" for name, password in credentials.user_passwords.items())
        self.stdout.write(
            "\n".join(
                [
                    "Demo data created. These credentials are shown once; keep them:",
                    f"  admin login:   admin / {credentials.admin_password}",
                    f"  chat users:    {users}",
                    f"  service token: {credentials.token}",
                    "                 (scopes config:read, config:write, audit:read, chat:ticket)",
                ]
            )
        )
